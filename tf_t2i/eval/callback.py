"""Evaluation during GAN training: a Keras callback and the clock it keeps.

`EvaluationCallback` runs `eval_lib.evaluate` every `every` steps and at the end of
training, appends the rows to `metrics.jsonl` with the training seconds so far
(`TrainingClock`, which stops while an evaluation runs) and writes them to TensorBoard.
"""

import os
import time
import types
from typing import Dict, List, Optional, Sequence

import keras
import tensorflow as tf

from tf_t2i import config as config_lib
from tf_t2i.data import tokenizer as tokenizer_lib
from tf_t2i.eval import context
from tf_t2i.eval import eval_lib


class TrainingClock:
    """Wall time of training without the evaluations: paused while one runs."""

    def __init__(self, offset: float = 0.0):
        self._started = time.time()
        self._paused_seconds = 0.0
        self._paused_at = None
        self.offset = offset

    def pause(self) -> float:
        """Pauses the clock; returns the training seconds so far."""
        self._paused_at = time.time()
        return self.offset + self._paused_at - self._started - self._paused_seconds

    def resume(self) -> None:
        self._paused_seconds += time.time() - self._paused_at
        self._paused_at = None


class EvaluationCallback(keras.callbacks.Callback):
    """Runs the evaluation every `every` steps of GAN training; logs to TensorBoard and JSONL.

    Built before the models exist: at its first evaluation it reads the run's config.json
    and vocabulary from `model_dir` (both written before training starts) and evaluates
    the `TextToImageGAN` it is attached to. Metrics that cannot run are skipped with a
    log line. For example, in a training binary:

        run_training(cfg, model_dir, extra_callbacks=[
            callback.EvaluationCallback(model_dir, every=1000,
                                        options=context.EvalOptions(num_images=2000))])

    Args:
      model_dir: the training run's directory (metrics.jsonl, logs/eval).
      every: steps between evaluations.
      options: what to evaluate; default `EvalOptions()` with all metrics of the dataset.
      ctx: an `EvalContext` to use instead of building one (tests).
      names: the metrics to run instead of preparing `options.metrics` (with `ctx`).
      log: where progress lines go.
    """

    def __init__(self, model_dir: str, every: int,
                 options: Optional[context.EvalOptions] = None,
                 ctx: Optional[context.EvalContext] = None,
                 names: Optional[Sequence[str]] = None, log=print):
        super().__init__()
        self.model_dir, self.every, self.log = model_dir, every, log
        self.options = options
        self.ctx = ctx
        self.names = list(names) if names is not None else None
        self.writer = tf.summary.create_file_writer(os.path.join(model_dir, "logs", "eval"))
        self._last = None
        self._clock = None

    def _context(self) -> context.EvalContext:
        if self.ctx is None:
            cfg = config_lib.load_config(self.model_dir)
            tok = tokenizer_lib.CaptionTokenizer.load(self.model_dir,
                                                      cfg.data.max_caption_length)
            gan = self.model
            # The live GAN seen as a trained run (models.trained_run.TrainedRun).
            parts = types.SimpleNamespace(sampling_generator=gan.sampling_generator,
                                          text_encoder=gan.text_encoder,
                                          image_encoder=gan.image_encoder,
                                          ema_generator=gan.ema_generator)
            options = self.options or context.EvalOptions(
                metrics=eval_lib.default_metrics(cfg.data.dataset))
            self.ctx = context.EvalContext(cfg, tok, parts, options, log=self.log)
        if self.names is None:
            self.names, skipped = eval_lib.available_metrics(
                self.ctx, self.ctx.options.metrics, required=False)
            for name, reason in skipped.items():
                self.log(f"Evaluation callback skips {name}: {reason}")
        return self.ctx

    def on_train_begin(self, logs=None):
        step = int(self.model.step.numpy())
        self._clock = TrainingClock(eval_lib.previous_train_seconds(self.model_dir, step))

    def evaluate(self, step: int) -> List[Dict]:
        # The clock stops before the context is built: the first evaluation prepares the
        # metrics (on a new machine the shapes attribute classifier trains for minutes),
        # which is not training time.
        clock = self._clock
        train_seconds = clock.pause() if clock is not None else None
        try:
            ctx = self._context()
            if not self.names:
                return []
            rows = eval_lib.evaluate(ctx, self.names, step=step, progress=False)
        finally:
            if clock is not None:
                clock.resume()
        for row in rows:
            if train_seconds is not None:
                row["train_seconds"] = round(train_seconds, 1)
        eval_lib.append_results(self.model_dir, rows)
        with self.writer.as_default():
            for row in rows:
                tf.summary.scalar(f"eval/{row['metric']}", row["value"], step=step)
        self.writer.flush()
        return rows

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.step.numpy())
        if step % self.every or step == self._last:
            return
        self._last = step
        self.evaluate(step)

    def on_train_end(self, logs=None):
        # The curve ends where the run stopped (a step count that `every` does not divide,
        # a time budget), with its training seconds; not after a non-finite loss.
        step = int(self.model.step.numpy())
        if step == self._last or getattr(self.model, "nonfinite_loss", False):
            return
        self._last = step
        self.evaluate(step)
