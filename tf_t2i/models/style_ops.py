"""StyleGAN's weightless operations for the Style-AttnGAN generators and discriminators.

Two lineages meet here:
- StyleGAN1 as used by Style-AttnGAN (sidward14/Style-AttnGAN with the
  `gan-lab` package): pixel norm, instance norm, a binomial blur and the
  minibatch standard deviation of consecutive samples;
- StyleGAN2 (NVlabs/stylegan2-ada-pytorch, training/networks.py): FIR
  [1, 3, 3, 1] resampling and the residual discriminator's minibatch standard
  deviation of strided groups.

The layers with weights are in `equalized_layers`, `mapping_network`,
`adain_style_layer` and `modulated_conv`.
"""

import numpy as np
import tensorflow as tf

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
