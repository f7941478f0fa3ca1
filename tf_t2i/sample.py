r"""Writes a grid of generated images for the given captions.

  python -m tf_t2i.sample --model_dir=runs/ssagan \
      --caption="a small red circle on the left" --caption="a blue square" \
      --num_samples=8 --output=grid.png

Image j of every row is drawn with noise seed --seed + j, as `tf_t2i.TextToImage`
and the exported model draw it: the grid shows what the server returns for those
(caption, seed) pairs.

  python -m tf_t2i.sample --model_dir=runs/ssagan --with_maps \
      --caption="a large red circle in the center" --output=maps.png

`--with_maps` writes a sheet instead: one row per caption and seed (--num_samples rows
per caption, 1 unless given) with the image and the generator's maps over it, as the
export's `generate_with_maps` returns them: SSA-GAN's predicted mask per generator
block, or the AttnGAN family's attention per later stage on each word of the caption.
"""

from absl import app
from absl import flags

from tf_t2i import console
from tf_t2i import flags as t2i_flags

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("caption", None, "A caption (repeat the flag for several rows).")
flags.DEFINE_integer("num_samples", 8, "Images per caption.")
flags.DEFINE_string("output", "samples.png", "PNG file to write.")
flags.DEFINE_integer("seed", 0, "Noise seed of the first column (column j: seed + j).")
flags.DEFINE_boolean("use_ema", True, "Sample from the EMA generator (--nouse_ema: the raw "
                     "generator).")
flags.DEFINE_float("truncation_psi", None, "Style generators: truncation toward the average "
                   "style for this grid (1: none); default: the run's config.")
flags.DEFINE_boolean("with_maps", False, "Write a sheet of each image with the generator's "
                     "maps (SSA-GAN: masks per block; AttnGAN family: word attention per "
                     "stage) instead of a grid; --num_samples rows per caption (default 1).")


def main(argv):
    if len(argv) > 1:
        t2i_flags.fail(f"Unexpected arguments: {argv[1:]}")
    captions = FLAGS.caption or []
    if not captions:
        t2i_flags.fail("Give at least one --caption.")
    from tf_t2i import api  # pylint: disable=g-import-not-at-top
    try:  # the checks need no TensorFlow: a bad flag costs no TF start-up
        api.check_captions(captions)
    except ValueError as e:
        t2i_flags.fail(str(e))
    # A map sheet has a row per image: one per caption unless asked for more.
    num_samples = FLAGS.num_samples
    if FLAGS.with_maps and not FLAGS["num_samples"].present:
        num_samples = 1
    if num_samples < 1:
        t2i_flags.fail(f"--num_samples must be >= 1, got {num_samples}.")
    try:
        if FLAGS.with_maps:
            api.check_map_sheet_size(len(captions), num_samples)
        else:
            api.check_grid_size(len(captions), num_samples)
    except ValueError as e:
        t2i_flags.fail(f"--num_samples={num_samples}: {e}")
    psi = FLAGS.truncation_psi
    if psi is not None and not 0.0 <= psi <= 1.0:
        t2i_flags.fail(f"--truncation_psi must be in [0, 1], got {psi}.")
    model_dir = t2i_flags.require_model_dir(must_exist=True)
    t2i_flags.require_gan_run(model_dir)
    maps = " with their maps" if FLAGS.with_maps else ""
    print(f"Sampling {num_samples} image(s){maps} for each of {len(captions)} caption(s) "
          f"from {model_dir} -> {FLAGS.output}", flush=True)
    if FLAGS.dry_run:
        return
    console.import_tensorflow_quietly()  # TF start-up lines held back
    from tf_t2i.io import checkpoints  # pylint: disable=g-import-not-at-top
    try:
        model = api.TextToImage.from_run(model_dir, use_ema=FLAGS.use_ema)
        unknown = model.unknown_words(captions)
        if unknown:
            print(f"warning: words not in the training vocabulary (read as [UNK]): {unknown}")
        for caption in model.too_long(captions):
            print(f"warning: {caption!r} has more than {model.max_words} words; the model "
                  f"reads the first {model.max_words}.")
        if FLAGS.with_maps:
            path = model.save_map_sheet(captions, FLAGS.output, samples_per_caption=num_samples,
                                        seed=FLAGS.seed, truncation_psi=psi)
        else:
            path = model.save_grid(captions, FLAGS.output, samples_per_caption=num_samples,
                                   seed=FLAGS.seed, truncation_psi=psi)
    except (FileNotFoundError, ValueError, checkpoints.CheckpointMismatchError) as e:
        t2i_flags.fail(str(e))
    print(f"Wrote {path} ({'EMA' if FLAGS.use_ema else 'raw'} generator"
          f"{f', truncation {psi:g}' if psi is not None else ''})")


if __name__ == "__main__":
    t2i_flags.define_flags(with_config=False)
    app.run(main, flags_parser=t2i_flags.parse_flags_or_fail)
