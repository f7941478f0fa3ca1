"""Checkpoints: restore-or-initialise over any set of trackables, written atomically.

`tf.train.CheckpointManager` writes a checkpoint's shards under temporary names and only
then atomically rewrites the `checkpoint` state file, so a run killed mid-write leaves
the previous checkpoint as the latest one.

Keras models and optimizers are stored as all of their variables, keyed by their Keras
paths made stable (`checkpoint_keys`): "generator/block0/conv_down/kernel",
"g_optimizer/generator/block0/conv_down/kernel/momentum". Keras 3 on TensorFlow shows
`tf.train.Checkpoint` only the sub-layers held in plain attributes, so a model keeping its
blocks in a Python list (SSA-GAN's G and D) would otherwise be saved, and restored,
without most of its weights. Every checkpoint also holds its format version
(`checkpoint_format`); one of an older format is refused with one line.
"""

import os
import re
from typing import Optional

from absl import logging
import keras
import tensorflow as tf

from tf_t2i.io import checkpoint_keys
from tf_t2i.io.checkpoint_state import CHECKPOINT_SUBDIR
# 1: variables keyed by their index in `variables` (no version in the checkpoint).
# 2: keyed by stable Keras paths.
FORMAT_VERSION = 2
FORMAT_KEY = "checkpoint_format"


class CheckpointMismatchError(ValueError):
    """A checkpoint does not hold the variables of the models it is restored into."""


class CheckpointCorruptError(CheckpointMismatchError):
    """No checkpoint of a run can be read (truncated or damaged files)."""


# What reading a damaged checkpoint raises: TF's DataLoss/OutOfRange/NotFound errors, the
# checkpoint reader's IndexError ("Read less bytes than requested"), a bad proto.
_READ_ERRORS = (tf.errors.OpError, IndexError, OSError, ValueError)


def _short(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:200]


class CheckpointFormatError(CheckpointMismatchError):
    """A checkpoint was written in another tf_t2i checkpoint format than this one reads."""


def check_format(path: str) -> None:
    """Raises CheckpointFormatError unless the checkpoint is of FORMAT_VERSION.

    Only reads the checkpoint, so nothing in the run's directory changes on failure.
    """
    found, version = checkpoint_keys.saved_value(path, FORMAT_KEY)
    if not found:
        raise CheckpointFormatError(
            f"{path} is in an older checkpoint format (variables keyed by their index, "
            f"before tf_t2i checkpoint format {FORMAT_VERSION}): retrain the run, or load "
            "it with the tf_t2i version that wrote it.")
    if int(version) != FORMAT_VERSION:
        raise CheckpointFormatError(
            f"{path} is in checkpoint format {int(version)}, but this tf_t2i reads format "
            f"{FORMAT_VERSION}: use the tf_t2i version that wrote it.")


class _VersionedCheckpoint(tf.train.Checkpoint):
    """A tf.train.Checkpoint whose restore() and read() first refuse other formats."""

    def read(self, save_path, options=None):  # restore() reads through read()
        if save_path is not None:
            check_format(save_path)
        return super().read(save_path, options=options)


def _checkpoint(objects, keyed) -> tf.train.Checkpoint:
    if FORMAT_KEY in objects:
        raise ValueError(f"{FORMAT_KEY!r} is reserved for the checkpoint's format version.")
    stored = {name: checkpoint_keys.nest(keyed[name], name) if name in keyed else obj
              for name, obj in objects.items()}
    stored[FORMAT_KEY] = tf.Variable(FORMAT_VERSION, dtype=tf.int64, trainable=False,
                                   name=FORMAT_KEY)
    return _VersionedCheckpoint(**stored)


def make_checkpoint(**objects) -> tf.train.Checkpoint:
    """A `tf.train.Checkpoint` that stores each Keras object as all of its variables.

    Build models (and optimizers) before calling it; other trackables are stored as they
    are. An optimizer's slots are keyed by the model variables they belong to, so pass
    it together with its models. Reading a checkpoint written by `CheckpointHandle` needs
    a checkpoint made here; its restore() raises CheckpointFormatError on another format.
    """
    keras_objects = {n: o for n, o in objects.items() if checkpoint_keys.is_keras(o)}
    return _checkpoint(objects, checkpoint_keys.keyed_variables(keras_objects))


class CheckpointHandle:
    """A checkpoint manager over named trackables.

    Args:
      model_dir: the run's directory; checkpoints live in `<model_dir>/checkpoints`.
      max_to_keep: checkpoints kept.
      **trackables: what to save (models, optimizers, variables).
    """

    def __init__(self, model_dir: str, max_to_keep: int = 3, **trackables):
        self.directory = os.path.join(model_dir, CHECKPOINT_SUBDIR)
        self._keras = {n: o for n, o in trackables.items() if checkpoint_keys.is_keras(o)}
        self._counts = {name: len(obj.variables) for name, obj in self._keras.items()}
        self._keys = checkpoint_keys.keyed_variables(self._keras)
        self.checkpoint = _checkpoint(trackables, self._keys)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                  max_to_keep=max_to_keep)
        self.read_directory = self.directory

    def read_from(self, model_dir: str) -> None:
        """Restores from `model_dir`'s checkpoints while still saving to this handle's own
        directory: a non-chief worker resumes from the chief's run and writes only to its
        scratch directory."""
        self.read_directory = os.path.join(model_dir, CHECKPOINT_SUBDIR)

    @property
    def latest(self) -> Optional[str]:
        return self.manager.latest_checkpoint

    def restore_or_initialize(self, expect_partial: bool = False) -> Optional[str]:
        """Restores the latest readable checkpoint if there is one; returns its path or None.

        Unless `expect_partial`, every variable must get a value from the checkpoint;
        variables the checkpoint holds for objects not given here are ignored. A damaged
        latest checkpoint (truncated by a full disk, a copy cut short) is passed over for
        the previous one, with a warning; each restore sets every variable, so nothing of
        the damaged one remains.

        Raises:
          CheckpointFormatError: the checkpoint is of an older (or newer) format.
          CheckpointMismatchError: a variable is missing from the checkpoint.
          CheckpointCorruptError: no checkpoint of the run can be read.
        """
        candidates = self._candidates()
        damaged = []
        for path in candidates:
            try:
                self._restore(path, expect_partial)
            except CheckpointMismatchError:
                raise
            except _READ_ERRORS as e:
                damaged.append((path, _short(e)))
                continue
            if damaged:
                logging.warning("Checkpoint %s cannot be read (%s); restored the previous one, "
                                "%s, instead.", damaged[0][0], damaged[0][1], path)
            return path
        if damaged:
            raise CheckpointCorruptError(
                f"No checkpoint in {self.read_directory} can be read; the latest, {damaged[0][0]}: "
                f"{damaged[0][1]}")
        return None

    def _candidates(self):
        """The run's checkpoints, newest first: from the `checkpoint` state file, or when
        that is missing or damaged (TF then ignores it) from the files themselves, so
        a run is never silently started again from scratch."""
        directory = self.read_directory
        if directory == self.directory:
            listed = self.manager.checkpoints
        else:
            state = tf.train.get_checkpoint_state(directory)
            listed = list(state.all_model_checkpoint_paths) if state else []
        if listed:
            return list(reversed(listed))
        steps = []
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                match = re.fullmatch(r"ckpt-(\d+)\.index", name)
                if match:
                    steps.append(int(match.group(1)))
        found = [os.path.join(directory, f"ckpt-{s}") for s in sorted(steps, reverse=True)]
        if found:
            logging.warning("%s lists no checkpoint (missing or damaged); using the "
                            "checkpoint files found there, newest first: %s.",
                            os.path.join(directory, "checkpoint"), ", ".join(
                                os.path.basename(p) for p in found))
        return found

    def _restore(self, path: str, expect_partial: bool) -> None:
        check_format(path)
        if not expect_partial:
            self._check_complete(path)
        status = self.checkpoint.restore(path)
        if expect_partial:
            status.expect_partial()
            return
        try:
            status.assert_existing_objects_matched()
        except AssertionError as e:
            raise CheckpointMismatchError(
                f"The checkpoint {path} does not match this run's models "
                f"and optimizers (another config?): "
                f"{' '.join(str(e).split())[:300]}") from e
        # Every object given got its values; what else the checkpoint holds (a sampler
        # loads no optimizer) is deliberately left, without TF's warning per value.
        status.expect_partial()

    def _check_complete(self, path: str) -> None:
        """Raises CheckpointMismatchError, before anything is restored, naming missing keys."""
        saved = checkpoint_keys.saved_keys(path)
        missing = [f"{name}/{key}" for name, keyed in self._keys.items() for key in keyed
                   if f"{name}/{key}" not in saved]
        if missing:
            raise CheckpointMismatchError(
                f"The checkpoint {path} does not match this run's models and optimizers "
                f"(another config?): it lacks {len(missing)} of their variables, e.g. "
                f"{', '.join(missing[:3])}.")

    def save(self, step: int) -> str:
        for name, obj in self._keras.items():
            if len(obj.variables) != self._counts[name]:
                raise RuntimeError(f"{name} has {len(obj.variables)} variables but had "
                                   f"{self._counts[name]} when the checkpoint was set up: "
                                   "build models and optimizers first.")
        return self.manager.save(checkpoint_number=step)
