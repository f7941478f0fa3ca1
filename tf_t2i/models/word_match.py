"""A word-level logit for the discriminator: does each word find its region in the image?

An option of the SSA-GAN discriminator (`--disc_word_logits`), not part of the reference.
SSA-GAN's discriminator judges an image against one sentence vector tiled over its 4x4
features. For a caption naming two objects ("a red square on the left and a small blue star
at the top") that vector must carry both objects, and the matching-aware hinge loss rewards
D for noticing a caption wrong anywhere, not for checking each object where it is drawn;
the generator then learns the one-object captions and mixes up the two-object ones. Here
each word attends over the image's regions and is scored against what it finds there, as
ControlGAN's word-level discriminator correlates each word with its attended image regions
(Li et al. 2019, "Controllable Text-to-Image Generation", Sec. 3.3). The form is ours:
scaled dot-product attention (Vaswani et al. 2017, Eq. 1) from words to regions, a bilinear
score of each word against its context, and the mean over the real words, added to the
sentence head's logit so the hinge loss and the MA-GP take it unchanged.
"""

import math

import keras
import tensorflow as tf

from tf_t2i.models import layers as t2i_layers


@keras.saving.register_keras_serializable(package="tf_t2i")
class WordRegionMatch(keras.layers.Layer):
    """Mean over the real words of how well each word matches its attended regions.

    For word t with feature w_t and regions r with features h_r:
    `a_tr = softmax_r(q(w_t) . k(h_r) / sqrt(d))`, `c_t = sum_r a_tr v(h_r)`,
    `s_t = c_t . u(w_t) / sqrt(d)`, logit = mean of s_t over the real words (`word_mask`).
    q, k, v, u are linear maps to d = `channels`; u starts at zero, so a new layer scores
    0 and the discriminator starts as the reference's.

    Shapes: features [B, H, W, C], words [B, T, D], word_mask bool [B, T] ->
    (logits float32 [B], attention float32 [B, T, H * W]).

    Args:
        feature_channels: int, C.
        word_dim: int, D.
        channels: int, d.
        **kwargs: `keras.layers.Layer` arguments.

    Example:
    >>> match = WordRegionMatch(feature_channels=16, word_dim=32, channels=16)
    >>> logits, attention = match(tf.zeros([2, 4, 4, 16]), tf.zeros([2, 5, 32]),
    ...                           tf.ones([2, 5], tf.bool))
    """

    def __init__(self, feature_channels, word_dim, channels, **kwargs):
        super().__init__(**kwargs)
        self.feature_channels = feature_channels
        self.word_dim = word_dim
        self.channels = channels
        dtype = self.dtype_policy
        self.query = t2i_layers.torch_dense(word_dim, channels, use_bias=False, dtype=dtype,
                                            name="query")
        self.key = t2i_layers.torch_dense(feature_channels, channels, use_bias=False,
                                          dtype=dtype, name="key")
        self.value = t2i_layers.torch_dense(feature_channels, channels, dtype=dtype,
                                            name="value")
        self.word_out = keras.layers.Dense(channels, use_bias=False,
                                           kernel_initializer="zeros", dtype=dtype,
                                           name="word_out")

    def build(self, input_shape=None):
        self.query.build((None, self.word_dim))
        self.key.build((None, self.feature_channels))
        self.value.build((None, self.feature_channels))
        self.word_out.build((None, self.word_dim))

    def call(self, features, words, word_mask):
        regions = tf.reshape(features, [tf.shape(features)[0], -1, self.feature_channels])
        words = tf.cast(words, regions.dtype)
        scale = 1.0 / math.sqrt(self.channels)
        region_logits = tf.einsum("btd,brd->btr", self.query(words), self.key(regions))
        attention = tf.nn.softmax(tf.cast(region_logits, tf.float32) * scale, axis=-1)
        context = tf.einsum("btr,brd->btd", tf.cast(attention, regions.dtype),
                            self.value(regions))
        scores = tf.reduce_sum(tf.cast(context, tf.float32)
                               * tf.cast(self.word_out(words), tf.float32), axis=-1) * scale
        mask = tf.cast(word_mask, tf.float32)
        # max(count, 1): a caption with no real word scores 0, not NaN.
        logits = tf.reduce_sum(scores * mask, axis=-1) / tf.maximum(
            tf.reduce_sum(mask, axis=-1), 1.0)
        return logits, attention

    def get_config(self):
        config = super().get_config()
        config.update({"feature_channels": self.feature_channels,
                       "word_dim": self.word_dim, "channels": self.channels})
        return config
