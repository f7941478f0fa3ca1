r"""Pretrains the DAMSM text and image encoders (+ the text contrastive loss), or the captioner.

  python -m tf_t2i.pretrain --flagfile=configs/shapes_damsm.cfg --model_dir=runs/damsm
  python -m tf_t2i.pretrain --flagfile=configs/shapes_captioner.cfg --damsm_dir=runs/damsm \
      --model_dir=runs/captioner

`--train_task` (damsm, the default, or captioner; the config files set it) says which.

Rerunning with the same --model_dir resumes from the last checkpoint. At the end the
real-image R-precision of the test split is printed and written to r_precision.json.
"""

import os

from absl import app
from absl import flags

from tf_t2i import console
from tf_t2i import flags as t2i_flags

FLAGS = flags.FLAGS


def main(argv):
    cfg = t2i_flags.resolve_config(argv, ("damsm", "captioner"))
    task = cfg.train.task
    what = "DAMSM encoders" if task == "damsm" else "the captioner"
    print(t2i_flags.describe_config(
        cfg, f"Pretraining {what}", full=FLAGS.dry_run,
        where=os.path.join(FLAGS.model_dir or "<model_dir>", "config.json")), flush=True)
    if task == "damsm" and not FLAGS.dry_run:
        # An existing run's settings, from its config.json, before TensorFlow's start-up
        # (again inside the run, on the precision `auto` resolves to). The captioner's
        # settings are only known with its DAMSM run's, read later.
        from tf_t2i.training import resume  # pylint: disable=g-import-not-at-top
        t2i_flags.run_or_fail(resume.check_can_continue, (), t2i_flags.require_model_dir(),
                              cfg)
    console.import_tensorflow_quietly()  # TF start-up lines held back
    # Heavy imports only once the flags are known to be valid.
    from tf_t2i.data import sources  # pylint: disable=g-import-not-at-top
    from tf_t2i.data import raw_files  # pylint: disable=g-import-not-at-top
    from tf_t2i.data import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
    from tf_t2i.training import captioner_lib  # pylint: disable=g-import-not-at-top
    from tf_t2i.io import checkpoints  # pylint: disable=g-import-not-at-top
    from tf_t2i.training import pretrain_lib  # pylint: disable=g-import-not-at-top
    from tf_t2i.training import runtime  # pylint: disable=g-import-not-at-top
    input_errors = (tokenizer_lib.EmptyCaptionError, checkpoints.CheckpointMismatchError,
                    *raw_files.INPUT_ERRORS)
    # First thing that touches devices: logical CPU replicas can only be made before.
    strategy = None if FLAGS.dry_run else runtime.make_strategy(cfg.runtime)
    if task == "captioner":
        if FLAGS.dry_run:
            vocab = t2i_flags.run_or_fail(tokenizer_lib.CaptionTokenizer.load, input_errors,
                                          cfg.runtime.damsm_dir)
            captioner = captioner_lib.build_captioner(cfg, vocab.vocab_size)
            print(f"  captioner: {sum(int(w.numpy().size) for w in captioner.trainable_weights):,}"
                  " trainable parameters")
            return
        model_dir = t2i_flags.require_model_dir()
        try:
            t2i_flags.run_or_fail(captioner_lib.run_captioner_pretraining, input_errors, cfg,
                                  model_dir, strategy=strategy)
        except runtime.WorkerLostError as e:
            t2i_flags.fail(str(e), status=1)
        return
    if FLAGS.dry_run:
        source = t2i_flags.run_or_fail(sources.load_source, input_errors, cfg.data, "train")
        vocab = pretrain_lib.new_tokenizer(cfg, source)
        for name, count in pretrain_lib.describe(cfg, vocab.vocab_size).items():
            print(f"  {name}: {count:,} trainable parameters")
        return
    model_dir = t2i_flags.require_model_dir()
    try:
        t2i_flags.run_or_fail(pretrain_lib.run_pretraining, input_errors, cfg, model_dir,
                              strategy=strategy)
    except runtime.WorkerLostError as e:
        t2i_flags.fail(str(e), status=1)


if __name__ == "__main__":
    t2i_flags.define_flags()
    app.run(main, flags_parser=t2i_flags.parse_flags_or_fail)
