"""Renders a grid of captioned-shapes samples, each with two of its captions.

Writes docs/shapes_samples.png by default:

  python tools/make_shapes_grid.py --image_size=128 --rows=4 --cols=4
"""

import argparse
import os
import textwrap

from PIL import Image, ImageDraw, ImageFont

from tf_t2i.data import shapes

_CAPTIONS_PER_TILE = 2
_LINE_HEIGHT = 12
_PAD = 6


def make_grid(image_size: int, rows: int, cols: int, seed: int, split: str,
              first: int) -> Image.Image:
    """Returns a PIL image with rows x cols samples and their captions.

    Args:
      image_size: side of each sample in pixels.
      rows: grid rows.
      cols: grid columns.
      seed: dataset seed.
      split: "train" or "test".
      first: position in the split of the first sample shown.
    """
    font = ImageFont.load_default()
    # The default bitmap font is about 6 px per character.
    chars_per_line = max(12, (image_size + 2 * _PAD) // 6 - 1)
    tiles = []
    indices = shapes.split_indices(split, first + rows * cols)[first:]
    for index in indices:
        example = shapes.generate_example(index, image_size=image_size, seed=seed)
        lines = []
        for caption in example.captions[:_CAPTIONS_PER_TILE]:
            lines += textwrap.wrap("- " + caption, chars_per_line)
        tiles.append((example.image, lines))
    text_height = max(len(lines) for _, lines in tiles) * _LINE_HEIGHT + _PAD
    tile_w, tile_h = image_size + 2 * _PAD, image_size + text_height + 2 * _PAD
    grid = Image.new("RGB", (cols * tile_w, rows * tile_h), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for k, (image, lines) in enumerate(tiles):
        x, y = (k % cols) * tile_w + _PAD, (k // cols) * tile_h + _PAD
        grid.paste(Image.fromarray(image), (x, y))
        for i, line in enumerate(lines):
            draw.text((x, y + image_size + 4 + i * _LINE_HEIGHT), line, fill=(0, 0, 0), font=font)
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--cols", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="train", choices=sorted(shapes.SPLIT_OFFSETS))
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--output", default=os.path.join("docs", "shapes_samples.png"))
    args = parser.parse_args()
    grid = make_grid(args.image_size, args.rows, args.cols, args.seed, args.split, args.first)
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    grid.save(args.output)
    print(f"Wrote {args.output} ({grid.width}x{grid.height}).")


if __name__ == "__main__":
    main()
