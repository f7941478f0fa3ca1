"""A trained GAN run, loaded for use: the one place that rebuilds a run's models from its
directory (config.json + vocabulary + latest checkpoint).

Sampling, evaluation and export need the text and image encoders and the generators, not
the discriminators or optimizers, so this sits below training, eval and serving; training
builds the same models through `build_generators_and_encoders` and adds the rest.
"""

import os
import re
from typing import NamedTuple, Optional

import tensorflow as tf

from tf_t2i import config as config_lib
from tf_t2i.data import tokenizer as tokenizer_lib
from tf_t2i.io import checkpoints
from tf_t2i.models import factory
from tf_t2i.models import interface


class GeneratorsAndEncoders(NamedTuple):
    text_encoder: object
    image_encoder: object
    generator: object
    ema_generator: Optional[object]   # None when the run keeps no EMA copy


def build_generators_and_encoders(cfg: config_lib.ExperimentConfig, vocab_size: int,
                                  with_ema: bool = True) -> GeneratorsAndEncoders:
    """The run's DAMSM encoders, generator and EMA generator, with their weights created.

    Args:
      with_ema: also build the EMA copy (when the run keeps one); training builds it
        after the discriminators, so that a seed gives the weights it always gave.
    """
    size, t = cfg.data.image_size, cfg.data.max_caption_length
    text_encoder = factory.build_text_encoder(cfg, vocab_size)
    image_encoder = factory.build_image_encoder(cfg)
    text_encoder(tf.zeros([1, t], tf.int32), training=False)
    image_encoder(tf.zeros([1, size, size, 3]), training=False)
    generator = factory.build_generator(cfg)
    interface.build_generator(generator, *_generator_build_args(cfg))
    ema_generator = build_ema_generator(cfg) if with_ema else None
    return GeneratorsAndEncoders(text_encoder, image_encoder, generator, ema_generator)


def _generator_build_args(cfg):
    return cfg.generator.z_dim, cfg.text.hidden_dim, cfg.data.max_caption_length


def build_ema_generator(cfg: config_lib.ExperimentConfig):
    """The EMA copy of the generator (built), or None when train.ema_decay is 0."""
    if cfg.train.ema_decay <= 0:
        return None
    ema_generator = factory.build_generator(cfg, name="ema_generator")
    interface.build_generator(ema_generator, *_generator_build_args(cfg))
    return ema_generator


class TrainedRun:
    """The models of a trained run, restored from its latest checkpoint.

    Attributes:
      cfg, tokenizer: the run's config and vocabulary.
      text_encoder, image_encoder, generator, ema_generator: restored models.
      step: the global step of the checkpoint.
      checkpoint_path: the checkpoint they were restored from.
    """

    def __init__(self, cfg, tokenizer, models: GeneratorsAndEncoders, step: int,
                 checkpoint_path: str):
        self.cfg, self.tokenizer = cfg, tokenizer
        self.text_encoder, self.image_encoder, self.generator, self.ema_generator = models
        self.step = step
        self.checkpoint_path = checkpoint_path

    def sampling_generator(self, use_ema: Optional[bool] = None):
        """The EMA generator when there is one (default), else the trained one."""
        if use_ema is None:
            use_ema = self.ema_generator is not None
        if use_ema and self.ema_generator is None:
            raise ValueError("This run has no EMA generator (train_ema_decay was 0).")
        return self.ema_generator if use_ema else self.generator

    def generate(self, caption_ids, z, use_ema: Optional[bool] = None) -> tf.Tensor:
        """float32 images in [-1, 1] for int32 token ids [B, T] and noise [B, z_dim]."""
        return interface.generate_from_captions(self.sampling_generator(use_ema),
                                                self.text_encoder, caption_ids, z)


def checkpoint_step(path: str) -> int:
    """The step a run's checkpoint was saved at (its name is `ckpt-<step>`)."""
    match = re.search(r"-(\d+)$", path)
    if match is None:
        raise ValueError(f"{path} is not a tf_t2i checkpoint (ckpt-<step>).")
    return int(match.group(1))


def load_run(model_dir: str, strategy: Optional[tf.distribute.Strategy] = None) -> TrainedRun:
    """Rebuilds a trained GAN run from its directory.

    Raises:
      FileNotFoundError: no config.json, vocabulary or checkpoint.
      checkpoints.CheckpointMismatchError: the checkpoint does not fit the models of the
        run's config (or is of another checkpoint format).
    """
    cfg = config_lib.load_config(model_dir)
    tok = tokenizer_lib.CaptionTokenizer.load(model_dir, cfg.data.max_caption_length)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        models = build_generators_and_encoders(cfg, tok.vocab_size)
        trackables = {k: v for k, v in models._asdict().items() if v is not None}
        handle = checkpoints.CheckpointHandle(model_dir, **trackables)
        # Every weight of these models must come from the checkpoint: a run written by
        # another model fails here instead of sampling from fresh weights.
        path = handle.restore_or_initialize()
    if path is None:
        raise FileNotFoundError(f"No checkpoint in {os.path.join(model_dir, 'checkpoints')}: "
                                "has the run trained?")
    return TrainedRun(cfg, tok, models, checkpoint_step(path), path)
