"""SSA-GAN's discriminator: DF-GAN v1's NetD with its conditional head.

Follows the official PyTorch code (wtliao/text2image, model.py: NetD, resD,
D_GET_LOGITS) at its default configuration; weights convert as for
`ssagan_generator` (OIHW -> HWIO, Linear -> [in, out]).

Smaller image sizes truncate the reference block list: 256 px runs all six resD
blocks, 128 px drops the last one and 64 px the last two. The dropped blocks are
the 16ndf -> 16ndf ones, so the backbone always ends at 4x4 with 16*ndf channels.
"""

import keras
import tensorflow as tf

from tf_t2i.models import layers as t2i_layers
from tf_t2i.models import ssagan_generator
from tf_t2i.models import word_match

# (in, out) width multipliers of NetD's block0..block5, 128 px down to 4 px
# at 256 px input (conv_img keeps 256 px).
_DISCRIMINATOR_WIDTHS = ((1, 2), (2, 4), (4, 8), (8, 16), (16, 16), (16, 16))


@keras.saving.register_keras_serializable(package="tf_t2i")
class ResDBlock(keras.layers.Layer):
    """DF-GAN v1 discriminator block (`resD`): halves the resolution.

    `out = avgpool2(shortcut(x)) + gamma * residual(x)` with gamma a scalar
    starting at `gate_init` (0 in the reference); residual conv4x4/2 -> LeakyReLU(0.2) -> conv3x3 ->
    LeakyReLU(0.2), both without bias; shortcut a 1x1 conv with bias, applied
    only when the width changes.

    The reference constructs the 1x1 conv in every block, also where it is
    never applied (in == out); it is kept here too so that the parameter set,
    and a weight import, match. Those weights get no gradient (None from
    `tf.GradientTape`; Keras optimizers skip them with a warning).

    Shapes: [B, H, W, C_in] -> [B, H/2, W/2, C_out], H and W even.

    Args:
        in_channels: int.
        out_channels: int.
        gate_init: float, the initial gamma.
        **kwargs: `keras.layers.Layer` arguments.

    Example:
    >>> out = ResDBlock(8, 16)(tf.zeros([2, 32, 32, 8]))
    """

    def __init__(self, in_channels, out_channels, gate_init=0.0, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.gate_init = float(gate_init)
        dtype = self.dtype_policy
        self.conv_down = t2i_layers.torch_conv2d(
            in_channels, out_channels, 4, strides=2, use_bias=False,
            dtype=dtype, name="conv_down")
        self.conv_same = t2i_layers.torch_conv2d(
            out_channels, out_channels, 3, use_bias=False, dtype=dtype,
            name="conv_same")
        self.shortcut_conv = t2i_layers.torch_conv2d(
            in_channels, out_channels, 1, dtype=dtype, name="shortcut_conv")

    def build(self, input_shape):
        in_shape = (None, None, None, self.in_channels)
        self.conv_down.build(in_shape)
        self.conv_same.build((None, None, None, self.out_channels))
        self.shortcut_conv.build(in_shape)
        self.gamma = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.gate_init),
            name="gamma")

    def call(self, x):
        residual = tf.nn.leaky_relu(self.conv_down(x), alpha=0.2)
        residual = tf.nn.leaky_relu(self.conv_same(residual), alpha=0.2)
        # The reference convolves, then pools; both are linear and commute
        # exactly, and pooling first makes the 1x1 conv four times cheaper.
        shortcut = tf.nn.avg_pool2d(x, ksize=2, strides=2, padding="VALID")
        if self.in_channels != self.out_channels:
            shortcut = self.shortcut_conv(shortcut)
        return shortcut + tf.cast(self.gamma, residual.dtype) * residual

    def get_config(self):
        config = super().get_config()
        config.update({"in_channels": self.in_channels,
                       "out_channels": self.out_channels,
                       "gate_init": self.gate_init})
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class ConditionalLogitsHead(keras.layers.Layer):
    """DF-GAN v1 conditional discriminator head (`D_GET_LOGITS`).

    The sentence embedding is tiled over the 4x4 feature map and concatenated
    after the image features, then conv3x3 (no bias) -> LeakyReLU(0.2) ->
    conv4x4 valid (no bias) gives one logit.

    Shapes: features [B, 4, 4, C], sentence_embedding [B, D] -> logits [B]
    float32.

    Args:
        feature_channels: int, C (16 * ndf).
        hidden_channels: int, width of the hidden conv (2 * ndf).
        sentence_dim: int, D.
        **kwargs: `keras.layers.Layer` arguments.

    Example:
    >>> head = ConditionalLogitsHead(128, 16)
    >>> logits = head(tf.zeros([2, 4, 4, 128]), tf.zeros([2, 256]))
    """

    def __init__(self, feature_channels, hidden_channels, sentence_dim=256,
                 **kwargs):
        super().__init__(**kwargs)
        self.feature_channels = feature_channels
        self.hidden_channels = hidden_channels
        self.sentence_dim = sentence_dim
        dtype = self.dtype_policy
        self.joint_conv = t2i_layers.torch_conv2d(
            feature_channels + sentence_dim, hidden_channels, 3,
            use_bias=False, dtype=dtype, name="joint_conv")
        self.logits_conv = t2i_layers.torch_conv2d(
            hidden_channels, 1, 4, padding="valid", use_bias=False,
            dtype=dtype, name="logits_conv")

    def build(self, input_shape):
        self.joint_conv.build(
            (None, 4, 4, self.feature_channels + self.sentence_dim))
        self.logits_conv.build((None, 4, 4, self.hidden_channels))

    def call(self, features, sentence_embedding):
        sentence = tf.cast(sentence_embedding, features.dtype)
        feature_shape = tf.shape(features)
        tiled = tf.broadcast_to(
            sentence[:, None, None, :],
            [feature_shape[0], feature_shape[1], feature_shape[2],
             self.sentence_dim])
        h = tf.concat([features, tiled], axis=-1)
        h = tf.nn.leaky_relu(self.joint_conv(h), alpha=0.2)
        logits = self.logits_conv(h)  # [B, 1, 1, 1]
        return tf.cast(tf.reshape(logits, [-1]), tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update({
            "feature_channels": self.feature_channels,
            "hidden_channels": self.hidden_channels,
            "sentence_dim": self.sentence_dim,
        })
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class SSAGANDiscriminator(keras.Model):
    """SSA-GAN's discriminator, DF-GAN v1 `NetD` with its `D_GET_LOGITS` head.

    Calling the model runs the unconditional backbone, conv3x3 3 -> ndf (with
    bias) then `ResDBlock`s down to 4x4x(16ndf); `logits` applies the
    conditional head, kept apart in `head` so that one feature pass serves
    matched and mismatched sentences. The backbone has no normalisation, so
    `training` changes nothing; it is accepted for a uniform API. With
    `word_logits` the logit adds `word_match.WordRegionMatch`'s score of the
    caption's words against the 4x4 features, or against the 8x8 features of
    the block before with `word_region_size` 8 (not in the reference).

    Shapes: images [B, S, S, 3] -> features [B, 4, 4, 16 * ndf] (with
    `word_region_size` 8 the pair (those, the block before's [B, 8, 8, C8]
    features; C8 = 8 * ndf at 64 px), which `logits` takes as they come);
    `logits(features, sentence_embedding [B, sentence_dim], words [B, T,
    sentence_dim], word_mask bool [B, T])` -> [B] float32 (words only with
    `word_logits`).

    Args:
        ndf: int, base width (64 in the reference).
        sentence_dim: int, sentence embedding size.
        image_size: int, S; one of 64, 128, 256.
        residual_gate_init: float, initial gamma of every block (reference: 0).
        word_logits: bool, add the word-level logit (reference: False).
        word_region_size: int, 4 or 8: the side of the feature map the words
            attend over (with `word_logits`).
        **kwargs: `keras.Model` arguments (name, dtype, ...).

    Example:
    >>> discriminator = SSAGANDiscriminator(ndf=8, image_size=64)
    >>> features = discriminator(tf.zeros([2, 64, 64, 3]))
    >>> logits = discriminator.logits(features, tf.zeros([2, 256]))
    >>> features.shape, logits.shape
    (TensorShape([2, 4, 4, 128]), TensorShape([2]))
    """

    def __init__(self, ndf=64, sentence_dim=256, image_size=256,
                 residual_gate_init=0.0, word_logits=False, word_region_size=4,
                 **kwargs):
        super().__init__(**kwargs)
        log_size = ssagan_generator.check_image_size(image_size)
        if word_region_size not in (4, 8):
            raise ValueError(f"word_region_size must be 4 or 8, got {word_region_size}.")
        self.word_region_size = int(word_region_size)
        self.residual_gate_init = float(residual_gate_init)
        self.ndf = ndf
        self.sentence_dim = sentence_dim
        self.image_size = image_size
        self.word_logits = bool(word_logits)
        dtype = self.dtype_policy

        # Layers.
        num_blocks = log_size - 2  # Each block halves S down to 4 px.
        self.image_conv = t2i_layers.torch_conv2d(
            3, ndf, 3, dtype=dtype, name="image_conv")
        self.blocks = [
            ResDBlock(w_in * ndf, w_out * ndf, gate_init=residual_gate_init,
                      dtype=dtype, name=f"block{i}")
            for i, (w_in, w_out) in enumerate(
                _DISCRIMINATOR_WIDTHS[:num_blocks])
        ]
        self.head = ConditionalLogitsHead(
            16 * ndf, 2 * ndf, sentence_dim, dtype=dtype, name="head")
        # The block whose output the words attend over: the last (4x4) or the one
        # before (8x8), where each region is an eighth of the image's side.
        self._region_block = num_blocks - (2 if self.word_region_size == 8 else 1)
        region_channels = _DISCRIMINATOR_WIDTHS[self._region_block][1] * ndf
        self.word_head = word_match.WordRegionMatch(
            region_channels, sentence_dim, 16 * ndf, dtype=dtype,
            name="word_head") if self.word_logits else None

    def build(self, input_shape=None):
        # The head is built here too, so optimizers and checkpoints see all
        # weights before the first `logits` call.
        self.image_conv.build((None, None, None, 3))
        for block in self.blocks:
            block.build((None, None, None, block.in_channels))
        self.head.build((None, 4, 4, 16 * self.ndf))
        if self.word_head is not None:
            self.word_head.build()

    @property
    def _returns_regions(self):
        return self.word_head is not None and self.word_region_size != 4

    def call(self, images, training=None):
        x = self.image_conv(images)
        regions = None
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == self._region_block:
                regions = x
        return (x, regions) if self._returns_regions else x

    def logits(self, features, sentence_embedding, words=None, word_mask=None):
        """Conditional logits [B] float32 of features from `call`; a
        discriminator with `word_logits` needs the caption's words too."""
        features, regions = features if self._returns_regions else (features, features)
        logits = self.head(features, sentence_embedding)
        if self.word_head is None:
            return logits
        if words is None or word_mask is None:
            raise ValueError("This discriminator reads the words (word_logits=True): "
                             "pass words and word_mask to logits().")
        return logits + self.word_head(regions, words, word_mask)[0]

    def score(self, images, sentence_embedding, training=None, words=None,
              word_mask=None):
        """`logits(self(images), sentence_embedding, ...)`, e.g. for MA-GP."""
        return self.logits(self(images, training=training), sentence_embedding,
                           words, word_mask)

    def get_config(self):
        config = super().get_config()
        config.update({
            "ndf": self.ndf,
            "sentence_dim": self.sentence_dim,
            "image_size": self.image_size,
            "residual_gate_init": self.residual_gate_init,
            "word_logits": self.word_logits,
            "word_region_size": self.word_region_size,
        })
        return config
