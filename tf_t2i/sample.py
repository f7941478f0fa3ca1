r"""Writes a grid of generated images for the given captions.

  python -m tf_t2i.sample --model_dir=runs/ssagan \
      --caption="a small red circle on the left" --caption="a blue square" \
      --num_samples=8 --output=grid.png
"""

from absl import app
from absl import flags

from tf_t2i import flags as t2i_flags

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("caption", None, "A caption (repeat the flag for several rows).")
flags.DEFINE_integer("num_samples", 8, "Images per caption.")
flags.DEFINE_string("output", "samples.png", "PNG file to write.")
flags.DEFINE_integer("seed", 0, "Noise seed.")
flags.DEFINE_boolean("use_ema", True, "Sample from the EMA generator (when the run has one).")


def main(argv):
    if len(argv) > 1:
        t2i_flags.fail(f"Unexpected arguments: {argv[1:]}")
    captions = FLAGS.caption or []
    if not captions:
        t2i_flags.fail("Give at least one --caption.")
    from tf_t2i.data import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
    for c in captions:
        if not tokenizer_lib.split_words(c):
            t2i_flags.fail(f"Empty caption {c!r}: a caption needs at least one word.")
    if FLAGS.num_samples < 1:
        t2i_flags.fail(f"--num_samples must be >= 1, got {FLAGS.num_samples}.")
    model_dir = t2i_flags.require_model_dir(must_exist=True)
    print(f"Sampling {FLAGS.num_samples} images for each of {len(captions)} caption(s) from "
          f"{model_dir} -> {FLAGS.output}", flush=True)
    if FLAGS.dry_run:
        return
    from tf_t2i.training import callbacks  # pylint: disable=g-import-not-at-top
    from tf_t2i.models import trained_run  # pylint: disable=g-import-not-at-top
    try:
        run = trained_run.load_run(model_dir)
    except (FileNotFoundError, ValueError) as e:
        t2i_flags.fail(str(e))
    cfg, tok = run.cfg, run.tokenizer
    unknown = sorted({w for c in captions for w in tokenizer_lib.split_words(c)}
                     - set(tok.vocabulary))
    if unknown:
        print(f"warning: words not in the training vocabulary (read as [UNK]): {unknown}")
    use_ema = FLAGS.use_ema and run.ema_generator is not None
    images = callbacks.generate_grid(run, tok, captions, FLAGS.num_samples,
                                     cfg.generator.z_dim, seed=FLAGS.seed, use_ema=use_ema)
    grid = callbacks.render_grid(images, captions, FLAGS.num_samples)
    print(f"Wrote {callbacks.save_png_atomic(grid, FLAGS.output)} "
          f"({'EMA' if use_ema else 'raw'} generator)")


if __name__ == "__main__":
    t2i_flags.define_flags()
    app.run(main, flags_parser=t2i_flags.parse_flags_or_fail)
