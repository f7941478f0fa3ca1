"""Random shifts and zooms of generated images before a frozen encoder scores them.

A generator trained against a frozen encoder can satisfy it with patterns real images
never show, an adversarial example of that encoder. On shapes the DAMSM image encoder
reads the caption's shape in about half the fakes that the attribute classifier reads as
another shape (docs/shapes_quality.md, "Fifth round"). Scoring a randomly shifted and
zoomed copy of each fake, as CLIP-guided generation scores random crops of its image
(Frans et al. 2021, "CLIPDraw") and as DiffAugment moves what its discriminator sees
(Zhao et al. 2020), keeps the part of the signal that survives small moves (the drawn
outline) and averages away pixel-exact patterns.

The moves are differentiable (bilinear resampling), small enough that a named position
stays where it is, and drawn per example from stateless seeds, so an image's move does
not depend on the batch it is in or on the number of replicas.
"""

import tensorflow as tf


def shift_and_zoom(images: tf.Tensor, seeds: tf.Tensor, max_shift: float,
                   max_zoom: float, salt: int = 0) -> tf.Tensor:
    """Each image resampled from a randomly placed, randomly sized square window.

    Args:
      images: float [B, H, W, C] (H == W).
      seeds: int32 [B, 2], one stateless seed per image (`interface.noise_seeds_from`).
      max_shift: the window's centre moves up to this fraction of the side each way.
      max_zoom: the window's side is between (1 - max_zoom) and 1 times the image's, so
        the content grows by up to 1 / (1 - max_zoom).
      salt: another move from the same seeds (another image of the same example).

    Returns:
      The moved images, same shape and dtype. The border is mirrored where the window
      leaves the image (a uniform background stays uniform).
    """
    if not 0.0 <= max_shift < 0.5 or not 0.0 <= max_zoom < 1.0:
        raise ValueError(f"shift_and_zoom needs 0 <= max_shift < 0.5 and 0 <= max_zoom < 1, "
                         f"got {max_shift} and {max_zoom}.")
    if max_shift == 0.0 and max_zoom == 0.0:
        return images
    dtype = images.dtype
    x = tf.cast(images, tf.float32)
    size = int(x.shape[1])
    pad = max(1, int(-(-max_shift * size // 1)))  # ceil: room for the largest shift
    x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="SYMMETRIC")
    padded = size + 2 * pad
    # u in [0, 1)^3 per image: the window's side, then its centre's y and x shifts.
    u = tf.map_fn(lambda seed: tf.random.stateless_uniform(
        [3], tf.random.experimental.stateless_fold_in(seed, 2027 + salt)),
        seeds, fn_output_signature=tf.TensorSpec([3], tf.float32))
    # Pixel k's centre at coordinate k: the image spans [pad - 0.5, pad + size - 0.5].
    side = size * (1.0 - max_zoom * u[:, :1])                       # [B, 1] pixels
    centre = pad + (size - 1.0) / 2.0 + max_shift * size * (2.0 * u[:, 1:] - 1.0)  # y, x
    # Output pixel i samples the window at (i + 0.5) / size of its side; crop_and_resize
    # puts the box's first and last coordinate at output pixels 0 and size - 1, and maps
    # a normalised coordinate c to c * (padded - 1).
    first = centre - side / 2.0 + 0.5 * side / size
    last = centre - side / 2.0 + (size - 0.5) * side / size
    boxes = tf.concat([first, last], axis=1) / (padded - 1.0)       # y1, x1, y2, x2
    moved = tf.image.crop_and_resize(x, boxes, tf.range(tf.shape(x)[0]), [size, size])
    return tf.cast(moved, dtype)
