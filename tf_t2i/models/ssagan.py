"""SSA-GAN generator and its DF-GAN v1 discriminator.

Follows the official PyTorch code (wtliao/text2image, model.py: NetG, G_Block,
affine, NetD, resD, D_GET_LOGITS) at its default configuration. Tensors are
NHWC; weights convert from that code by transposing torch's OIHW conv weights to
HWIO and Linear weights to [in, out]. The generator's fc output is read in
torch's (C, H, W) order, so its weights need no permutation either.

Smaller image sizes truncate the reference block lists:
- generator: 256 px runs all seven G blocks, 128 px the first six and 64 px the
  first five; the output head then sits on the last kept block, so its width
  is that block's output width (ngf at 256, 2*ngf at 128, 4*ngf at 64);
- discriminator: 256 px runs all six resD blocks, 128 px drops the last one
  and 64 px the last two. The dropped blocks are the 16ndf -> 16ndf ones, so
  the backbone always ends at 4x4 with 16*ndf channels.
"""

import math

import keras
import tensorflow as tf

from tf_t2i.models import layers as t2i_layers

_SUPPORTED_IMAGE_SIZES = (64, 128, 256)

# (in, out) width multipliers of NetG's block0..block6, at 4, 8, ..., 256 px.
_GENERATOR_WIDTHS = ((8, 8), (8, 8), (8, 8), (8, 8), (8, 4), (4, 2), (2, 1))

# (in, out) width multipliers of NetD's block0..block5, 128 px down to 4 px
# at 256 px input (conv_img keeps 256 px).
_DISCRIMINATOR_WIDTHS = ((1, 2), (2, 4), (4, 8), (8, 16), (16, 16), (16, 16))

# Width of the hidden layer of the SSCBN MLPs (Linear(256, 256) in `affine`).
_SSCBN_HIDDEN = 256


def _check_image_size(image_size):
    if image_size not in _SUPPORTED_IMAGE_SIZES:
        raise ValueError(
            f"image_size must be one of {_SUPPORTED_IMAGE_SIZES}, got "
            f"{image_size}.")
    return int(math.log2(image_size))


@keras.saving.register_keras_serializable(package="tf_t2i")
class SSCBN(keras.layers.Layer):
    """Semantic-spatial conditional batch normalisation (SSA-GAN's `affine`).

    `h = BN(x) * (1 + m * gamma(s)) + m * beta(s)`, where BN has no affine
    parameters, m is a one-channel spatial mask broadcast over channels and
    gamma, beta are separate MLPs Linear(D, 256) -> ReLU -> Linear(256, C) on
    the sentence embedding. Their last layers start at zero, so at
    initialisation the layer is a plain batch normalisation.

    Shapes: x [B, H, W, C], sentence_embedding [B, D], fusion_mask
    [B, H, W, 1] in [0, 1] -> [B, H, W, C].

    Args:
        channels: int, C.
        sentence_dim: int, D.
        **kwargs: `keras.layers.Layer` arguments.

    Example:
    >>> layer = SSCBN(channels=32)
    >>> h = layer(tf.zeros([2, 8, 8, 32]), tf.zeros([2, 256]),
    ...           tf.ones([2, 8, 8, 1]), training=True)
    """

    def __init__(self, channels, sentence_dim=256, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.sentence_dim = sentence_dim
        dtype = self.dtype_policy
        self.batch_norm = t2i_layers.torch_batch_norm(
            affine=False, dtype=dtype, name="batch_norm")
        self.gamma_hidden = t2i_layers.torch_dense(
            sentence_dim, _SSCBN_HIDDEN, dtype=dtype, name="gamma_hidden")
        self.gamma_out = t2i_layers.torch_dense(
            _SSCBN_HIDDEN, channels, zero_init=True, dtype=dtype,
            name="gamma_out")
        self.beta_hidden = t2i_layers.torch_dense(
            sentence_dim, _SSCBN_HIDDEN, dtype=dtype, name="beta_hidden")
        self.beta_out = t2i_layers.torch_dense(
            _SSCBN_HIDDEN, channels, zero_init=True, dtype=dtype,
            name="beta_out")

    def build(self, input_shape):
        self.batch_norm.build((None, None, None, self.channels))
        for hidden, out in ((self.gamma_hidden, self.gamma_out),
                            (self.beta_hidden, self.beta_out)):
            hidden.build((None, self.sentence_dim))
            out.build((None, _SSCBN_HIDDEN))

    def call(self, x, sentence_embedding, fusion_mask, training=None):
        h = self.batch_norm(x, training=training)
        gamma = self.gamma_out(tf.nn.relu(self.gamma_hidden(sentence_embedding)))
        beta = self.beta_out(tf.nn.relu(self.beta_hidden(sentence_embedding)))
        gamma = gamma[:, None, None, :]
        beta = beta[:, None, None, :]
        fusion_mask = tf.cast(fusion_mask, h.dtype)
        return h * (1.0 + fusion_mask * gamma) + fusion_mask * beta

    def get_config(self):
        config = super().get_config()
        config.update(
            {"channels": self.channels, "sentence_dim": self.sentence_dim})
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class MaskPredictor(keras.layers.Layer):
    """SSA-GAN's mask predictor (`conv_mask`): one logit per pixel.

    conv3x3 C -> hidden, BN, ReLU, conv1x1 hidden -> 1; all convs with bias.

    Shapes: [B, H, W, C] -> logits [B, H, W, 1].

    Args:
        in_channels: int, C.
        hidden_channels: int, width of the hidden layer (100 in the reference).
        **kwargs: `keras.layers.Layer` arguments.

    Example:
    >>> logits = MaskPredictor(16)(tf.zeros([2, 4, 4, 16]), training=False)
    """

    def __init__(self, in_channels, hidden_channels=100, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        dtype = self.dtype_policy
        self.conv_hidden = t2i_layers.torch_conv2d(
            in_channels, hidden_channels, 3, dtype=dtype, name="conv_hidden")
        self.batch_norm = t2i_layers.torch_batch_norm(
            dtype=dtype, name="batch_norm")
        self.conv_logits = t2i_layers.torch_conv2d(
            hidden_channels, 1, 1, dtype=dtype, name="conv_logits")

    def build(self, input_shape):
        self.conv_hidden.build((None, None, None, self.in_channels))
        self.batch_norm.build((None, None, None, self.hidden_channels))
        self.conv_logits.build((None, None, None, self.hidden_channels))

    def call(self, x, training=None):
        h = self.conv_hidden(x)
        h = tf.nn.relu(self.batch_norm(h, training=training))
        return self.conv_logits(h)

    def get_config(self):
        config = super().get_config()
        config.update({"in_channels": self.in_channels,
                       "hidden_channels": self.hidden_channels})
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class SSAGANBlock(keras.layers.Layer):
    """SSA-GAN generator block (`G_Block`), at a fixed resolution.

    `out = shortcut(x) + gamma * residual(x)`, with gamma a scalar starting at
    `gate_init` (0 in the reference), shortcut a 1x1 conv only when the width changes, and residual
    SSCBN -> ReLU -> conv3x3 -> SSCBN -> ReLU -> conv3x3, both SSCBNs gated by
    the same mask. With `predict_mask` a `MaskPredictor` on `out` gives the
    mask logits for the next block.

    Shapes: x [B, H, W, C_in], sentence_embedding [B, D], fusion_mask
    [B, H, W, 1] -> (out [B, H, W, C_out], mask logits [B, H, W, 1] or None).

    Args:
        in_channels: int.
        out_channels: int.
        sentence_dim: int, D.
        mask_channels: int, hidden width of the mask predictor.
        predict_mask: bool.
        gate_init: float, the initial gamma.
        **kwargs: `keras.layers.Layer` arguments.

    Example:
    >>> block = SSAGANBlock(16, 8)
    >>> out, logits = block(tf.zeros([2, 8, 8, 16]), tf.zeros([2, 256]),
    ...                     tf.ones([2, 8, 8, 1]), training=True)
    """

    def __init__(self, in_channels, out_channels, sentence_dim=256,
                 mask_channels=100, predict_mask=True, gate_init=0.0, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.sentence_dim = sentence_dim
        self.mask_channels = mask_channels
        self.predict_mask = predict_mask
        self.gate_init = float(gate_init)
        dtype = self.dtype_policy
        self.sscbn_in = SSCBN(in_channels, sentence_dim, dtype=dtype,
                              name="sscbn_in")
        self.conv_in = t2i_layers.torch_conv2d(
            in_channels, out_channels, 3, dtype=dtype, name="conv_in")
        self.sscbn_out = SSCBN(out_channels, sentence_dim, dtype=dtype,
                               name="sscbn_out")
        self.conv_out = t2i_layers.torch_conv2d(
            out_channels, out_channels, 3, dtype=dtype, name="conv_out")
        self.shortcut_conv = None
        if in_channels != out_channels:
            self.shortcut_conv = t2i_layers.torch_conv2d(
                in_channels, out_channels, 1, dtype=dtype, name="shortcut_conv")
        self.mask_predictor = None
        if predict_mask:
            self.mask_predictor = MaskPredictor(
                out_channels, mask_channels, dtype=dtype, name="mask_predictor")

    def build(self, input_shape):
        in_shape = (None, None, None, self.in_channels)
        out_shape = (None, None, None, self.out_channels)
        self.sscbn_in.build(in_shape)
        self.conv_in.build(in_shape)
        self.sscbn_out.build(out_shape)
        self.conv_out.build(out_shape)
        if self.shortcut_conv is not None:
            self.shortcut_conv.build(in_shape)
        if self.mask_predictor is not None:
            self.mask_predictor.build(out_shape)
        self.gamma = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.gate_init),
            name="gamma")

    def call(self, x, sentence_embedding, fusion_mask, training=None):
        h = self.sscbn_in(x, sentence_embedding, fusion_mask, training=training)
        h = self.conv_in(tf.nn.relu(h))
        h = self.sscbn_out(h, sentence_embedding, fusion_mask,
                           training=training)
        h = self.conv_out(tf.nn.relu(h))
        shortcut = x if self.shortcut_conv is None else self.shortcut_conv(x)
        out = shortcut + tf.cast(self.gamma, h.dtype) * h
        logits = None
        if self.mask_predictor is not None:
            logits = self.mask_predictor(out, training=training)
        return out, logits

    def get_config(self):
        config = super().get_config()
        config.update({
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "sentence_dim": self.sentence_dim,
            "mask_channels": self.mask_channels,
            "predict_mask": self.predict_mask,
            "gate_init": self.gate_init,
        })
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class SSAGANGenerator(keras.Model):
    """SSA-GAN generator (`NetG`): noise and sentence to image and masks.

    fc(z) -> 4x4x(8ngf) -> G blocks, each but the first after a nearest x2
    upsampling -> BN -> LeakyReLU(0.2) -> conv3x3 -> tanh. The first block is
    gated by a mask predicted from the fc output; block k > 0 by the sigmoid
    of block k-1's mask logits, bilinearly resized (align_corners=True) to
    block k's resolution. Upsampling doubles the resolution from 4 px, so
    `image_size` fixes the number of blocks (see the module docstring).

    Shapes: z [B, z_dim], sentence_embedding [B, sentence_dim] ->
    (images [B, S, S, 3] float32 in [-1, 1], masks: list of float32
    [B, 4 * 2^k, 4 * 2^k, 1] in [0, 1], one per block, k = 0, 1, ...).

    Args:
        ngf: int, base width (64 in the reference).
        z_dim: int, noise size.
        sentence_dim: int, sentence embedding size.
        image_size: int, S; one of 64, 128, 256.
        mask_channels: int, hidden width of the mask predictors.
        residual_gate_init: float, initial gamma of every block (reference: 0).
        **kwargs: `keras.Model` arguments (name, dtype, ...).

    Example:
    >>> generator = SSAGANGenerator(ngf=8, image_size=64)
    >>> images, masks = generator(tf.random.normal([2, 100]),
    ...                           tf.random.normal([2, 256]), training=False)
    >>> images.shape, len(masks)
    (TensorShape([2, 64, 64, 3]), 5)
    """

    def __init__(self, ngf=64, z_dim=100, sentence_dim=256, image_size=256,
                 mask_channels=100, residual_gate_init=0.0, **kwargs):
        super().__init__(**kwargs)
        log_size = _check_image_size(image_size)
        self.residual_gate_init = float(residual_gate_init)
        self.ngf = ngf
        self.z_dim = z_dim
        self.sentence_dim = sentence_dim
        self.image_size = image_size
        self.mask_channels = mask_channels
        dtype = self.dtype_policy

        # Layers.
        num_blocks = log_size - 1  # 4 px doubled (num_blocks - 1) times.
        widths = _GENERATOR_WIDTHS[:num_blocks]
        self.fc = t2i_layers.torch_dense(
            z_dim, 8 * ngf * 4 * 4, dtype=dtype, name="fc")
        self.initial_mask_predictor = MaskPredictor(
            8 * ngf, mask_channels, dtype=dtype, name="initial_mask_predictor")
        self.blocks = [
            SSAGANBlock(w_in * ngf, w_out * ngf, sentence_dim, mask_channels,
                        predict_mask=i < num_blocks - 1,
                        gate_init=residual_gate_init, dtype=dtype, name=f"block{i}")
            for i, (w_in, w_out) in enumerate(widths)
        ]
        self.image_channels = widths[-1][1] * ngf
        self.image_batch_norm = t2i_layers.torch_batch_norm(
            dtype=dtype, name="image_batch_norm")
        self.image_conv = t2i_layers.torch_conv2d(
            self.image_channels, 3, 3, dtype=dtype, name="image_conv")

    def build(self, input_shape=None):
        # Every shape follows from the config, so the input shape is unused.
        self.fc.build((None, self.z_dim))
        self.initial_mask_predictor.build((None, 4, 4, 8 * self.ngf))
        for block in self.blocks:
            block.build((None, None, None, block.in_channels))
        image_shape = (None, None, None, self.image_channels)
        self.image_batch_norm.build(image_shape)
        self.image_conv.build(image_shape)

    def call(self, z, sentence_embedding=None, training=None):
        if sentence_embedding is None:
            z, sentence_embedding = z
        x = self.fc(z)
        # torch's .view(B, C, 4, 4) then NHWC, so fc weights import unchanged.
        x = tf.reshape(x, [-1, 8 * self.ngf, 4, 4])
        x = tf.transpose(x, [0, 2, 3, 1])  # [B, 4, 4, 8ngf]
        logits = self.initial_mask_predictor(x, training=training)
        masks = []
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = t2i_layers.upsample_nearest_2x(x)
                resolution = 4 * 2 ** i
                # The reference resizes the logits, then applies the sigmoid.
                logits = t2i_layers.resize_bilinear_align_corners(
                    logits, (resolution, resolution))
            fusion_mask = tf.sigmoid(logits)
            masks.append(fusion_mask)
            x, logits = block(x, sentence_embedding, fusion_mask,
                              training=training)
        h = self.image_batch_norm(x, training=training)
        h = self.image_conv(tf.nn.leaky_relu(h, alpha=0.2))
        # Losses and image export expect float32 whatever the policy.
        images = tf.tanh(tf.cast(h, tf.float32))
        return images, [tf.cast(m, tf.float32) for m in masks]

    def get_config(self):
        config = super().get_config()
        config.update({
            "ngf": self.ngf,
            "z_dim": self.z_dim,
            "sentence_dim": self.sentence_dim,
            "image_size": self.image_size,
            "mask_channels": self.mask_channels,
            "residual_gate_init": self.residual_gate_init,
        })
        return config


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
    `training` changes nothing; it is accepted for a uniform API.

    Shapes: images [B, S, S, 3] -> features [B, 4, 4, 16 * ndf];
    `logits(features, sentence_embedding [B, sentence_dim])` -> [B] float32.

    Args:
        ndf: int, base width (64 in the reference).
        sentence_dim: int, sentence embedding size.
        image_size: int, S; one of 64, 128, 256.
        residual_gate_init: float, initial gamma of every block (reference: 0).
        **kwargs: `keras.Model` arguments (name, dtype, ...).

    Example:
    >>> discriminator = SSAGANDiscriminator(ndf=8, image_size=64)
    >>> features = discriminator(tf.zeros([2, 64, 64, 3]))
    >>> logits = discriminator.logits(features, tf.zeros([2, 256]))
    >>> features.shape, logits.shape
    (TensorShape([2, 4, 4, 128]), TensorShape([2]))
    """

    def __init__(self, ndf=64, sentence_dim=256, image_size=256,
                 residual_gate_init=0.0, **kwargs):
        super().__init__(**kwargs)
        log_size = _check_image_size(image_size)
        self.residual_gate_init = float(residual_gate_init)
        self.ndf = ndf
        self.sentence_dim = sentence_dim
        self.image_size = image_size
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

    def build(self, input_shape=None):
        # The head is built here too, so optimizers and checkpoints see all
        # weights before the first `logits` call.
        self.image_conv.build((None, None, None, 3))
        for block in self.blocks:
            block.build((None, None, None, block.in_channels))
        self.head.build((None, 4, 4, 16 * self.ndf))

    def call(self, images, training=None):
        x = self.image_conv(images)
        for block in self.blocks:
            x = block(x)
        return x

    def logits(self, features, sentence_embedding):
        """Conditional logits [B] float32 of features from `call`."""
        return self.head(features, sentence_embedding)

    def score(self, images, sentence_embedding, training=None):
        """`logits(self(images), sentence_embedding)`, e.g. for MA-GP."""
        return self.logits(self(images, training=training), sentence_embedding)

    def get_config(self):
        config = super().get_config()
        config.update({
            "ndf": self.ndf,
            "sentence_dim": self.sentence_dim,
            "image_size": self.image_size,
            "residual_gate_init": self.residual_gate_init,
        })
        return config
