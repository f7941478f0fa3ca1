"""SSA-GAN's (and DF-GAN's) adversarial scheme: hinge loss and the matching-aware
gradient penalty on one discriminator of the final image.

As SSA-GAN's training loop (Liao et al. 2022, wtliao/text2image main.py):

1. D step: hinge loss on (real, s), (fake, s) and (real, s_mismatched), for every fake
   of the step (as T2I_CL, a second caption's fakes also enter).
2. MA-GP (Tao et al. 2022, DF-GAN Eq. 3): a second D update on k * ||(dD/dx, dD/ds)||^p
   over real matched pairs ("separate_step", the reference), or the same penalty added
   to the hinge loss of step 1 ("joint", as DF-GAN v2; one D update, cheaper), taken
   from the gradient of step 1's own real logits, so D runs once over the real images.
   Joint MA-GP may be lazy (`ma_gp_interval` k > 1): the penalty, times k, on every k-th
   step only, as StyleGAN2's lazy R1 (Karras et al. 2020); D's real pass is then a plain
   one on the other steps. Not in the reference.
   With `negative_images_weight` w > 0 the D loss adds w * relu(1 + D(negative, s)): each
   real image's negative (shapes: the image with objects added until it holds three,
   `shapes_negatives`) is scored as a fake with the image's own caption, as Negative Data
   Augmentation (Sinha et al. 2021) puts altered real images among D's fakes. Not in the
   reference.
   A discriminator that reads the words (`--disc_word_logits`) is given each caption's
   words beside its sentence wherever it scores; the MA-GP's gradient stays (image,
   sentence), the reference's pair.
3. G term: -D(fake, s) against the updated D; with `g_match_weight` > 0 also
   softplus(D(fake, s_mismatched) - D(fake, s)) on the same D features (not in the
   reference; `adversarial.generator_matching_loss` says why).
"""

from typing import Dict, Sequence, Tuple

import tensorflow as tf

from tf_t2i.losses import adversarial
from tf_t2i.training import loss_scaling
from tf_t2i.training.objectives import base
from tf_t2i.training.objectives import registry

MA_GP_MODES = ("separate_step", "joint")


@registry.register_scheme
class HingeMAGP(base.AdversarialScheme):
    """Hinge + MA-GP with one discriminator.

    Args:
      discriminators: a one-element list: a model with `discriminator(images) ->
        features` and `discriminator.logits(features, sentence) -> [B]` (and the words
        and their mask after the sentence where `discriminator.word_logits` is set).
      ma_gp_weight, ma_gp_power: k and p of the MA-GP (SSA-GAN: 2 and 6).
      ma_gp_mode: "separate_step" or "joint".
      ma_gp_interval: joint mode: the penalty (times this) on every this-many-th step.
      g_match_weight: weight of the generator's matching term, logged as "g_match";
        0 computes nothing.
      negative_images_weight: weight of the D term on the batch's `negative_images`,
        logged (weighted) as "d_negative"; 0 computes nothing.
    """

    name = "hinge"

    def __init__(self, discriminators: Sequence, ma_gp_weight: float = 2.0,
                 ma_gp_power: float = 6.0, ma_gp_mode: str = "separate_step",
                 g_match_weight: float = 0.0, negative_images_weight: float = 0.0,
                 ma_gp_interval: int = 1):
        super().__init__(discriminators)
        if len(self.discriminators) != 1:
            raise ValueError("The hinge scheme (SSA-GAN) uses one discriminator, got "
                             f"{len(self.discriminators)}.")
        if ma_gp_mode not in MA_GP_MODES:
            raise ValueError(f"ma_gp_mode must be 'separate_step' or 'joint', got {ma_gp_mode!r}.")
        if ma_gp_interval < 1 or (ma_gp_interval > 1 and ma_gp_mode != "joint"):
            raise ValueError("ma_gp_interval must be 1, or > 1 with ma_gp_mode 'joint'; got "
                             f"{ma_gp_interval} with {ma_gp_mode!r}.")
        self.discriminator = self.discriminators[0]
        self.ma_gp_weight = ma_gp_weight
        self.ma_gp_power = ma_gp_power
        self.ma_gp_mode = ma_gp_mode
        self.ma_gp_interval = ma_gp_interval
        self.g_match_weight = g_match_weight
        self.negative_images_weight = negative_images_weight

    @classmethod
    def from_config(cls, discriminators, loss_cfg):
        return cls(discriminators, ma_gp_weight=loss_cfg.ma_gp_weight,
                   ma_gp_power=loss_cfg.ma_gp_power, ma_gp_mode=loss_cfg.ma_gp_mode,
                   g_match_weight=loss_cfg.g_match_weight,
                   negative_images_weight=loss_cfg.negative_images_weight,
                   ma_gp_interval=loss_cfg.ma_gp_interval)

    @property
    def log_names(self):
        d_names = ["d_ma_gp"] + (["d_negative"] if self.negative_images_weight else [])
        return d_names, ["g_adv"] + (["g_match"] if self.g_match_weight else [])

    def ma_gp(self, real_images, sentence,
              loss_scale: loss_scaling.LossScale = loss_scaling.NONE,
              words=None, word_mask=None) -> tf.Tensor:
        """Per-example MA-GP on real matched pairs: k * ||(dD/dx, dD/ds)||^p.

        `loss_scale` (D's, in float16) scales the backward pass of dD/dx, dD/ds too;
        `words`, `word_mask`: the captions' words, for a D that reads them.
        """
        caption = base.EncodedCaption(None, words, sentence, word_mask)
        return self._scored_with_penalty(real_images, caption, loss_scale)[2]

    def _logits(self, features, caption):
        """D's logits of `features` against an `EncodedCaption` (its words too, where D
        reads them)."""
        d = self.discriminator
        if getattr(d, "word_logits", False):
            return d.logits(features, caption.sentence, caption.words, caption.mask)
        return d.logits(features, caption.sentence)

    def _scored_with_penalty(self, real_images, caption, loss_scale):
        """(D's features of the real images, their logits with `sentence`, the MA-GP):
        the penalty differentiates the logits of this one forward pass, as DF-GAN v2's
        MA-GP does, so the joint D step does not run D over the real images twice."""
        d, sentence = self.discriminator, caption.sentence
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch([real_images, sentence])
            features = d(real_images, training=True)
            logits = self._logits(features, caption)
            total = tf.reduce_sum(tf.cast(logits, tf.float32))
        image_grads, sentence_grads = loss_scale.gradient(tape, total, [real_images, sentence])
        penalty = adversarial.matching_aware_gradient_penalty(
            image_grads, sentence_grads, weight=self.ma_gp_weight, power=self.ma_gp_power)
        return features, logits, penalty

    def _scored_with_lazy_penalty(self, real_images, caption, step, loss_scale):
        """`_scored_with_penalty` on the steps the penalty is due (its value times the
        interval), a plain D pass with a zero penalty on the others."""
        if self.ma_gp_interval == 1:
            return self._scored_with_penalty(real_images, caption, loss_scale)
        d, interval = self.discriminator, self.ma_gp_interval

        def penalised():
            features, logits, penalty = self._scored_with_penalty(real_images, caption,
                                                                  loss_scale)
            return features, logits, float(interval) * tf.cast(penalty, tf.float32)

        def plain():
            features = d(real_images, training=True)
            logits = self._logits(features, caption)
            return features, logits, tf.zeros([tf.shape(real_images)[0]], tf.float32)

        return tf.cond(tf.equal(step % interval, 0), penalised, plain)

    def discriminator_step(self, record, optimizer, average,
                           loss_scale=loss_scaling.NONE) -> Dict[str, tf.Tensor]:
        d, real = self.discriminator, record.real_images
        caption0 = record.captions[0]
        variables = self.trainable_variables
        joint = self.ma_gp_mode == "joint"
        with tf.GradientTape() as tape:
            ma_gp = None
            if joint:
                real_features, real_logits, ma_gp = self._scored_with_lazy_penalty(
                    real, caption0, record.step, loss_scale)
            else:
                real_features = d(real, training=True)
                real_logits = self._logits(real_features, caption0)
            matched = [real_logits] + [self._logits(real_features, caption)
                                       for caption in record.captions[1:]]
            d_adv = tf.add_n([
                adversarial.hinge_discriminator_loss(
                    real_matched,
                    self._logits(d(tf.stop_gradient(fake), training=True), caption),
                    self._logits(real_features, record.mismatched))
                for real_matched, fake, caption in zip(matched, record.fakes, record.captions)])
            loss = d_adv
            values = {"d_adv": d_adv}
            if self.negative_images_weight:
                negative = self._logits(d(record.batch["negative_images"], training=True),
                                        caption0)
                values["d_negative"] = (self.negative_images_weight
                                        * adversarial.hinge_fake_term(negative))
                loss = loss + values["d_negative"]
            loss = average(loss if ma_gp is None else loss + ma_gp)
        loss_scale.minimize(optimizer, tape, loss, variables)
        if ma_gp is None:
            with tf.GradientTape() as tape:
                ma_gp = self._scored_with_penalty(real, caption0, loss_scale)[2]
                loss = average(ma_gp)
            loss_scale.minimize(optimizer, tape, loss, variables)
        return {**values, "d_ma_gp": ma_gp}

    def generator_terms(self, record) -> Dict[str, Tuple[float, tf.Tensor]]:
        d = self.discriminator
        features = [d(fake, training=True) for fake in record.fakes]
        matched = [self._logits(f, caption) for f, caption in zip(features, record.captions)]
        terms = {"g_adv": (1.0, tf.add_n([adversarial.hinge_generator_loss(m) for m in matched]))}
        if self.g_match_weight:
            # Each fake against the step's mismatched sentence of its image (with
            # --data_shapes_hard_negatives, often its own caption with other shapes).
            terms["g_match"] = (self.g_match_weight, tf.add_n([
                adversarial.generator_matching_loss(m, self._logits(f, record.mismatched))
                for f, m in zip(features, matched)]))
        return terms
