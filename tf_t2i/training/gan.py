"""`TextToImageGAN`: the Keras model whose `train_step` trains a text-to-image GAN.

Two adversarial schemes share the step:

* `"hinge"` (SSA-GAN, DF-GAN): one discriminator on the final image, hinge loss and the
  matching-aware gradient penalty;
* `"bce"` (AttnGAN, Style1AttnGAN, Style2AttnGAN): one discriminator per generator stage,
  each with a conditional and an unconditional logit, AttnGAN's binary cross-entropy
  (Xu et al. 2018, miscc/losses.py), the conditioning augmentation's KL term, and for
  the StyleGAN2 variant an optional lazy R1 penalty (Karras et al. 2020).

The paper's terms (DAMSM, F2R, F2F, re-captioning) are computed on the final image in both.

One hinge step, as SSA-GAN's training loop (Liao et al. 2022, wtliao/text2image main.py):

1. Encode the caption and a mismatched caption with the frozen DAMSM text encoder.
2. Generate fake images once (G in training mode).
3. D step: hinge loss on (real, s), (fake, s), (real, s_mismatched).
4. MA-GP (Tao et al. 2022): a second D update on 2 * E||(dD/dx, dD/ds)||^6 over real
   matched pairs ("separate_step", the reference), or the same penalty added to the hinge
   loss of step 3 ("joint", as DF-GAN v2 does; one D update, cheaper).
5. G step on the same fakes against the updated D: -D(fake, s) + w * DAMSM(fake).
6. EMA update of the generator copy.

A "bce" step is AttnGAN's (code/trainer.py): generate every stage once; update all
discriminators on (real, fake, mismatched) per stage; update G on the same fakes with the
sum over stages of the conditional and unconditional generator terms, plus the paper's
terms on the last stage and the KL term; then the EMA.

Every term is a per-example vector reduced with the global batch size, so gradients
summed over replicas by Keras equal single-device gradients.
"""

from typing import Dict, Optional

import keras
import tensorflow as tf

from tf_t2i.data import pipeline
from tf_t2i.losses import adversarial
from tf_t2i.losses import contrastive
from tf_t2i.losses import damsm as damsm_losses
from tf_t2i.models import captioner as captioner_lib
from tf_t2i.models import interface
from tf_t2i.training import runtime


def apply_gradients(optimizer, grads, variables):
    """Applies the gradients that exist (the reference D owns shortcut convs it never uses)."""
    pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
    optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])


ADVERSARIAL_LOSSES = ("hinge", "bce")


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


def class_ids_for_masking(batch):
    """Class ids for DAMSM negatives masking; classless datasets (-1) get unique ids."""
    return tf.where(batch["class_id"] < 0, -2 - batch["image_id"], batch["class_id"])


class TextToImageGAN(keras.Model):
    """A text-conditioned GAN trained with `fit()`.

    The generator loss is the paper's (section 3.4)
        L = L_G + l1 * DAMSM + l2 * F2R + l3 * F2F + l4 * CP
    where each weight may be 0, which removes the term and its extra computation.

    Args:
      generator: any generator `interface.generate` can call (SSA-GAN or AttnGAN family).
      discriminator: for "hinge", one model with `discriminator(images, training=...) ->
        features` and `discriminator.logits(features, sentence_embedding) -> [B]`; for
        "bce", a list with one discriminator per generator stage (smallest first), each
        with `conditional_logits(features, sentence)` and `unconditional_logits(features)`.
      text_encoder: frozen DAMSM text encoder.
      image_encoder: frozen DAMSM image encoder (needed by DAMSM, F2R and F2F).
      ema_generator: a second generator of the same architecture tracking an exponential
        moving average of `generator`'s weights, or None.
      captioner: frozen captioner (needed when recap_weight > 0).
      projection_head: optional trainable layer applied to the image codes compared by
        the contrastive terms (trained with the generator); None compares the codes.
      damsm_weight: l1, weight of the DAMSM term in the G loss (SSA-GAN: 0.05).
      f2r_weight: l2, fake-to-real NT-Xent.
      f2f_weight: l3, fake-to-fake NT-Xent (two captions of an image, same z).
      recap_weight: l4, re-captioning cross-entropy.
      mode_seeking_weight: weight of the mode-seeking regulariser (MSGAN, Mao et al. 2019)
        between the fakes and a second fake of each caption from other noise; not one of
        the paper's terms (0 by default).
      temperature: NT-Xent temperature.
      gamma1, gamma2, gamma3: DAMSM constants.
      ma_gp_weight, ma_gp_power: k and p of the MA-GP.
      ma_gp_mode: "separate_step" or "joint".
      ema_decay: EMA decay.
      adversarial_loss: "hinge" (with MA-GP) or "bce" (AttnGAN's, per stage).
      kl_weight: weight of the conditioning augmentation's KL term ("bce"; AttnGAN: 1).
      r1_gamma: R1 weight on real images for "bce" (0: off; Style2AttnGAN uses it).
      r1_interval: lazy regularisation: R1 is applied every `r1_interval` steps, scaled by
        the interval (StyleGAN2's 16).
    """

    def __init__(self, generator, discriminator, text_encoder, image_encoder=None, *,
                 ema_generator=None, captioner=None, projection_head=None, damsm_weight=0.05,
                 f2r_weight=0.0, f2f_weight=0.0, recap_weight=0.0, mode_seeking_weight=0.0,
                 temperature=0.5,
                 gamma1=5.0, gamma2=5.0, gamma3=10.0, ma_gp_weight=2.0, ma_gp_power=6.0,
                 ma_gp_mode="separate_step", ema_decay=0.999, adversarial_loss="hinge",
                 kl_weight=0.0, r1_gamma=0.0, r1_interval=16, **kwargs):
        super().__init__(**kwargs)
        if ma_gp_mode not in ("separate_step", "joint"):
            raise ValueError(f"ma_gp_mode must be 'separate_step' or 'joint', got {ma_gp_mode!r}.")
        if adversarial_loss not in ADVERSARIAL_LOSSES:
            raise ValueError(f"adversarial_loss must be one of {ADVERSARIAL_LOSSES}, got "
                             f"{adversarial_loss!r}.")
        discriminators = (list(discriminator) if isinstance(discriminator, (list, tuple))
                          else [discriminator])
        if adversarial_loss == "hinge" and len(discriminators) != 1:
            raise ValueError("The hinge scheme (SSA-GAN) uses one discriminator, got "
                             f"{len(discriminators)}.")
        if r1_interval < 1:
            raise ValueError(f"r1_interval must be >= 1, got {r1_interval}.")
        if max(damsm_weight, f2r_weight, f2f_weight) > 0 and image_encoder is None:
            raise ValueError("The DAMSM, F2R and F2F terms need the DAMSM image encoder.")
        if recap_weight > 0 and captioner is None:
            raise ValueError("recap_weight > 0 needs the captioner.")
        self.generator = generator
        self.discriminators = discriminators
        # The final-stage discriminator (the only one for the hinge scheme).
        self.discriminator = discriminators[-1]
        self.adversarial_loss = adversarial_loss
        self.kl_weight = kl_weight
        self.r1_gamma = r1_gamma
        self.r1_interval = r1_interval
        self.text_encoder = text_encoder
        self.image_encoder = image_encoder
        self.ema_generator = ema_generator
        self.captioner = captioner
        self.projection_head = projection_head
        self.damsm_weight = damsm_weight
        self.f2r_weight = f2r_weight
        self.f2f_weight = f2f_weight
        self.recap_weight = recap_weight
        self.mode_seeking_weight = mode_seeking_weight
        self.temperature = temperature
        self.gamma1, self.gamma2, self.gamma3 = gamma1, gamma2, gamma3
        self.ma_gp_weight = ma_gp_weight
        self.ma_gp_power = ma_gp_power
        self.ma_gp_mode = ma_gp_mode
        self.ema_decay = ema_decay
        for frozen in (self.text_encoder, self.image_encoder, self.captioner):
            if frozen is not None:
                frozen.trainable = False
        if adversarial_loss == "hinge":
            names = ["d_loss", "d_adv", "d_ma_gp", "g_loss", "g_adv"]
        else:
            names = ["d_loss", "d_adv"] + (["d_r1"] if r1_gamma > 0 else [])
            names += ["g_loss", "g_adv"] + (["g_kl"] if kl_weight > 0 else [])
        for name, weight in (("g_damsm", damsm_weight), ("g_f2r", f2r_weight),
                             ("g_f2f", f2f_weight), ("g_recap", recap_weight),
                             ("g_ms", mode_seeking_weight)):
            if weight > 0:
                names.append(name)
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def step(self) -> tf.Variable:
        """The global step: number of G updates."""
        return self.g_optimizer.iterations

    @property
    def generator_variables(self):
        """What the G optimizer updates: G, and the contrastive projection head if any."""
        head = self.projection_head.trainable_variables if self.projection_head else []
        return self.generator.trainable_variables + head

    @property
    def discriminator_variables(self):
        """What the D optimizer updates: every stage's discriminator."""
        return [v for d in self.discriminators for v in d.trainable_variables]

    def call(self, inputs, training=False):
        ids = inputs["caption_ids"]
        words, sentence = self.text_encoder(ids, training=False)
        return interface.generate_images(self.generator, inputs["z"], sentence, words,
                                         pipeline.caption_mask(ids), training=training)

    # --- loss pieces -------------------------------------------------------------------

    def encode_text(self, caption_ids):
        words, sentence = self.text_encoder(caption_ids, training=False)
        return tf.stop_gradient(words), tf.stop_gradient(sentence)

    def ma_gp(self, real_images, sentence) -> tf.Tensor:
        """Per-example MA-GP on real matched pairs: k * ||(dD/dx, dD/ds)||^p."""
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch([real_images, sentence])
            logits = self.discriminator.logits(self.discriminator(real_images, training=True),
                                               sentence)
            total = tf.reduce_sum(tf.cast(logits, tf.float32))
        image_grads, sentence_grads = tape.gradient(total, [real_images, sentence])
        return adversarial.matching_aware_gradient_penalty(
            image_grads, sentence_grads, weight=self.ma_gp_weight, power=self.ma_gp_power)

    def damsm_loss(self, fake_images, words, sentence, caption_ids, class_ids,
                   image_features=None) -> tf.Tensor:
        """Per-example DAMSM word + sentence loss of the fakes against their captions.

        The negatives are the whole global batch (gathered from all replicas), as with one
        device, so the value does not depend on how the batch is split.

        Args:
          image_features: the image encoder's (regions, code) of `fake_images`, if already
            computed.
        """
        regions, code = image_features or self.image_encoder(fake_images, training=False)
        (words, sentence, caption_ids, class_ids, regions, code), local = runtime.gather_batch(
            (words, sentence, caption_ids, class_ids, regions, code))
        mask = pipeline.caption_mask(caption_ids)
        w_loss, _ = damsm_losses.damsm_word_loss(words, mask, regions, class_ids,
                                                 self.gamma1, self.gamma2, self.gamma3)
        s_loss = damsm_losses.damsm_sentence_loss(sentence, code, class_ids, self.gamma3)
        return local(w_loss + s_loss)

    def contrastive_loss(self, codes_a, codes_b) -> tf.Tensor:
        """Per-example NT-Xent between two batches of image codes (negatives: global batch)."""
        if self.projection_head is not None:
            codes_a, codes_b = self.projection_head(codes_a), self.projection_head(codes_b)
        return contrastive.nt_xent_per_example(codes_a, codes_b, self.temperature)

    def recaption_loss(self, fake_images, caption_ids) -> tf.Tensor:
        """Per-example L_CP: the frozen captioner's token cross-entropy of the true caption."""
        logits = self.captioner(fake_images,
                                captioner_lib.shift_right(caption_ids, self.captioner.bos_id),
                                training=False)
        return captioner_lib.caption_cross_entropy(
            logits, captioner_lib.append_eos(caption_ids, self.captioner.eos_id))

    def _d_adv(self, real_features, fake, sentence, mismatched):
        fake_features = self.discriminator(tf.stop_gradient(fake), training=True)
        return adversarial.hinge_discriminator_loss(
            self.discriminator.logits(real_features, sentence),
            self.discriminator.logits(fake_features, sentence),
            self.discriminator.logits(real_features, mismatched))

    # --- the AttnGAN-family ("bce") pieces ---------------------------------------------

    def _bce_d_stage(self, disc, real, fake, sentence, mismatched):
        """AttnGAN's per-stage D loss, per example (see `attngan_discriminator_loss`)."""
        real_features = disc(real, training=True)
        fake_features = disc(tf.stop_gradient(fake), training=True)
        return adversarial.attngan_discriminator_loss(
            cond_real=disc.conditional_logits(real_features, sentence, training=True),
            cond_fake=disc.conditional_logits(fake_features, sentence, training=True),
            cond_mismatched=disc.conditional_logits(real_features, mismatched, training=True),
            uncond_real=disc.unconditional_logits(real_features, training=True),
            uncond_fake=disc.unconditional_logits(fake_features, training=True))

    def _bce_g_stage(self, disc, fake, sentence):
        """AttnGAN's per-stage G term: BCE of the conditional and unconditional logits
        against "real" (miscc/losses.py `generator_loss`)."""
        features = disc(fake, training=True)
        return (adversarial.bce_generator_loss(
            disc.conditional_logits(features, sentence, training=True))
                + adversarial.bce_generator_loss(
                    disc.unconditional_logits(features, training=True)))

    def r1(self, reals, sentence) -> tf.Tensor:
        """Per-example R1 (Mescheder et al. 2018) summed over stages, on the conditional
        plus unconditional logits of real matched pairs."""
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
            total += adversarial.r1_penalty(tape.gradient(logits, real), gamma=self.r1_gamma)
        return total

    def lazy_r1(self, reals, sentence) -> tf.Tensor:
        """R1 every `r1_interval` steps, scaled by the interval (StyleGAN2's lazy
        regularisation); zeros on the other steps, without computing the penalty."""
        if self.r1_interval == 1:
            return self.r1(reals, sentence)
        due = tf.equal(self.step % self.r1_interval, 0)
        return tf.cond(due, lambda: float(self.r1_interval) * self.r1(reals, sentence),
                       lambda: tf.zeros([tf.shape(reals[0])[0]]))

    # --- the step ----------------------------------------------------------------------

    def encode_caption(self, caption_ids):
        """(ids, words, sentence, mask) of a caption batch, from the frozen encoder."""
        words, sentence = self.encode_text(caption_ids)
        return caption_ids, words, sentence, pipeline.caption_mask(caption_ids)

    def train_step(self, batch):
        real = batch["real_images"]
        global_batch = tf.shape(real)[0] * runtime.num_replicas()
        average = lambda x: tf.nn.compute_average_loss(x, global_batch_size=global_batch)
        use_f2f = self.f2f_weight > 0
        captions = [self.encode_caption(batch["caption_ids"])]
        _, mismatched = self.encode_text(batch["mismatched_ids"])
        # F2F: a second caption of the same image and the same z (Ye et al. 2021 / T2I_CL).
        if use_f2f:
            captions.append(self.encode_caption(batch["caption_ids_2"]))
        sentence = captions[0][2]
        d_vars = self.discriminator_variables
        g_vars = self.generator_variables

        with tf.GradientTape() as g_tape:
            generated = [interface.generate(self.generator, batch["z"], s, w, m, training=True)
                         for _, w, s, m in captions]
            if self.mode_seeking_weight > 0:
                # MSGAN: the first caption again, from a second noise vector.
                z_2 = interface.second_noise(batch["z"])
                _, w, s, m = captions[0]
                other_noise = interface.generate(self.generator, z_2, s, w, m,
                                                 training=True).final
        fakes = [g.final for g in generated]

        values = {}
        with tf.GradientTape() as d_tape:
            if self.adversarial_loss == "hinge":
                real_features = self.discriminator(real, training=True)
                # As T2I_CL, the adversarial terms are computed for every fake.
                d_adv = tf.add_n([self._d_adv(real_features, fake, s, mismatched)
                                  for fake, (_, _, s, _) in zip(fakes, captions)])
                d_reg = None
                if self.ma_gp_mode == "joint":
                    d_reg = self.ma_gp(real, sentence)
            else:
                reals = resize_to_stages(real, [int(x.shape[1]) for x in generated[0].stages])
                d_adv = tf.add_n([
                    self._bce_d_stage(disc, r, fake, s, mismatched)
                    for g, (_, _, s, _) in zip(generated, captions)
                    for disc, r, fake in zip(self.discriminators, reals, g.stages)])
                d_reg = self.lazy_r1(reals, sentence) if self.r1_gamma > 0 else None
            d_total = d_adv if d_reg is None else d_adv + d_reg
            d_loss = average(d_total)
        apply_gradients(self.d_optimizer, d_tape.gradient(d_loss, d_vars), d_vars)

        if self.adversarial_loss == "hinge":
            if self.ma_gp_mode == "separate_step":
                with tf.GradientTape() as gp_tape:
                    d_reg = self.ma_gp(real, sentence)
                    gp_loss = average(d_reg)
                apply_gradients(self.d_optimizer, gp_tape.gradient(gp_loss, d_vars), d_vars)
            values["d_ma_gp"] = d_reg
        elif d_reg is not None:
            values["d_r1"] = d_reg

        with g_tape:
            if self.adversarial_loss == "hinge":
                values["g_adv"] = tf.add_n([
                    adversarial.hinge_generator_loss(
                        self.discriminator.logits(self.discriminator(fake, training=True), s))
                    for fake, (_, _, s, _) in zip(fakes, captions)])
            else:
                values["g_adv"] = tf.add_n([
                    self._bce_g_stage(disc, fake, s)
                    for g, (_, _, s, _) in zip(generated, captions)
                    for disc, fake in zip(self.discriminators, g.stages)])
                if self.kl_weight > 0:
                    values["g_kl"] = tf.add_n([adversarial.kl_loss(g.mu, g.logvar)
                                               for g in generated])
            features = []
            if max(self.damsm_weight, self.f2r_weight, self.f2f_weight) > 0:
                features = [self.image_encoder(fake, training=False) for fake in fakes]
            if self.damsm_weight > 0:
                class_ids = class_ids_for_masking(batch)
                values["g_damsm"] = tf.add_n([
                    self.damsm_loss(fake, w, s, ids, class_ids, image_features=f)
                    for fake, f, (ids, w, s, _) in zip(fakes, features, captions)])
            if self.f2r_weight > 0:
                _, real_code = self.image_encoder(real, training=False)
                values["g_f2r"] = self.contrastive_loss(features[0][1], tf.stop_gradient(real_code))
            if use_f2f:
                values["g_f2f"] = self.contrastive_loss(features[0][1], features[1][1])
            if self.recap_weight > 0:
                values["g_recap"] = self.recaption_loss(fakes[0], batch["caption_ids"])
            if self.mode_seeking_weight > 0:
                values["g_ms"] = adversarial.mode_seeking_loss(fakes[0], other_noise,
                                                               batch["z"], z_2)
            g_total = values["g_adv"]
            for name, weight in (("g_kl", self.kl_weight), ("g_damsm", self.damsm_weight),
                                 ("g_f2r", self.f2r_weight), ("g_f2f", self.f2f_weight),
                                 ("g_recap", self.recap_weight),
                                 ("g_ms", self.mode_seeking_weight)):
                if name in values:
                    g_total = g_total + weight * values[name]
            g_loss = average(g_total)
        apply_gradients(self.g_optimizer, g_tape.gradient(g_loss, g_vars), g_vars)
        self.update_ema()

        d_all = d_adv + values.get("d_ma_gp", 0.0) + values.get("d_r1", 0.0)
        values.update({"d_loss": d_all, "d_adv": d_adv, "g_loss": g_total})
        for name, tracker in self.trackers.items():
            tracker.update_state(values[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    # --- EMA ---------------------------------------------------------------------------

    def update_ema(self):
        """ema = d * ema + (1 - d) * weights for G's trainable weights, d warmed up."""
        if self.ema_generator is None:
            return
        # Warm-up as tf.train.ExponentialMovingAverage(num_updates=step): the decay is
        # min(decay, (1 + t) / (10 + t)), so a short run's EMA is not dominated by the
        # initial weights (at 0.999 fixed, step 600 still weighs them 0.55); long runs
        # reach the configured decay after ~10k steps.
        t = tf.cast(self.g_optimizer.iterations, tf.float32)
        decay = tf.minimum(self.ema_decay, (1.0 + t) / (10.0 + t))
        pairs = [(e.value if hasattr(e, "value") else e, w.value if hasattr(w, "value") else w)
                 for e, w in zip(self.ema_generator.trainable_variables,
                                 self.generator.trainable_variables)]

        def merge_fn(strategy, pairs):
            for ema_var, var in pairs:
                strategy.extended.update(
                    ema_var, lambda e, w: e.assign(decay * e + (1.0 - decay) * tf.cast(w, e.dtype)),
                    args=(var,), group=False)

        ctx = tf.distribute.get_replica_context()
        if ctx is None:
            merge_fn(tf.distribute.get_strategy(), pairs)
        else:
            ctx.merge_call(merge_fn, args=(pairs,))

    def sync_ema_buffers(self):
        """Copies G's non-trainable state (BatchNorm statistics) into the EMA copy.

        Call in cross-replica context (callbacks) before using or saving the EMA generator.
        """
        if self.ema_generator is None:
            return
        for e, w in zip(self.ema_generator.non_trainable_variables,
                        self.generator.non_trainable_variables):
            e.assign(w)

    def init_ema(self):
        """Starts the EMA copy at G's current weights."""
        if self.ema_generator is None:
            return
        for e, w in zip(self.ema_generator.variables, self.generator.variables):
            e.assign(w)

    def sampling_generator(self, use_ema: Optional[bool] = None):
        """The generator to sample from: the EMA copy when there is one (default)."""
        if use_ema is None:
            use_ema = self.ema_generator is not None
        if use_ema:
            if self.ema_generator is None:
                raise ValueError("This run has no EMA generator (train_ema_decay was 0).")
            self.sync_ema_buffers()
            return self.ema_generator
        return self.generator
