"""`TextToImageGAN`: the Keras model whose `train_step` trains a text-to-image GAN.

The step is the same for every family; what differs lives in the objects it is given
(`training/objectives/`):

* an adversarial scheme, which owns the discriminators, runs the D update(s) and gives
  the generator's adversarial terms: "hinge" (SSA-GAN: hinge + MA-GP) or "bce" (the
  AttnGAN family: per-stage BCE + KL + optional lazy R1);
* generator terms, each `weight * value` in the paper's generator loss (section 3.4)
      L = L_G + l1 * DAMSM + l2 * F2R + l3 * F2F + l4 * CP
  where a weight of 0 builds no term, so it costs nothing.

Every value is per example and reduced with the global batch size, so the gradients
Keras sums over replicas equal single-device gradients.

In float16 (Keras' mixed_float16) G's and D's losses each have a dynamic loss scale
(`training/loss_scaling.py`), logged as `g_loss_scale` and `d_loss_scale`. An update
whose gradients overflow is skipped, yet counted in its optimizer's `iterations`, so the
step still advances once per batch. What such a step logs:
* the gradient penalties (d_ma_gp, d_r1) and d_loss only where finite: a penalty is
  computed from a scaled backward pass, so the overflow that skipped the update makes
  it NaN too, and the weights were protected (an epoch's mean is of the other steps);
* every other value as it is: one that is NaN or infinite means the float16 forward
  pass overflowed, which loss scaling cannot undo (and which may already have reached
  BatchNorm statistics), so it stops the run as in float32 (`loop.NonFiniteGuard`).
"""

from typing import Dict, Optional, Sequence

import keras
import tensorflow as tf

from tf_t2i.data import pipeline
from tf_t2i.models import interface
from tf_t2i.training import loss_scaling
from tf_t2i.training import runtime
from tf_t2i.training.objectives import base as objectives


class TextToImageGAN(keras.Model):
    """A text-conditioned GAN trained with `fit()`.

    Args:
      generator: any generator `interface.generate` can call (SSA-GAN or AttnGAN family).
      scheme: an `objectives.AdversarialScheme` holding the discriminators.
      text_encoder: frozen DAMSM text encoder.
      terms: `objectives.GeneratorTerm`s added to the generator loss.
      image_encoder: frozen DAMSM image encoder, needed by terms that compare image codes.
      ema_generator: a second generator of the same architecture tracking an exponential
        moving average of `generator`'s weights, or None.
      ema_decay: EMA decay (warmed up, see `update_ema`).
    """

    def __init__(self, generator, scheme: objectives.AdversarialScheme, text_encoder, *,
                 terms: Sequence[objectives.GeneratorTerm] = (), image_encoder=None,
                 ema_generator=None, ema_decay: float = 0.999, **kwargs):
        super().__init__(**kwargs)
        self.terms = list(terms)
        if any(t.needs_image_encoder for t in self.terms) and image_encoder is None:
            raise ValueError("The DAMSM, F2R and F2F terms need the DAMSM image encoder.")
        self.generator = generator
        self.scheme = scheme
        self.discriminators = scheme.discriminators
        self.text_encoder = text_encoder
        self.image_encoder = image_encoder
        self.ema_generator = ema_generator
        self.ema_decay = ema_decay
        self.captions_per_step = max([1] + [t.captions_needed for t in self.terms])
        for frozen in [text_encoder, image_encoder] + [getattr(t, "captioner", None)
                                                       for t in self.terms]:
            if frozen is not None:
                frozen.trainable = False
        d_extra, g_side = scheme.log_names
        self.penalty_names = list(d_extra)
        names = ["d_loss", "d_adv", *d_extra, "g_loss", *g_side, *(t.name for t in self.terms)]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}

    def compile(self, g_optimizer, d_optimizer, g_loss_scale=None, d_loss_scale=None,
                **kwargs):
        """Sets the optimizers and their loss scales (`loss_scaling.LossScale`s); a scale
        left None is dynamic when G or a D computes in float16, none otherwise. Call it
        inside the strategy scope: a dynamic scale holds variables."""
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        trained = [self.generator, *self.discriminators]
        self.g_loss_scale = (loss_scaling.for_models(trained, "g_loss_scale")
                             if g_loss_scale is None else g_loss_scale)
        self.d_loss_scale = (loss_scaling.for_models(trained, "d_loss_scale")
                             if d_loss_scale is None else d_loss_scale)

    @property
    def dynamic_loss_scales(self) -> Dict[str, loss_scaling.DynamicLossScale]:
        """{"g_loss_scale": ..., "d_loss_scale": ...}: the dynamic ones only (float16)."""
        scales = {"g_loss_scale": self.g_loss_scale, "d_loss_scale": self.d_loss_scale}
        return {name: scale for name, scale in scales.items()
                if isinstance(scale, loss_scaling.DynamicLossScale)}

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def step(self) -> tf.Variable:
        """The global step: number of G updates."""
        return self.g_optimizer.iterations

    @property
    def generator_variables(self):
        """What the G optimizer updates: G, and the terms' own variables (a projection
        head shared by F2R and F2F is counted once)."""
        extra = {id(v): v for t in self.terms for v in t.trainable_variables}
        return self.generator.trainable_variables + list(extra.values())

    @property
    def discriminator_variables(self):
        """What the D optimizer updates: every discriminator of the scheme."""
        return self.scheme.trainable_variables

    def term(self, name: str) -> objectives.GeneratorTerm:
        """The generator term logged as `name` ("g_f2f" ...)."""
        for t in self.terms:
            if t.name == name:
                return t
        raise KeyError(f"This GAN has no term {name!r}; it has {[t.name for t in self.terms]}.")

    def encode_caption(self, caption_ids) -> objectives.EncodedCaption:
        """A caption batch through the frozen text encoder (no gradient)."""
        words, sentence = self.text_encoder(caption_ids, training=False)
        return objectives.EncodedCaption(caption_ids, tf.stop_gradient(words),
                                         tf.stop_gradient(sentence),
                                         pipeline.caption_mask(caption_ids))

    def call(self, inputs, training=False):
        return interface.generate_from_captions(self.generator, self.text_encoder,
                                                inputs["caption_ids"], inputs["z"], training)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras (TF backend, under a strategy) pulls a first batch and reduces it across
        # replicas only to learn the input shapes for building unbuilt layers; under
        # MultiWorkerMirroredStrategy that reduce fails on a dict batch (its collective
        # reduce takes tensors). Every part of this model is built before fit(), since
        # its checkpoint needs all variables, so there is nothing to build then.
        if all(layer.built for layer in self._flatten_layers(include_self=False)):
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def train_step(self, batch):
        global_batch = tf.shape(batch["real_images"])[0] * runtime.num_replicas()
        average = lambda x: tf.nn.compute_average_loss(x, global_batch_size=global_batch)
        # F2F's second caption of each image (Ye et al. 2021) is generated from the same z.
        id_keys = ["caption_ids", "caption_ids_2"][:self.captions_per_step]
        captions = [self.encode_caption(batch[key]) for key in id_keys]
        mismatched = self.encode_caption(batch["mismatched_ids"])

        with tf.GradientTape() as g_tape:
            generated = [interface.generate(self.generator, batch["z"], c.sentence, c.words,
                                            c.mask, training=True) for c in captions]
        record = objectives.StepRecord(batch, captions, mismatched, generated, self.step,
                                       self.generator, self.image_encoder)
        d_values = self.scheme.discriminator_step(record, self.d_optimizer, average,
                                                  self.d_loss_scale)

        with g_tape:  # G against the updated D, on the same fakes
            weighted = self.scheme.generator_terms(record)
            weighted.update({t.name: (t.current_weight(), t(record)) for t in self.terms})
            g_total = tf.add_n([weight * value for weight, value in weighted.values()])
            g_loss = average(g_total)
        self.g_loss_scale.minimize(self.g_optimizer, g_tape, g_loss, self.generator_variables)
        self.update_ema()

        values = {"d_loss": tf.add_n(list(d_values.values())), "g_loss": g_total, **d_values}
        values.update({name: value for name, (_, value) in weighted.items()})
        weights = {}
        if "d_loss_scale" in self.dynamic_loss_scales:  # see the module docstring
            for name in ["d_loss", *self.penalty_names]:
                finite = tf.math.is_finite(values[name])
                values[name] = tf.where(finite, values[name], tf.zeros_like(values[name]))
                weights[name] = tf.cast(finite, values[name].dtype)
        for name, tracker in self.trackers.items():
            tracker.update_state(values[name], sample_weight=weights.get(name))
        logs = {name: tracker.result() for name, tracker in self.trackers.items()}
        # The scale after this step's updates: a halving shows the step that overflowed.
        logs.update({name: tf.identity(scale.scale)
                     for name, scale in self.dynamic_loss_scales.items()})
        return runtime.fit_logs(logs)

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
