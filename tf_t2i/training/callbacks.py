"""Sample grids: rendering with captions, and the callback that logs them during training."""

import os
import textwrap
from typing import List, Sequence

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont

from tf_t2i import images as images_lib
from tf_t2i.io import files
from tf_t2i.models import interface
from tf_t2i.training import loop

DEFAULT_CAPTIONS = (
    "a large red circle in the center",
    "a small blue square on the left",
    "a green triangle at the top",
    "a big yellow star on the right",
    "a purple square at the bottom",
    "an orange circle on the left and a small blue triangle on the right",
)


def grid_captions(dataset: str, source, count: int = len(DEFAULT_CAPTIONS)) -> List[str]:
    """Captions for a run's sample grid: for shapes the curated `DEFAULT_CAPTIONS` (every
    attribute shown), else the first caption of `count` images spread over `source`."""
    if dataset == "shapes":
        return list(DEFAULT_CAPTIONS)
    picks = np.linspace(0, len(source) - 1, num=min(count, len(source))).round().astype(int)
    return [source.captions[i][0] for i in picks]


def render_grid(images: np.ndarray, captions: Sequence[str], samples_per_caption: int,
                scale: int = 2) -> Image.Image:
    """One row per caption: its caption on the left, then its samples.

    Args:
      images: uint8 [len(captions) * samples_per_caption, H, W, 3], caption-major.
      captions: the row captions.
      samples_per_caption: images per row.
      scale: nearest-neighbour upscaling of small images for legibility.
    """
    n, h, w, _ = images.shape
    if n != len(captions) * samples_per_caption:
        raise ValueError(f"{n} images for {len(captions)} captions x {samples_per_caption}.")
    h, w = h * scale, w * scale
    text_width, pad = 220, 4
    font = ImageFont.load_default()
    grid = Image.new("RGB", (text_width + samples_per_caption * (w + pad) + pad,
                             len(captions) * (h + pad) + pad), "white")
    draw = ImageDraw.Draw(grid)
    for r, caption in enumerate(captions):
        y = pad + r * (h + pad)
        lines = textwrap.wrap(caption, width=34)[: max(1, h // 12)]
        draw.multiline_text((pad, y + 2), "\n".join(lines), fill="black", font=font, spacing=2)
        for c in range(samples_per_caption):
            tile = Image.fromarray(images[r * samples_per_caption + c])
            tile = tile.resize((w, h), Image.NEAREST)
            grid.paste(tile, (text_width + pad + c * (w + pad), y))
    return grid


def save_png_atomic(image: Image.Image, path: str) -> str:
    with files.atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def generate_grid(gan, tokenizer, captions: Sequence[str], samples_per_caption: int,
                  z_dim: int, seed: int = 0, use_ema=None) -> np.ndarray:
    """uint8 samples, caption-major, with noise fixed by the seed."""
    generator = gan.sampling_generator(use_ema)
    ids = tokenizer.encode(np.repeat(np.asarray(captions, object), samples_per_caption))
    z = tf.random.stateless_normal([len(ids), z_dim], seed=[seed, 0])
    images = interface.generate_from_captions(generator, gan.text_encoder,
                                              tf.cast(ids, tf.int32), z)
    return images_lib.to_uint8(images).numpy()


class SampleGrid(keras.callbacks.Callback):
    """Every `every` steps, writes a grid of fixed captions x fixed noise to TensorBoard.

    At the end of training it also writes `<model_dir>/samples.png` with the captions.
    """

    def __init__(self, gan, tokenizer, model_dir: str, every: int, z_dim: int,
                 captions: Sequence[str] = DEFAULT_CAPTIONS, samples_per_caption: int = 6):
        super().__init__()
        self.gan = gan
        self.tokenizer = tokenizer
        self.model_dir = model_dir
        self.every = every
        self.z_dim = z_dim
        self.captions = list(captions)
        self.samples_per_caption = samples_per_caption
        self.writer = tf.summary.create_file_writer(os.path.join(model_dir, "logs", "samples"))
        # Counted on the host: no read of the step variable on every step.
        self.step = loop.HostStep(lambda: int(gan.step.numpy()))

    def _grid(self):
        return generate_grid(self.gan, self.tokenizer, self.captions, self.samples_per_caption,
                             self.z_dim)

    def on_train_begin(self, logs=None):
        self.step.on_train_begin()

    def on_train_batch_end(self, batch, logs=None):
        self.step.on_train_batch_end(batch)
        step = self.step()
        if step % self.every:
            return
        images = self._grid()
        with self.writer.as_default():
            tf.summary.image("samples", images[:: self.samples_per_caption] / 255.0, step=step,
                             max_outputs=len(self.captions))

    def on_train_end(self, logs=None):
        if getattr(self.gan, "nonfinite_loss", False):
            return
        grid = render_grid(self._grid(), self.captions, self.samples_per_caption)
        path = save_png_atomic(grid, os.path.join(self.model_dir, "samples.png"))
        print(f"Sample grid written to {path}", flush=True)
