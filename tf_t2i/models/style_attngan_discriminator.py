"""Style-AttnGAN discriminators: ProGAN-style (Style1) and StyleGAN2 residual (Style2).

Style-AttnGAN's D_NET_STYLED64/128/256 follow sidward14/Style-AttnGAN
(code/model.py) with gan-lab's layers; Style2AttnGAN's backbone is StyleGAN2's
residual discriminator (NVlabs/stylegan2-ada-pytorch, training/networks.py).
Both keep AttnGAN's conditional and unconditional heads (`AttnGANLogits` with
equalised convolutions), returning logits.
"""

import math

import keras
import tensorflow as tf

from tf_t2i.models import attngan_blocks
from tf_t2i.models import attngan_discriminator
from tf_t2i.models import equalized_layers
from tf_t2i.models import style_ops

_SQRT2 = math.sqrt(2.0)
_SQRT_HALF = math.sqrt(0.5)


def _lrelu(x, gain=1.0):
    return tf.nn.leaky_relu(x, alpha=style_ops.LEAKY_RELU_SLOPE) * gain


@keras.saving.register_keras_serializable(package="tf_t2i")
class StyleAttnGANDiscriminator(attngan_discriminator.StageDiscriminatorMixin, keras.Model):
    """Style-AttnGAN's D_NET_STYLED64 / 128 / 256 (ProGAN-style, not residual).

    fromRGB: 1x1 equalised conv to 4ndf + LeakyReLU(0.2). Blocks, each
    halving the resolution: equalised conv3x3 (bias) + LReLU, then binomial
    blur -> conv3x3 (no bias) -> 2x2 average pool -> bias -> LReLU. Widths
    4ndf -> 4ndf above 64 px, 4ndf -> 8ndf at 64, 8ndf after. At 4x4:
    minibatch stddev (group 4, torch.var's unbiased variance, consecutive
    samples grouped), conv3x3 (8ndf + 1 -> 8ndf, bias) + LReLU. The heads are
    AttnGAN's with equalised convs.

    Shapes and methods as `attngan_discriminator.AttnGANDiscriminator`.

    Args:
        ndf: int (GAN.DF_DIM, 32 in bird_attn2_style.yml).
        sentence_dim: int.
        image_size: int, 64, 128 or 256.
        mbstd_group_size: int.
        **kwargs: `keras.Model` arguments.
    """

    def __init__(self, ndf=32, sentence_dim=256, image_size=64,
                 mbstd_group_size=4, **kwargs):
        super().__init__(**kwargs)
        attngan_blocks.num_stages_for(image_size)
        self.ndf = ndf
        self.sentence_dim = sentence_dim
        self.image_size = image_size
        self.mbstd_group_size = mbstd_group_size
        dtype = self.dtype_policy

        # Layers.
        self.block_widths = []
        resolution = image_size
        while resolution > 4:
            c_in = 4 * ndf if resolution >= 64 else 8 * ndf
            c_out = 4 * ndf if resolution > 64 else 8 * ndf
            self.block_widths.append((c_in, c_out))
            resolution //= 2
        self._create_backbone(dtype)
        self.conditional_head = attngan_discriminator.AttnGANLogits(
            8 * ndf, sentence_dim, conditional=True, equalized_lr=True,
            dtype=dtype, name="conditional_head")
        self.unconditional_head = attngan_discriminator.AttnGANLogits(
            8 * ndf, sentence_dim, conditional=False, equalized_lr=True,
            dtype=dtype, name="unconditional_head")

    def _create_backbone(self, dtype):
        conv = equalized_layers.EqualizedConv2D
        self.from_rgb = conv(4 * self.ndf, 1, dtype=dtype, name="from_rgb")
        self.block_convs, self.down_convs, self.down_biases = [], [], []
        for i, (c_in, c_out) in enumerate(self.block_widths):
            self.block_convs.append(
                conv(c_in, 3, dtype=dtype, name=f"block{i}_conv"))
            self.down_convs.append(conv(
                c_out, 3, use_bias=False, dtype=dtype, name=f"block{i}_down"))
        self.final_conv = conv(8 * self.ndf, 3, dtype=dtype,
                               name="final_conv")

    def build(self, input_shape=None):
        self.from_rgb.build((None, None, None, 3))
        self.down_biases = []
        for i, (c_in, c_out) in enumerate(self.block_widths):
            self.block_convs[i].build((None, None, None, c_in))
            self.down_convs[i].build((None, None, None, c_in))
            self.down_biases.append(self.add_weight(
                shape=(c_out,), initializer="zeros", name=f"block{i}_bias"))
        self.final_conv.build((None, 4, 4, 8 * self.ndf + 1))
        self._build_heads()

    def call(self, images, training=None):
        x = _lrelu(self.from_rgb(images))
        for conv, down, bias in zip(self.block_convs, self.down_convs,
                                    self.down_biases):
            x = _lrelu(conv(x))
            x = down(style_ops.binomial_blur(x))
            x = tf.nn.avg_pool2d(x, 2, 2, "VALID")
            x = _lrelu(x + tf.cast(bias, x.dtype))
        x = style_ops.minibatch_stddev(x, self.mbstd_group_size,
                                       unbiased=True,
                                       grouping="consecutive")
        return _lrelu(self.final_conv(x))

    def get_config(self):
        config = super().get_config()
        config.update({"ndf": self.ndf, "sentence_dim": self.sentence_dim,
                       "image_size": self.image_size,
                       "mbstd_group_size": self.mbstd_group_size})
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class Style2AttnGANDiscriminator(StyleAttnGANDiscriminator):
    """Style2AttnGAN's discriminator: StyleGAN2 residual blocks, AttnGAN heads.

    fromRGB 1x1 to 4ndf; every block (widths as StyleAttnGANDiscriminator)
    is conv3x3 -> FIR blur + conv3x3 stride 2, plus a skip of FIR downsample
    + 1x1 conv (no bias), the sum scaled by 1/sqrt(2) (stylegan2-ada's
    'resnet' DiscriminatorBlock). Convs are equalised with gain 1 and followed
    by LeakyReLU(0.2) * sqrt(2) (bias_act). At 4x4: minibatch stddev (group 4,
    biased variance, strided groups as StyleGAN2), conv3x3 8ndf + 1 -> 8ndf;
    StyleGAN2's fc/out epilogue is replaced by the AttnGAN heads, as
    Style-AttnGAN does.
    """

    def _create_backbone(self, dtype):
        def conv(filters, size, name, **kwargs):
            return equalized_layers.EqualizedConv2D(
                filters, size, gain=1.0, dtype=dtype, name=name, **kwargs)

        self.from_rgb = conv(4 * self.ndf, 1, "from_rgb")
        self.block_convs, self.down_convs, self.skip_convs = [], [], []
        for i, (c_in, c_out) in enumerate(self.block_widths):
            self.block_convs.append(conv(c_in, 3, f"block{i}_conv"))
            self.down_convs.append(conv(
                c_out, 3, f"block{i}_down", strides=2, padding="valid"))
            self.skip_convs.append(conv(
                c_out, 1, f"block{i}_skip", use_bias=False))
        self.final_conv = conv(8 * self.ndf, 3, "final_conv")

    def build(self, input_shape=None):
        self.from_rgb.build((None, None, None, 3))
        for conv, down, skip, (c_in, _) in zip(
                self.block_convs, self.down_convs, self.skip_convs,
                self.block_widths):
            for layer in (conv, down, skip):
                layer.build((None, None, None, c_in))
        self.final_conv.build((None, 4, 4, 8 * self.ndf + 1))
        self._build_heads()

    def call(self, images, training=None):
        x = _lrelu(self.from_rgb(images), _SQRT2)
        for conv, down, skip in zip(self.block_convs, self.down_convs,
                                    self.skip_convs):
            shortcut = skip(style_ops.fir_downsample_2x(x)) * _SQRT_HALF
            h = _lrelu(conv(x), _SQRT2)
            h = down(style_ops.fir_blur_for_strided_conv(h))
            x = shortcut + _lrelu(h, _SQRT2 * _SQRT_HALF)
        x = style_ops.minibatch_stddev(x, self.mbstd_group_size,
                                       unbiased=False, grouping="strided")
        return _lrelu(self.final_conv(x), _SQRT2)


def build_style_discriminators(ndf=32, sentence_dim=256, image_size=256,
                               style_version=1, dtype=None):
    """One Style(1|2)AttnGAN discriminator per generator stage, smallest first."""
    cls = {1: StyleAttnGANDiscriminator,
           2: Style2AttnGANDiscriminator}[style_version]
    sizes = [64 * 2 ** i for i in range(attngan_blocks.num_stages_for(image_size))]
    return [cls(ndf, sentence_dim, size, dtype=dtype,
                name=f"discriminator{size}") for size in sizes]
