"""One runner for every training task: the scaffold a run needs, written once.

A `Task` says what is trained (models, input stream, evaluation); `run` does the rest,
in this order, for DAMSM pretraining, captioner pretraining and GAN training alike:

1. strategy, dtype policy, seed;
2. an existing run's settings checked against the config (`resume`), before anything
   is written; the task's preparation (vocabulary, settings adopted from an earlier run);
3. the training split and its caption bank;
4. inside the strategy scope: the task's models and optimizers, their checkpoint, the
   latest checkpoint restored (or the task's fresh-start initialisation); then the
   config written to `<model_dir>/config.json`;
5. `fit()` from the restored step to `train.steps` (`loop.fit_to_total_steps`);
6. the task's evaluation, written atomically to `<model_dir>/<results_filename>`.

As tensorflow/models' Task and trainer (official/core/base_task.py, train_lib.py).
"""

import os
import shutil
import time
from typing import Dict, NamedTuple, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_t2i import config as config_lib
from tf_t2i.data import pipeline
from tf_t2i.data import shapes_captions
from tf_t2i.data import sources
from tf_t2i.data import tokenizer as tokenizer_lib
from tf_t2i.io import checkpoints
from tf_t2i.io import files
from tf_t2i.training import loop
from tf_t2i.training import resume
from tf_t2i.training import runtime


class Built(NamedTuple):
    """What a task builds inside the strategy scope.

    Attributes:
      trainer: the compiled Keras model whose `fit()` trains the run.
      step: the variable counting the run's steps (an optimizer's `iterations`).
      checkpoint: the run's `checkpoints.CheckpointHandle`.
      parts: the task's own handle on its models (what `evaluate` and callbacks use).
    """
    trainer: keras.Model
    step: tf.Variable
    checkpoint: checkpoints.CheckpointHandle
    parts: object


class Task:
    """What one kind of run trains. Subclasses implement `prepare`, `build`, `evaluate`.

    Args:
      cfg: the run's config; `prepare` may return an updated one.
    """

    name = ""
    results_filename: Optional[str] = None
    # Whether the task's step reads the shapes hard negatives (`data.shapes_hard_negatives`)
    # as its batches' `mismatched_ids`.
    reads_hard_negatives = False

    def __init__(self, cfg: config_lib.ExperimentConfig):
        self.cfg = cfg

    def prepare(self, model_dir: str, train_source) -> tokenizer_lib.CaptionTokenizer:
        """Before anything is built: settles `self.cfg` and returns the vocabulary (saved
        in `model_dir`, so that sampling and resuming read the same token ids)."""
        raise NotImplementedError

    def build(self, vocab_size: int, model_dir: str) -> Built:
        """Models, optimizers and checkpoint (called inside the strategy scope)."""
        raise NotImplementedError

    def initialize(self, built: Built) -> None:
        """A fresh run's start (no checkpoint): e.g. load pretrained encoders."""

    def make_dataset(self, source, bank, start_step: int,
                     input_context: Optional[tf.distribute.InputContext] = None
                     ) -> tf.data.Dataset:
        """The training stream from `start_step` on (deterministic in the seed); under
        several replicas, the share of it that `input_context`'s pipeline feeds."""
        cfg = self.cfg
        return pipeline.make_train_dataset(
            source, bank, batch_size=cfg.train.batch_size, image_size=cfg.data.image_size,
            max_length=cfg.data.max_caption_length, seed=cfg.train.seed,
            start_step=start_step, input_context=input_context, **self.dataset_options(),
            **self.source_options(source), **self._repeat_options(source))

    def source_options(self, source) -> Dict:
        """More `make_train_dataset` arguments that depend on the training split."""
        return {}

    def _repeat_options(self, source) -> Dict:
        """`epoch_repeats` for `--data_shapes_two_object_repeats` (shapes, whose images
        carry their object count)."""
        repeats = self.cfg.data.shapes_two_object_repeats
        if repeats == 1:
            return {}
        two_objects = np.asarray(source.attributes["num_objects"]) >= 2
        return {"epoch_repeats": np.where(two_objects, repeats, 1)}

    def dataset_options(self) -> Dict:
        if self.reads_hard_negatives and self.cfg.data.shapes_hard_negatives:
            return {"hard_negative_fraction": self.cfg.data.shapes_hard_negatives}
        return {}

    def caption_bank(self, source, tokenizer) -> pipeline.CaptionBank:
        """The training captions as token ids, with their shape-swapped (or, for some
        two-object captions, shape-exchanged) hard negatives when the task reads them and
        the config asks for them."""
        if not (self.reads_hard_negatives and self.cfg.data.shapes_hard_negatives):
            return pipeline.CaptionBank(source, tokenizer)
        return pipeline.CaptionBank(source, tokenizer, hard_negatives=(
            shapes_captions.shape_swapped_captions(
                source.captions, self.cfg.train.seed,
                exchange=self.cfg.data.shapes_binding_negatives)))

    def callbacks(self, built: Built, tokenizer, model_dir: str) -> Sequence:
        """Callbacks run after each checkpoint (sample grids ...)."""
        return ()

    def before_save(self, built: Built) -> None:
        """Called before each checkpoint is written."""

    def evaluate(self, built: Built, tokenizer) -> Optional[Dict]:
        """The run's end-of-training results, or None."""
        return None


def adopt_vocabulary(damsm_dir: str, model_dir: str,
                     max_length: int) -> tokenizer_lib.CaptionTokenizer:
    """The DAMSM run's vocabulary, copied into `model_dir` (kept when already there), for
    runs whose captions must have the ids the DAMSM text encoder was trained with."""
    target = os.path.join(model_dir, tokenizer_lib.VOCAB_FILENAME)
    if not os.path.exists(target):
        shutil.copy(os.path.join(damsm_dir, tokenizer_lib.VOCAB_FILENAME), target)
    return tokenizer_lib.CaptionTokenizer.load(damsm_dir, max_length)


class RunResult(NamedTuple):
    history: Dict[str, float]   # the last logged values of fit() ({} if already done)
    results: Optional[Dict]     # the task's evaluation, or None
    built: Built


def run(task: Task, model_dir: str, strategy: Optional[tf.distribute.Strategy] = None,
        verbose: int = 1, extra_callbacks: Sequence = ()) -> RunResult:
    """Trains (or resumes) `task` to cfg.train.steps (or for cfg.train.max_seconds).

    In a multi-worker cluster every worker runs this with the same arguments; only the
    chief writes `model_dir` (and runs the task's callbacks and final evaluation). The
    other workers restore from the chief's checkpoints and write theirs, which every
    worker must take part in, to a scratch directory removed at the end.
    """
    strategy = strategy or runtime.make_strategy(task.cfg.runtime)
    role = runtime.worker_role(strategy)
    if role.is_chief:
        return _run(task, model_dir, model_dir, strategy, role, verbose, extra_callbacks)
    scratch = runtime.scratch_dir(role)
    try:
        return _run(task, model_dir, scratch, strategy, role, verbose, ())
    finally:
        runtime.remove_scratch_dir(scratch)


def _run(task: Task, model_dir: str, write_dir: str, strategy: tf.distribute.Strategy,
         role: runtime.WorkerRole, verbose: int, extra_callbacks: Sequence) -> RunResult:
    # `auto` precision becomes this machine's policy, as the run's config.json records it.
    cfg = task.cfg = runtime.resolved(task.cfg)
    # Before anything is written: an existing run is only continued with settings its
    # checkpoints fit (see resume.py).
    changes = resume.check_can_continue(model_dir, cfg)
    if changes:
        runtime.log_info(f"Continuing {model_dir} with changed settings: {'; '.join(changes)}.")
    replicas = strategy.num_replicas_in_sync
    if cfg.train.batch_size % replicas:
        raise config_lib.ConfigError(
            f"--train_batch_size={cfg.train.batch_size} does not divide among the {replicas} "
            f"replicas (each takes an equal share): use a multiple of {replicas}.")
    if role.count > 1 and cfg.train.max_seconds > 0:
        # Each worker's clock would stop it at its own step, leaving the others waiting.
        raise config_lib.ConfigError(
            "--train_max_seconds cannot end a run of several workers (each would stop at "
            "its own step): use --train_steps, with --train_max_seconds=0 to lift a "
            "config's budget.")
    runtime.set_precision(cfg.runtime)
    keras.utils.set_random_seed(cfg.train.seed)
    started = time.time()
    train_source = sources.load_source(cfg.data, "train")
    os.makedirs(write_dir, exist_ok=True)
    if not role.is_chief:  # the vocabulary a resumed run already has
        vocab = os.path.join(model_dir, tokenizer_lib.VOCAB_FILENAME)
        if os.path.exists(vocab):
            shutil.copy(vocab, write_dir)
    tok = task.prepare(write_dir, train_source)
    cfg = task.cfg
    bank = task.caption_bank(train_source, tok)
    workers = f" on {role.count} workers (this is worker {role.index})" if role.count > 1 else ""
    runtime.log_info(f"Data: {len(train_source)} training images ({time.time() - started:.1f}s); "
                     f"{strategy.num_replicas_in_sync} replica(s){workers}.")

    with strategy.scope():
        built = task.build(tok.vocab_size, write_dir)
        if write_dir != model_dir:
            built.checkpoint.read_from(model_dir)
        restored = built.checkpoint.restore_or_initialize()
        if restored is None:
            task.initialize(built)
    # Only once the checkpoint fits: a failed restore leaves the run's config as it was.
    config_lib.save_config(cfg, write_dir)
    for name, count in built.parts.parameter_counts().items():
        runtime.log_info(f"  {name}: {count:,} parameters")

    step_fn = lambda: int(built.step.numpy())
    make_dataset = lambda start: runtime.distribute_input(
        strategy, lambda ctx: task.make_dataset(train_source, bank, start, ctx))
    # Sample grids and in-training evaluations only write outputs: the chief's job.
    outputs = [*task.callbacks(built, tok, model_dir), *extra_callbacks] if role.is_chief else []
    try:
        history = loop.fit_to_total_steps(
            built.trainer, make_dataset, built.checkpoint, step_fn, restored,
            total_steps=cfg.train.steps, steps_per_epoch=cfg.train.steps_per_epoch,
            checkpoint_every=cfg.train.checkpoint_every, max_seconds=cfg.train.max_seconds,
            progress=getattr(built.parts, "time_progress", None),
            log_dir=os.path.join(write_dir, "logs"), verbose=verbose,
            before_save=lambda: task.before_save(built), after_checkpoint=outputs)
    except (tf.errors.UnavailableError, tf.errors.AbortedError) as e:
        if role.count <= 1:
            raise
        # A lost peer aborts every collective: the job is restarted as a whole and resumes
        # from the chief's last checkpoint (Keras' BackupAndRestore semantics).
        cause = " ".join(str(e).split())[:160]
        raise runtime.WorkerLostError(
            f"A worker of this {role.count}-worker run stopped ({cause}); restart every "
            f"worker with the same command: the run resumes from its latest checkpoint in "
            f"{model_dir}/checkpoints.") from e
    train_seconds = time.time() - started
    runtime.log_info(f"Trained to step {step_fn()} in {train_seconds:.0f}s; outputs in "
                     f"{model_dir}")

    results = task.evaluate(built, tok) if role.is_chief else None
    if results is not None and task.results_filename:
        results.update({"split": "test", "step": step_fn(),
                        "train_seconds": round(train_seconds, 1)})
        path = files.atomic_write_json(os.path.join(model_dir, task.results_filename), results,
                                       indent=2)
        runtime.log_info(f"{task.name} results on the test split written to {path}.")
    return RunResult(history, results, built)
