"""The AttnGAN family's adversarial scheme (AttnGAN, Style1AttnGAN, Style2AttnGAN).

One discriminator per generator stage, each with a conditional and an unconditional
logit; AttnGAN's binary cross-entropy (Xu et al. 2018, code/miscc/losses.py), the
conditioning augmentation's KL term (Zhang et al. 2017), and an optional lazy R1 penalty
(Mescheder et al. 2018; lazy as StyleGAN2, Karras et al. 2020).

As AttnGAN's trainer (code/trainer.py): every discriminator is updated on (real, fake,
mismatched) of its stage; then G on the same fakes with the sum over stages of the
conditional and unconditional generator terms, plus the KL term.
"""

from typing import Dict, Sequence, Tuple

import tensorflow as tf

from tf_t2i.losses import adversarial
from tf_t2i.training import loss_scaling
from tf_t2i.training.objectives import base
from tf_t2i.training.objectives import registry


def resize_to_stages(real_images, stage_sizes):
    """The real image at every stage's size (antialiased, as the input pipeline resizes)."""
    out = []
    for size in stage_sizes:
        if real_images.shape[1] == size:
            out.append(real_images)
        else:
            out.append(tf.clip_by_value(
                tf.image.resize(real_images, [size, size], antialias=True), -1.0, 1.0))
    return out


@registry.register_scheme
class AttnGANBCE(base.AdversarialScheme):
    """Per-stage BCE + KL + optional lazy R1.

    Args:
      discriminators: one per generator stage, smallest first, each with
        `conditional_logits(features, sentence)` and `unconditional_logits(features)`.
      kl_weight: weight of the KL term in the G loss (AttnGAN: 1; 0 leaves it out).
      r1_gamma: R1 weight on real images (0: off; Style2AttnGAN uses it).
      r1_interval: R1 every this many steps, scaled by it (StyleGAN2's 16).
    """

    name = "bce"

    def __init__(self, discriminators: Sequence, kl_weight: float = 1.0,
                 r1_gamma: float = 0.0, r1_interval: int = 16):
        super().__init__(discriminators)
        if r1_interval < 1:
            raise ValueError(f"r1_interval must be >= 1, got {r1_interval}.")
        self.kl_weight = kl_weight
        self.r1_gamma = r1_gamma
        self.r1_interval = r1_interval

    @classmethod
    def from_config(cls, discriminators, loss_cfg):
        return cls(discriminators, kl_weight=loss_cfg.kl_weight, r1_gamma=loss_cfg.r1_gamma,
                   r1_interval=loss_cfg.r1_interval)

    @property
    def log_names(self):
        return (["d_r1"] if self.r1_gamma > 0 else [],
                ["g_adv"] + (["g_kl"] if self.kl_weight > 0 else []))

    def r1(self, reals, sentence,
           loss_scale: loss_scaling.LossScale = loss_scaling.NONE) -> tf.Tensor:
        """Per-example R1 summed over stages, on the conditional plus unconditional logits
        of real matched pairs; `loss_scale` (D's, in float16) scales the backward pass of
        dD/dx too."""
        total = 0.0
        for disc, real in zip(self.discriminators, reals):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(real)
                features = disc(real, training=True)
                logits = (
                    tf.reduce_sum(tf.cast(
                        disc.conditional_logits(features, sentence, training=True), tf.float32))
                    + tf.reduce_sum(tf.cast(
                        disc.unconditional_logits(features, training=True), tf.float32)))
            total += adversarial.r1_penalty(loss_scale.gradient(tape, logits, real),
                                            gamma=self.r1_gamma)
        return total

    def lazy_r1(self, reals, sentence, step,
                loss_scale: loss_scaling.LossScale = loss_scaling.NONE) -> tf.Tensor:
        """R1 every `r1_interval` steps (counted by `step`), scaled by the interval;
        zeros on the other steps, without computing the penalty."""
        if self.r1_interval == 1:
            return self.r1(reals, sentence, loss_scale)
        due = tf.equal(step % self.r1_interval, 0)
        return tf.cond(due,
                       lambda: float(self.r1_interval) * self.r1(reals, sentence, loss_scale),
                       lambda: tf.zeros([tf.shape(reals[0])[0]]))

    def _stage_loss(self, disc, real, fake, sentence, mismatched):
        real_features = disc(real, training=True)
        fake_features = disc(tf.stop_gradient(fake), training=True)
        return adversarial.attngan_discriminator_loss(
            cond_real=disc.conditional_logits(real_features, sentence, training=True),
            cond_fake=disc.conditional_logits(fake_features, sentence, training=True),
            cond_mismatched=disc.conditional_logits(real_features, mismatched, training=True),
            uncond_real=disc.unconditional_logits(real_features, training=True),
            uncond_fake=disc.unconditional_logits(fake_features, training=True))

    def discriminator_step(self, record, optimizer, average,
                           loss_scale=loss_scaling.NONE) -> Dict[str, tf.Tensor]:
        sizes = [int(x.shape[1]) for x in record.generated[0].stages]
        reals = resize_to_stages(record.real_images, sizes)
        variables = self.trainable_variables
        values = {}
        with tf.GradientTape() as tape:
            d_adv = tf.add_n([
                self._stage_loss(disc, real, fake, caption.sentence,
                                 record.mismatched.sentence)
                for generated, caption in zip(record.generated, record.captions)
                for disc, real, fake in zip(self.discriminators, reals, generated.stages)])
            total = d_adv
            if self.r1_gamma > 0:
                values["d_r1"] = self.lazy_r1(reals, record.captions[0].sentence, record.step,
                                              loss_scale)
                total = d_adv + values["d_r1"]
            loss = average(total)
        loss_scale.minimize(optimizer, tape, loss, variables)
        values["d_adv"] = d_adv
        return values

    def generator_terms(self, record) -> Dict[str, Tuple[float, tf.Tensor]]:
        # AttnGAN's generator_loss: BCE of both logits of every stage against "real".
        per_stage = []
        for generated, caption in zip(record.generated, record.captions):
            for disc, fake in zip(self.discriminators, generated.stages):
                features = disc(fake, training=True)
                per_stage.append(
                    adversarial.bce_generator_loss(
                        disc.conditional_logits(features, caption.sentence, training=True))
                    + adversarial.bce_generator_loss(
                        disc.unconditional_logits(features, training=True)))
        g_adv = tf.add_n(per_stage)
        terms = {"g_adv": (1.0, g_adv)}
        if self.kl_weight > 0:
            terms["g_kl"] = (self.kl_weight, tf.add_n([
                adversarial.kl_loss(g.mu, g.logvar) for g in record.generated]))
        return terms
