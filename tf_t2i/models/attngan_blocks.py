"""AttnGAN's building blocks, shared by the AttnGAN and Style-AttnGAN models.

Follows the official PyTorch code (taoxugit/AttnGAN code/model.py: CA_NET,
upBlock, ResBlock, and GlobalAttention.py). Tensors are NHWC (convolutions OIHW
-> HWIO, Linear weights [in, out]; the 1x1 word projection is a dense layer).
Almost every convolution of the reference has `bias=False`, and so has it here.

Deviation, harmless to a weight import: padding words are masked per sample (the
reference's `mask.repeat(queryL, 1)` pairs rows of different samples when a batch
mixes caption lengths).
"""

import keras
import tensorflow as tf

from tf_t2i.models import equalized_layers
from tf_t2i.models import layers as t2i_layers

_STAGE_SIZES = {64: 1, 128: 2, 256: 3}


def num_stages_for(image_size):
    """Generator stages (and discriminators) for a final image size.

    64 px -> 1 (INIT_STAGE_G only), 128 -> 2, 256 -> 3; one discriminator per
    stage, each seeing that stage's resolution.
    """
    if image_size not in _STAGE_SIZES:
        raise ValueError(
            f"image_size must be one of {tuple(_STAGE_SIZES)}, got "
            f"{image_size}.")
    return _STAGE_SIZES[image_size]


def conv3x3(in_channels, filters, dtype, name):
    """The reference's `conv3x3`: 3x3, padding 1, no bias, torch's init."""
    return t2i_layers.torch_conv2d(
        in_channels, filters, 3, use_bias=False, dtype=dtype, name=name)


@keras.saving.register_keras_serializable(package="tf_t2i")
class ConditioningAugmentation(keras.layers.Layer):
    """AttnGAN's `CA_NET`: sentence -> (c, mu, logvar).

    Linear(D, 4c) with bias, GLU -> 2c, split into mu and logvar;
    c = mu + exp(logvar / 2) * noise.

    Shapes: sentence_embedding [B, D], noise [B, c] -> three [B, c].

    Args:
        sentence_dim: int, D.
        condition_dim: int, c.
        **kwargs: `keras.layers.Layer` arguments.

    """

    def __init__(self, sentence_dim=256, condition_dim=100, **kwargs):
        super().__init__(**kwargs)
        self.sentence_dim = sentence_dim
        self.condition_dim = condition_dim
        self.fc = t2i_layers.torch_dense(
            sentence_dim, 4 * condition_dim, dtype=self.dtype_policy,
            name="fc")

    def build(self, input_shape=None):
        self.fc.build((None, self.sentence_dim))

    def call(self, sentence_embedding, noise):
        x = t2i_layers.glu(self.fc(sentence_embedding))
        mu, logvar = tf.split(x, 2, axis=-1)
        c = mu + tf.exp(0.5 * logvar) * tf.cast(noise, mu.dtype)
        return c, mu, logvar

    def get_config(self):
        config = super().get_config()
        config.update({"sentence_dim": self.sentence_dim,
                       "condition_dim": self.condition_dim})
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class WordAttention(keras.layers.Layer):
    """AttnGAN's `GlobalAttentionGeneral`: a word context for every pixel.

    Words are projected to the image width (1x1 conv without bias); pixel
    features score every word by a dot product, a softmax over the real words
    (padding masked out) weights the projected words.

    Shapes: h [B, H, W, C], word_features [B, T, D], word_mask [B, T] (True or
    1 for a real word) -> (context [B, H, W, C], attention [B, H, W, T]
    float32, summing to 1 over T).

    Args:
        channels: int, C.
        word_dim: int, D.
        **kwargs: `keras.layers.Layer` arguments.

    """

    def __init__(self, channels, word_dim=256, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.word_dim = word_dim
        self.word_projection = t2i_layers.torch_dense(
            word_dim, channels, use_bias=False, dtype=self.dtype_policy,
            name="word_projection")

    def build(self, input_shape=None):
        self.word_projection.build((None, None, self.word_dim))

    def call(self, h, word_features, word_mask):
        _, height, width, channels = h.shape
        batch = tf.shape(h)[0]
        words = self.word_projection(tf.cast(word_features, h.dtype))
        query = tf.reshape(h, [batch, height * width, channels])
        # Scores in float32 too: bf16 products lose the gaps the softmax reads.
        scores = tf.matmul(tf.cast(query, tf.float32),
                           tf.cast(words, tf.float32), transpose_b=True)
        weights = t2i_layers.softmax_over_real_words(scores, word_mask)  # [B, HW, T]
        context = tf.matmul(tf.cast(weights, h.dtype), words)
        context = tf.reshape(context, [batch, height, width, channels])
        weights = tf.reshape(weights, [batch, height, width, -1])
        return context, weights

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "word_dim": self.word_dim})
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class GLUConvBlock(keras.layers.Layer):
    """conv3x3 (no bias) to 2*out -> BN -> GLU, after an optional nearest x2.

    `upsample=True` is AttnGAN's `upBlock`, False its `Block3x3_relu`.

    Shapes: [B, H, W, in] -> [B, H or 2H, W or 2W, out].

    Args:
        in_channels: int.
        out_channels: int.
        upsample: bool.
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, in_channels, out_channels, upsample=True, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.upsample = upsample
        dtype = self.dtype_policy
        self.conv = conv3x3(in_channels, 2 * out_channels, dtype, "conv")
        self.batch_norm = t2i_layers.torch_batch_norm(
            dtype=dtype, name="batch_norm")

    def build(self, input_shape=None):
        self.conv.build((None, None, None, self.in_channels))
        self.batch_norm.build((None, None, None, 2 * self.out_channels))

    def call(self, x, training=None):
        if self.upsample:
            x = t2i_layers.upsample_nearest_2x(x)
        x = self.batch_norm(self.conv(x), training=training)
        return t2i_layers.glu(x)

    def get_config(self):
        config = super().get_config()
        config.update({"in_channels": self.in_channels,
                       "out_channels": self.out_channels,
                       "upsample": self.upsample})
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class GLUResBlock(keras.layers.Layer):
    """AttnGAN's `ResBlock`: x + BN(conv(GLU(BN(conv(x))))).

    conv3x3 C -> 2C, BN, GLU, conv3x3 C -> C, BN; convolutions without bias.
    `equalized_lr=True` gives Style-AttnGAN's variant (`ex=True`): the same
    block with equalised-LR convolutions (gain sqrt(2)).

    Shapes: [B, H, W, C] -> [B, H, W, C].

    Args:
        channels: int, C.
        equalized_lr: bool.
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, channels, equalized_lr=False, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.equalized_lr = equalized_lr
        dtype = self.dtype_policy
        if equalized_lr:
            self.conv_in = equalized_layers.EqualizedConv2D(
                2 * channels, 3, use_bias=False, dtype=dtype, name="conv_in")
            self.conv_out = equalized_layers.EqualizedConv2D(
                channels, 3, use_bias=False, dtype=dtype, name="conv_out")
        else:
            self.conv_in = conv3x3(channels, 2 * channels, dtype, "conv_in")
            self.conv_out = conv3x3(channels, channels, dtype, "conv_out")
        self.batch_norm_in = t2i_layers.torch_batch_norm(
            dtype=dtype, name="batch_norm_in")
        self.batch_norm_out = t2i_layers.torch_batch_norm(
            dtype=dtype, name="batch_norm_out")

    def build(self, input_shape=None):
        shape = (None, None, None, self.channels)
        self.conv_in.build(shape)
        self.batch_norm_in.build((None, None, None, 2 * self.channels))
        self.conv_out.build(shape)
        self.batch_norm_out.build(shape)

    def call(self, x, training=None):
        h = self.batch_norm_in(self.conv_in(x), training=training)
        h = self.conv_out(t2i_layers.glu(h))
        return x + self.batch_norm_out(h, training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels,
                       "equalized_lr": self.equalized_lr})
        return config
