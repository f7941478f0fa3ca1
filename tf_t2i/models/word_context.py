"""Per-pixel word context: each pixel of a feature map attends over the caption's words.

An option of the SSA-GAN generator (`--gen_word_attention_max_size`), not part of the reference.
SSA-GAN conditions each block on the sentence embedding alone: its semantic-spatial batch
norms apply the same channel-wise affine at every pixel of a mask, so a caption naming two
objects ("a red square on the left and a small blue star at the top") asks one 256-d vector
to carry both objects' attributes and the image to sort out which goes where. Here every
pixel gets its own mix of word features, as AttnGAN's attention module computes a word
context per sub-region (Xu et al. 2018, Sec. 2.1, Eq. 2-3), and the batch norm's affine
adds a per-pixel term read from it (as SPADE's spatially varying affine, Park et al. 2019,
Sec. 3). The attention is scaled dot-product (Vaswani et al. 2017, Eq. 1) between a
projection of the pixel's features and projections of the words.

With `coords` the query also reads the pixel's (x, y) in [-1, 1] (CoordConv, Liu et al. 2018,
Sec. 4): a convolution's features carry where a pixel is only as far as the padding and the
first layer tell them, and a caption like "a yellow cross on the left and a purple triangle on
the right" asks each pixel to pick the words of the object placed at its side.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from tf_t2i.models import layers as t2i_layers


def coordinate_grid(height, width):
    """float32 [height, width, 2]: (x, y) of each pixel's centre, (2i + 1 - n) / n."""
    ys = (2.0 * np.arange(height) + 1.0 - height) / height
    xs = (2.0 * np.arange(width) + 1.0 - width) / width
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([grid_x, grid_y], axis=-1).astype(np.float32)


def _query_part(in_features, fan_in, units, dtype, name):
    """Dense without bias over `in_features` of a torch Linear's `fan_in` inputs."""
    # torch's bound 1/sqrt(fan_in) as VarianceScaling over in_features (see
    # layers.torch_kernel_initializer): sqrt(3 * scale / in_features).
    init = keras.initializers.VarianceScaling(scale=in_features / (3.0 * fan_in),
                                              mode="fan_in", distribution="uniform")
    return keras.layers.Dense(units, use_bias=False, kernel_initializer=init, dtype=dtype,
                              name=name)


@keras.saving.register_keras_serializable(package="tf_t2i")
class WordContext(keras.layers.Layer):
    """Scaled dot-product attention from pixels to words.

    `context(p) = sum_t softmax_t(q(x_p) . k(w_t) / sqrt(d)) v(w_t)`, the softmax over the
    real words only (`word_mask`); q, k, v are linear maps to d = `channels`. With `coords`,
    q reads [x_p, x, y], the pixel's centre in [-1, 1] appended.

    Shapes: x [B, H, W, C], words [B, T, D], word_mask bool [B, T] ->
    (context [B, H, W, channels] in x's dtype, attention float32 [B, H, W, T]).

    Args:
        in_channels: int, C.
        word_dim: int, D.
        channels: int, d, the width of queries, keys and context.
        coords: bool, the query also reads the pixel's coordinates.
        **kwargs: `keras.layers.Layer` arguments.

    Example:
    >>> layer = WordContext(in_channels=16, word_dim=32, channels=16)
    >>> context, attention = layer(tf.zeros([2, 4, 4, 16]), tf.zeros([2, 5, 32]),
    ...                            tf.ones([2, 5], tf.bool))
    """

    def __init__(self, in_channels, word_dim, channels, coords=False, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.word_dim = word_dim
        self.channels = channels
        self.coords = bool(coords)
        dtype = self.dtype_policy
        self.query = _query_part(in_channels, in_channels + 2 * self.coords, channels,
                                 dtype, "query")
        # q([x, c]) = Wx x + Wc c, both parts drawn as torch.nn.Linear(C + 2, d)'s columns.
        # Kept apart, the grid's term is [H, W, d] (no copy of x), and a SavedModel's
        # images match the eager call's to the bit (with a concat they did not).
        self.query_coords = None
        if self.coords:
            self.query_coords = _query_part(2, in_channels + 2, channels, dtype,
                                            "query_coords")
        self.key = t2i_layers.torch_dense(word_dim, channels, use_bias=False,
                                          dtype=dtype, name="key")
        self.value = t2i_layers.torch_dense(word_dim, channels, dtype=dtype, name="value")

    def build(self, input_shape=None):
        self.query.build((None, self.in_channels))
        if self.query_coords is not None:
            self.query_coords.build((None, 2))
        self.key.build((None, self.word_dim))
        self.value.build((None, self.word_dim))

    def call(self, x, words, word_mask):
        words = tf.cast(words, x.dtype)
        query = self.query(x)  # [B, H, W, d]
        if self.query_coords is not None:
            # The feature map's side is static in every generator block.
            if x.shape[1] is None or x.shape[2] is None:
                raise ValueError(f"{self.name} reads pixel coordinates: it needs a static "
                                 f"height and width, got the shape {x.shape}.")
            grid = tf.constant(coordinate_grid(x.shape[1], x.shape[2]), x.dtype)
            query = query + self.query_coords(grid)[tf.newaxis]
        key = self.key(words)  # [B, T, d]
        logits = tf.einsum("bhwd,btd->bhwt", query, key)
        attention = t2i_layers.softmax_over_real_words(
            tf.cast(logits, tf.float32) / math.sqrt(self.channels), word_mask)
        context = tf.einsum("bhwt,btd->bhwd", tf.cast(attention, x.dtype), self.value(words))
        return context, attention

    def get_config(self):
        config = super().get_config()
        config.update({"in_channels": self.in_channels, "word_dim": self.word_dim,
                       "channels": self.channels, "coords": self.coords})
        return config
