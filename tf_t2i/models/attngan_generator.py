"""AttnGAN generator (taoxugit/AttnGAN code/model.py: G_NET).

Tensors are NHWC (convolutions OIHW -> HWIO, Linear weights [in, out]). The number
of stages follows from the image size (`attngan_blocks.num_stages_for`); the
discriminators are in `attngan_discriminator`.
"""

import keras
import tensorflow as tf

from tf_t2i.models import attngan_blocks
from tf_t2i.models import layers as t2i_layers


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
        self.num_stages = attngan_blocks.num_stages_for(image_size)
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
        self.ca = attngan_blocks.ConditioningAugmentation(
            sentence_dim, condition_dim, dtype=dtype, name="ca")
        init_width = 16 * ngf
        self.init_fc = t2i_layers.torch_dense(
            z_dim + condition_dim, 2 * init_width * 16, use_bias=False,
            dtype=dtype, name="init_fc")
        self.init_batch_norm = t2i_layers.torch_batch_norm(
            dtype=dtype, name="init_batch_norm")
        self.init_up_blocks = [
            attngan_blocks.GLUConvBlock(init_width // 2 ** i, init_width // 2 ** (i + 1),
                                        dtype=dtype, name=f"init_up{i}")
            for i in range(4)
        ]
        self.attentions, self.residual_stacks, self.up_blocks = [], [], []
        for stage in range(1, self.num_stages):
            self.attentions.append(attngan_blocks.WordAttention(
                ngf, sentence_dim, dtype=dtype, name=f"stage{stage}_attention"))
            self.residual_stacks.append([
                attngan_blocks.GLUResBlock(2 * ngf, dtype=dtype,
                                           name=f"stage{stage}_residual{i}")
                for i in range(num_residual)
            ])
            self.up_blocks.append(attngan_blocks.GLUConvBlock(
                2 * ngf, ngf, dtype=dtype, name=f"stage{stage}_up"))
        self.image_convs = [
            attngan_blocks.conv3x3(ngf, 3, dtype, f"stage{stage}_image_conv")
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
