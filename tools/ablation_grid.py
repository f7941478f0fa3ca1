"""One picture of several runs drawing the same captions with the same seeds.

  python tools/ablation_grid.py --run=baseline=runs/shapes_ablation/shapes_ssagan_seed0 \
      --run=+F2F=runs/shapes_ablation/shapes_ssagan_cl_f2f_seed0 \
      --output=docs/shapes_ablation_samples.png [--caption=... --seeds=0,1]

A row per run (its EMA generator), a column per (caption, seed): since an image depends
only on its caption and seed, the columns differ between rows only by what the runs
learned. Captions are printed above their columns.
"""

import argparse
import os
import sys
import textwrap

from PIL import Image, ImageDraw, ImageFont

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

DEFAULT_CAPTIONS = (
    "a large red circle in the center",
    "a small blue square on the left",
    "a green triangle at the top",
    "a big yellow star on the right",
    "a purple cross at the bottom",
    "a white diamond and a small orange circle",
)
_PAD, _LABEL_WIDTH, _LINE = 4, 90, 11


def draw(rows, captions, seeds, image_size: int) -> Image.Image:
    """rows: [(label, uint8 [len(captions) * len(seeds), H, W, 3])], caption-major."""
    font = ImageFont.load_default()
    columns = len(captions) * len(seeds)
    wrapped = [textwrap.wrap(c, width=max(8, (image_size * len(seeds)) // 6)) for c in captions]
    header = _PAD + _LINE * max(len(w) for w in wrapped) + _PAD
    width = _LABEL_WIDTH + columns * (image_size + _PAD) + _PAD
    height = header + len(rows) * (image_size + _PAD) + _PAD
    canvas = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(canvas)
    for i, lines in enumerate(wrapped):
        x = _LABEL_WIDTH + i * len(seeds) * (image_size + _PAD)
        for j, line in enumerate(lines):
            pen.text((x, _PAD + j * _LINE), line, fill="black", font=font)
    for r, (label, images) in enumerate(rows):
        y = header + r * (image_size + _PAD)
        for j, line in enumerate(textwrap.wrap(label, width=14)):
            pen.text((_PAD, y + j * _LINE), line, fill="black", font=font)
        for c in range(columns):
            canvas.paste(Image.fromarray(images[c]), (_LABEL_WIDTH + c * (image_size + _PAD), y))
    return canvas


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True,
                        help="LABEL=MODEL_DIR (repeat; one row each)")
    parser.add_argument("--caption", action="append", help="captions (default: six)")
    parser.add_argument("--seeds", default="0,1", help="noise seeds, comma-separated")
    parser.add_argument("--output", default=os.path.join(ROOT, "docs",
                                                         "shapes_ablation_samples.png"))
    args = parser.parse_args()
    import tf_t2i  # pylint: disable=g-import-not-at-top
    captions = args.caption or list(DEFAULT_CAPTIONS)
    seeds = [int(s) for s in args.seeds.split(",")]
    batch = [c for c in captions for _ in seeds]
    batch_seeds = [s for _ in captions for s in seeds]
    rows, size = [], None
    for spec in args.run:
        label, _, model_dir = spec.rpartition("=")
        model = tf_t2i.TextToImage.from_run(model_dir)
        size = model.image_size
        rows.append((label or os.path.basename(model_dir), model.generate(batch, batch_seeds)))
    draw(rows, captions, seeds, size).save(args.output)
    print(f"Wrote {args.output} ({len(rows)} runs x {len(batch)} images)")


if __name__ == "__main__":
    main()
