"""SSA-GAN generator: noise and sentence to image, with its semantic masks.

Follows the official PyTorch code (wtliao/text2image, model.py: NetG, G_Block,
affine) at its default configuration. Tensors are NHWC; weights convert from that
code by transposing torch's OIHW conv weights to HWIO and Linear weights to
[in, out]. The generator's fc output is read in torch's (C, H, W) order, so its
weights need no permutation either.

Smaller image sizes truncate the reference block list: 256 px runs all seven G
blocks, 128 px the first six and 64 px the first five; the output head then sits
on the last kept block, so its width is that block's output width (ngf at 256,
2*ngf at 128, 4*ngf at 64). The discriminator is in `ssagan_discriminator`.
"""

import math

import keras
import tensorflow as tf

from tf_t2i.models import layers as t2i_layers
from tf_t2i.models import word_context as word_context_lib

SUPPORTED_IMAGE_SIZES = (64, 128, 256)

# (in, out) width multipliers of NetG's block0..block6, at 4, 8, ..., 256 px.
_GENERATOR_WIDTHS = ((8, 8), (8, 8), (8, 8), (8, 8), (8, 4), (4, 2), (2, 1))

# Width of the hidden layer of the SSCBN MLPs (Linear(256, 256) in `affine`).
_SSCBN_HIDDEN = 256


def check_image_size(image_size):
    """log2 of `image_size`; raises ValueError unless SSA-GAN supports the size."""
    if image_size not in SUPPORTED_IMAGE_SIZES:
        raise ValueError(
            f"image_size must be one of {SUPPORTED_IMAGE_SIZES}, got "
            f"{image_size}.")
    return int(math.log2(image_size))


def block_channels(ngf, num_blocks, low_res_ngf=0, low_res_max_size=0):
    """fc's width and each G block's (in, out) channels.

    The reference's widths are `_GENERATOR_WIDTHS` times ngf. With `low_res_ngf` > 0
    the blocks at `low_res_max_size` px and below (and fc, at 4 px) take their
    multipliers times `low_res_ngf` instead; each block reads what the one before it
    wrote, so the first block above that size narrows to ngf.
    """
    def base(resolution):
        wide = low_res_ngf > 0 and resolution <= low_res_max_size
        return low_res_ngf if wide else ngf

    fc_channels = _GENERATOR_WIDTHS[0][0] * base(4)
    channels, previous = [], fc_channels
    for i, (_, w_out) in enumerate(_GENERATOR_WIDTHS[:num_blocks]):
        out = w_out * base(4 * 2 ** i)
        channels.append((previous, out))
        previous = out
    return fc_channels, channels


@keras.saving.register_keras_serializable(package="tf_t2i")
class SSCBN(keras.layers.Layer):
    """Semantic-spatial conditional batch normalisation (SSA-GAN's `affine`).

    `h = BN(x) * (1 + m * gamma(s)) + m * beta(s)`, where BN has no affine
    parameters, m is a one-channel spatial mask broadcast over channels and
    gamma, beta are separate MLPs Linear(D, 256) -> ReLU -> Linear(256, C) on
    the sentence embedding. Their last layers start at zero, so at
    initialisation the layer is a plain batch normalisation. With
    `context_dim` > 0 (not in the reference) gamma and beta each add a
    per-pixel linear map of a word context [B, H, W, context_dim] (see
    `word_context`), also starting at zero.

    Shapes: x [B, H, W, C], sentence_embedding [B, D], fusion_mask
    [B, H, W, 1] in [0, 1], word_context [B, H, W, context_dim] or None ->
    [B, H, W, C].

    Args:
        channels: int, C.
        sentence_dim: int, D.
        context_dim: int, width of the word context; 0 for none.
        **kwargs: `keras.layers.Layer` arguments.

    Example:
    >>> layer = SSCBN(channels=32)
    >>> h = layer(tf.zeros([2, 8, 8, 32]), tf.zeros([2, 256]),
    ...           tf.ones([2, 8, 8, 1]), training=True)
    """

    def __init__(self, channels, sentence_dim=256, context_dim=0, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.sentence_dim = sentence_dim
        self.context_dim = context_dim
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
        self.gamma_word = self.beta_word = None
        if context_dim:
            # One linear layer, not the sentence's MLP: it runs at every pixel.
            self.gamma_word = t2i_layers.torch_dense(
                context_dim, channels, zero_init=True, dtype=dtype, name="gamma_word")
            self.beta_word = t2i_layers.torch_dense(
                context_dim, channels, zero_init=True, dtype=dtype, name="beta_word")

    def build(self, input_shape):
        self.batch_norm.build((None, None, None, self.channels))
        for hidden, out in ((self.gamma_hidden, self.gamma_out),
                            (self.beta_hidden, self.beta_out)):
            hidden.build((None, self.sentence_dim))
            out.build((None, _SSCBN_HIDDEN))
        if self.context_dim:
            self.gamma_word.build((None, self.context_dim))
            self.beta_word.build((None, self.context_dim))

    def call(self, x, sentence_embedding, fusion_mask, word_context=None,
             training=None):
        h = self.batch_norm(x, training=training)
        gamma = self.gamma_out(tf.nn.relu(self.gamma_hidden(sentence_embedding)))
        beta = self.beta_out(tf.nn.relu(self.beta_hidden(sentence_embedding)))
        gamma = gamma[:, None, None, :]
        beta = beta[:, None, None, :]
        if self.context_dim:
            if word_context is None:
                raise ValueError(f"{self.name} reads a word context: pass word_context.")
            gamma = gamma + self.gamma_word(word_context)
            beta = beta + self.beta_word(word_context)
        fusion_mask = tf.cast(fusion_mask, h.dtype)
        return h * (1.0 + fusion_mask * gamma) + fusion_mask * beta

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "sentence_dim": self.sentence_dim,
                       "context_dim": self.context_dim})
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
    mask logits for the next block. With `word_dim` > 0 (not in the reference)
    each pixel of x attends over the words (`word_context.WordContext`, width
    C_in) and both SSCBNs read that context as well as the sentence.

    Shapes: x [B, H, W, C_in], sentence_embedding [B, D], fusion_mask
    [B, H, W, 1], words [B, T, word_dim] and word_mask bool [B, T] when
    word_dim > 0 -> (out [B, H, W, C_out], mask logits [B, H, W, 1] or None).

    Args:
        in_channels: int.
        out_channels: int.
        sentence_dim: int, D.
        mask_channels: int, hidden width of the mask predictor.
        predict_mask: bool.
        gate_init: float, the initial gamma.
        word_dim: int, width of the word features; 0: no word attention.
        word_coords: bool, the word attention's queries read each pixel's (x, y) too.
        **kwargs: `keras.layers.Layer` arguments.

    Example:
    >>> block = SSAGANBlock(16, 8)
    >>> out, logits = block(tf.zeros([2, 8, 8, 16]), tf.zeros([2, 256]),
    ...                     tf.ones([2, 8, 8, 1]), training=True)
    """

    def __init__(self, in_channels, out_channels, sentence_dim=256,
                 mask_channels=100, predict_mask=True, gate_init=0.0, word_dim=0,
                 word_coords=False, **kwargs):
        super().__init__(**kwargs)
        self.word_dim = word_dim
        self.word_coords = bool(word_coords)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.sentence_dim = sentence_dim
        self.mask_channels = mask_channels
        self.predict_mask = predict_mask
        self.gate_init = float(gate_init)
        dtype = self.dtype_policy
        context_dim = in_channels if word_dim else 0
        self.word_context = None
        if word_dim:
            self.word_context = word_context_lib.WordContext(
                in_channels, word_dim, context_dim, coords=self.word_coords, dtype=dtype,
                name="word_context")
        self.sscbn_in = SSCBN(in_channels, sentence_dim, context_dim, dtype=dtype,
                              name="sscbn_in")
        self.conv_in = t2i_layers.torch_conv2d(
            in_channels, out_channels, 3, dtype=dtype, name="conv_in")
        self.sscbn_out = SSCBN(out_channels, sentence_dim, context_dim, dtype=dtype,
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
        if self.word_context is not None:
            self.word_context.build()
        self.gamma = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.gate_init),
            name="gamma")

    def call(self, x, sentence_embedding, fusion_mask, words=None, word_mask=None,
             training=None):
        context = None
        if self.word_context is not None:
            if words is None or word_mask is None:
                raise ValueError(f"{self.name} attends over words: pass words and word_mask.")
            context, _ = self.word_context(x, words, word_mask)
        h = self.sscbn_in(x, sentence_embedding, fusion_mask, context,
                          training=training)
        h = self.conv_in(tf.nn.relu(h))
        h = self.sscbn_out(h, sentence_embedding, fusion_mask, context,
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
            "word_dim": self.word_dim,
            "word_coords": self.word_coords,
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

    Shapes: z [B, z_dim], sentence_embedding [B, sentence_dim], and with
    `word_attention_max_size` > 0 words [B, T, sentence_dim] and word_mask bool [B, T] ->
    (images [B, S, S, 3] float32 in [-1, 1], masks: list of float32
    [B, 4 * 2^k, 4 * 2^k, 1] in [0, 1], one per block, k = 0, 1, ...).

    Args:
        ngf: int, base width (64 in the reference).
        z_dim: int, noise size.
        sentence_dim: int, sentence embedding size.
        image_size: int, S; one of 64, 128, 256.
        mask_channels: int, hidden width of the mask predictors.
        low_res_ngf: int; when > 0, the base width of fc and of the blocks at
            `low_res_max_size` px and below (the reference: ngf everywhere). Those
            blocks lay out the objects on few pixels, so widening them costs little
            of a step whose time is in the 32 and 64 px blocks.
        low_res_max_size: int, px; see `low_res_ngf`.
        residual_gate_init: float, initial gamma of every block (reference: 0).
        noise_in_affine: bool; when true every SSCBN reads [sentence, z] instead
            of the sentence alone (the reference: false). In the reference z
            enters only through fc, and a short run can learn to ignore it (one
            image per caption); this gives z a path into every block, as
            BigGAN's conditional batch norms read [class embedding, z chunk]
            (Brock et al. 2019, Sec. 3 "hierarchical latent spaces").
        sentence_in_fc: bool; when true fc reads [z, sentence] instead of z
            alone (the reference: false). In the reference the sentence acts
            only by channel-wise affines, the same at every pixel of a mask, so
            where each object goes must come from fc's z-only 4x4 map; this
            lets the text lay out the 4x4 map itself, as the first stage of
            StackGAN and AttnGAN reads [z, condition] (Zhang et al. 2017,
            Sec. 4.1; Xu et al. 2018, Sec. 2.1).
        word_attention_max_size: int, px; the blocks at this resolution and
            below attend over the words and their SSCBNs add a per-pixel affine
            read from that context (`word_context`); 0: none (the reference:
            the sentence alone). One sentence vector must otherwise carry every
            object of the caption, and all objects under one mask get the same
            affine. The attention's cost grows with the pixel count, so the
            largest blocks can be left out.
        word_attention_coords: bool; the attention's queries also read each
            pixel's (x, y) (`word_context.coordinate_grid`).
        **kwargs: `keras.Model` arguments (name, dtype, ...).

    Example:
    >>> generator = SSAGANGenerator(ngf=8, image_size=64)
    >>> images, masks = generator(tf.random.normal([2, 100]),
    ...                           tf.random.normal([2, 256]), training=False)
    >>> images.shape, len(masks)
    (TensorShape([2, 64, 64, 3]), 5)
    """

    def __init__(self, ngf=64, z_dim=100, sentence_dim=256, image_size=256,
                 mask_channels=100, residual_gate_init=0.0, noise_in_affine=False,
                 sentence_in_fc=False, word_attention_max_size=0, low_res_ngf=0,
                 low_res_max_size=0, word_attention_coords=False, **kwargs):
        super().__init__(**kwargs)
        self.word_attention_max_size = int(word_attention_max_size)
        self.word_attention_coords = bool(word_attention_coords)
        log_size = check_image_size(image_size)
        self.residual_gate_init = float(residual_gate_init)
        self.noise_in_affine = bool(noise_in_affine)
        self.sentence_in_fc = bool(sentence_in_fc)
        self.ngf = ngf
        self.low_res_ngf = int(low_res_ngf)
        self.low_res_max_size = int(low_res_max_size)
        self.z_dim = z_dim
        self.sentence_dim = sentence_dim
        self.image_size = image_size
        self.mask_channels = mask_channels
        dtype = self.dtype_policy

        # Layers.
        num_blocks = log_size - 1  # 4 px doubled (num_blocks - 1) times.
        self.fc_channels, channels = block_channels(ngf, num_blocks, self.low_res_ngf,
                                                    self.low_res_max_size)
        self.fc_input_dim = z_dim + (sentence_dim if self.sentence_in_fc else 0)
        self.fc = t2i_layers.torch_dense(
            self.fc_input_dim, self.fc_channels * 4 * 4, dtype=dtype, name="fc")
        self.initial_mask_predictor = MaskPredictor(
            self.fc_channels, mask_channels, dtype=dtype, name="initial_mask_predictor")
        affine_dim = sentence_dim + (z_dim if self.noise_in_affine else 0)
        self.blocks = [
            SSAGANBlock(c_in, c_out, affine_dim, mask_channels,
                        predict_mask=i < num_blocks - 1,
                        gate_init=residual_gate_init,
                        word_dim=sentence_dim if self.attends_at(4 * 2 ** i) else 0,
                        word_coords=self.word_attention_coords, dtype=dtype, name=f"block{i}")
            for i, (c_in, c_out) in enumerate(channels)
        ]
        self.image_channels = channels[-1][1]
        self.image_batch_norm = t2i_layers.torch_batch_norm(
            dtype=dtype, name="image_batch_norm")
        self.image_conv = t2i_layers.torch_conv2d(
            self.image_channels, 3, 3, dtype=dtype, name="image_conv")

    def build(self, input_shape=None):
        # Every shape follows from the config, so the input shape is unused.
        self.fc.build((None, self.fc_input_dim))
        self.initial_mask_predictor.build((None, 4, 4, self.fc_channels))
        for block in self.blocks:
            block.build((None, None, None, block.in_channels))
        image_shape = (None, None, None, self.image_channels)
        self.image_batch_norm.build(image_shape)
        self.image_conv.build(image_shape)

    @property
    def reads_words(self):
        """Read by `interface.reads_words`: the call needs words and word_mask."""
        return self.word_attention_max_size > 0

    def attends_at(self, resolution):
        """Whether the block at `resolution` px attends over the words."""
        return 0 < resolution <= self.word_attention_max_size

    def call(self, z, sentence_embedding=None, words=None, word_mask=None,
             training=None):
        if sentence_embedding is None:
            z, sentence_embedding = z
        if self.reads_words and (words is None or word_mask is None):
            raise ValueError(f"{self.name} attends over words: pass words and word_mask.")
        fc_input = z
        if self.sentence_in_fc:
            fc_input = tf.concat([z, tf.cast(sentence_embedding, z.dtype)], axis=-1)
        x = self.fc(fc_input)
        # torch's .view(B, C, 4, 4) then NHWC, so fc weights import unchanged.
        x = tf.reshape(x, [-1, self.fc_channels, 4, 4])
        x = tf.transpose(x, [0, 2, 3, 1])  # [B, 4, 4, fc_channels] (8 ngf in the reference)
        logits = self.initial_mask_predictor(x, training=training)
        if self.noise_in_affine:
            sentence_embedding = tf.concat(
                [sentence_embedding, tf.cast(z, sentence_embedding.dtype)], axis=-1)
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
            x, logits = block(x, sentence_embedding, fusion_mask, words, word_mask,
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
            "noise_in_affine": self.noise_in_affine,
            "sentence_in_fc": self.sentence_in_fc,
            "word_attention_max_size": self.word_attention_max_size,
            "word_attention_coords": self.word_attention_coords,
            "low_res_ngf": self.low_res_ngf,
            "low_res_max_size": self.low_res_max_size,
        })
        return config
