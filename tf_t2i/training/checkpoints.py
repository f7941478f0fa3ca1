"""Checkpoints: restore-or-initialise over any set of trackables, written atomically.

`tf.train.CheckpointManager` writes a checkpoint's shards under temporary names and only
then atomically rewrites the `checkpoint` state file, so a run killed mid-write leaves
the previous checkpoint as the latest one.

Keras models and optimizers are stored as the list of all their variables (see
`make_checkpoint`): Keras 3 on TensorFlow shows `tf.train.Checkpoint` only the sub-layers
held in plain attributes, so a model keeping its blocks in a Python list (SSA-GAN's G and
D) would otherwise be saved, and restored, without most of its weights.
"""

import math
import time
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


class PeriodicCheckpoint(keras.callbacks.Callback):
    """Saves every `every` optimiser steps and at the end of training.

    Args:
      handle: the CheckpointHandle.
      step_fn: returns the current global step (int).
      every: steps between saves.
      before_save: called before each save (e.g. to bring an EMA copy's statistics up
        to date), or None.
    """

    def __init__(self, handle: CheckpointHandle, step_fn, every: int, before_save=None):
        super().__init__()
        self.handle = handle
        self.step_fn = step_fn
        self.every = every
        self.before_save = before_save
        self._last = None

    def _save(self):
        step = int(self.step_fn())
        if step != self._last:
            if self.before_save is not None:
                self.before_save()
            self.handle.save(step)
            self._last = step

    def on_train_batch_end(self, batch, logs=None):
        if self.model.stop_training:
            return
        if int(self.step_fn()) % self.every == 0:
            self._save()

    def on_train_end(self, logs=None):
        if not getattr(self.model, "nonfinite_loss", False):
            self._save()


class StopAtStep(keras.callbacks.Callback):
    """Ends fit() exactly at the configured total step (resumed runs start mid-epoch)."""

    def __init__(self, step_fn, total_steps: int):
        super().__init__()
        self.step_fn = step_fn
        self.total_steps = total_steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.step_fn()) >= self.total_steps:
            self.model.stop_training = True


class StopAfterSeconds(keras.callbacks.Callback):
    """Ends fit() at the first step after `max_seconds` of wall time since fit() began.

    A budget for runs compared at equal time rather than equal steps; the checkpoint
    callback saves the step it stopped at, so the run resumes (or is evaluated) from there.
    """

    def __init__(self, max_seconds: float, clock=time.monotonic):
        super().__init__()
        self.max_seconds = max_seconds
        self.clock = clock
        self._started = None

    def on_train_begin(self, logs=None):
        self._started = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        if self.clock() - self._started >= self.max_seconds:
            self.model.stop_training = True


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training when a logged loss term is NaN or infinite, naming step and term.

    It runs before the checkpoint callback in the list, so the bad state is never saved:
    the last good checkpoint stays the latest.
    """

    def __init__(self, step_fn):
        super().__init__()
        self.step_fn = step_fn
        self.message = None

    def on_train_batch_end(self, batch, logs=None):
        for name, value in (logs or {}).items():
            try:
                v = float(value)
            except (TypeError, ValueError):
                continue
            if v != v or v in (float("inf"), float("-inf")):
                self.message = (f"Training stopped: loss term {name!r} is {v} at step "
                                f"{int(self.step_fn())}; the last good checkpoint is kept.")
                print(self.message, flush=True)
                self.model.nonfinite_loss = True
                self.model.stop_training = True
                return


def fit_to_total_steps(model: keras.Model, make_dataset, handle: CheckpointHandle, step_fn,
                       restored: Optional[str], *, total_steps: int, steps_per_epoch: int,
                       checkpoint_every: int, log_dir: str, verbose: int = 1,
                       before_save=None, after_checkpoint=(),
                       max_seconds: float = 0.0) -> Dict[str, float]:
    """Runs `model.fit()` from the restored step to `total_steps`: the loop of every run.

    Callbacks, in order: the NaN guard (first, so a bad state is never saved),
    periodic checkpoints (calling `before_save` before each save), the stop at
    `total_steps` (and after `max_seconds` of this sitting when > 0), `after_checkpoint`,
    TensorBoard.

    Args:
        model: a compiled Keras model with a custom train_step.
        make_dataset: start_step -> the training stream from that step on.
        handle: the run's checkpoints; step_fn: the current global step.
        restored: the restored checkpoint path (for the log line), or None.

    Returns:
        The last logged values ({} when the run was already complete).

    Raises:
        FloatingPointError: a loss term became NaN or infinite (message names it).
    """
    start_step = step_fn()
    print(f"{'Resuming from ' + restored if restored else 'Starting'} at step "
          f"{start_step} of {total_steps}.", flush=True)
    if start_step >= total_steps:
        return {}
    guard = NonFiniteGuard(step_fn)
    callbacks = [guard,
                 PeriodicCheckpoint(handle, step_fn, checkpoint_every, before_save),
                 StopAtStep(step_fn, total_steps),
                 *([StopAfterSeconds(max_seconds)] if max_seconds > 0 else []),
                 *after_checkpoint,
                 keras.callbacks.TensorBoard(log_dir, update_freq=steps_per_epoch)]
    # Keras counts epochs; a resumed run starts mid-epoch and StopAtStep ends it exactly.
    result = model.fit(make_dataset(start_step),
                       epochs=math.ceil(total_steps / steps_per_epoch),
                       steps_per_epoch=steps_per_epoch,
                       initial_epoch=start_step // steps_per_epoch,
                       callbacks=callbacks, verbose=verbose)
    if guard.message:
        raise FloatingPointError(guard.message)
    return {k: float(v[-1]) for k, v in result.history.items()}
