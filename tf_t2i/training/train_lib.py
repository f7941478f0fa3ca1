"""GAN training run: strategy, data, models (inside the scope), restore, fit.

Library code (no flags): `tf_t2i/train.py` turns flags into the config and calls
`run_training`. A GAN model directory is self-contained: it holds `config.json`, the
vocabulary and, in its checkpoints, the frozen text encoder beside G, EMA G and D, so
sampling and export need nothing else.
"""

import os
import tempfile
import types
from typing import Dict, Optional

from absl import logging
import keras
import tensorflow as tf

from tf_t2i import config as config_lib
from tf_t2i.data import sources
from tf_t2i.data import tokenizer as tokenizer_lib
from tf_t2i.io import checkpoints
from tf_t2i.models import factory
from tf_t2i.models import params
from tf_t2i.models import interface
from tf_t2i.models import trained_run
from tf_t2i.training import callbacks as callbacks_lib
from tf_t2i.training import captioner_lib
from tf_t2i.training import gan as gan_lib
from tf_t2i.training import objectives
from tf_t2i.training import runner
from tf_t2i.training import run_dirs
from tf_t2i.training import runtime
from tf_t2i.training import schedules
from tf_t2i.training.objectives import damsm_term

# Sections of the DAMSM run that the GAN run must share (its encoders are reused).
ENCODER_SECTIONS = ("text", "image_encoder")


def restore_encoders(text_encoder, image_encoder, damsm_dir: str) -> str:
    """Loads the DAMSM encoders' weights (not its optimizer) from its last checkpoint."""
    path = tf.train.latest_checkpoint(os.path.join(damsm_dir, checkpoints.CHECKPOINT_SUBDIR))
    ckpt = checkpoints.make_checkpoint(text_encoder=text_encoder, image_encoder=image_encoder)
    try:
        ckpt.restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
        raise run_dirs.DAMSMRunError(f"The DAMSM checkpoint {path} does not fit the encoders "
                                     f"of this run: {e}") from e
    return path


class GANComponents:
    """Everything a GAN run builds, created inside the strategy scope."""

    def __init__(self, cfg: config_lib.ExperimentConfig, vocab_size: int, model_dir: str):
        models = trained_run.build_generators_and_encoders(cfg, vocab_size, with_ema=False)
        self.text_encoder, self.image_encoder, self.generator, _ = models
        self.discriminators = factory.build_discriminators(cfg)
        self.discriminator = self.discriminators[-1]
        generated = interface.build_generator(self.generator, cfg.generator.z_dim,
                                              cfg.text.hidden_dim, cfg.data.max_caption_length)
        for disc, stage in zip(self.discriminators, generated.stages):
            interface.build_discriminator(disc, int(stage.shape[1]), cfg.text.hidden_dim)
        self.ema_generator = trained_run.build_ema_generator(cfg)
        loss = cfg.loss
        self.captioner = None
        if loss.recap_weight > 0:
            self.captioner = captioner_lib.restore_captioner(cfg, vocab_size)
        self.projection_head = None
        if loss.contrastive_projection_dim > 0 and max(loss.f2r_weight, loss.f2f_weight) > 0:
            dim = loss.contrastive_projection_dim
            # float32 under any policy: its output is what NT-Xent compares.
            self.projection_head = keras.Sequential(
                [keras.layers.Dense(dim, activation="relu", dtype="float32"),
                 keras.layers.Dense(dim, dtype="float32")],
                name="projection_head")
            self.projection_head.build([None, cfg.text.hidden_dim])
        self.scheme = objectives.build_scheme(factory.adversarial_loss(cfg), self.discriminators,
                                              loss)
        self.terms = objectives.build_terms(loss, types.SimpleNamespace(
            image_encoder=self.image_encoder, captioner=self.captioner,
            projection_head=self.projection_head))
        uses_image_encoder = any(t.needs_image_encoder for t in self.terms)
        self.gan = gan_lib.TextToImageGAN(
            self.generator, self.scheme, self.text_encoder, terms=self.terms,
            image_encoder=self.image_encoder if uses_image_encoder else None,
            ema_generator=self.ema_generator, ema_decay=cfg.train.ema_decay)
        adam = lambda lr: keras.optimizers.Adam(lr, beta_1=cfg.train.beta1, beta_2=cfg.train.beta2)
        # Set by the loop's time budget (loop.RunClock); not part of the checkpoint.
        self.time_progress = schedules.time_progress_variable()
        self.g_optimizer = adam(schedules.gan_learning_rate(
            cfg.train, cfg.train.g_learning_rate, progress=self.time_progress))
        # G's optimizer updates once per GAN step: its `iterations` is the run's step.
        self.d_optimizer = adam(schedules.gan_learning_rate(
            cfg.train, cfg.train.d_learning_rate, self.g_optimizer.iterations,
            self.time_progress))
        for term in self.terms:  # the DAMSM weight may fall with the rates, on G's step
            if isinstance(term, damsm_term.DAMSMTerm):
                term.weight = schedules.damsm_weight(cfg.train, loss, self.g_optimizer.iterations,
                                                     self.time_progress)
        self.gan.compile(g_optimizer=self.g_optimizer, d_optimizer=self.d_optimizer,
                         jit_compile=runtime.use_xla(cfg))
        self.g_optimizer.build(self.gan.generator_variables)
        self.d_optimizer.build(self.gan.discriminator_variables)
        trackables = dict(generator=self.generator, text_encoder=self.text_encoder,
                          image_encoder=self.image_encoder, g_optimizer=self.g_optimizer,
                          d_optimizer=self.d_optimizer)
        if len(self.discriminators) == 1:
            trackables["discriminator"] = self.discriminator
        else:
            trackables.update({d.name: d for d in self.discriminators})
        if self.ema_generator is not None:
            trackables["ema_generator"] = self.ema_generator
        if self.captioner is not None:
            trackables["captioner"] = self.captioner
        if self.projection_head is not None:
            trackables["projection_head"] = self.projection_head
        # float16 only: other runs' checkpoints keep their layout.
        trackables.update(self.gan.dynamic_loss_scales)
        self.checkpoint = checkpoints.CheckpointHandle(model_dir, cfg.train.max_checkpoints,
                                                       **trackables)

    def parameter_counts(self) -> Dict[str, int]:
        """Trainable parameters of G and D; all weights of the frozen encoders."""
        trainable = params.count_trainable_parameters
        counts = {"generator": trainable(self.generator)}
        if len(self.discriminators) == 1:
            counts["discriminator"] = trainable(self.discriminator)
            if hasattr(self.discriminator, "head"):
                counts["discriminator.head"] = trainable(self.discriminator.head)
        else:
            counts.update({d.name: trainable(d) for d in self.discriminators})
        counts.update({"text_encoder (frozen)": params.count_weights(self.text_encoder.weights),
                       "image_encoder (frozen)": params.count_weights(self.image_encoder.weights)})
        return counts


def describe(cfg: config_lib.ExperimentConfig, vocab_size: int) -> Dict[str, int]:
    """Parameter counts of every model a run with this config builds (for --dry_run)."""
    with tempfile.TemporaryDirectory() as tmp:
        return GANComponents(cfg, vocab_size, tmp).parameter_counts()


def restore_components(model_dir: str, strategy: Optional[tf.distribute.Strategy] = None):
    """Rebuilds everything a run trains, from its directory: (cfg, tokenizer, components).

    For sampling, evaluation and export, `models.trained_run.load_run` loads less (no
    discriminators, no optimizers)."""
    cfg = config_lib.load_config(model_dir)
    tok = tokenizer_lib.CaptionTokenizer.load(model_dir, cfg.data.max_caption_length)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        parts = GANComponents(cfg, tok.vocab_size, model_dir)
        # Every variable must come from the checkpoint: a run written by an older or
        # different model fails here instead of sampling from fresh weights.
        path = parts.checkpoint.restore_or_initialize()
    if path is None:
        raise FileNotFoundError(f"No checkpoint in {model_dir}/checkpoints: has the run trained?")
    return cfg, tok, parts


class GANTask(runner.Task):
    """A GAN run: encoders and vocabulary from the DAMSM run, G / EMA G / D trained."""

    name = "GAN"
    reads_hard_negatives = True

    def __init__(self, cfg: config_lib.ExperimentConfig):
        # Checked before anything is read or written.
        super().__init__(run_dirs.adopt_damsm_config(cfg))
        self._negative_images = None

    def prepare(self, model_dir, train_source):
        return runner.adopt_vocabulary(self.cfg.runtime.damsm_dir, model_dir,
                                       self.cfg.data.max_caption_length)

    def build(self, vocab_size, model_dir):
        parts = GANComponents(self.cfg, vocab_size, model_dir)
        return runner.Built(parts.gan, parts.gan.step, parts.checkpoint, parts)

    def initialize(self, built):
        restore_encoders(built.parts.text_encoder, built.parts.image_encoder,
                         self.cfg.runtime.damsm_dir)
        built.parts.gan.init_ema()

    def dataset_options(self):
        return {"noise_dim": self.cfg.generator.z_dim, **super().dataset_options()}

    def source_options(self, source):
        if not self.cfg.loss.negative_images_weight:
            return {}
        if self._negative_images is None:  # once, though each input pipeline asks
            logging.info("Rendering %d negative images (an object added to each).", len(source))
            self._negative_images = sources.shapes_negative_images(self.cfg.data, source)
        return {"negative_images": self._negative_images}

    def before_save(self, built):
        # The EMA copy's BatchNorm statistics are G's: brought up to date for the save.
        built.parts.gan.sync_ema_buffers()

    def callbacks(self, built, tokenizer, model_dir):
        # Captions of the run's own test split (CUB and COCO runs draw birds and scenes).
        data = self.cfg.data
        captions = callbacks_lib.grid_captions(data.dataset, sources.load_source(data, "test"))
        return [callbacks_lib.SampleGrid(built.parts.gan, tokenizer, model_dir,
                                         self.cfg.train.sample_every,
                                         self.cfg.generator.z_dim, captions=captions)]


def run_training(cfg: config_lib.ExperimentConfig, model_dir: str,
                 strategy: Optional[tf.distribute.Strategy] = None, verbose: int = 1,
                 extra_callbacks=()) -> Dict:
    """Trains (or resumes) a GAN to cfg.train.steps (or for cfg.train.max_seconds).

    Returns the last logged values."""
    return runner.run(GANTask(cfg), model_dir, strategy, verbose, extra_callbacks).history
