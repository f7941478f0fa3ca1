r"""Requests images from a served model (tf_t2i.serve or TF Serving) and writes a PNG.

  python -m tf_t2i.client --server=localhost:8500 --model=t2i \
      --caption="a small red circle on the left" --seed=7 --output=out.png
  python -m tf_t2i.client --server=localhost:8501 --rest --caption="a blue square" \
      --caption="a green star" --output=row.png

One image per --caption (repeat the flag), side by side when several; --num_samples
asks for several per caption, with seeds seed, seed + 1, ... (the same for every
caption). Without --seed the server derives each seed from its caption (signature
generate_unseeded), so a caption always gives the same image.
"""

import sys

# The client needs TensorFlow only for tf.make_ndarray: keep Keras (which
# `import tensorflow` would pull in) out, it only slows the start.
for _name in ("keras", "tf_keras"):
    if _name not in sys.modules:
        sys.modules[_name] = None

import io  # pylint: disable=g-import-not-at-top,wrong-import-position
import os  # pylint: disable=g-import-not-at-top,wrong-import-position

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from tf_t2i import console  # pylint: disable=g-import-not-at-top,wrong-import-position
from tf_t2i import flags as t2i_flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from tf_t2i.data import words  # pylint: disable=g-import-not-at-top,wrong-import-position
from tf_t2i.io import files  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1
flags.DEFINE_string("server", "localhost:8500", "host:port of the gRPC (or, with --rest, "
                    "REST) endpoint.")
flags.DEFINE_string("model", "t2i", "Model name.")
flags.DEFINE_integer("model_version", None, "A specific version (default: the latest).")
flags.DEFINE_string("version_label", None, "Or a version label, e.g. stable.")
flags.DEFINE_multi_string("caption", None, "A caption (repeat the flag for several images).")
flags.DEFINE_integer("seed", None, "Noise seed: sample j of every caption uses seed + j, so "
                     "captions share their noise (default: the server derives a seed from "
                     "each caption).")
flags.DEFINE_integer("num_samples", 1, "Images per caption.", lower_bound=1)
flags.DEFINE_string("output", "out.png", "PNG file to write.")
flags.DEFINE_boolean("rest", False, "Use TF Serving's REST API instead of gRPC.")
flags.DEFINE_float("timeout", 60.0, "Seconds allowed for each request.")
flags.DEFINE_float("wait_for_server", 0.0, "Seconds to wait for the model to become "
                   "available before requesting (0: do not wait).")


def _tile(pngs):
    """Decoded PNGs side by side, one PNG out (the images share a size)."""
    from PIL import Image  # pylint: disable=g-import-not-at-top
    images = [Image.open(io.BytesIO(p)).convert("RGB") for p in pngs]
    if len(images) == 1:
        return images[0]
    w, h = images[0].size
    strip = Image.new("RGB", (w * len(images) + 2 * (len(images) - 1), h), "white")
    for i, image in enumerate(images):
        strip.paste(image, (i * (w + 2), 0))
    return strip


def main(argv):
    if len(argv) > 1:
        t2i_flags.fail(f"Unexpected arguments: {argv[1:]}")
    captions = FLAGS.caption or []
    if not captions:
        t2i_flags.fail("Give at least one --caption.")
    try:
        words.check_captions(captions)
    except words.EmptyCaptionError as e:
        t2i_flags.fail(str(e))
    if FLAGS.model_version is not None and FLAGS.version_label:
        t2i_flags.fail("Give --model_version or --version_label, not both.")
    parent = os.path.dirname(os.path.abspath(FLAGS.output))
    if not os.path.isdir(parent):
        t2i_flags.fail(f"The directory of --output does not exist: {parent}")
    captions = [c for c in captions for _ in range(FLAGS.num_samples)]
    seeds = None
    if FLAGS.seed is not None:
        if not INT64_MIN <= FLAGS.seed <= INT64_MAX - FLAGS.num_samples + 1:
            t2i_flags.fail(f"--seed={FLAGS.seed} is outside the seeds' int64 range (with "
                           f"--num_samples={FLAGS.num_samples}, at most "
                           f"{INT64_MAX - FLAGS.num_samples + 1}).")
        seeds = [FLAGS.seed + i % FLAGS.num_samples for i in range(len(captions))]
    print(f"Requesting {len(captions)} image(s) from {FLAGS.model!r} at {FLAGS.server} "
          f"({'REST' if FLAGS.rest else 'gRPC'}) -> {FLAGS.output}", flush=True)
    if FLAGS.dry_run:
        return
    console.import_tensorflow_quietly()  # TF start-up lines held back
    from tf_t2i.serving import client as client_lib  # pylint: disable=g-import-not-at-top
    client = client_lib.make_client(FLAGS.server, FLAGS.model, rest=FLAGS.rest,
                                    version=FLAGS.model_version,
                                    version_label=FLAGS.version_label,
                                    timeout_s=FLAGS.timeout)
    with client:
        try:
            if FLAGS.wait_for_server > 0:
                client.wait_until_available(FLAGS.wait_for_server)
            pngs = client.generate_png(captions, seeds)
        except (client_lib.ServingError, TimeoutError, OSError) as e:
            t2i_flags.fail(str(e), status=1)
    image = _tile(pngs)
    with files.atomic_path(FLAGS.output) as tmp:
        image.save(tmp, format="PNG")
    print(f"Wrote {FLAGS.output} ({len(pngs)} image(s), {image.size[0]}x{image.size[1]})")


if __name__ == "__main__":
    t2i_flags.define_flags(with_config=False, with_model_dir=False)
    app.run(main, flags_parser=t2i_flags.parse_flags_or_fail)
