"""Checkpoints: restore-or-initialise over any set of trackables, written atomically.

`tf.train.CheckpointManager` writes a checkpoint's shards under temporary names and only
then atomically rewrites the `checkpoint` state file, so a run killed mid-write leaves
the previous checkpoint as the latest one.

Keras models and optimizers are stored as the list of all their variables (see
`make_checkpoint`): Keras 3 on TensorFlow shows `tf.train.Checkpoint` only the sub-layers
held in plain attributes, so a model keeping its blocks in a Python list (SSA-GAN's G and
D) would otherwise be saved, and restored, without most of its weights.
"""

import os
from typing import Dict, Optional

import keras
import tensorflow as tf

CHECKPOINT_SUBDIR = "checkpoints"


class CheckpointMismatchError(ValueError):
    """A checkpoint does not hold the variables of the models it is restored into."""


def _is_keras(obj) -> bool:
    return isinstance(obj, (keras.layers.Layer, keras.optimizers.Optimizer))


def keras_variables(obj) -> Dict[str, tf.Variable]:
    """Every variable of a Keras layer, model or optimizer, keyed by its index in `variables`.

    The order of `obj.variables` is fixed by the code that builds the object; names are not
    usable as keys (Keras makes them unique per process: `conv2d_3`, `adam_1`).
    """
    return {str(i): v for i, v in enumerate(obj.variables)}


def make_checkpoint(**objects) -> tf.train.Checkpoint:
    """A `tf.train.Checkpoint` that stores each Keras object as all of its variables.

    Build models (and optimizers) before calling it; other trackables are stored as they
    are. Reading a checkpoint written by `CheckpointHandle` needs a checkpoint made here.
    """
    return tf.train.Checkpoint(**{name: keras_variables(obj) if _is_keras(obj) else obj
                                  for name, obj in objects.items()})


class CheckpointHandle:
    """A checkpoint manager over named trackables.

    Args:
      model_dir: the run's directory; checkpoints live in `<model_dir>/checkpoints`.
      max_to_keep: checkpoints kept.
      **trackables: what to save (models, optimizers, variables).
    """

    def __init__(self, model_dir: str, max_to_keep: int = 3, **trackables):
        self.directory = os.path.join(model_dir, CHECKPOINT_SUBDIR)
        self._keras = {name: obj for name, obj in trackables.items() if _is_keras(obj)}
        self._counts = {name: len(obj.variables) for name, obj in self._keras.items()}
        self.checkpoint = make_checkpoint(**trackables)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                  max_to_keep=max_to_keep)

    @property
    def latest(self) -> Optional[str]:
        return self.manager.latest_checkpoint

    def restore_or_initialize(self, expect_partial: bool = False) -> Optional[str]:
        """Restores the latest checkpoint if there is one; returns its path or None.

        Unless `expect_partial`, every variable must get a value from the checkpoint.
        """
        path = self.manager.latest_checkpoint
        if path:
            status = self.checkpoint.restore(path)
            if expect_partial:
                status.expect_partial()
            else:
                try:
                    status.assert_existing_objects_matched()
                except AssertionError as e:
                    raise CheckpointMismatchError(
                        f"The checkpoint {path} does not match this run's models "
                        f"and optimizers (another config, or an older tf_t2i "
                        f"checkpoint format): {str(e)[:300]}") from e
        return path

    def save(self, step: int) -> str:
        for name, obj in self._keras.items():
            if len(obj.variables) != self._counts[name]:
                raise RuntimeError(f"{name} has {len(obj.variables)} variables but had "
                                   f"{self._counts[name]} when the checkpoint was set up: "
                                   "build models and optimizers first.")
        return self.manager.save(checkpoint_number=step)
