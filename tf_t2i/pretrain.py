r"""Pretrains the DAMSM text and image encoders (+ the text contrastive loss).

  python -m tf_t2i.pretrain --flagfile=configs/shapes_damsm.cfg --model_dir=runs/damsm

Rerunning with the same --model_dir resumes from the last checkpoint. At the end the
real-image R-precision of the test split is printed and written to r_precision.json.
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
    cfg = t2i_flags.config_from_flags(validate=False).replace(train={"task": "damsm"}).validate()
  except config_lib.ConfigError as e:
    t2i_flags.fail(str(e))
  print("Pretraining DAMSM encoders with config:\n" + cfg.to_json(), flush=True)
  if FLAGS.dry_run:
    # Heavy imports only once the config is known to be valid.
    from tf_t2i.training import pretrain_lib  # pylint: disable=g-import-not-at-top
    from tf_t2i.data import sources  # pylint: disable=g-import-not-at-top
    from tf_t2i.data import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
    source = sources.load_source(cfg.data, "train")
    vocab = tokenizer_lib.CaptionTokenizer.build(source.all_captions(),
                                                 cfg.data.max_caption_length,
                                                 cfg.text.min_word_count)
    for name, count in pretrain_lib.describe(cfg, vocab.vocab_size).items():
      print(f"  {name}: {count:,} trainable parameters")
    return
  model_dir = t2i_flags.require_model_dir()
  from tf_t2i.training import pretrain_lib  # pylint: disable=g-import-not-at-top
  pretrain_lib.run_pretraining(cfg, model_dir)


if __name__ == "__main__":
  t2i_flags.define_flags()
  app.run(main)
