"""A PNG sheet of what `generate_with_maps` returns: per image, where the generator drew.

One row per (caption, seed): the caption, the image, then each of its maps as a heatmap
(inferno colours, 0 black to 1 pale yellow) blended over the image, labelled with the
map's label ("mask, block 3 (32x32)", "stage 2 (64x64): red"). Word-attention maps of
padding positions (zero maps) are left out. Drawn with numpy and PIL.
"""

import textwrap
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tf_t2i.serving import signatures

# Inferno's colours at 0, 1/4, 1/2, 3/4 and 1 (matplotlib's table), linearly in between:
# dark to bright, and still ordered when printed in grey.
_INFERNO = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9],
                     [252, 255, 164]], np.float32)
# Weight of the heatmap over the image in a map's tile.
HEAT_WEIGHT = 0.6
# Tiles are scaled up (nearest neighbour) to at least this side, for the labels' sake.
MIN_TILE = 128
_PAD = 4
_TEXT_WIDTH = 180
_LINE_HEIGHT = 11
_LABEL_LINES = 2
LEGEND = ("Each row: the caption's image, then its maps over it (inferno: 0 dark, 1 bright). "
          "SSA-GAN: the predicted mask gating each generator block. AttnGAN family: each "
          "word's attention per stage, divided by its maximum.")


def heatmap(values: np.ndarray) -> np.ndarray:
    """float [..., ] in [0, 1] -> uint8 [..., 3] inferno colours."""
    position = np.clip(np.asarray(values, np.float32), 0.0, 1.0) * (len(_INFERNO) - 1)
    low = np.minimum(np.floor(position).astype(np.int64), len(_INFERNO) - 2)
    fraction = (position - low)[..., None]
    colours = _INFERNO[low] * (1.0 - fraction) + _INFERNO[low + 1] * fraction
    return np.round(colours).astype(np.uint8)


def overlay(image: np.ndarray, values: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] image and float [H, W] map -> uint8 [H, W, 3] blend."""
    blend = (1.0 - HEAT_WEIGHT) * image.astype(np.float32) + HEAT_WEIGHT * heatmap(values)
    return np.round(blend).astype(np.uint8)


def shown_maps(labels: Sequence[str]) -> Sequence[int]:
    """Indices of the maps a row shows: all but the padding positions' word attention."""
    suffix = f": {signatures.PADDING_LABEL}"
    return [m for m, label in enumerate(labels) if not label.endswith(suffix)]


def render_map_sheet(images: np.ndarray, maps: np.ndarray, labels: Sequence[Sequence[str]],
                     row_titles: Sequence[str]) -> Image.Image:
    """The sheet (see the module docstring).

    Args:
      images: uint8 [N, H, W, 3].
      maps: float [N, M, H, W] in [0, 1].
      labels: N rows of M labels.
      row_titles: N texts for the left column (e.g. the caption and its seed).

    Returns:
      An RGB PIL image.
    """
    n, h, w, _ = images.shape
    if maps.ndim != 4 or maps.shape[0] != n or maps.shape[2:] != (h, w):
        raise ValueError(f"maps {maps.shape} do not fit images {images.shape}.")
    if len(row_titles) != n or len(labels) != n:
        raise ValueError(f"{n} images, {len(labels)} label rows, {len(row_titles)} titles.")
    if any(len(row) != maps.shape[1] for row in labels):
        raise ValueError(f"Every row needs {maps.shape[1]} labels, one per map.")
    scale = max(1, -(-MIN_TILE // max(h, w)))
    tile_h, tile_w = h * scale, w * scale
    label_h = _LABEL_LINES * _LINE_HEIGHT + _PAD
    row_h = tile_h + label_h + _PAD
    shown = [shown_maps(row) for row in labels]
    columns = 1 + max((len(s) for s in shown), default=0)
    font = ImageFont.load_default()
    chars = max(8, tile_w // 6)  # the default bitmap font is about 6 px a character
    legend = textwrap.wrap(LEGEND, width=max(40, (_TEXT_WIDTH + columns * tile_w) // 6))
    top = _PAD + len(legend) * _LINE_HEIGHT + _PAD
    sheet = Image.new("RGB", (_TEXT_WIDTH + columns * (tile_w + _PAD) + _PAD,
                              top + n * row_h), "white")
    draw = ImageDraw.Draw(sheet)
    draw.multiline_text((_PAD, _PAD), "\n".join(legend), fill="black", font=font, spacing=2)
    for r in range(n):
        y = top + r * row_h
        title = textwrap.wrap(row_titles[r], width=_TEXT_WIDTH // 6 - 1)[: tile_h // 12]
        draw.multiline_text((_PAD, y + 2), "\n".join(title), fill="black", font=font,
                            spacing=2)
        tiles = [(images[r], "image")] + [(overlay(images[r], maps[r, m]), labels[r][m])
                                          for m in shown[r]]
        for c, (tile, label) in enumerate(tiles):
            x = _TEXT_WIDTH + c * (tile_w + _PAD)
            sheet.paste(Image.fromarray(tile).resize((tile_w, tile_h), Image.NEAREST), (x, y))
            # "stage 2 (64x64): red": the map on one line, its word on the next.
            lines = [line for part in label.split(": ", 1)
                     for line in textwrap.wrap(part, width=chars)]
            draw.multiline_text((x, y + tile_h + 2), "\n".join(lines[:_LABEL_LINES]),
                                fill="black", font=font, spacing=2)
    return sheet
