"""The re-captioning term (the paper's L_CP, section 3.3): the token cross-entropy of the
true caption under a frozen captioning model that reads the fake."""

from tf_t2i.models import captioner as captioner_lib
from tf_t2i.training.objectives import base
from tf_t2i.training.objectives import registry


@registry.register_term
class RecaptionTerm(base.GeneratorTerm):
    name = "g_recap"
    weight_field = "recap_weight"

    def __init__(self, weight: float, captioner):
        super().__init__(weight)
        if captioner is None:
            raise ValueError("recap_weight > 0 needs the captioner.")
        self.captioner = captioner

    @classmethod
    def from_config(cls, loss_cfg, models):
        return cls(loss_cfg.recap_weight, models.captioner)

    def loss(self, fake_images, caption_ids):
        """Per-example cross-entropy of `caption_ids` read from `fake_images`."""
        c = self.captioner
        logits = c(fake_images, captioner_lib.shift_right(caption_ids, c.bos_id),
                   training=False)
        return captioner_lib.caption_cross_entropy(
            logits, captioner_lib.append_eos(caption_ids, c.eos_id))

    def __call__(self, record):
        return self.loss(record.fakes[0], record.captions[0].ids)
