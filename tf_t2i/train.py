r"""Trains a text-to-image GAN.

  python -m tf_t2i.train --flagfile=configs/shapes_ssagan.cfg \
      --damsm_dir=runs/damsm --model_dir=runs/ssagan

Rerunning with the same --model_dir resumes from the last checkpoint; --train_steps
extends or shortens the run. --dry_run prints the resolved config and the parameter
count of every model, and exits.
"""

from absl import app
from absl import flags

from tf_t2i import config as config_lib
from tf_t2i import flags as t2i_flags

FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    t2i_flags.fail(f"Unexpected arguments: {argv[1:]}")
  try:
    cfg = t2i_flags.config_from_flags(validate=False).replace(train={"task": "gan"}).validate()
  except config_lib.ConfigError as e:
    t2i_flags.fail(str(e))
  # Heavy imports only once the flags are known to be valid.
  from tf_t2i.training import train_lib  # pylint: disable=g-import-not-at-top
  from tf_t2i.data import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
  try:
    cfg = train_lib.adopt_damsm_config(cfg)
  except train_lib.DAMSMRunError as e:
    t2i_flags.fail(str(e))
  print("Training a text-to-image GAN with config:\n" + cfg.to_json(), flush=True)
  if FLAGS.dry_run:
    vocab = tokenizer_lib.CaptionTokenizer.load(cfg.runtime.damsm_dir)
    for name, count in train_lib.describe(cfg, vocab.vocab_size).items():
      print(f"  {name}: {count:,} parameters")
    return
  model_dir = t2i_flags.require_model_dir()
  train_lib.run_training(cfg, model_dir)


if __name__ == "__main__":
  t2i_flags.define_flags()
  app.run(main)
