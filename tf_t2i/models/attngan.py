"""AttnGAN generator and its three stage discriminators.

Follows the official PyTorch code (taoxugit/AttnGAN code/model.py and
GlobalAttention.py). Tensors are NHWC (convolutions OIHW -> HWIO, Linear
weights [in, out]; the 1x1 word projection is a dense layer). Almost every
convolution of the reference has `bias=False`, and so has it here.

The number of generator stages follows from the image size: 64 px -> 1
(INIT_STAGE_G only), 128 -> 2, 256 -> 3; one discriminator per stage, each
seeing that stage's resolution.

Deviations, harmless to a weight import: the discriminator heads return
logits (the reference: sigmoid + BCELoss); padding words are masked per
sample (the reference's `mask.repeat(queryL, 1)` pairs rows of different
samples when a batch mixes caption lengths).
"""

import keras
import tensorflow as tf

from tf_t2i.models import layers as t2i_layers
from tf_t2i.models import style_layers

_STAGE_SIZES = {64: 1, 128: 2, 256: 3}

# Finite stand-in for -inf in the attention softmax (exp underflows to 0 in
# float32); a caption with no words gives uniform weights instead of NaN.
_MASK_LOGIT = -1e9


def num_stages_for(image_size):
    """Generator stages (and discriminators) for a final image size."""
    if image_size not in _STAGE_SIZES:
        raise ValueError(
            f"image_size must be one of {tuple(_STAGE_SIZES)}, got "
            f"{image_size}.")
    return _STAGE_SIZES[image_size]


def _conv3x3(in_channels, filters, dtype, name):
    return t2i_layers.torch_conv2d(
        in_channels, filters, 3, use_bias=False, dtype=dtype, name=name)


@keras.saving.register_keras_serializable(package="tf_t2i")
class ConditioningAugmentation(keras.layers.Layer):
    """AttnGAN's `CA_NET`: sentence -> (c, mu, logvar).

    Linear(D, 4c) with bias, GLU -> 2c, split into mu and logvar;
    c = mu + exp(logvar / 2) * noise.

    Shapes: sentence_embedding [B, D], noise [B, c] -> three [B, c].

    Args:
        sentence_dim: int, D.
        condition_dim: int, c.
        **kwargs: `keras.layers.Layer` arguments.

    """

    def __init__(self, sentence_dim=256, condition_dim=100, **kwargs):
        super().__init__(**kwargs)
        self.sentence_dim = sentence_dim
        self.condition_dim = condition_dim
        self.fc = t2i_layers.torch_dense(
            sentence_dim, 4 * condition_dim, dtype=self.dtype_policy,
            name="fc")

    def build(self, input_shape=None):
        self.fc.build((None, self.sentence_dim))

    def call(self, sentence_embedding, noise):
        x = t2i_layers.glu(self.fc(sentence_embedding))
        mu, logvar = tf.split(x, 2, axis=-1)
        c = mu + tf.exp(0.5 * logvar) * tf.cast(noise, mu.dtype)
        return c, mu, logvar

    def get_config(self):
        config = super().get_config()
        config.update({"sentence_dim": self.sentence_dim,
                       "condition_dim": self.condition_dim})
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class WordAttention(keras.layers.Layer):
    """AttnGAN's `GlobalAttentionGeneral`: a word context for every pixel.

    Words are projected to the image width (1x1 conv without bias); pixel
    features score every word by a dot product, a softmax over the real words
    (padding masked out) weights the projected words.

    Shapes: h [B, H, W, C], word_features [B, T, D], word_mask [B, T] (True or
    1 for a real word) -> (context [B, H, W, C], attention [B, H, W, T]
    float32, summing to 1 over T).

    Args:
        channels: int, C.
        word_dim: int, D.
        **kwargs: `keras.layers.Layer` arguments.

    """

    def __init__(self, channels, word_dim=256, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.word_dim = word_dim
        self.word_projection = t2i_layers.torch_dense(
            word_dim, channels, use_bias=False, dtype=self.dtype_policy,
            name="word_projection")

    def build(self, input_shape=None):
        self.word_projection.build((None, None, self.word_dim))

    def call(self, h, word_features, word_mask):
        _, height, width, channels = h.shape
        batch = tf.shape(h)[0]
        words = self.word_projection(tf.cast(word_features, h.dtype))
        query = tf.reshape(h, [batch, height * width, channels])
        # Scores and softmax in float32: padding logits must stay finite and
        # far below the others under bfloat16 too.
        scores = tf.matmul(tf.cast(query, tf.float32),
                           tf.cast(words, tf.float32), transpose_b=True)
        real_word = tf.cast(word_mask, tf.bool)[:, None, :]  # [B, 1, T]
        scores = tf.where(real_word, scores, _MASK_LOGIT)
        weights = tf.nn.softmax(scores, axis=-1)  # [B, HW, T]
        context = tf.matmul(tf.cast(weights, h.dtype), words)
        context = tf.reshape(context, [batch, height, width, channels])
        weights = tf.reshape(weights, [batch, height, width, -1])
        return context, weights

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "word_dim": self.word_dim})
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class GLUConvBlock(keras.layers.Layer):
    """conv3x3 (no bias) to 2*out -> BN -> GLU, after an optional nearest x2.

    `upsample=True` is AttnGAN's `upBlock`, False its `Block3x3_relu`.

    Shapes: [B, H, W, in] -> [B, H or 2H, W or 2W, out].

    Args:
        in_channels: int.
        out_channels: int.
        upsample: bool.
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, in_channels, out_channels, upsample=True, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.upsample = upsample
        dtype = self.dtype_policy
        self.conv = _conv3x3(in_channels, 2 * out_channels, dtype, "conv")
        self.batch_norm = t2i_layers.torch_batch_norm(
            dtype=dtype, name="batch_norm")

    def build(self, input_shape=None):
        self.conv.build((None, None, None, self.in_channels))
        self.batch_norm.build((None, None, None, 2 * self.out_channels))

    def call(self, x, training=None):
        if self.upsample:
            x = t2i_layers.upsample_nearest_2x(x)
        x = self.batch_norm(self.conv(x), training=training)
        return t2i_layers.glu(x)

    def get_config(self):
        config = super().get_config()
        config.update({"in_channels": self.in_channels,
                       "out_channels": self.out_channels,
                       "upsample": self.upsample})
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class GLUResBlock(keras.layers.Layer):
    """AttnGAN's `ResBlock`: x + BN(conv(GLU(BN(conv(x))))).

    conv3x3 C -> 2C, BN, GLU, conv3x3 C -> C, BN; convolutions without bias.
    `equalized_lr=True` gives Style-AttnGAN's variant (`ex=True`): the same
    block with equalised-LR convolutions (gain sqrt(2)).

    Shapes: [B, H, W, C] -> [B, H, W, C].

    Args:
        channels: int, C.
        equalized_lr: bool.
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, channels, equalized_lr=False, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.equalized_lr = equalized_lr
        dtype = self.dtype_policy
        if equalized_lr:
            self.conv_in = style_layers.EqualizedConv2D(
                2 * channels, 3, use_bias=False, dtype=dtype, name="conv_in")
            self.conv_out = style_layers.EqualizedConv2D(
                channels, 3, use_bias=False, dtype=dtype, name="conv_out")
        else:
            self.conv_in = _conv3x3(channels, 2 * channels, dtype, "conv_in")
            self.conv_out = _conv3x3(channels, channels, dtype, "conv_out")
        self.batch_norm_in = t2i_layers.torch_batch_norm(
            dtype=dtype, name="batch_norm_in")
        self.batch_norm_out = t2i_layers.torch_batch_norm(
            dtype=dtype, name="batch_norm_out")

    def build(self, input_shape=None):
        shape = (None, None, None, self.channels)
        self.conv_in.build(shape)
        self.batch_norm_in.build((None, None, None, 2 * self.channels))
        self.conv_out.build(shape)
        self.batch_norm_out.build(shape)

    def call(self, x, training=None):
        h = self.batch_norm_in(self.conv_in(x), training=training)
        h = self.conv_out(t2i_layers.glu(h))
        return x + self.batch_norm_out(h, training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels,
                       "equalized_lr": self.equalized_lr})
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class AttnGANGenerator(keras.Model):
    """AttnGAN generator (`G_NET`): noise, sentence and words to images.

    Stage 1 (`INIT_STAGE_G`): [c, z] -> Linear (no bias) to 16ngf*4*4*2 ->
    BN -> GLU, read as (16ngf, 4, 4) in torch's order, then four up-blocks to
    ngf channels at 64 px. Each later stage (`NEXT_STAGE_G`): word attention
    at the current resolution, concat [h, context], `num_residual` GLU
    residual blocks on 2ngf channels, an up-block to ngf at twice the size.
    Every stage has its image head, conv3x3 ngf -> 3 (no bias) + tanh.

    Call: `generator(z, sentence_embedding, word_features, word_mask,
    training=False, ca_noise=None, noise_seed=None)` with z [B, z_dim],
    sentence_embedding [B, sentence_dim], word_features [B, T, sentence_dim],
    word_mask [B, T] (True for real words) and the optional CA noise
    [B, condition_dim] (when None, drawn from the model's seed generator, or
    statelessly from `noise_seed`, an int [2] tensor) returns a dict:
    - `images`: list of float32 [B, 64 * 2^i, 64 * 2^i, 3] in [-1, 1], one per
      stage, the last at `image_size`;
    - `attention`: list of float32 [B, S_i, S_i, T] word weights, one per
      stage after the first (S_i = input resolution of that stage);
    - `mu`, `logvar`: [B, condition_dim] float32 for the KL loss.

    Args:
        ngf: int, base width (GAN.GF_DIM: 32 CUB, 48 COCO).
        z_dim: int.
        condition_dim: int (GAN.CONDITION_DIM).
        sentence_dim: int, text embedding size (words and sentence).
        num_residual: int, residual blocks per later stage (GAN.R_NUM: 2 CUB,
            3 COCO).
        image_size: int, 64, 128 or 256.
        seed: optional int for the CA noise seed generator.
        **kwargs: `keras.Model` arguments (name, dtype, ...).

    Example:
    >>> generator = AttnGANGenerator(ngf=4, image_size=128)
    >>> out = generator(tf.zeros([2, 100]), tf.zeros([2, 256]),
    ...                 tf.zeros([2, 5, 256]), tf.ones([2, 5]))
    >>> [image.shape[1] for image in out["images"]]
    [64, 128]
    """

    # Read by `interface.conditions_on_words`: the call takes words and mask.
    conditions_on_words = True

    def __init__(self, ngf=32, z_dim=100, condition_dim=100, sentence_dim=256,
                 num_residual=2, image_size=256, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_stages = num_stages_for(image_size)
        self.ngf = ngf
        self.z_dim = z_dim
        self.condition_dim = condition_dim
        self.sentence_dim = sentence_dim
        self.num_residual = num_residual
        self.image_size = image_size
        self.seed = seed
        dtype = self.dtype_policy

        # Layers.
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed")
        self.ca = ConditioningAugmentation(
            sentence_dim, condition_dim, dtype=dtype, name="ca")
        init_width = 16 * ngf
        self.init_fc = t2i_layers.torch_dense(
            z_dim + condition_dim, 2 * init_width * 16, use_bias=False,
            dtype=dtype, name="init_fc")
        self.init_batch_norm = t2i_layers.torch_batch_norm(
            dtype=dtype, name="init_batch_norm")
        self.init_up_blocks = [
            GLUConvBlock(init_width // 2 ** i, init_width // 2 ** (i + 1),
                         dtype=dtype, name=f"init_up{i}")
            for i in range(4)
        ]
        self.attentions, self.residual_stacks, self.up_blocks = [], [], []
        for stage in range(1, self.num_stages):
            self.attentions.append(WordAttention(
                ngf, sentence_dim, dtype=dtype, name=f"stage{stage}_attention"))
            self.residual_stacks.append([
                GLUResBlock(2 * ngf, dtype=dtype,
                            name=f"stage{stage}_residual{i}")
                for i in range(num_residual)
            ])
            self.up_blocks.append(GLUConvBlock(
                2 * ngf, ngf, dtype=dtype, name=f"stage{stage}_up"))
        self.image_convs = [
            _conv3x3(ngf, 3, dtype, f"stage{stage}_image_conv")
            for stage in range(self.num_stages)
        ]

    def build(self, input_shape=None):
        # Every shape follows from the config, so the input shape is unused.
        self.ca.build()
        self.init_fc.build((None, self.z_dim + self.condition_dim))
        self.init_batch_norm.build((None, self.init_fc.units))
        for block in self.init_up_blocks:
            block.build()
        for attention, residuals, up_block in zip(
                self.attentions, self.residual_stacks, self.up_blocks):
            attention.build()
            for block in residuals:
                block.build()
            up_block.build()
        for conv in self.image_convs:
            conv.build((None, None, None, self.ngf))

    def call(self, z, sentence_embedding, word_features, word_mask,
             training=False, ca_noise=None, noise_seed=None):
        if ca_noise is None:
            draws = t2i_layers.RandomDraws(self.seed_generator, noise_seed)
            ca_noise = draws.normal((tf.shape(z)[0], self.condition_dim))
        c, mu, logvar = self.ca(sentence_embedding, ca_noise)
        x = self.init_fc(tf.concat([c, tf.cast(z, c.dtype)], axis=-1))
        x = t2i_layers.glu(self.init_batch_norm(x, training=training))
        # torch's .view(B, C, 4, 4), then NHWC, so fc weights import unchanged.
        x = tf.reshape(x, [-1, 16 * self.ngf, 4, 4])
        x = tf.transpose(x, [0, 2, 3, 1])
        for block in self.init_up_blocks:
            x = block(x, training=training)
        images = [self._image(0, x)]
        attention_maps = []
        for stage in range(1, self.num_stages):
            context, weights = self.attentions[stage - 1](
                x, word_features, word_mask)
            x = tf.concat([x, context], axis=-1)
            for block in self.residual_stacks[stage - 1]:
                x = block(x, training=training)
            x = self.up_blocks[stage - 1](x, training=training)
            images.append(self._image(stage, x))
            attention_maps.append(weights)
        return {"images": images, "attention": attention_maps,
                "mu": tf.cast(mu, tf.float32),
                "logvar": tf.cast(logvar, tf.float32)}

    def _image(self, stage, x):
        # Losses and image export expect float32 whatever the policy.
        return tf.tanh(tf.cast(self.image_convs[stage](x), tf.float32))

    def get_config(self):
        config = super().get_config()
        config.update({
            "ngf": self.ngf, "z_dim": self.z_dim,
            "condition_dim": self.condition_dim,
            "sentence_dim": self.sentence_dim,
            "num_residual": self.num_residual,
            "image_size": self.image_size, "seed": self.seed,
        })
        return config


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
                self.joint_conv = style_layers.EqualizedConv2D(
                    channels, 3, use_bias=False, dtype=dtype,
                    name="joint_conv")
            else:
                self.joint_conv = _conv3x3(
                    channels + sentence_dim, channels, dtype, "joint_conv")
            self.joint_batch_norm = t2i_layers.torch_batch_norm(
                dtype=dtype, name="joint_batch_norm")
        if equalized_lr:
            self.logits_conv = style_layers.EqualizedConv2D(
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
        num_stages_for(image_size)
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
            _conv3x3(w_in, w_out, dtype, f"block{i}_conv")
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
    sizes = [64 * 2 ** i for i in range(num_stages_for(image_size))]
    return [AttnGANDiscriminator(ndf, sentence_dim, size, dtype=dtype,
                                 name=f"discriminator{size}")
            for size in sizes]


def count_trainable_parameters(model):
    """Number of trainable scalars (BN moving statistics excluded).

    Builds the model first; comparable with PyTorch's
    `sum(p.numel() for p in m.parameters())`.
    """
    if not model.built:
        model.build()
    return sum(int(tf.size(w)) for w in model.trainable_weights)
