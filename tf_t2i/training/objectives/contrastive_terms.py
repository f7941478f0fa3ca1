"""The paper's contrastive terms (Ye et al. 2021, "Improving Text-to-Image Synthesis
Using Contrastive Learning", T2I_CL): NT-Xent (Chen et al. 2020, SimCLR) between DAMSM
image codes.

* F2R, fake-to-real (the paper's "R2F" rows): each fake against the real image of its
  caption; the other real images of the global batch are the negatives.
* F2F, fake-to-fake: the fakes of two captions of one image from the same z.

Both compare the frozen encoder's codes, or the codes through a shared projection head
trained with the generator when the run configures one.
"""

import tensorflow as tf

from tf_t2i.losses import contrastive
from tf_t2i.training.objectives import base
from tf_t2i.training.objectives import registry


class _NTXentTerm(base.GeneratorTerm):
    needs_image_encoder = True

    def __init__(self, weight: float, temperature: float, projection_head=None):
        super().__init__(weight)
        self.temperature = temperature
        self.projection_head = projection_head

    @classmethod
    def from_config(cls, loss_cfg, models):
        return cls(getattr(loss_cfg, cls.weight_field), loss_cfg.contrastive_temperature,
                   models.projection_head)

    @property
    def trainable_variables(self):
        return self.projection_head.trainable_variables if self.projection_head else []

    def contrastive(self, codes_a, codes_b) -> tf.Tensor:
        """Per-example NT-Xent between two batches of image codes (negatives: the
        global batch)."""
        if self.projection_head is not None:
            codes_a, codes_b = self.projection_head(codes_a), self.projection_head(codes_b)
        return contrastive.nt_xent_per_example(codes_a, codes_b, self.temperature)


@registry.register_term
class FakeToRealTerm(_NTXentTerm):
    name = "g_f2r"
    weight_field = "f2r_weight"

    def __call__(self, record):
        return self.contrastive(record.fake_features(0)[1], record.real_code())


@registry.register_term
class FakeToFakeTerm(_NTXentTerm):
    name = "g_f2f"
    weight_field = "f2f_weight"
    captions_needed = 2

    def __call__(self, record):
        return self.contrastive(record.fake_features(0)[1], record.fake_features(1)[1])
