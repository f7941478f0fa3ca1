"""Float images in [-1, 1] <-> uint8 pixels: the one conversion every boundary uses.

Models see NHWC float images in [-1, 1]; uint8 appears only where images enter
(datasets) or leave (exported signatures, PNG grids, FID statistics). Every such
place converts here, so a generated image exported by a server and the same image
written by the training callbacks or scored by the evaluation have the same pixels.

This module sits at the bottom of the package: it imports TensorFlow only.

Example:
    >>> to_uint8(tf.constant([-1.0, 0.0, 1.0])).numpy()
    array([  0, 128, 255], dtype=uint8)
    >>> from_uint8(tf.constant([0, 255], tf.uint8)).numpy()
    array([-1.,  1.], dtype=float32)
"""

import tensorflow as tf


def to_uint8(images) -> tf.Tensor:
    """[-1, 1] float images -> uint8 by round((x + 1) * 127.5), clipped to [0, 255].

    Rounds half to even (as numpy). Works eagerly and inside tf.function / exported
    signatures; numpy callers take `.numpy()` of the result.

    Args:
        images: float tensor or array of any shape, nominally in [-1, 1].

    Returns:
        uint8 tensor of the same shape.
    """
    scaled = tf.round((tf.cast(images, tf.float32) + 1.0) * 127.5)
    return tf.cast(tf.clip_by_value(scaled, 0.0, 255.0), tf.uint8)


def from_uint8(images) -> tf.Tensor:
    """Pixels in [0, 255] -> float32 in [-1, 1] by x / 127.5 - 1.

    Args:
        images: tensor or array of any shape with values in [0, 255]: uint8, or
            float after resizing.

    Returns:
        float32 tensor of the same shape.
    """
    return tf.cast(images, tf.float32) / 127.5 - 1.0
