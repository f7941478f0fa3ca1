"""AttnGAN's per-stage discriminators (taoxugit/AttnGAN code/model.py: D_NET64,
D_NET128, D_NET256, D_GET_LOGITS) and the interface the Style-AttnGAN ones share.

Deviation, harmless to a weight import: the heads return logits (the reference:
sigmoid + BCELoss).
"""

import keras
import tensorflow as tf

from tf_t2i.models import attngan_blocks
from tf_t2i.models import equalized_layers
from tf_t2i.models import layers as t2i_layers


@keras.saving.register_keras_serializable(package="tf_t2i")
class AttnGANLogits(keras.layers.Layer):
    """AttnGAN's `D_GET_LOGITS`, conditional or not; returns logits.

    Conditional: the sentence embedding tiled to 4x4 is concatenated after
    the features, then conv3x3 (no bias) to 8ndf, BN, LeakyReLU(0.2). Both
    kinds end in a 4x4 'valid' conv with bias to one logit (the reference's
    stride 4 on a 4x4 map). `equalized_lr=True` gives Style-AttnGAN's heads
    (`ex=True`): the same with equalised-LR convolutions, gain sqrt(2).

    Shapes: features [B, 4, 4, C], sentence_embedding [B, D] (conditional
    only) -> [B] float32.

    Args:
        feature_channels: int, C (8ndf).
        sentence_dim: int, D.
        conditional: bool.
        equalized_lr: bool.
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, feature_channels, sentence_dim=256, conditional=True,
                 equalized_lr=False, **kwargs):
        super().__init__(**kwargs)
        self.feature_channels = feature_channels
        self.sentence_dim = sentence_dim
        self.conditional = conditional
        self.equalized_lr = equalized_lr
        dtype = self.dtype_policy
        channels = feature_channels
        self.joint_conv = self.joint_batch_norm = None
        if conditional:
            if equalized_lr:
                self.joint_conv = equalized_layers.EqualizedConv2D(
                    channels, 3, use_bias=False, dtype=dtype,
                    name="joint_conv")
            else:
                self.joint_conv = attngan_blocks.conv3x3(
                    channels + sentence_dim, channels, dtype, "joint_conv")
            self.joint_batch_norm = t2i_layers.torch_batch_norm(
                dtype=dtype, name="joint_batch_norm")
        if equalized_lr:
            self.logits_conv = equalized_layers.EqualizedConv2D(
                1, 4, padding="valid", dtype=dtype, name="logits_conv")
        else:
            self.logits_conv = t2i_layers.torch_conv2d(
                channels, 1, 4, padding="valid", dtype=dtype,
                name="logits_conv")

    def build(self, input_shape=None):
        channels = self.feature_channels
        if self.conditional:
            self.joint_conv.build(
                (None, 4, 4, channels + self.sentence_dim))
            self.joint_batch_norm.build((None, 4, 4, channels))
        self.logits_conv.build((None, 4, 4, channels))

    def call(self, features, sentence_embedding=None, training=None):
        h = features
        if self.conditional:
            sentence = tf.cast(sentence_embedding, h.dtype)
            shape = tf.shape(h)
            tiled = tf.broadcast_to(
                sentence[:, None, None, :],
                [shape[0], shape[1], shape[2], self.sentence_dim])
            h = self.joint_conv(tf.concat([h, tiled], axis=-1))
            h = self.joint_batch_norm(h, training=training)
            h = tf.nn.leaky_relu(h, alpha=0.2)
        logits = self.logits_conv(h)  # [B, 1, 1, 1]
        return tf.cast(tf.reshape(logits, [-1]), tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update({"feature_channels": self.feature_channels,
                       "sentence_dim": self.sentence_dim,
                       "conditional": self.conditional,
                       "equalized_lr": self.equalized_lr})
        return config


class StageDiscriminatorMixin:
    """The AttnGAN family's per-stage discriminator interface.

    `call(images, training)` gives 4x4x8ndf features; the two heads are
    separate calls, as the reference's COND_DNET / UNCOND_DNET, so one
    feature pass serves matched and mismatched captions.
    """

    def conditional_logits(self, features, sentence_embedding,
                           training=None):
        """Conditional logits [B] float32 (`COND_DNET`)."""
        return self.conditional_head(features, sentence_embedding,
                                     training=training)

    def unconditional_logits(self, features, training=None):
        """Unconditional logits [B] float32 (`UNCOND_DNET`)."""
        return self.unconditional_head(features, training=training)

    def _build_heads(self):
        shape = (None, 4, 4, 8 * self.ndf)
        self.conditional_head.build(shape)
        self.unconditional_head.build(shape)


@keras.saving.register_keras_serializable(package="tf_t2i")
class AttnGANDiscriminator(StageDiscriminatorMixin, keras.Model):
    """AttnGAN's D_NET64 / D_NET128 / D_NET256, chosen by `image_size`.

    `encode_image_by_16times`: four 4x4 stride-2 convs (no bias) 3 -> ndf ->
    2ndf -> 4ndf -> 8ndf, BN on all but the first, LeakyReLU(0.2). D_NET128
    adds a down-block (4x4/2 conv, BN, LReLU) to 16ndf and a 3x3 block back to
    8ndf; D_NET256 two down-blocks to 32ndf and two 3x3 blocks 32 -> 16 ->
    8ndf. The features are 4x4x8ndf at every size.

    Shapes: images [B, S, S, 3] -> features [B, 4, 4, 8ndf];
    `conditional_logits(features, sentence_embedding [B, D])` and
    `unconditional_logits(features)` -> [B] float32.

    Args:
        ndf: int, base width (GAN.DF_DIM: 64 CUB, 96 COCO).
        sentence_dim: int.
        image_size: int, S: 64, 128 or 256.
        **kwargs: `keras.Model` arguments.

    Example:
    >>> d = AttnGANDiscriminator(ndf=4, image_size=64)
    >>> d.unconditional_logits(d(tf.zeros([2, 64, 64, 3]))).shape
    TensorShape([2])
    """

    def __init__(self, ndf=64, sentence_dim=256, image_size=64, **kwargs):
        super().__init__(**kwargs)
        attngan_blocks.num_stages_for(image_size)
        self.ndf = ndf
        self.sentence_dim = sentence_dim
        self.image_size = image_size
        dtype = self.dtype_policy

        # Layers: (conv, batch norm or None) pairs, each then LeakyReLU.
        widths = [3, ndf, 2 * ndf, 4 * ndf, 8 * ndf]
        down_widths = {64: [], 128: [16 * ndf], 256: [16 * ndf, 32 * ndf]}
        widths += down_widths[image_size]
        self.down_convs, self.down_batch_norms = [], []
        for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
            self.down_convs.append(t2i_layers.torch_conv2d(
                w_in, w_out, 4, strides=2, use_bias=False, dtype=dtype,
                name=f"down{i}_conv"))
            self.down_batch_norms.append(None if i == 0 else (
                t2i_layers.torch_batch_norm(dtype=dtype, name=f"down{i}_bn")))
        self.block_widths = {
            64: [], 128: [(16 * ndf, 8 * ndf)],
            256: [(32 * ndf, 16 * ndf), (16 * ndf, 8 * ndf)]}[image_size]
        self.block_convs = [
            attngan_blocks.conv3x3(w_in, w_out, dtype, f"block{i}_conv")
            for i, (w_in, w_out) in enumerate(self.block_widths)
        ]
        self.block_batch_norms = [
            t2i_layers.torch_batch_norm(dtype=dtype, name=f"block{i}_bn")
            for i in range(len(self.block_widths))
        ]
        self._widths = widths
        self.conditional_head = AttnGANLogits(
            8 * ndf, sentence_dim, conditional=True, dtype=dtype,
            name="conditional_head")
        self.unconditional_head = AttnGANLogits(
            8 * ndf, sentence_dim, conditional=False, dtype=dtype,
            name="unconditional_head")

    def build(self, input_shape=None):
        for conv, norm, w_in, w_out in zip(
                self.down_convs, self.down_batch_norms, self._widths[:-1],
                self._widths[1:]):
            conv.build((None, None, None, w_in))
            if norm is not None:
                norm.build((None, None, None, w_out))
        for conv, norm, (w_in, w_out) in zip(
                self.block_convs, self.block_batch_norms, self.block_widths):
            conv.build((None, None, None, w_in))
            norm.build((None, None, None, w_out))
        self._build_heads()

    def call(self, images, training=None):
        x = images
        for conv, norm in zip(self.down_convs, self.down_batch_norms):
            x = conv(x)
            if norm is not None:
                x = norm(x, training=training)
            x = tf.nn.leaky_relu(x, alpha=0.2)
        for conv, norm in zip(self.block_convs, self.block_batch_norms):
            x = tf.nn.leaky_relu(norm(conv(x), training=training), alpha=0.2)
        return x

    def get_config(self):
        config = super().get_config()
        config.update({"ndf": self.ndf, "sentence_dim": self.sentence_dim,
                       "image_size": self.image_size})
        return config


def build_attngan_discriminators(ndf=64, sentence_dim=256, image_size=256,
                                 dtype=None):
    """One `AttnGANDiscriminator` per generator stage, smallest first."""
    sizes = [64 * 2 ** i for i in range(attngan_blocks.num_stages_for(image_size))]
    return [AttnGANDiscriminator(ndf, sentence_dim, size, dtype=dtype,
                                 name=f"discriminator{size}")
            for size in sizes]
