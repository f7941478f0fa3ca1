"""The training loop of every run: `fit()` from the restored step to the total, with
periodic checkpoints, a stop at the total step or after a time budget, and a NaN guard.

The callbacks count steps on the host (`HostStep`): the step variable is read once when
`fit()` begins, so no callback forces a device-to-host copy on every step (on a GPU,
each such read would wait for the step to finish before the next one is queued).
"""

import json
import math
import os
import time
from typing import Callable, Dict, Optional

import keras

from tf_t2i.io import checkpoints
from tf_t2i.io import files


class HostStep(keras.callbacks.Callback):
    """The global step on the host: read once at the start of `fit()`, then counted.

    Every train step of this library makes exactly one update of the step variable (G's
    optimizer for a GAN), so counting batches gives the step without reading it.

    Args:
      step_fn: reads the step variable (called once per `fit()`).
    """

    def __init__(self, step_fn: Callable[[], int]):
        super().__init__()
        self.step_fn = step_fn
        self.value: Optional[int] = None

    def __call__(self) -> int:
        if self.value is None:
            self.value = int(self.step_fn())
        return self.value

    def on_train_begin(self, logs=None):
        self.value = int(self.step_fn())

    def on_train_batch_end(self, batch, logs=None):
        self.value += 1


class PeriodicCheckpoint(keras.callbacks.Callback):
    """Saves every `every` optimiser steps and at the end of training.

    Args:
      handle: the CheckpointHandle.
      step_fn: returns the current global step (int).
      every: steps between saves.
      before_save: called before each save (e.g. to bring an EMA copy's statistics up
        to date), or None.
    """

    def __init__(self, handle: checkpoints.CheckpointHandle, step_fn, every: int,
                 before_save=None):
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


class RunClock(keras.callbacks.Callback):
    """The run's training time, across sittings; with a budget, the stop and the schedule.

    The time is that of the steps: from each step's start to this callback's end of it,
    so it counts the step, its data and the checkpoint saves, and leaves out what the
    callbacks after it do (sample grids, in-training evaluations, TensorBoard), which a
    run may or may not ask for. Earlier sittings count with what they recorded at the
    checkpoint this one resumed from: `record` writes the seconds at each save into
    `train_clock.json` beside the checkpoints, and `read_clock` reads them back (a run
    without one starts from 0).
    With `max_seconds` > 0 fit() ends at the first step past it, the checkpoint callback
    saving that step, and `progress` (when given) holds the fraction of the budget spent,
    which the learning-rate schedules read (`schedules.LinearDecayTail`): a budgeted run
    decays its rates over its time, on any machine.

    Args:
      offset: seconds of the earlier sittings.
      max_seconds: the run's time budget; 0: none.
      progress: float variable set to min(1, seconds / max_seconds) after every step.
      clock: seconds of a monotonic clock (tests pass their own).
    """

    def __init__(self, offset: float = 0.0, max_seconds: float = 0.0, progress=None,
                 clock: Optional[Callable[[], float]] = None):
        super().__init__()
        self.offset, self.max_seconds, self.progress = offset, max_seconds, progress
        self.clock = clock
        self._spent = 0.0
        self._step_began = None

    def _now(self) -> float:
        return (self.clock or monotonic)()

    def seconds(self) -> float:
        """The run's training seconds so far, the step under way included (a checkpoint
        saved at the end of a step, before this callback's turn, records that step)."""
        running = 0.0 if self._step_began is None else self._now() - self._step_began
        return self.offset + self._spent + running

    def on_train_begin(self, logs=None):
        self._publish(self.offset)

    def on_train_batch_begin(self, batch, logs=None):
        self._step_began = self._now()

    def on_train_batch_end(self, batch, logs=None):
        if self._step_began is not None:
            self._spent += self._now() - self._step_began
            self._step_began = None
        if self.max_seconds > 0:
            seconds = self.seconds()
            self._publish(seconds)
            if seconds >= self.max_seconds:
                self.model.stop_training = True

    def seconds_left(self) -> float:
        """The budget's remaining seconds (0 when spent)."""
        return max(0.0, self.max_seconds - self.seconds())

    def _publish(self, seconds):
        if self.progress is not None and self.max_seconds > 0:
            self.progress.assign(min(1.0, seconds / self.max_seconds))

    def record(self, directory: str, step: int) -> None:
        """Adds (step, seconds) to `directory`/train_clock.json (the last 20 saves)."""
        entries = read_clock(directory)
        os.makedirs(directory, exist_ok=True)
        entries[str(step)] = round(self.seconds(), 3)
        latest = sorted(entries, key=int)[-20:]
        files.atomic_write_json(os.path.join(directory, CLOCK_FILENAME),
                                {k: entries[k] for k in latest})


CLOCK_FILENAME = "train_clock.json"
# The clock `RunClock` reads when given none; tests replace it.
monotonic = time.monotonic


def read_clock(directory: str) -> Dict[str, float]:
    """{step: training seconds} recorded beside the checkpoints in `directory` ({} if none
    or unreadable: the clock is a convenience, never a reason to refuse a resume)."""
    try:
        with open(os.path.join(directory, CLOCK_FILENAME)) as f:
            entries = json.load(f)
        return {str(k): float(v) for k, v in entries.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else \
        f"{rest // 60}:{rest % 60:02d}"


class ProgressLog(keras.callbacks.Callback):
    """The run's progress display: one line every `every` steps and at the last step,

        step  250/2700  0.46 s/step  ETA 18:49  d_loss 1.403  g_adv 1.355  g_loss 4.941

    (seconds per step over this sitting, in-training evaluations included). Plain lines,
    readable in a terminal and in a log file alike, where Keras' bars are not. With a
    time budget, `seconds_left` (the budget's remaining seconds) caps the ETA.
    """

    def __init__(self, step_fn, total_steps: int, every: int, clock=time.monotonic,
                 write=print, seconds_left: Optional[Callable[[], float]] = None):
        super().__init__()
        self.step_fn = step_fn
        self.total_steps = total_steps
        self.every = max(1, every)
        self.clock = clock
        self.write = write
        self.seconds_left = seconds_left
        self._start = None

    def on_train_begin(self, logs=None):
        self._start = (self.clock(), int(self.step_fn()))

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.step_fn())
        if step % self.every and step < self.total_steps:
            return
        began, first = self._start
        per_step = (self.clock() - began) / max(step - first, 1)
        terms = "  ".join(f"{name} {float(value):.3f}" for name, value in
                          sorted((logs or {}).items()) if _is_number(value))
        width = len(str(self.total_steps))
        eta = per_step * max(self.total_steps - step, 0)
        if self.seconds_left is not None:
            eta = min(eta, self.seconds_left())
        self.write(f"step {step:>{width}}/{self.total_steps}  {per_step:.2f} s/step  "
                   f"ETA {_duration(eta)}  {terms}", flush=True)


def _is_number(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training when a logged loss term is NaN or infinite, naming step and term.

    It runs before the checkpoint callback in the list and looks at the logs on every
    step where a checkpoint is due (`every`) and when training ends, so a bad state is
    never saved: the last good checkpoint stays the latest. (Looking on every step would
    copy the logs to the host on every step; a NaN, once there, stays.)
    """

    def __init__(self, step_fn, every: int = 1):
        super().__init__()
        self.step_fn = step_fn
        self.every = every
        self.message = None
        self._last_logs = None

    def _check(self, logs):
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

    def on_train_batch_end(self, batch, logs=None):
        self._last_logs = logs
        if int(self.step_fn()) % self.every == 0:
            self._check(logs)

    def on_train_end(self, logs=None):
        if self.message is None:
            self._check(self._last_logs)


def fit_to_total_steps(model: keras.Model, make_dataset, handle: checkpoints.CheckpointHandle,
                       step_fn, restored: Optional[str], *, total_steps: int,
                       steps_per_epoch: int, checkpoint_every: int, log_dir: str,
                       verbose: int = 1, before_save=None, after_checkpoint=(),
                       max_seconds: float = 0.0, progress=None) -> Dict[str, float]:
    """Runs `model.fit()` from the restored step to `total_steps`: the loop of every run.

    Callbacks, in order: the host step counter, the NaN guard (before the checkpoint, so
    a bad state is never saved), the progress lines (when `verbose`; Keras' own display
    is off), periodic checkpoints (calling `before_save` before each
    save), the stop at `total_steps`, the run's clock (`RunClock`: its record at every save,
    and with `max_seconds` > 0 the stop after that much time in training steps, all
    sittings together, and the `progress` the schedules read), `after_checkpoint`,
    TensorBoard.

    Args:
        model: a compiled Keras model with a custom train_step.
        make_dataset: start_step -> the training stream from that step on.
        handle: the run's checkpoints; step_fn: reads the global step variable.
        restored: the restored checkpoint path (for the log line), or None.

    Returns:
        The last logged values ({} when the run was already complete or its time budget
        spent).

    Raises:
        FloatingPointError: a loss term became NaN or infinite (message names it).
    """
    start_step = step_fn()
    print(f"{'Resuming from ' + restored if restored else 'Starting'} at step "
          f"{start_step} of {total_steps}.", flush=True)
    if start_step >= total_steps:
        return {}
    step = HostStep(step_fn)
    clock = RunClock(read_clock(handle.read_directory).get(str(start_step), 0.0),
                     max_seconds, progress)
    if max_seconds > 0:
        print(f"Time budget: {clock.offset:.0f} of {max_seconds:.0f} s spent.", flush=True)
        if clock.offset >= max_seconds:
            return {}

    def save_hook():
        if before_save is not None:
            before_save()
        clock.record(handle.directory, step())

    guard = NonFiniteGuard(step, every=checkpoint_every)
    # One plain progress line per `steps_per_epoch` steps instead of Keras' bars.
    left = clock.seconds_left if max_seconds > 0 else None
    progress = [ProgressLog(step, total_steps, steps_per_epoch, seconds_left=left)
                ] if verbose else []
    callbacks = [step, guard, *progress,
                 PeriodicCheckpoint(handle, step, checkpoint_every, save_hook),
                 StopAtStep(step, total_steps), clock,
                 *after_checkpoint,
                 keras.callbacks.TensorBoard(log_dir, update_freq=steps_per_epoch)]
    # Keras counts epochs; a resumed run starts mid-epoch and StopAtStep ends it exactly.
    result = model.fit(make_dataset(start_step),
                       epochs=math.ceil(total_steps / steps_per_epoch),
                       steps_per_epoch=steps_per_epoch,
                       initial_epoch=start_step // steps_per_epoch,
                       callbacks=callbacks, verbose=0)
    if guard.message:
        raise FloatingPointError(guard.message)
    return {k: float(v[-1]) for k, v in result.history.items()}
