"""Equalised-learning-rate layers of StyleGAN, and its noise injection.

Equalised learning rate: a weight is stored with std 1/lr_multiplier and
multiplied at run time by gain / sqrt(fan_in) * lr_multiplier; a bias is
multiplied by lr_multiplier. The effective initial weight has He's std
gain / sqrt(fan_in), while Adam's step, which does not depend on the scale of
the gradient, moves every layer at the same relative speed (and the mapping
network 100 times slower with lr_multiplier 0.01). Stored values therefore
differ from the effective ones; a PyTorch weight converts by transposing only.

`EqualizedConv2D` is gan-lab's `Conv2dEx` (Style-AttnGAN); `NoiseInjection`
serves both StyleGAN1 (per-channel strength) and StyleGAN2 (one scalar).
"""

import math

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf_t2i")
class EqualizedDense(keras.layers.Layer):
    """Fully connected layer with equalised learning rate.

    y = x @ (kernel * gain / sqrt(in) * lr_multiplier) + bias * lr_multiplier,
    kernel stored ~ N(0, 1 / lr_multiplier^2), bias stored so that its
    effective initial value is `bias_init`.

    Shapes: [..., in] -> [..., units].

    Args:
        units: int.
        gain: float; sqrt(2) before a leaky ReLU, 1 for style affines.
        lr_multiplier: float; 0.01 in the mapping network.
        use_bias: bool.
        bias_init: float, effective initial bias (1 for StyleGAN2's affines).
        **kwargs: `keras.layers.Layer` arguments.

    """

    def __init__(self, units, gain=math.sqrt(2.0), lr_multiplier=1.0,
                 use_bias=True, bias_init=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.gain = gain
        self.lr_multiplier = lr_multiplier
        self.use_bias = use_bias
        self.bias_init = bias_init

    def build(self, input_shape):
        in_features = int(input_shape[-1])
        self.kernel = self.add_weight(
            shape=(in_features, self.units),
            initializer=keras.initializers.RandomNormal(
                stddev=1.0 / self.lr_multiplier),
            name="kernel")
        self.runtime_scale = (
            self.gain / math.sqrt(in_features) * self.lr_multiplier)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.units,),
                initializer=keras.initializers.Constant(
                    self.bias_init / self.lr_multiplier),
                name="bias")

    def effective_kernel(self):
        """The kernel the layer applies, [in, units] float32."""
        return tf.convert_to_tensor(self.kernel) * self.runtime_scale

    def call(self, x):
        y = tf.matmul(x, tf.cast(self.effective_kernel(), x.dtype))
        if self.bias is not None:
            y += tf.cast(self.bias * self.lr_multiplier, x.dtype)
        return y

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "gain": self.gain,
                       "lr_multiplier": self.lr_multiplier,
                       "use_bias": self.use_bias,
                       "bias_init": self.bias_init})
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class EqualizedConv2D(keras.layers.Layer):
    """Convolution with equalised learning rate (gan-lab's `Conv2dEx`).

    Kernel [k, k, in, out] stored ~ N(0, 1), scaled by gain / sqrt(in * k^2)
    at run time; bias starts at 0.

    Shapes: [B, H, W, in] -> [B, H', W', filters].

    Args:
        filters: int.
        kernel_size: int.
        strides: int.
        padding: 'same' or 'valid' (torch's padding k//2 or 0).
        gain: float.
        use_bias: bool.
        **kwargs: `keras.layers.Layer` arguments.

    """

    def __init__(self, filters, kernel_size, strides=1, padding="same",
                 gain=math.sqrt(2.0), use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.gain = gain
        self.use_bias = use_bias

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        k = self.kernel_size
        self.kernel = self.add_weight(
            shape=(k, k, in_channels, self.filters),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            name="kernel")
        self.runtime_scale = self.gain / math.sqrt(in_channels * k * k)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.filters,), initializer="zeros", name="bias")

    def call(self, x):
        kernel = tf.convert_to_tensor(self.kernel) * self.runtime_scale
        y = tf.nn.conv2d(x, tf.cast(kernel, x.dtype), self.strides,
                         self.padding.upper())
        if self.bias is not None:
            y += tf.cast(self.bias, x.dtype)
        return y

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters,
                       "kernel_size": self.kernel_size,
                       "strides": self.strides, "padding": self.padding,
                       "gain": self.gain, "use_bias": self.use_bias})
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class NoiseInjection(keras.layers.Layer):
    """Adds weight * noise, noise [B, H, W, 1] shared by the channels.

    The weight starts at 0: per channel in StyleGAN1 (`StyleAddNoise`), one
    scalar `noise_strength` in StyleGAN2.

    Args:
        channels: int, C; with `per_channel=False` unused.
        per_channel: bool.
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, channels, per_channel=True, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.per_channel = per_channel

    def build(self, input_shape=None):
        shape = (self.channels,) if self.per_channel else ()
        self.strength = self.add_weight(
            shape=shape, initializer="zeros", name="strength")

    def call(self, x, noise):
        return x + tf.cast(self.strength, x.dtype) * tf.cast(noise, x.dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels,
                       "per_channel": self.per_channel})
        return config
