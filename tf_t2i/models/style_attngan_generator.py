"""Style-AttnGAN generators: StyleGAN1 (AdaIN) and StyleGAN2 (modulated) synthesis.

Style1AttnGAN follows sidward14/Style-AttnGAN (code/model.py: G_NET_STYLED,
INIT_STAGE_G_STYLED, NEXT_STAGE_G_STYLED, GET_IMAGE_G_STYLED,
D_NET_STYLED64/128/256) with gan-lab's mapping network and layers, at the
defaults of code/cfg/bird_attn2_style.yml. No public Style2AttnGAN exists;
Style2AttnGAN keeps everything of Style1AttnGAN but the synthesis layers and
the discriminator backbone, which are StyleGAN2's (NVlabs/stylegan2-ada-pytorch,
training/networks.py: modulated convolutions, skip toRGB, residual D blocks).

Shared by both generators:
- CA (AttnGAN's CA_NET) gives c; the mapping network maps [z, c] to w;
- one w per synthesis layer, `ws` [B, L, w_dim]. In training, with
  probability `mixing_probability` a second z (same c) gives w2, and the
  layers from a random crossover index in [1, L) use w2 (mixing
  regularisation). At sampling, `mixing_z` and `mixing_layer` do the same
  deliberately;
- the average w is tracked in training (EMA, `w_avg_beta`). At sampling,
  the truncation trick moves the w of every layer below
  `truncation_cutoff_stage` (stage s = resolution 4 * 2^s) toward it:
  w_avg + psi * (w - w_avg);
- the later stages keep AttnGAN's word attention and one GLU residual block
  (equalised convs, BatchNorm) before their styled layers;
- the stage widths: 4ngf at 4-32 px, 2ngf from 64 px on (the reference's
  G_NET_STYLED doubles GAN.GF_DIM, so ngf here is GF_DIM as in the yml).

Call, both generators: `generator(z, sentence_embedding, word_features,
word_mask, training=False, ca_noise=None, noise_seed=None,
truncation_psi=None, mixing_z=None, mixing_layer=None)` -> dict with
`images` (list of float32 [B, 64 * 2^i, 64 * 2^i, 3] in [-1, 1]), `attention`
(list of float32 [B, S, S, T]), `mu`, `logvar` ([B, condition_dim]) and `ws`
(float32 [B, L, w_dim], after mixing and truncation).

Deviations from Style-AttnGAN, documented where they live: the w average
starts at zero rather than at the first batch's mean (StyleGAN2's
`w_avg`); the second w of mixing regularisation is not detached (the
reference's `x2.detach()` stops its gradient into the mapping network;
StyleGAN's mixing does not). The discriminators are in
`style_attngan_discriminator`.
"""

import keras
import tensorflow as tf

from tf_t2i.models import adain_style_layer
from tf_t2i.models import attngan_blocks
from tf_t2i.models import equalized_layers
from tf_t2i.models import layers as t2i_layers
from tf_t2i.models import mapping_network
from tf_t2i.models import modulated_conv
from tf_t2i.models import style_ops


class _StyleAttnGANGenerator(keras.Model):
    """Conditioning, mapping, mixing, truncation and attention stages.

    Subclasses create the synthesis layers in `_create_synthesis()` (setting
    `self.layer_resolutions`, the resolution of each w index) and implement
    `_synthesize(ws, word_features, word_mask, draws, training)`.
    """

    # Read by `interface.conditions_on_words`: the call takes words and mask.
    conditions_on_words = True

    def __init__(self, ngf=32, z_dim=100, condition_dim=100, w_dim=100,
                 sentence_dim=256, image_size=256, mapping_layers=8,
                 mapping_lr_multiplier=0.01, mixing_probability=0.9,
                 w_avg_beta=0.995, truncation_psi=0.4,
                 truncation_cutoff_stage=4, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_stages = attngan_blocks.num_stages_for(image_size)
        if not 0.0 <= mixing_probability <= 1.0:
            raise ValueError(
                f"mixing_probability must be in [0, 1], got "
                f"{mixing_probability}.")
        self.ngf = ngf
        self.z_dim = z_dim
        self.condition_dim = condition_dim
        self.w_dim = w_dim
        self.sentence_dim = sentence_dim
        self.image_size = image_size
        self.mapping_layers = mapping_layers
        self.mapping_lr_multiplier = mapping_lr_multiplier
        self.mixing_probability = mixing_probability
        self.w_avg_beta = w_avg_beta
        self.truncation_psi = truncation_psi
        self.truncation_cutoff_stage = truncation_cutoff_stage
        self.seed = seed
        dtype = self.dtype_policy

        # Layers.
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed")
        self.ca = attngan_blocks.ConditioningAugmentation(
            sentence_dim, condition_dim, dtype=dtype, name="ca")
        self.mapping = mapping_network.MappingNetwork(
            z_dim, condition_dim, w_dim, mapping_layers,
            mapping_lr_multiplier, dtype=dtype, name="mapping")
        self.attentions = [
            attngan_blocks.WordAttention(2 * ngf, sentence_dim, dtype=dtype,
                                         name=f"stage{stage}_attention")
            for stage in range(1, self.num_stages)
        ]
        self.residual_blocks = [
            attngan_blocks.GLUResBlock(4 * ngf, equalized_lr=True, dtype=dtype,
                                       name=f"stage{stage}_residual")
            for stage in range(1, self.num_stages)
        ]
        self._create_synthesis()
        self.num_ws = len(self.layer_resolutions)

    def _create_synthesis(self):
        raise NotImplementedError

    def _build_synthesis(self):
        raise NotImplementedError

    def build(self, input_shape=None):
        # Every shape follows from the config, so the input shape is unused.
        self.ca.build()
        self.mapping.build()
        for attention, block in zip(self.attentions, self.residual_blocks):
            attention.build()
            block.build()
        self._build_synthesis()
        # Averaged over replicas: each sees its own share of the batch.
        self.w_average = self.add_weight(
            shape=(self.w_dim,), initializer="zeros", trainable=False,
            aggregation="mean", name="w_average")

    def truncate(self, ws, psi):
        """Moves the w of layers below the cutoff stage toward the average.

        Args:
            ws: [B, L, w_dim] tensor.
            psi: float or scalar tensor; 1 leaves ws unchanged, 0 gives the
                average.

        Returns:
            [B, L, w_dim] tensor.
        """
        average = tf.cast(self.w_average, ws.dtype)
        truncated = average + tf.cast(psi, ws.dtype) * (ws - average)
        if self.truncation_cutoff_stage is None:
            return truncated
        cutoff = 4 * 2 ** self.truncation_cutoff_stage
        below = tf.constant(
            [r < cutoff for r in self.layer_resolutions])[None, :, None]
        return tf.where(below, truncated, ws)

    def _crossover(self, ws, ws_other, first_other_layer):
        layers = tf.range(self.num_ws)[None, :, None]
        # A scalar crossover layer or one per example [B].
        first_other_layer = tf.reshape(first_other_layer, [-1, 1, 1])
        return tf.where(layers < first_other_layer, ws, ws_other)

    def call(self, z, sentence_embedding, word_features, word_mask,
             training=False, ca_noise=None, noise_seed=None,
             truncation_psi=None, mixing_z=None, mixing_layer=None):
        draws = t2i_layers.RandomDraws(self.seed_generator, noise_seed)
        batch = tf.shape(z)[0]
        if ca_noise is None:
            ca_noise = draws.normal((batch, self.condition_dim))
        c, mu, logvar = self.ca(sentence_embedding, ca_noise)
        w = self.mapping(tf.cast(z, c.dtype), c)
        ws = tf.tile(w[:, None, :], [1, self.num_ws, 1])
        if training:
            # Under a mixed policy the variable reads in the compute dtype;
            # the average itself stays float32.
            self.w_average.assign(
                self.w_avg_beta * tf.cast(self.w_average, tf.float32)
                + (1.0 - self.w_avg_beta) * tf.reduce_mean(
                    tf.cast(w, tf.float32), axis=0))
            if self.mixing_probability > 0.0:
                w_other = self.mapping(
                    draws.normal((batch, self.z_dim), dtype=c.dtype), c)
                # Per example (StyleGAN2 draws one cutoff per batch), so that an
                # example's image does not depend on the rest of its batch.
                crossover = draws.randint((batch,), 1, self.num_ws)
                mix = draws.uniform((batch,)) < self.mixing_probability
                crossover = tf.where(mix, crossover, self.num_ws)
                ws = self._crossover(
                    ws, tf.tile(w_other[:, None, :], [1, self.num_ws, 1]),
                    crossover)
        else:
            if mixing_z is not None:
                if mixing_layer is None:
                    raise ValueError("mixing_z needs mixing_layer.")
                w_other = self.mapping(tf.cast(mixing_z, c.dtype), c)
                ws = self._crossover(
                    ws, tf.tile(w_other[:, None, :], [1, self.num_ws, 1]),
                    mixing_layer)
            psi = (self.truncation_psi if truncation_psi is None
                   else truncation_psi)
            if not (isinstance(psi, (int, float)) and psi == 1):
                ws = self.truncate(ws, psi)
        images, attention_maps = self._synthesize(
            ws, word_features, word_mask, draws, training)
        return {"images": images, "attention": attention_maps,
                "mu": tf.cast(mu, tf.float32),
                "logvar": tf.cast(logvar, tf.float32),
                "ws": tf.cast(ws, tf.float32)}

    def _attend(self, stage, x, word_features, word_mask, training):
        """Word attention, concat and the residual block of a later stage."""
        context, weights = self.attentions[stage - 1](
            x, word_features, word_mask)
        x = tf.concat([x, context], axis=-1)
        return self.residual_blocks[stage - 1](x, training=training), weights

    @staticmethod
    def _noise(draws, x, upsample):
        shape = tf.shape(x)
        factor = 2 if upsample else 1
        return draws.normal(
            (shape[0], factor * shape[1], factor * shape[2], 1),
            dtype=x.dtype)

    def get_config(self):
        config = super().get_config()
        config.update({
            "ngf": self.ngf, "z_dim": self.z_dim,
            "condition_dim": self.condition_dim, "w_dim": self.w_dim,
            "sentence_dim": self.sentence_dim, "image_size": self.image_size,
            "mapping_layers": self.mapping_layers,
            "mapping_lr_multiplier": self.mapping_lr_multiplier,
            "mixing_probability": self.mixing_probability,
            "w_avg_beta": self.w_avg_beta,
            "truncation_psi": self.truncation_psi,
            "truncation_cutoff_stage": self.truncation_cutoff_stage,
            "seed": self.seed,
        })
        return config


@keras.saving.register_keras_serializable(package="tf_t2i")
class Style1AttnGANGenerator(_StyleAttnGANGenerator):
    """Style-AttnGAN's `G_NET_STYLED`: AdaIN synthesis with word attention.

    Stage 1: a learned constant 4ngf x 4 x 4 (ones), a styled layer on it
    without conv, a styled conv at 4 px, then two styled convs per
    resolution (the first upsampling) to 64 px, 4ngf wide up to 32 px and 2ngf
    at 64. Later stages: attention + residual block (see the module
    docstring), then two styled convs 4ngf -> 2ngf (upsampling) -> 2ngf. Each
    stage's image: 1x1 equalised conv (gain 1, bias) + tanh. One w per
    layer: 10 at 64 px, 14 at 256.

    Args: see the module docstring; defaults are bird_attn2_style.yml's
    (ngf 32, z/c/w 100, 8 mapping layers, lr multiplier 0.01, mixing 0.9,
    w average beta 0.995, psi 0.4, cutoff stage 4).

    Example:
    >>> generator = Style1AttnGANGenerator(ngf=4, image_size=64)
    >>> out = generator(tf.zeros([2, 100]), tf.zeros([2, 256]),
    ...                 tf.zeros([2, 5, 256]), tf.ones([2, 5]))
    >>> out["images"][-1].shape, out["ws"].shape
    (TensorShape([2, 64, 64, 3]), TensorShape([2, 10, 100]))
    """

    def _create_synthesis(self):
        dtype = self.dtype_policy
        wide, narrow = 4 * self.ngf, 2 * self.ngf
        # (in, out, upsample, use_conv) per layer, stage 1 then the others.
        specs = [(wide, wide, False, False), (wide, wide, False, True)]
        for _ in range(3):  # 8, 16, 32 px.
            specs += [(wide, wide, True, True), (wide, wide, False, True)]
        specs += [(wide, narrow, True, True), (narrow, narrow, False, True)]
        for _ in range(1, self.num_stages):
            specs += [(wide, narrow, True, True),
                      (narrow, narrow, False, True)]
        self.style_layers = [
            adain_style_layer.AdaINStyleLayer(
                c_in, c_out, self.w_dim, upsample=up, use_conv=conv,
                dtype=dtype, name=f"layer{i}")
            for i, (c_in, c_out, up, conv) in enumerate(specs)
        ]
        self.layer_resolutions = []
        resolution = 4
        for c_in, c_out, up, conv in specs:
            resolution *= 2 if up else 1
            self.layer_resolutions.append(resolution)
        self.to_rgb = [
            equalized_layers.EqualizedConv2D(3, 1, gain=1.0, dtype=dtype,
                                             name=f"stage{stage}_to_rgb")
            for stage in range(self.num_stages)
        ]

    def _build_synthesis(self):
        self.constant = self.add_weight(
            shape=(1, 4, 4, 4 * self.ngf), initializer="ones",
            name="constant")
        for layer in self.style_layers:
            layer.build()
        for conv in self.to_rgb:
            conv.build((None, None, None, 2 * self.ngf))

    def _synthesize(self, ws, word_features, word_mask, draws, training):
        ws = tf.cast(ws, self.compute_dtype)
        batch = tf.shape(ws)[0]
        x = tf.tile(tf.cast(self.constant, ws.dtype), [batch, 1, 1, 1])
        images, attention_maps = [], []
        index = 0

        def run_layers(x, index, count):
            for _ in range(count):
                layer = self.style_layers[index]
                noise = self._noise(draws, x, layer.upsample)
                x = layer(x, ws[:, index], noise)
                index += 1
            return x, index

        x, index = run_layers(x, index, 10)
        images.append(self._image(0, x))
        for stage in range(1, self.num_stages):
            x, weights = self._attend(stage, x, word_features, word_mask,
                                      training)
            attention_maps.append(weights)
            x, index = run_layers(x, index, 2)
            images.append(self._image(stage, x))
        return images, attention_maps

    def _image(self, stage, x):
        return tf.tanh(tf.cast(self.to_rgb[stage](x), tf.float32))


@keras.saving.register_keras_serializable(package="tf_t2i")
class Style2AttnGANGenerator(_StyleAttnGANGenerator):
    """Style2AttnGAN: Style-AttnGAN with StyleGAN2 synthesis blocks.

    Stage 1: a learned constant 4ngf x 4 x 4 (N(0, 1)), one modulated conv at
    4 px, then per resolution a modulated conv with FIR upsampling and one
    without, widths as Style1AttnGANGenerator. Later stages: attention +
    residual block, then the same two modulated convs 4ngf -> 2ngf -> 2ngf.
    'skip' architecture: every block adds its toRGB (modulated 1x1, no
    demodulation) to the FIR-upsampled running image, the toRGB using the
    next conv's w as in StyleGAN2, so there is one w per conv plus one: 10 at
    64 px, 14 at 256. A stage's image is tanh of the running image at its
    resolution (tanh as Style-AttnGAN's B_TANH; the running sum itself stays
    linear, as StyleGAN2's).

    Args: as Style1AttnGANGenerator.

    Example (two stages, so 10 + 2 ws):
    >>> generator = Style2AttnGANGenerator(ngf=4, image_size=128)
    >>> words, mask = tf.zeros([2, 5, 256]), tf.ones([2, 5])
    >>> out = generator(tf.zeros([2, 100]), tf.zeros([2, 256]), words, mask)
    >>> [image.shape[1] for image in out["images"]], out["ws"].shape
    ([64, 128], TensorShape([2, 12, 100]))
    """

    def _create_synthesis(self):
        dtype = self.dtype_policy
        wide, narrow = 4 * self.ngf, 2 * self.ngf
        # Blocks of (in, out, upsample) convs; each block ends with a toRGB.
        blocks = [[(wide, wide, False)]]
        for _ in range(3):  # 8, 16, 32 px.
            blocks.append([(wide, wide, True), (wide, wide, False)])
        blocks.append([(wide, narrow, True), (narrow, narrow, False)])
        for _ in range(1, self.num_stages):
            blocks.append([(wide, narrow, True), (narrow, narrow, False)])
        self.conv_layers, self.to_rgb, self.layer_resolutions = [], [], []
        self.block_sizes = [len(block) for block in blocks]
        resolution = 4
        for b, block in enumerate(blocks):
            for c_in, c_out, up in block:
                resolution *= 2 if up else 1
                self.layer_resolutions.append(resolution)
                self.conv_layers.append(modulated_conv.ModulatedStyleLayer(
                    c_in, c_out, self.w_dim, upsample=up, dtype=dtype,
                    name=f"layer{len(self.conv_layers)}"))
            self.to_rgb.append(modulated_conv.ModulatedToRGB(
                block[-1][1], self.w_dim, dtype=dtype, name=f"to_rgb{b}"))
        # The last toRGB reads its own w.
        self.layer_resolutions.append(resolution)

    def _build_synthesis(self):
        self.constant = self.add_weight(
            shape=(1, 4, 4, 4 * self.ngf),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            name="constant")
        for layer in self.conv_layers + self.to_rgb:
            layer.build()

    def _synthesize(self, ws, word_features, word_mask, draws, training):
        ws = tf.cast(ws, self.compute_dtype)
        batch = tf.shape(ws)[0]
        x = tf.tile(tf.cast(self.constant, ws.dtype), [batch, 1, 1, 1])
        rgb = None
        images, attention_maps = [], []
        index = 0
        # Blocks 0-4 make stage 0 (4 to 64 px); each later block is a stage.
        last_stage0_block = 4
        for b, size in enumerate(self.block_sizes):
            if b > last_stage0_block:
                x, weights = self._attend(b - last_stage0_block, x,
                                          word_features, word_mask, training)
                attention_maps.append(weights)
            for _ in range(size):
                layer = self.conv_layers[index]
                noise = self._noise(draws, x, layer.upsample)
                x = layer(x, ws[:, index], noise)
                index += 1
            block_rgb = self.to_rgb[b](x, ws[:, index])
            rgb = block_rgb if rgb is None else (
                style_ops.fir_upsample_2x(rgb) + block_rgb)
            if b >= last_stage0_block:
                images.append(tf.tanh(tf.cast(rgb, tf.float32)))
        return images, attention_maps
