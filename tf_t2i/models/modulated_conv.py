"""StyleGAN2's modulated convolution and the synthesis layers built on it.

NVlabs/stylegan2-ada-pytorch, training/networks.py: `modulated_conv2d`,
`SynthesisLayer` and `ToRGBLayer`, used by Style2AttnGAN's generator.
"""

import math

import keras
import tensorflow as tf

from tf_t2i.models import equalized_layers
from tf_t2i.models import style_ops


@keras.saving.register_keras_serializable(package="tf_t2i")
class ModulatedConv2D(keras.layers.Layer):
    """StyleGAN2's modulated convolution (`modulated_conv2d`).

    styles s = affine(w), an equalised dense layer whose bias starts at 1
    (the issue's "affine(w) + 1"); w'_{kio} = s_i * kernel_{kio}; with
    `demodulate`, each output channel is divided by
    sqrt(sum_{k,i} w'_{kio}^2 + 1e-8). Computed as the reference's non-fused
    path: scale the input channels by s, convolve with the shared kernel,
    scale the output channels by the demodulation coefficients. Without
    demodulation (toRGB) s is multiplied by 1 / sqrt(in * k^2).

    With `upsample` the input is first upsampled 2x by the FIR filter; the
    reference fuses this into a transposed convolution (same operator up to
    where the 3x3 kernel sits relative to the filter taps).

    Shapes: x [B, H, W, in], w [B, w_dim] -> [B, H', W', filters].

    Args:
        in_channels: int.
        filters: int.
        kernel_size: int.
        w_dim: int.
        demodulate: bool.
        upsample: bool.
        **kwargs: `keras.layers.Layer` arguments.

    Example:
    >>> conv = ModulatedConv2D(4, 8, 3, w_dim=16)
    >>> y = conv(tf.zeros([2, 8, 8, 4]), tf.zeros([2, 16]))
    """

    def __init__(self, in_channels, filters, kernel_size, w_dim,
                 demodulate=True, upsample=False, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.filters = filters
        self.kernel_size = kernel_size
        self.w_dim = w_dim
        self.demodulate = demodulate
        self.upsample = upsample
        self.affine = equalized_layers.EqualizedDense(
            in_channels, gain=1.0, bias_init=1.0, dtype=self.dtype_policy,
            name="affine")

    def build(self, input_shape=None):
        k = self.kernel_size
        self.affine.build((None, self.w_dim))
        self.kernel = self.add_weight(
            shape=(k, k, self.in_channels, self.filters),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            name="kernel")

    def styles(self, w):
        """Per-sample input-channel scales [B, in] (before any gain)."""
        return self.affine(w)

    def call(self, x, w):
        styles = tf.cast(self.styles(w), tf.float32)
        # Under a mixed policy Keras reads the kernel in the compute dtype; the
        # demodulation's sums are float32 like the styles.
        kernel = tf.cast(self.kernel, tf.float32)
        if not self.demodulate:
            styles *= 1.0 / math.sqrt(
                self.in_channels * self.kernel_size ** 2)
        if self.upsample:
            x = style_ops.fir_upsample_2x(x)
        y = x * tf.cast(styles, x.dtype)[:, None, None, :]
        y = tf.nn.conv2d(y, tf.cast(kernel, x.dtype), 1, "SAME")
        if self.demodulate:
            # sum_{k,i} (s_i kernel_kio)^2 = sum_i s_i^2 sum_k kernel_kio^2.
            kernel_sq = tf.reduce_sum(tf.square(kernel), axis=[0, 1])
            demod = tf.math.rsqrt(
                tf.matmul(tf.square(styles), kernel_sq) + 1e-8)  # [B, out]
            y *= tf.cast(demod, y.dtype)[:, None, None, :]
        return y

    def get_config(self):
        config = super().get_config()
        config.update({"in_channels": self.in_channels,
                       "filters": self.filters,
                       "kernel_size": self.kernel_size, "w_dim": self.w_dim,
                       "demodulate": self.demodulate,
                       "upsample": self.upsample})
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class ModulatedStyleLayer(keras.layers.Layer):
    """StyleGAN2's `SynthesisLayer`: modulated conv3x3 -> noise -> bias -> act.

    The activation is LeakyReLU(0.2) times sqrt(2) (bias_act's default gain
    for lrelu); the noise has one scalar strength starting at 0.

    Shapes: x [B, H, W, in], w [B, w_dim], noise [B, H', W', 1] ->
    [B, H', W', filters], H' = 2H with `upsample`.

    Args:
        in_channels: int.
        filters: int.
        w_dim: int.
        upsample: bool; FIR-upsample 2x inside the modulated conv.
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, in_channels, filters, w_dim, upsample=False, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.filters = filters
        self.w_dim = w_dim
        self.upsample = upsample
        dtype = self.dtype_policy
        self.conv = ModulatedConv2D(in_channels, filters, 3, w_dim,
                                    upsample=upsample, dtype=dtype,
                                    name="conv")
        self.noise = equalized_layers.NoiseInjection(filters, per_channel=False, dtype=dtype,
                                                     name="noise")

    def build(self, input_shape=None):
        self.conv.build()
        self.noise.build()
        self.bias = self.add_weight(
            shape=(self.filters,), initializer="zeros", name="bias")

    def call(self, x, w, noise):
        x = self.noise(self.conv(x, w), noise) + tf.cast(self.bias, x.dtype)
        return tf.nn.leaky_relu(x, alpha=style_ops.LEAKY_RELU_SLOPE) * math.sqrt(2.0)

    def get_config(self):
        config = super().get_config()
        config.update({"in_channels": self.in_channels,
                       "filters": self.filters, "w_dim": self.w_dim,
                       "upsample": self.upsample})
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class ModulatedToRGB(keras.layers.Layer):
    """StyleGAN2's `ToRGBLayer`: modulated 1x1 conv, no demodulation, + bias.

    Shapes: x [B, H, W, in], w [B, w_dim] -> [B, H, W, 3].

    Args:
        in_channels: int.
        w_dim: int.
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, in_channels, w_dim, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.conv = ModulatedConv2D(in_channels, 3, 1, w_dim,
                                    demodulate=False,
                                    dtype=self.dtype_policy, name="conv")

    def build(self, input_shape=None):
        self.conv.build()
        self.bias = self.add_weight(shape=(3,), initializer="zeros",
                                    name="bias")

    def call(self, x, w):
        return self.conv(x, w) + tf.cast(self.bias, x.dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"in_channels": self.in_channels, "w_dim": self.w_dim})
        return config
