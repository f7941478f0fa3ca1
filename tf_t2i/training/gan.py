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
from tf_t2i.losses import damsm as damsm_losses
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

  Args:
    generator: `generator(z, sentence_embedding, training=...) -> (images, masks)`.
    discriminator: `discriminator(images, training=...) -> features` and
      `discriminator.logits(features, sentence_embedding) -> [B]`.
    text_encoder: frozen DAMSM text encoder.
    image_encoder: frozen DAMSM image encoder (needed when damsm_weight > 0).
    ema_generator: a second generator of the same architecture tracking an exponential
      moving average of `generator`'s weights, or None.
    damsm_weight: weight of the DAMSM term in the G loss (SSA-GAN: 0.05).
    gamma1, gamma2, gamma3: DAMSM constants.
    ma_gp_weight, ma_gp_power: k and p of the MA-GP.
    ma_gp_mode: "separate_step" or "joint".
    ema_decay: EMA decay.
  """

  def __init__(self, generator, discriminator, text_encoder, image_encoder=None, *,
               ema_generator=None, damsm_weight=0.05, gamma1=5.0, gamma2=5.0, gamma3=10.0,
               ma_gp_weight=2.0, ma_gp_power=6.0, ma_gp_mode="separate_step",
               ema_decay=0.999, **kwargs):
    super().__init__(**kwargs)
    if ma_gp_mode not in ("separate_step", "joint"):
      raise ValueError(f"ma_gp_mode must be 'separate_step' or 'joint', got {ma_gp_mode!r}.")
    if damsm_weight > 0 and image_encoder is None:
      raise ValueError("damsm_weight > 0 needs the DAMSM image encoder.")
    self.generator = generator
    self.discriminator = discriminator
    self.text_encoder = text_encoder
    self.image_encoder = image_encoder
    self.ema_generator = ema_generator
    self.damsm_weight = damsm_weight
    self.gamma1, self.gamma2, self.gamma3 = gamma1, gamma2, gamma3
    self.ma_gp_weight = ma_gp_weight
    self.ma_gp_power = ma_gp_power
    self.ma_gp_mode = ma_gp_mode
    self.ema_decay = ema_decay
    self.text_encoder.trainable = False
    if self.image_encoder is not None:
      self.image_encoder.trainable = False
    names = ["d_loss", "d_adv", "d_ma_gp", "g_loss", "g_adv"]
    if damsm_weight > 0:
      names.append("g_damsm")
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

  def call(self, inputs, training=False):
    _, sentence = self.text_encoder(inputs["caption_ids"], training=False)
    images, _ = self.generator(inputs["z"], sentence, training=training)
    return images

  # --- loss pieces -------------------------------------------------------------------

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

  def damsm_loss(self, fake_images, words, sentence, caption_ids, class_ids) -> tf.Tensor:
    """Per-example DAMSM word + sentence loss of the fakes against their captions.

    The negatives are the whole global batch (gathered from all replicas), as with one
    device, so the value does not depend on how the batch is split.
    """
    regions, code = self.image_encoder(fake_images, training=False)
    (words, sentence, caption_ids, class_ids, regions, code), local = runtime.gather_batch(
        (words, sentence, caption_ids, class_ids, regions, code))
    mask = pipeline.caption_mask(caption_ids)
    w_loss, _ = damsm_losses.damsm_word_loss(words, mask, regions, class_ids,
                                             self.gamma1, self.gamma2, self.gamma3)
    s_loss = damsm_losses.damsm_sentence_loss(sentence, code, class_ids, self.gamma3)
    return local(w_loss + s_loss)

  # --- the step ----------------------------------------------------------------------

  def train_step(self, batch):
    real = batch["real_images"]
    global_batch = tf.shape(real)[0] * runtime.num_replicas()
    average = lambda x: tf.nn.compute_average_loss(x, global_batch_size=global_batch)
    words, sentence = self.text_encoder(batch["caption_ids"], training=False)
    _, mismatched = self.text_encoder(batch["mismatched_ids"], training=False)
    words, sentence, mismatched = map(tf.stop_gradient, (words, sentence, mismatched))
    d_vars = self.discriminator.trainable_variables
    g_vars = self.generator.trainable_variables

    with tf.GradientTape() as g_tape:
      fake, _ = self.generator(batch["z"], sentence, training=True)

    with tf.GradientTape() as d_tape:
      real_features = self.discriminator(real, training=True)
      fake_features = self.discriminator(tf.stop_gradient(fake), training=True)
      d_adv = adversarial.hinge_discriminator_loss(
          self.discriminator.logits(real_features, sentence),
          self.discriminator.logits(fake_features, sentence),
          self.discriminator.logits(real_features, mismatched))
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
      g_adv = adversarial.hinge_generator_loss(
          self.discriminator.logits(self.discriminator(fake, training=True), sentence))
      g_total = g_adv
      if self.damsm_weight > 0:
        g_damsm = self.damsm_loss(fake, words, sentence, batch["caption_ids"],
                                  class_ids_for_masking(batch))
        g_total = g_adv + self.damsm_weight * g_damsm
      g_loss = average(g_total)
    apply_gradients(self.g_optimizer, g_tape.gradient(g_loss, g_vars), g_vars)
    self.update_ema()

    values = {"d_loss": d_adv + d_gp, "d_adv": d_adv, "d_ma_gp": d_gp, "g_loss": g_total,
              "g_adv": g_adv}
    if self.damsm_weight > 0:
      values["g_damsm"] = g_damsm
    for name, tracker in self.trackers.items():
      tracker.update_state(values[name])
    return {name: tracker.result() for name, tracker in self.trackers.items()}

  # --- EMA ---------------------------------------------------------------------------

  def update_ema(self):
    """ema = decay * ema + (1 - decay) * weights, for the trainable weights of G."""
    if self.ema_generator is None:
      return
    decay = self.ema_decay
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
