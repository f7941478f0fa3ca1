r"""Trains a text-to-image GAN.

  python -m tf_t2i.train --flagfile=configs/shapes_ssagan.cfg \
      --damsm_dir=runs/damsm --model_dir=runs/ssagan

Rerunning with the same --model_dir resumes from the last checkpoint; --train_steps
extends or shortens the run. --dry_run prints the resolved config and the parameter
count of every model, and exits.
"""

import os

from absl import app
from absl import flags

from tf_t2i import console
from tf_t2i import flags as t2i_flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("eval_every", 0, "Run tf_t2i.evaluate's metrics every N steps during "
                     "training (TensorBoard logs/eval and metrics.jsonl); 0 = never.")
flags.DEFINE_list("eval_metrics", ["r_precision"], "Metrics of the in-training evaluation.")
flags.DEFINE_integer("eval_num_images", 1000, "Images per in-training evaluation.")
DRY_RUN_VOCAB_SIZE = 5450 + 2  # CUB's DAMSM vocabulary, + padding and OOV ids


def main(argv):
    cfg = t2i_flags.resolve_config(
        argv, ("gan",), **({"damsm_dir": "(none: --dry_run)"} if FLAGS.dry_run else {}))
    # The directories it names, from their files, before TensorFlow's seconds of start-up.
    from tf_t2i.training import resume  # pylint: disable=g-import-not-at-top
    from tf_t2i.training import run_dirs  # pylint: disable=g-import-not-at-top
    if cfg.loss.recap_weight > 0:
        t2i_flags.run_or_fail(run_dirs.check_captioner_dir, (), cfg.runtime.captioner_dir)
    if cfg.runtime.damsm_dir or not FLAGS.dry_run:
        cfg = t2i_flags.run_or_fail(run_dirs.adopt_damsm_config, (run_dirs.DAMSMRunError,), cfg)
    model_dir = None
    if not FLAGS.dry_run:
        model_dir = t2i_flags.require_model_dir()
        # Again inside run_training, on the precision `auto` resolves to.
        t2i_flags.run_or_fail(resume.check_can_continue, (), model_dir, cfg)
    console.import_tensorflow_quietly()  # TF start-up lines held back
    # Heavy imports only once the flags are known to be valid.
    from tf_t2i.data import raw_files  # pylint: disable=g-import-not-at-top
    from tf_t2i.data import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
    from tf_t2i.io import checkpoints  # pylint: disable=g-import-not-at-top
    from tf_t2i.training import runtime  # pylint: disable=g-import-not-at-top
    from tf_t2i.training import train_lib  # pylint: disable=g-import-not-at-top
    # First thing that touches devices: logical CPU replicas can only be made before.
    strategy = None if FLAGS.dry_run else runtime.make_strategy(cfg.runtime)
    input_errors = (tokenizer_lib.EmptyCaptionError, run_dirs.DAMSMRunError,
                    checkpoints.CheckpointMismatchError, *raw_files.INPUT_ERRORS)
    vocab_size = None
    if cfg.runtime.damsm_dir:
        vocab_size = tokenizer_lib.CaptionTokenizer.load(cfg.runtime.damsm_dir).vocab_size
    print(t2i_flags.describe_config(
        cfg, "Training a text-to-image GAN", full=FLAGS.dry_run,
        where=os.path.join(FLAGS.model_dir or "<model_dir>", "config.json")), flush=True)
    if FLAGS.dry_run:
        if vocab_size is None:
            vocab_size = DRY_RUN_VOCAB_SIZE
            print(f"(no --damsm_dir: the text encoder is counted with a vocabulary of "
                  f"{vocab_size:,}, CUB's)")
        counts = t2i_flags.run_or_fail(train_lib.describe, input_errors, cfg, vocab_size)
        for name, count in counts.items():
            print(f"  {name}: {count:,} parameters")
        return
    extra_callbacks = []
    # Only the chief of a multi-worker run writes the run's evaluations.
    if FLAGS.eval_every > 0 and runtime.worker_role(strategy).is_chief:
        from tf_t2i.eval import callback as eval_callback  # pylint: disable=g-import-not-at-top
        from tf_t2i.eval import context as eval_context  # pylint: disable=g-import-not-at-top
        extra_callbacks.append(eval_callback.EvaluationCallback(
            model_dir, every=FLAGS.eval_every,
            options=eval_context.EvalOptions(metrics=tuple(FLAGS.eval_metrics),
                                             num_images=FLAGS.eval_num_images)))
    try:
        t2i_flags.run_or_fail(train_lib.run_training, input_errors, cfg, model_dir,
                              strategy=strategy, extra_callbacks=extra_callbacks)
    except runtime.WorkerLostError as e:
        t2i_flags.fail(str(e), status=1)


if __name__ == "__main__":
    t2i_flags.define_flags()
    app.run(main, flags_parser=t2i_flags.parse_flags_or_fail)
