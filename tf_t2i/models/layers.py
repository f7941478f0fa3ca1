"""Small building blocks shared by the tf_t2i models.

The reference implementations are PyTorch, so the layer factories here give
Keras layers PyTorch's default initialisation and BatchNorm constants. With
them a freshly built model starts from the same distribution as the reference,
and weights converted from a PyTorch checkpoint (kernel = weight transposed to
HWIO for convolutions, weight.T for linear layers) drop in unchanged.
"""

import math

import keras
import tensorflow as tf

# torch.nn.BatchNorm2d: eps 1e-5; its momentum 0.1 weights the new batch, Keras's
# momentum weights the running value, so 0.1 in torch is 0.9 here.
TORCH_BN_EPSILON = 1e-5
TORCH_BN_MOMENTUM = 0.9


@keras.saving.register_keras_serializable(package="tf_t2i")
class TorchBiasInitializer(keras.initializers.Initializer):
    """PyTorch's default bias initialisation for `Conv2d` and `Linear`.

    Draws from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), where fan_in is the number of
    inputs of one output unit (in_channels * kernel_h * kernel_w for a
    convolution). Keras passes only the bias shape to an initializer, so fan_in
    is given here.

    Args:
        fan_in: positive int, the layer's fan-in.
        seed: optional int for reproducible draws.

    Example:
    >>> init = TorchBiasInitializer(fan_in=27)
    >>> bias = init((64,))
    """

    def __init__(self, fan_in, seed=None):
        if fan_in <= 0:
            raise ValueError(f"fan_in must be positive, got {fan_in}.")
        self.fan_in = int(fan_in)
        self.seed = seed
        self._uniform = keras.initializers.RandomUniform(
            minval=-1.0 / math.sqrt(self.fan_in),
            maxval=1.0 / math.sqrt(self.fan_in),
            seed=seed,
        )

    def __call__(self, shape, dtype=None):
        return self._uniform(shape, dtype=dtype)

    def get_config(self):
        return {"fan_in": self.fan_in, "seed": self.seed}


def torch_kernel_initializer(seed=None):
    """PyTorch's default weight initialisation for `Conv2d` and `Linear`.

    torch uses kaiming_uniform(a=sqrt(5)), whose bound sqrt(6 / ((1 + a^2) *
    fan_in)) is 1/sqrt(fan_in); VarianceScaling with scale 1/3 has the bound
    sqrt(3 * scale / fan_in), the same number.

    Args:
        seed: optional int for reproducible draws.

    Returns:
        A `keras.initializers.VarianceScaling` instance.
    """
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seed)


def torch_conv2d(in_channels, filters, kernel_size, strides=1, padding="same",
                 use_bias=True, dtype=None, name=None):
    """A `keras.layers.Conv2D` initialised like `torch.nn.Conv2d`.

    'same' padding equals torch's symmetric padding (k - 1) / 2 for odd kernels
    at stride 1, and padding 1 for a 4x4 kernel at stride 2 on even sizes.

    Args:
        in_channels: int, input channels (needed for the bias fan-in).
        filters: int, output channels.
        kernel_size: int, square kernel size.
        strides: int.
        padding: 'same' or 'valid'.
        use_bias: bool.
        dtype: dtype policy passed to the layer.
        name: layer name.

    Returns:
        An unbuilt `keras.layers.Conv2D`.
    """
    fan_in = in_channels * kernel_size * kernel_size
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding,
        use_bias=use_bias,
        kernel_initializer=torch_kernel_initializer(),
        bias_initializer=TorchBiasInitializer(fan_in) if use_bias else "zeros",
        dtype=dtype, name=name)


def torch_dense(in_features, units, use_bias=True, zero_init=False, dtype=None,
                name=None):
    """A `keras.layers.Dense` initialised like `torch.nn.Linear`.

    Args:
        in_features: int, input width (needed for the bias fan-in).
        units: int, output width.
        use_bias: bool.
        zero_init: bool; zero weights and bias instead (used where the
            reference calls `nn.init.zeros_` after construction).
        dtype: dtype policy passed to the layer.
        name: layer name.

    Returns:
        An unbuilt `keras.layers.Dense`.
    """
    if zero_init:
        kernel_init, bias_init = "zeros", "zeros"
    else:
        kernel_init = torch_kernel_initializer()
        bias_init = TorchBiasInitializer(in_features) if use_bias else "zeros"
    return keras.layers.Dense(
        units, use_bias=use_bias, kernel_initializer=kernel_init,
        bias_initializer=bias_init, dtype=dtype, name=name)


def torch_batch_norm(affine=True, dtype=None, name=None):
    """A `keras.layers.BatchNormalization` with torch's BatchNorm2d constants.

    Keras updates the moving variance with the biased batch variance where
    torch uses the unbiased one; the difference is a factor n/(n-1) with n the
    number of values per channel in the batch, and affects inference only.

    The statistics are synchronised across replicas (`synchronized=True`), as the
    reference's SyncBatchNorm: under MirroredStrategy a step then computes the same
    update as one device on the global batch; on one device it changes nothing.

    Args:
        affine: bool; False gives torch's `affine=False` (no gamma, no beta).
        dtype: dtype policy passed to the layer.
        name: layer name.

    Returns:
        An unbuilt `FusedBatchNormalization` (a `keras.layers.BatchNormalization`) over
        the last axis.
    """
    return FusedBatchNormalization(
        momentum=TORCH_BN_MOMENTUM, epsilon=TORCH_BN_EPSILON, center=affine,
        scale=affine, synchronized=True, dtype=dtype, name=name)


def _in_xla_context() -> bool:
    """Whether the graph being traced is XLA-compiled (`jit_compile=True`); True when
    TensorFlow's private test is missing, which keeps Keras's own path."""
    try:
        from tensorflow.python.ops import control_flow_util  # pylint: disable=g-import-not-at-top
    except ImportError:
        return True
    if tf.executing_eagerly():
        return False
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


@keras.saving.register_keras_serializable(package="tf_t2i")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose training step on images is one fused op.

    Keras 3 normalises with a chain of small ops (moments, cast, sub, rsqrt, mul, add),
    each a pass over the tensor, and as many again in the gradient; TensorFlow's
    `FusedBatchNormV3` does the forward in one op and the backward in one. On a 2-core
    CPU, bfloat16 [24, 64, 64, 32] forward + backward: 6.4 ms fused against 19 ms
    (`benchmarks/batch_norm.py`). The fused op computes the statistics in float32 as
    Keras does, and the layer keeps Keras's variables and update rule (the biased batch
    variance into the moving variance), so checkpoints and converted weights are the
    same; outputs agree to rounding (`tests/test_fused_batch_norm.py`).

    The fused path is taken in training on NHWC images with one replica in sync, outside
    XLA; the parent's path runs otherwise: inference, a frozen layer, other ranks or
    axes, a mask, synchronised statistics across several replicas (which the fused op
    cannot all-reduce), and an XLA-compiled step, where XLA fuses Keras's chain itself and
    the fused op made the float32 step 9% slower.
    """

    def _fused(self, inputs, training, mask):
        if not (training and self.trainable) or self.renorm or mask is not None:
            return False
        if len(inputs.shape) != 4 or self.axis not in (-1, 3) or _in_xla_context():
            return False
        return tf.distribute.get_replica_context() is None or \
            tf.distribute.get_replica_context().num_replicas_in_sync == 1

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        # bfloat16 and float16 go in as they are: the op keeps its statistics in float32.
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels], "float32")
        beta = self.beta if self.center else tf.zeros([channels], "float32")
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, tf.cast(gamma, "float32"), tf.cast(beta, "float32"),
            epsilon=self.epsilon, is_training=True)
        # The op returns the unbiased variance; Keras's moving variance takes the biased.
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), "float32")
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(
            self.moving_variance * momentum + variance * (1.0 - momentum))
        return tf.cast(outputs, self.compute_dtype)


def upsample_nearest_2x(x):
    """Nearest-neighbour x2 upsampling of an NHWC tensor.

    Matches `F.interpolate(x, scale_factor=2)`. A broadcast and a reshape
    instead of an image resize keep it cheap and XLA-friendly.

    Args:
        x: [B, H, W, C] tensor with static H, W and C.

    Returns:
        [B, 2H, 2W, C] tensor of the same dtype.
    """
    _, height, width, channels = x.shape
    batch = tf.shape(x)[0]
    x = x[:, :, None, :, None, :]
    x = tf.broadcast_to(x, [batch, height, 2, width, 2, channels])
    return tf.reshape(x, [batch, 2 * height, 2 * width, channels])


def resize_bilinear_align_corners(x, size):
    """Bilinear resize with align_corners=True, as torch's F.interpolate does.

    Output pixel i samples input position i * (in - 1) / (out - 1), so corner
    pixels map onto corner pixels. `tf.image.resize` has no such mode; the TF1
    kernel does (called as the raw op: its v1 wrapper is deprecated); it is a
    core op, differentiable and supported by XLA.

    Args:
        x: [B, h, w, C] float tensor.
        size: (height, width) of the output.

    Returns:
        [B, height, width, C] tensor in the dtype of `x` (the kernel itself
        always computes in float32).
    """
    resized = tf.raw_ops.ResizeBilinear(
        images=x, size=tf.constant(size, tf.int32), align_corners=True,
        half_pixel_centers=False)
    return tf.cast(resized, x.dtype)


def softmax_over_real_words(logits, word_mask):
    """Softmax over the last axis (words), padding words left out, in float32.

    The pixel-to-word attentions (AttnGAN's word attention, the SSA-GAN word context)
    share it: a padding word gets a logit of -1e9, so it takes no weight and changes no
    other word's (finite, not -inf: a caption with no words gets uniform weights, not
    NaN); float32 whatever the policy, since bf16 logits lose the small gaps.

    Args:
        logits: [B, ..., T] scores of every word.
        word_mask: [B, T], True or 1 at real words.

    Returns:
        float32 [B, ..., T] weights summing to 1 over the real words.
    """
    logits = tf.cast(logits, tf.float32)
    real = tf.cast(word_mask, tf.bool)
    real = tf.reshape(real, tf.concat(
        [tf.shape(real)[:1], tf.ones([logits.shape.rank - 2], tf.int32),
         tf.shape(real)[1:]], 0))
    return tf.nn.softmax(tf.where(real, logits, -1e9), axis=-1)


def glu(x):
    """Gated linear unit over the last axis, as the AttnGAN family uses it.

    The first half of the channels is gated by the sigmoid of the second
    half (torch code: `x[:, :nc] * sigmoid(x[:, nc:])` on NCHW), so a layer
    feeding a GLU produces twice the channels the block keeps.

    Args:
        x: [..., 2C] tensor.

    Returns:
        [..., C] tensor of the same dtype.
    """
    value, gate = tf.split(x, 2, axis=-1)
    return value * tf.sigmoid(gate)


class RandomDraws:
    """Random tensors for one forward pass, stateful or seeded.

    Without `seed`, every draw advances the model's `keras.random.SeedGenerator`.
    With `seed`, draws are stateless: the i-th draw of the pass uses
    `stateless_fold_in(seed, i)`. The seed is either one int [2] tensor for
    the whole batch, or one seed per example, int [B, 2]; then every draw must
    have the batch as its first dimension and example b's values depend only
    on seed[b]. Per-example seeds make a generator's output a function of each
    example alone, so that splitting a batch over replicas, resuming a run or
    batching serving requests differently never changes an image.

    Args:
        seed_generator: a `keras.random.SeedGenerator`.
        seed: optional int32/int64 tensor of shape [2] or [B, 2].
    """

    def __init__(self, seed_generator, seed=None):
        self._seed_generator = seed_generator
        self._seed = None if seed is None else tf.convert_to_tensor(seed)
        self._count = 0

    def _stateless(self, draw, shape, dtype):
        self._count += 1
        count = self._count
        if self._seed.shape.rank == 1:
            return draw(shape, tf.random.experimental.stateless_fold_in(self._seed, count),
                        dtype)

        def one_example(seed):
            return draw(shape[1:], tf.random.experimental.stateless_fold_in(seed, count),
                        dtype)

        return tf.map_fn(one_example, self._seed,
                         fn_output_signature=tf.TensorSpec(None, dtype))

    def normal(self, shape, dtype="float32"):
        """Standard normal draw of `shape`."""
        if self._seed is None:
            return keras.random.normal(shape, dtype=dtype,
                                       seed=self._seed_generator)
        return self._stateless(
            lambda s, seed, d: tf.random.stateless_normal(s, seed=seed, dtype=d),
            shape, tf.as_dtype(dtype))

    def uniform(self, shape, dtype="float32"):
        """Uniform [0, 1) draw of `shape`."""
        if self._seed is None:
            return keras.random.uniform(shape, dtype=dtype,
                                        seed=self._seed_generator)
        return self._stateless(
            lambda s, seed, d: tf.random.stateless_uniform(s, seed=seed, dtype=d),
            shape, tf.as_dtype(dtype))

    def randint(self, shape, minval, maxval):
        """Uniform int32 draw in [minval, maxval)."""
        if self._seed is None:
            return keras.random.randint(shape, minval, maxval, dtype="int32",
                                        seed=self._seed_generator)
        return self._stateless(
            lambda s, seed, d: tf.random.stateless_uniform(
                s, seed=seed, minval=minval, maxval=maxval, dtype=d),
            shape, tf.int32)
