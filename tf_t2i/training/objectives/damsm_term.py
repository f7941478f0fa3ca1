"""The DAMSM term of the generator loss (Xu et al. 2018, AttnGAN, Eq. 11): word- and
sentence-level matching of the fakes to their captions by the frozen DAMSM encoders,
optionally of randomly moved fakes (`losses/augment.py`), and optionally with each image's
mismatched caption as one more wrong candidate (`--loss_damsm_hard_negatives`)."""

import tensorflow as tf

from tf_t2i.data import pipeline
from tf_t2i.losses import augment
from tf_t2i.losses import damsm as damsm_losses
from tf_t2i.models import interface
from tf_t2i.training import runtime
from tf_t2i.training.objectives import base
from tf_t2i.training.objectives import registry


def class_ids_for_masking(batch):
    """Class ids for DAMSM negatives masking; classless datasets (-1) get unique ids."""
    return tf.where(batch["class_id"] < 0, -2 - batch["image_id"], batch["class_id"])


@registry.register_term
class DAMSMTerm(base.GeneratorTerm):
    """l1 * (word loss + sentence loss) of every fake against its own caption.

    The negatives are the whole global batch (gathered from all replicas), as with one
    device, so the value does not depend on how the batch is split; with hard negatives,
    also each fake's mismatched caption (with `--data_shapes_hard_negatives`, its own
    caption with other shapes: the only candidate that differs from the caption in shape
    alone, so the term's gradient asks for the shape as much as for the colour).
    """

    name = "g_damsm"
    weight_field = "damsm_weight"
    needs_image_encoder = True

    def __init__(self, weight: float, gamma1: float, gamma2: float, gamma3: float,
                 augment_shift: float = 0.0, augment_zoom: float = 0.0,
                 hard_negatives: bool = False):
        super().__init__(weight)
        self.gamma1, self.gamma2, self.gamma3 = gamma1, gamma2, gamma3
        self.augment_shift, self.augment_zoom = augment_shift, augment_zoom
        self.hard_negatives = hard_negatives

    @classmethod
    def from_config(cls, loss_cfg, models):
        return cls(loss_cfg.damsm_weight, loss_cfg.gamma1, loss_cfg.gamma2, loss_cfg.gamma3,
                   loss_cfg.damsm_augment_shift, loss_cfg.damsm_augment_zoom,
                   loss_cfg.damsm_hard_negatives)

    def features(self, record, index: int):
        """(regions, code) of fake `index`: shared with the other terms when unmoved; a
        moved copy (its own move per example and caption) otherwise."""
        if not (self.augment_shift or self.augment_zoom):
            return record.fake_features(index)
        moved = augment.shift_and_zoom(record.fakes[index], interface.noise_seeds_from(record.z),
                                       self.augment_shift, self.augment_zoom, salt=index)
        return record.encode(moved)

    def loss(self, image_features, caption: base.EncodedCaption, class_ids,
             hard: base.EncodedCaption = None) -> tf.Tensor:
        """Per-example DAMSM loss of images given as the encoder's (regions, code), with
        `hard` (one wrong caption per image) as one more negative when given."""
        regions, code = image_features
        hard_parts = () if hard is None else (hard.words, hard.sentence, hard.ids)
        gathered, local = runtime.gather_batch(
            (caption.words, caption.sentence, caption.ids, class_ids, regions, code)
            + hard_parts)
        words, sentence, ids, class_ids, regions, code = gathered[:6]
        hard_words = hard_sentence = None
        if hard is not None:
            hard_word_features, hard_sentence, hard_ids = gathered[6:]
            hard_words = (hard_word_features, pipeline.caption_mask(hard_ids))
        mask = pipeline.caption_mask(ids)
        w_loss, _ = damsm_losses.damsm_word_loss(words, mask, regions, class_ids,
                                                 self.gamma1, self.gamma2, self.gamma3,
                                                 hard_negative=hard_words)
        s_loss = damsm_losses.damsm_sentence_loss(sentence, code, class_ids, self.gamma3,
                                                  hard_negative=hard_sentence)
        return local(w_loss + s_loss)

    def __call__(self, record):
        class_ids = class_ids_for_masking(record.batch)
        # The mismatched caption is the first caption's hard negative; a second caption
        # (F2F) describes the same image, so it is wrong for that one's fake too.
        hard = record.mismatched if self.hard_negatives else None
        return tf.add_n([self.loss(self.features(record, i), caption, class_ids, hard)
                         for i, caption in enumerate(record.captions)])
