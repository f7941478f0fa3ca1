r"""Trains a text-to-image GAN.

  python -m tf_t2i.train --flagfile=configs/shapes_ssagan.cfg \
      --damsm_dir=runs/damsm --model_dir=runs/ssagan

Rerunning with the same --model_dir resumes from the last checkpoint; --train_steps
extends or shortens the run. --dry_run prints the resolved config and the parameter
count of every model, and exits.
"""

from absl import app
from absl import flags

from tf_t2i import flags as t2i_flags

FLAGS = flags.FLAGS
DRY_RUN_VOCAB_SIZE = 5450 + 2  # CUB's DAMSM vocabulary, + padding and OOV ids


def main(argv):
    cfg = t2i_flags.resolve_config(
        argv, "gan", **({"damsm_dir": "(none: --dry_run)"} if FLAGS.dry_run else {}))
    # Heavy imports only once the flags are known to be valid.
    from tf_t2i.data import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
    from tf_t2i.training import train_lib  # pylint: disable=g-import-not-at-top
    input_errors = (tokenizer_lib.EmptyCaptionError, train_lib.DAMSMRunError)
    vocab_size = None
    if cfg.runtime.damsm_dir or not FLAGS.dry_run:
        cfg = t2i_flags.run_or_fail(train_lib.adopt_damsm_config, input_errors, cfg)
        vocab_size = tokenizer_lib.CaptionTokenizer.load(cfg.runtime.damsm_dir).vocab_size
    print("Training a text-to-image GAN with config:\n" + cfg.to_json(), flush=True)
    if FLAGS.dry_run:
        if vocab_size is None:
            vocab_size = DRY_RUN_VOCAB_SIZE
            print(f"(no --damsm_dir: the text encoder is counted with a vocabulary of "
                  f"{vocab_size:,}, CUB's)")
        for name, count in train_lib.describe(cfg, vocab_size).items():
            print(f"  {name}: {count:,} parameters")
        return
    model_dir = t2i_flags.require_model_dir()
    t2i_flags.run_or_fail(train_lib.run_training, input_errors, cfg, model_dir)


if __name__ == "__main__":
    t2i_flags.define_flags()
    app.run(main, flags_parser=t2i_flags.parse_flags_or_fail)
