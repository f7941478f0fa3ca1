"""The mode-seeking regulariser (Mao et al. 2019, MSGAN): not one of the paper's terms;
counters a conditional generator that ignores its noise."""

import tensorflow as tf

from tf_t2i.losses import adversarial
from tf_t2i.models import interface
from tf_t2i.training.objectives import base
from tf_t2i.training.objectives import registry


@registry.register_term
class ModeSeekingTerm(base.GeneratorTerm):
    """The first caption again from a second noise vector (a pure function of z, so the
    pair is the same on any number of replicas), compared with the step's fake.

    With `examples` N > 0 the replica's first N captions each get a pair of new images
    instead, both in one generator pass of 2N examples: the pair shares its batch
    statistics (a pass of N beside the step's B would differ from the step's fake by
    them as well as by the noise), and the extra pass costs 2N / B of a full one.
    """

    name = "g_ms"
    weight_field = "mode_seeking_weight"

    def __init__(self, weight: float, examples: int = 0):
        super().__init__(weight)
        self.examples = examples

    @classmethod
    def from_config(cls, loss_cfg, models) -> "ModeSeekingTerm":
        return cls(loss_cfg.mode_seeking_weight, loss_cfg.mode_seeking_examples)

    def __call__(self, record):
        z, caption = record.z, record.captions[0]
        if not self.examples:
            z_2 = interface.second_noise(z)
            return adversarial.mode_seeking_loss(
                record.fakes[0], record.generate(z_2, caption).final, z, z_2)
        z_a = interface.second_noise(z[:self.examples])
        z_b = interface.second_noise(z_a)
        twice = base.EncodedCaption(*(tf.concat([t[:self.examples]] * 2, 0) for t in caption))
        images = record.generate(tf.concat([z_a, z_b], 0), twice).final
        count = tf.shape(z_a)[0]
        loss = adversarial.mode_seeking_loss(images[:count], images[count:], z_a, z_b)
        # The step averages every term over the whole batch: spread the pairs' mean over
        # it (scaled up, zeros after), so the weight means what it means without
        # `examples`.
        batch = tf.shape(z)[0]
        loss = loss * tf.cast(batch, tf.float32) / tf.cast(count, tf.float32)
        return tf.pad(loss, [[0, batch - count]])
