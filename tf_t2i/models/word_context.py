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
"""

import math

import keras
import tensorflow as tf

from tf_t2i.models import layers as t2i_layers


@keras.saving.register_keras_serializable(package="tf_t2i")
class WordContext(keras.layers.Layer):
    """Scaled dot-product attention from pixels to words.

    `context(p) = sum_t softmax_t(q(x_p) . k(w_t) / sqrt(d)) v(w_t)`, the softmax over the
    real words only (`word_mask`); q, k, v are linear maps to d = `channels`.

    Shapes: x [B, H, W, C], words [B, T, D], word_mask bool [B, T] ->
    (context [B, H, W, channels] in x's dtype, attention float32 [B, H, W, T]).

    Args:
        in_channels: int, C.
        word_dim: int, D.
        channels: int, d, the width of queries, keys and context.
        **kwargs: `keras.layers.Layer` arguments.

    Example:
    >>> layer = WordContext(in_channels=16, word_dim=32, channels=16)
    >>> context, attention = layer(tf.zeros([2, 4, 4, 16]), tf.zeros([2, 5, 32]),
    ...                            tf.ones([2, 5], tf.bool))
    """

    def __init__(self, in_channels, word_dim, channels, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.word_dim = word_dim
        self.channels = channels
        dtype = self.dtype_policy
        self.query = t2i_layers.torch_dense(in_channels, channels, use_bias=False,
                                            dtype=dtype, name="query")
        self.key = t2i_layers.torch_dense(word_dim, channels, use_bias=False,
                                          dtype=dtype, name="key")
        self.value = t2i_layers.torch_dense(word_dim, channels, dtype=dtype, name="value")

    def build(self, input_shape=None):
        self.query.build((None, self.in_channels))
        self.key.build((None, self.word_dim))
        self.value.build((None, self.word_dim))

    def call(self, x, words, word_mask):
        words = tf.cast(words, x.dtype)
        query = self.query(x)  # [B, H, W, d]
        key = self.key(words)  # [B, T, d]
        logits = tf.einsum("bhwd,btd->bhwt", query, key)
        attention = t2i_layers.softmax_over_real_words(
            tf.cast(logits, tf.float32) / math.sqrt(self.channels), word_mask)
        context = tf.einsum("bhwt,btd->bhwd", tf.cast(attention, x.dtype), self.value(words))
        return context, attention

    def get_config(self):
        config = super().get_config()
        config.update({"in_channels": self.in_channels, "word_dim": self.word_dim,
                       "channels": self.channels})
        return config
