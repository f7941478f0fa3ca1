"""`TextToImageGAN`: the Keras model whose `train_step` trains a text-to-image GAN.

One step, as SSA-GAN's training loop (Liao et al. 2022, wtliao/text2image main.py):

1. Encode the caption and a mismatched caption with the frozen DAMSM text encoder.
2. Generate fake images once (G in training mode).
3. D step: hinge loss on (real, s), (fake, s), (real, s_mismatched).
4. MA-GP (Tao et al. 2022): a second D update on 2 * E||(dD/dx, dD/ds)||^6 over real
   matched pairs ("separate_step", the reference), or the same penalty added to the hinge
   loss of step 3 ("joint", as DF-GAN v2 does; one D update, cheaper).
5. G step on the same fakes against the updated D: -D(fake, s) + w * DAMSM(fake).
6. EMA update of the generator copy.

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
from tf_t2i.training import runtime


def apply_gradients(optimizer, grads, variables):
    """Applies the gradients that exist (the reference D owns shortcut convs it never uses)."""
    pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
    optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])


def class_ids_for_masking(batch):
    """Class ids for DAMSM negatives masking; classless datasets (-1) get unique ids."""
    return tf.where(batch["class_id"] < 0, -2 - batch["image_id"], batch["class_id"])


class TextToImageGAN(keras.Model):
    """A text-conditioned GAN trained with `fit()`.

    The generator loss is the paper's (section 3.4)
        L = L_G + l1 * DAMSM + l2 * F2R + l3 * F2F + l4 * CP
    where each weight may be 0, which removes the term and its extra computation.

    Args:
      generator: `generator(z, sentence_embedding, training=...) -> (images, masks)`.
      discriminator: `discriminator(images, training=...) -> features` and
        `discriminator.logits(features, sentence_embedding) -> [B]`.
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
      temperature: NT-Xent temperature.
      gamma1, gamma2, gamma3: DAMSM constants.
      ma_gp_weight, ma_gp_power: k and p of the MA-GP.
      ma_gp_mode: "separate_step" or "joint".
      ema_decay: EMA decay.
    """

    def __init__(self, generator, discriminator, text_encoder, image_encoder=None, *,
                 ema_generator=None, captioner=None, projection_head=None, damsm_weight=0.05,
                 f2r_weight=0.0, f2f_weight=0.0, recap_weight=0.0, temperature=0.5,
                 gamma1=5.0, gamma2=5.0, gamma3=10.0, ma_gp_weight=2.0, ma_gp_power=6.0,
                 ma_gp_mode="separate_step", ema_decay=0.999, **kwargs):
        super().__init__(**kwargs)
        if ma_gp_mode not in ("separate_step", "joint"):
            raise ValueError(f"ma_gp_mode must be 'separate_step' or 'joint', got {ma_gp_mode!r}.")
        if max(damsm_weight, f2r_weight, f2f_weight) > 0 and image_encoder is None:
            raise ValueError("The DAMSM, F2R and F2F terms need the DAMSM image encoder.")
        if recap_weight > 0 and captioner is None:
            raise ValueError("recap_weight > 0 needs the captioner.")
        self.generator = generator
        self.discriminator = discriminator
        self.text_encoder = text_encoder
        self.image_encoder = image_encoder
        self.ema_generator = ema_generator
        self.captioner = captioner
        self.projection_head = projection_head
        self.damsm_weight = damsm_weight
        self.f2r_weight = f2r_weight
        self.f2f_weight = f2f_weight
        self.recap_weight = recap_weight
        self.temperature = temperature
        self.gamma1, self.gamma2, self.gamma3 = gamma1, gamma2, gamma3
        self.ma_gp_weight = ma_gp_weight
        self.ma_gp_power = ma_gp_power
        self.ma_gp_mode = ma_gp_mode
        self.ema_decay = ema_decay
        for frozen in (self.text_encoder, self.image_encoder, self.captioner):
            if frozen is not None:
                frozen.trainable = False
        names = ["d_loss", "d_adv", "d_ma_gp", "g_loss", "g_adv"]
        for name, weight in (("g_damsm", damsm_weight), ("g_f2r", f2r_weight),
                             ("g_f2f", f2f_weight), ("g_recap", recap_weight)):
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

    def call(self, inputs, training=False):
        _, sentence = self.text_encoder(inputs["caption_ids"], training=False)
        images, _ = self.generator(inputs["z"], sentence, training=training)
        return images

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

    # --- the step ----------------------------------------------------------------------

    def train_step(self, batch):
        real = batch["real_images"]
        global_batch = tf.shape(real)[0] * runtime.num_replicas()
        average = lambda x: tf.nn.compute_average_loss(x, global_batch_size=global_batch)
        use_f2f = self.f2f_weight > 0
        words, sentence = self.encode_text(batch["caption_ids"])
        _, mismatched = self.encode_text(batch["mismatched_ids"])
        # F2F: a second caption of the same image and the same z (Ye et al. 2021 / T2I_CL).
        captions = [(batch["caption_ids"], words, sentence)]
        if use_f2f:
            captions.append((batch["caption_ids_2"],) + self.encode_text(batch["caption_ids_2"]))
        d_vars = self.discriminator.trainable_variables
        g_vars = self.generator_variables

        with tf.GradientTape() as g_tape:
            fakes = [self.generator(batch["z"], s, training=True)[0] for _, _, s in captions]

        with tf.GradientTape() as d_tape:
            real_features = self.discriminator(real, training=True)
            # As T2I_CL, the adversarial terms are computed for every fake.
            d_adv = tf.add_n([self._d_adv(real_features, fake, s, mismatched)
                              for fake, (_, _, s) in zip(fakes, captions)])
            d_total = d_adv
            if self.ma_gp_mode == "joint":
                d_gp = self.ma_gp(real, sentence)
                d_total = d_adv + d_gp
            d_loss = average(d_total)
        apply_gradients(self.d_optimizer, d_tape.gradient(d_loss, d_vars), d_vars)

        if self.ma_gp_mode == "separate_step":
            with tf.GradientTape() as gp_tape:
                d_gp = self.ma_gp(real, sentence)
                gp_loss = average(d_gp)
            apply_gradients(self.d_optimizer, gp_tape.gradient(gp_loss, d_vars), d_vars)

        with g_tape:
            values = {}
            values["g_adv"] = tf.add_n([
                adversarial.hinge_generator_loss(
                    self.discriminator.logits(self.discriminator(fake, training=True), s))
                for fake, (_, _, s) in zip(fakes, captions)])
            features = []
            if max(self.damsm_weight, self.f2r_weight, self.f2f_weight) > 0:
                features = [self.image_encoder(fake, training=False) for fake in fakes]
            if self.damsm_weight > 0:
                class_ids = class_ids_for_masking(batch)
                values["g_damsm"] = tf.add_n([
                    self.damsm_loss(fake, w, s, ids, class_ids, image_features=f)
                    for fake, f, (ids, w, s) in zip(fakes, features, captions)])
            if self.f2r_weight > 0:
                _, real_code = self.image_encoder(real, training=False)
                values["g_f2r"] = self.contrastive_loss(features[0][1], tf.stop_gradient(real_code))
            if use_f2f:
                values["g_f2f"] = self.contrastive_loss(features[0][1], features[1][1])
            if self.recap_weight > 0:
                values["g_recap"] = self.recaption_loss(fakes[0], batch["caption_ids"])
            g_total = values["g_adv"]
            for name, weight in (("g_damsm", self.damsm_weight), ("g_f2r", self.f2r_weight),
                                 ("g_f2f", self.f2f_weight), ("g_recap", self.recap_weight)):
                if name in values:
                    g_total = g_total + weight * values[name]
            g_loss = average(g_total)
        apply_gradients(self.g_optimizer, g_tape.gradient(g_loss, g_vars), g_vars)
        self.update_ema()

        values.update({"d_loss": d_adv + d_gp, "d_adv": d_adv, "d_ma_gp": d_gp,
                       "g_loss": g_total})
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
