"""StyleGAN1's synthesis layer with AdaIN, as Style-AttnGAN builds it (gan-lab)."""

import keras
import tensorflow as tf

from tf_t2i.models import equalized_layers
from tf_t2i.models import layers as t2i_layers
from tf_t2i.models import style_ops


@keras.saving.register_keras_serializable(package="tf_t2i")
class AdaINStyleLayer(keras.layers.Layer):
    """One StyleGAN1 synthesis layer as Style-AttnGAN builds it.

    [nearest x2 ->] conv3x3 (equalised, no bias) [-> binomial blur] -> noise
    (per-channel weight) -> bias -> LeakyReLU(0.2) -> instance norm -> AdaIN
    x * (1 + y_s) + y_b with (y_s, y_b) = affine(w), an equalised dense layer
    of gain 1. The blur follows the conv only in upsampling layers; the first
    layer of the generator has no conv at all (it styles the constant).

    Shapes: x [B, H, W, in], w [B, w_dim], noise [B, H', W', 1] ->
    [B, H', W', filters], H' = 2H with `upsample`.

    Args:
        in_channels: int, the input width.
        filters: int, the output width.
        w_dim: int, the size of w.
        upsample: bool; nearest 2x before the conv, binomial blur after it.
        use_conv: bool; False only for the layer on the constant input
            (then `filters` must equal `in_channels`).
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, in_channels, filters, w_dim, upsample=False,
                 use_conv=True, **kwargs):
        super().__init__(**kwargs)
        if not use_conv and (upsample or in_channels != filters):
            raise ValueError("A layer without conv keeps size and width.")
        self.in_channels = in_channels
        self.filters = filters
        self.w_dim = w_dim
        self.upsample = upsample
        self.use_conv = use_conv
        dtype = self.dtype_policy
        self.conv = None
        if use_conv:
            self.conv = equalized_layers.EqualizedConv2D(filters, 3, use_bias=False,
                                                         dtype=dtype, name="conv")
        self.noise = equalized_layers.NoiseInjection(filters, dtype=dtype, name="noise")
        self.style = equalized_layers.EqualizedDense(2 * filters, gain=1.0, dtype=dtype,
                                                     name="style")

    def build(self, input_shape=None):
        if self.conv is not None:
            self.conv.build((None, None, None, self.in_channels))
        self.noise.build()
        self.bias = self.add_weight(
            shape=(self.filters,), initializer="zeros", name="bias")
        self.style.build((None, self.w_dim))

    def call(self, x, w, noise):
        if self.upsample:
            x = t2i_layers.upsample_nearest_2x(x)
        if self.conv is not None:
            x = self.conv(x)
        if self.upsample:
            x = style_ops.binomial_blur(x)
        x = self.noise(x, noise) + tf.cast(self.bias, x.dtype)
        x = style_ops.instance_norm(tf.nn.leaky_relu(x, alpha=style_ops.LEAKY_RELU_SLOPE))
        scale, shift = tf.split(self.style(tf.cast(w, x.dtype)), 2, axis=-1)
        return x * (1.0 + scale[:, None, None, :]) + shift[:, None, None, :]

    def get_config(self):
        config = super().get_config()
        config.update({"in_channels": self.in_channels,
                       "filters": self.filters, "w_dim": self.w_dim,
                       "upsample": self.upsample, "use_conv": self.use_conv})
        return config
