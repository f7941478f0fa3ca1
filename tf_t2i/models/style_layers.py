"""StyleGAN building blocks for the Style-AttnGAN generators and discriminators.

Two lineages meet here:
- StyleGAN1 as used by Style-AttnGAN (sidward14/Style-AttnGAN with the
  `gan-lab` package): equalised-learning-rate layers, the conditioned mapping
  network, per-channel noise, instance norm + AdaIN and a binomial blur;
- StyleGAN2 (NVlabs/stylegan2-ada-pytorch, training/networks.py): modulated and
  demodulated convolutions, a scalar noise strength, FIR [1, 3, 3, 1]
  resampling and the residual discriminator's minibatch standard deviation.

Equalised learning rate: a weight is stored with std 1/lr_multiplier and
multiplied at run time by gain / sqrt(fan_in) * lr_multiplier; a bias is
multiplied by lr_multiplier. The effective initial weight has He's std
gain / sqrt(fan_in), while Adam's step, which does not depend on the scale of
the gradient, moves every layer at the same relative speed (and the mapping
network 100 times slower with lr_multiplier 0.01). Stored values therefore
differ from the effective ones; a PyTorch weight converts by transposing only.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from tf_t2i.models import layers as t2i_layers

# StyleGAN2's resampling filter, [1, 3, 3, 1] outer itself, summing to 1.
_FIR_TAPS = np.array([1.0, 3.0, 3.0, 1.0])
# gan-lab's 'binomial' blur, [1, 2, 1] outer itself, summing to 1.
_BINOMIAL_TAPS = np.array([1.0, 2.0, 1.0])

LEAKY_RELU_SLOPE = 0.2


def pixel_norm(x, epsilon=1e-8):
    """x * rsqrt(mean(x^2) + eps) over the last axis (StyleGAN's PixelNorm)."""
    return x * tf.math.rsqrt(
        tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + epsilon)


def instance_norm(x, epsilon=1e-8):
    """Per-sample, per-channel normalisation over H and W, no affine terms.

    torch.nn.InstanceNorm2d(eps=1e-8) as gan-lab builds it; the statistics are
    computed in float32 whatever the compute dtype.
    """
    x32 = tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(x32, axes=[1, 2], keepdims=True)
    return tf.cast((x32 - mean) * tf.math.rsqrt(variance + epsilon), x.dtype)


def _depthwise_filter(x, taps, padding, strides=1, gain=1.0):
    """Applies the separable filter outer(taps) / sum^2 to every channel.

    Args:
        x: [B, H, W, C] tensor with static C.
        taps: 1-D numpy array.
        padding: (before, after) zero padding of H and W.
        strides: int.
        gain: scalar multiplying the filter.

    Returns:
        [B, H', W', C] tensor.
    """
    channels = x.shape[-1]
    kernel = np.outer(taps, taps)
    kernel = kernel / kernel.sum() * gain
    kernel = np.tile(kernel[:, :, None, None], [1, 1, channels, 1])
    x = tf.pad(x, [[0, 0], list(padding), list(padding), [0, 0]])
    return tf.nn.depthwise_conv2d(
        x, tf.constant(kernel, x.dtype), [1, strides, strides, 1], "VALID")


def binomial_blur(x):
    """gan-lab's binomial 3x3 blur, zero padding 1: keeps the size."""
    return _depthwise_filter(x, _BINOMIAL_TAPS, (1, 1))


def fir_upsample_2x(x):
    """StyleGAN2's `upsample2d`: zero insertion then the FIR filter, gain 4.

    With [1, 3, 3, 1] this is bilinear upsampling with zero-padded borders.
    """
    _, height, width, channels = x.shape
    batch = tf.shape(x)[0]
    x = x[:, :, None, :, None, :]
    # Each pixel is followed by one zero along H and W, as upfirdn2d does.
    x = tf.pad(x, [[0, 0], [0, 0], [0, 1], [0, 0], [0, 1], [0, 0]])
    x = tf.reshape(x, [batch, 2 * height, 2 * width, channels])
    return _depthwise_filter(x, _FIR_TAPS, (2, 1), gain=4.0)


def fir_downsample_2x(x):
    """StyleGAN2's `downsample2d`: FIR filter (padding 1) then stride 2."""
    return _depthwise_filter(x, _FIR_TAPS, (1, 1), strides=2)


def fir_blur_for_strided_conv(x):
    """The FIR filter before a 'valid' 3x3 stride-2 conv (which then halves H).

    Padding 2 = the conv's own 1 + the filter's 1 (conv2d_resample).
    """
    return _depthwise_filter(x, _FIR_TAPS, (2, 2))


def minibatch_stddev(x, group_size=4, unbiased=True, grouping="consecutive"):
    """Appends the minibatch standard deviation as one feature map.

    Samples are split into groups of `group_size` (the whole batch when it is
    smaller, or, as gan-lab does, when it does not divide the batch); the
    std of each feature over a group, averaged over features and pixels, is
    broadcast to a [H, W, 1] map for every member of the group. A group of
    one gets zeros (gan-lab).

    Args:
        x: [B, H, W, C] tensor.
        group_size: int.
        unbiased: bool; torch.var's Bessel correction (gan-lab, StyleGAN1
            branch) or the plain mean of squares (StyleGAN2).
        grouping: 'consecutive' puts samples i*G .. i*G+G-1 in one group
            (gan-lab); 'strided' puts i, i+n, i+2n, ... together with n = B/G
            (StyleGAN2's reshape(G, -1, ...)).

    Returns:
        [B, H, W, C + 1] tensor.
    """
    if grouping not in ("consecutive", "strided"):
        raise ValueError(f"Unknown grouping {grouping!r}.")
    shape = tf.shape(x)
    batch, height, width = shape[0], shape[1], shape[2]
    group = tf.minimum(batch, group_size)
    group = tf.where(batch % group == 0, group, batch)
    num_groups = batch // group
    x32 = tf.cast(x, tf.float32)
    if grouping == "consecutive":
        y = tf.reshape(x32, [num_groups, group, -1])
        axis = 1
    else:
        y = tf.reshape(x32, [group, num_groups, -1])
        axis = 0
    mean = tf.reduce_mean(y, axis=axis, keepdims=True)
    sum_sq = tf.reduce_sum(tf.square(y - mean), axis=axis)  # [n, HWC]
    count = tf.cast(group, tf.float32)
    divisor = tf.maximum(count - 1.0, 1.0) if unbiased else count
    std = tf.sqrt(sum_sq / divisor + 1e-8)
    std = tf.reduce_mean(std, axis=1)  # [n]
    std = tf.where(group > 1, std, tf.zeros_like(std))
    if grouping == "consecutive":
        per_sample = tf.repeat(std, group)
    else:
        per_sample = tf.tile(std, [group])
    feature = tf.broadcast_to(
        tf.cast(per_sample, x.dtype)[:, None, None, None],
        [batch, height, width, 1])
    return tf.concat([x, feature], axis=-1)


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


@keras.saving.register_keras_serializable(package="tf_t2i")
class MappingNetwork(keras.layers.Layer):
    """Style-AttnGAN's conditioned mapping network (z, c) -> w.

    gan-lab's `StyleConditionedMappingNetwork` with `embed_cond_vars=False`:
    the concatenation [z, c] is pixel-normalised as one vector, then
    `num_layers` equalised dense layers (gain sqrt(2), lr multiplier 0.01),
    each followed by LeakyReLU(0.2), the last one included.

    Shapes: z [B, z_dim], condition [B, c_dim] -> w [B, w_dim].

    Args:
        z_dim: int.
        condition_dim: int.
        w_dim: int.
        num_layers: int.
        lr_multiplier: float.
        **kwargs: `keras.layers.Layer` arguments.

    """

    def __init__(self, z_dim=100, condition_dim=100, w_dim=100, num_layers=8,
                 lr_multiplier=0.01, **kwargs):
        super().__init__(**kwargs)
        self.z_dim = z_dim
        self.condition_dim = condition_dim
        self.w_dim = w_dim
        self.num_layers = num_layers
        self.lr_multiplier = lr_multiplier
        # gan-lab spaces the widths linearly from z_dim to w_dim; they are all
        # w_dim when the two agree, as in every reference config.
        widths = np.linspace(z_dim, w_dim, num_layers).astype(np.int64)
        self.dense_layers = [
            EqualizedDense(int(width), lr_multiplier=lr_multiplier,
                           dtype=self.dtype_policy, name=f"dense{i}")
            for i, width in enumerate(widths)
        ]

    def build(self, input_shape=None):
        in_features = self.z_dim + self.condition_dim
        for dense in self.dense_layers:
            dense.build((None, in_features))
            in_features = dense.units

    def call(self, z, condition):
        x = tf.concat([z, tf.cast(condition, z.dtype)], axis=-1)
        x = pixel_norm(x)
        for dense in self.dense_layers:
            x = tf.nn.leaky_relu(dense(x), alpha=LEAKY_RELU_SLOPE)
        return x

    def get_config(self):
        config = super().get_config()
        config.update({"z_dim": self.z_dim,
                       "condition_dim": self.condition_dim,
                       "w_dim": self.w_dim, "num_layers": self.num_layers,
                       "lr_multiplier": self.lr_multiplier})
        return config


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
        self.affine = EqualizedDense(
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
        kernel = tf.convert_to_tensor(self.kernel)
        if not self.demodulate:
            styles *= 1.0 / math.sqrt(
                self.in_channels * self.kernel_size ** 2)
        if self.upsample:
            x = fir_upsample_2x(x)
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
        in_channels: int.
        filters: int.
        w_dim: int.
        upsample: bool.
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
            self.conv = EqualizedConv2D(filters, 3, use_bias=False,
                                        dtype=dtype, name="conv")
        self.noise = NoiseInjection(filters, dtype=dtype, name="noise")
        self.style = EqualizedDense(2 * filters, gain=1.0, dtype=dtype,
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
            x = binomial_blur(x)
        x = self.noise(x, noise) + tf.cast(self.bias, x.dtype)
        x = instance_norm(tf.nn.leaky_relu(x, alpha=LEAKY_RELU_SLOPE))
        scale, shift = tf.split(self.style(tf.cast(w, x.dtype)), 2, axis=-1)
        return x * (1.0 + scale[:, None, None, :]) + shift[:, None, None, :]

    def get_config(self):
        config = super().get_config()
        config.update({"in_channels": self.in_channels,
                       "filters": self.filters, "w_dim": self.w_dim,
                       "upsample": self.upsample, "use_conv": self.use_conv})
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
        upsample: bool.
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
        self.noise = NoiseInjection(filters, per_channel=False, dtype=dtype,
                                    name="noise")

    def build(self, input_shape=None):
        self.conv.build()
        self.noise.build()
        self.bias = self.add_weight(
            shape=(self.filters,), initializer="zeros", name="bias")

    def call(self, x, w, noise):
        x = self.noise(self.conv(x, w), noise) + tf.cast(self.bias, x.dtype)
        return tf.nn.leaky_relu(x, alpha=LEAKY_RELU_SLOPE) * math.sqrt(2.0)

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
