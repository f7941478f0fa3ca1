"""Tests for tf_t2i.models.style_attngan_generator and style_attngan_discriminator.

Style-AttnGAN counts are those of the official PyTorch models
(sidward14/Style-AttnGAN code/model.py with gan-lab 0.4.2 at
bird_attn2_style.yml, ../shared/reference/attngan_counts.md). Style2AttnGAN
has no public reference: its counts are derived here layer by layer from the
architecture. Other expectations come from numpy re-implementations.
"""

import math

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests.models import helpers
from tf_t2i.models import params
from tf_t2i.models import style_attngan_discriminator
from tf_t2i.models import style_attngan_generator

BATCH = helpers.BATCH
SENTENCE_DIM = helpers.SENTENCE_DIM
W_DIM = 100


def _count(model):
    return params.count_trainable_parameters(model)


def _style2_generator_count(ngf, num_later_stages):
    """Style2AttnGANGenerator's trainable scalars, layer by layer."""
    wide, narrow = 4 * ngf, 2 * ngf

    def modulated(c_in, c_out):  # affine + kernel + noise strength + bias
        return (W_DIM + 1) * c_in + 9 * c_in * c_out + 1 + c_out

    def to_rgb(c_in):
        return (W_DIM + 1) * c_in + 3 * c_in + 3

    total = 102_800 + 90_800 + 16 * wide  # CA, mapping, constant.
    total += modulated(wide, wide) + to_rgb(wide)
    total += 3 * (2 * modulated(wide, wide) + to_rgb(wide))
    total += modulated(wide, narrow) + modulated(narrow, narrow)
    total += to_rgb(narrow)
    residual = 9 * wide * 2 * wide + 2 * 2 * wide + 9 * wide * wide + 2 * wide
    later = (SENTENCE_DIM * narrow + residual + modulated(wide, narrow)
             + modulated(narrow, narrow) + to_rgb(narrow))
    return total + num_later_stages * later


def _style2_discriminator_count(image_size, ndf=32):
    """Style2AttnGANDiscriminator's trainable scalars, layer by layer."""
    heads = 1_184_257 + 4_097  # Style-AttnGAN's heads at ndf 32.
    total = 3 * 4 * ndf + 4 * ndf + heads
    resolution = image_size
    while resolution > 4:
        c_in = 4 * ndf if resolution >= 64 else 8 * ndf
        c_out = 4 * ndf if resolution > 64 else 8 * ndf
        total += 9 * c_in * c_in + c_in + 9 * c_in * c_out + c_out
        total += c_in * c_out  # 1x1 skip, no bias.
        resolution //= 2
    return total + 9 * (8 * ndf + 1) * 8 * ndf + 8 * ndf


class ParameterCountTest(tf.test.TestCase, parameterized.TestCase):

    def test_style1_counts_match_reference(self):
        generator = style_attngan_generator.Style1AttnGANGenerator(ngf=32, image_size=256)
        self.assertEqual(_count(generator), 2_766_473)
        self.assertEqual(_count(generator.mapping), 90_800)
        self.assertEqual(_count(generator.ca), 102_800)
        self.assertEqual(_count(generator.residual_blocks[0]), 443_136)
        self.assertEqual(_count(generator.attentions[0]), 16_384)
        discriminators = style_attngan_discriminator.build_style_discriminators(
            ndf=32, image_size=256, style_version=1)
        self.assertEqual([_count(d) for d in discriminators],
                         [5_764_482, 6_059_650, 6_354_818])
        self.assertEqual(_count(discriminators[0].conditional_head),
                         1_184_257)
        self.assertEqual(_count(discriminators[0].unconditional_head), 4_097)

    def test_style2_counts_match_layer_by_layer_derivation(self):
        generator = style_attngan_generator.Style2AttnGANGenerator(ngf=32, image_size=256)
        self.assertEqual(_count(generator), _style2_generator_count(32, 2))
        self.assertEqual(_count(generator), 2_701_858)
        discriminators = style_attngan_discriminator.build_style_discriminators(
            ndf=32, image_size=256, style_version=2)
        self.assertEqual(
            [_count(d) for d in discriminators],
            [_style2_discriminator_count(s) for s in (64, 128, 256)])
        self.assertEqual([_count(d) for d in discriminators],
                         [5_993_858, 6_305_410, 6_616_962])


class GeneratorTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(0)

    @parameterized.product(
        cls=[style_attngan_generator.Style1AttnGANGenerator,
             style_attngan_generator.Style2AttnGANGenerator],
        image_size=[64, 128], training=[True, False])
    def test_output_shapes_and_ranges(self, cls, image_size, training):
        generator = cls(ngf=4, image_size=image_size)
        z, sentence, words, mask, _ = helpers.text_inputs()
        out = generator(z, sentence, words, mask, training=training)
        sizes = helpers.check_stage_outputs(self, out, image_size)
        num_ws = 10 + 2 * (len(sizes) - 1)
        self.assertEqual(out["ws"].shape, (BATCH, num_ws, W_DIM))

    def _mapped_w(self, generator, z, sentence, ca_noise):
        c, _, _ = generator.ca(sentence, ca_noise)
        return generator.mapping(z, c).numpy()

    @parameterized.parameters(style_attngan_generator.Style1AttnGANGenerator,
                              style_attngan_generator.Style2AttnGANGenerator)
    def test_truncation(self, cls):
        generator = cls(ngf=4, image_size=128, truncation_cutoff_stage=None)
        z, sentence, words, mask, noise = helpers.text_inputs()
        generator.build()
        average = np.random.default_rng(3).standard_normal(W_DIM)
        generator.w_average.assign(average)
        for seed in (0, 1):
            z = helpers.text_inputs(seed)[0]
            out = generator(z, sentence, words, mask, ca_noise=noise,
                            truncation_psi=0.0)
            self.assertAllClose(
                out["ws"], np.broadcast_to(average, out["ws"].shape))
        w = self._mapped_w(generator, z, sentence, noise)
        out = generator(z, sentence, words, mask, ca_noise=noise,
                        truncation_psi=1.0)
        self.assertAllClose(out["ws"], np.repeat(w[:, None], 12, axis=1))
        # The default cutoff (stage 4 = 64 px) spares layers from 64 px up.
        generator.truncation_cutoff_stage = 4
        out = generator(z, sentence, words, mask, ca_noise=noise,
                        truncation_psi=0.5)
        below = np.array(generator.layer_resolutions) < 64
        self.assertEqual(below.sum(), 8 if cls is style_attngan_generator.Style1AttnGANGenerator
                         else 7)
        expected = np.where(below[None, :, None],
                            average + 0.5 * (w[:, None] - average),
                            w[:, None])
        self.assertAllClose(out["ws"], expected, atol=1e-5)

    def test_truncation_default_psi_and_training_is_untruncated(self):
        generator = style_attngan_generator.Style1AttnGANGenerator(
            ngf=4, image_size=64, truncation_psi=0.0,
            truncation_cutoff_stage=None, mixing_probability=0.0)
        z, sentence, words, mask, noise = helpers.text_inputs()
        out = generator(z, sentence, words, mask, ca_noise=noise)
        self.assertAllClose(out["ws"], np.zeros(out["ws"].shape))
        out = generator(z, sentence, words, mask, ca_noise=noise,
                        training=True)
        w = self._mapped_w(generator, z, sentence, noise)
        self.assertAllClose(out["ws"], np.repeat(w[:, None], 10, axis=1))

    def test_w_average_tracks_the_mean_in_training(self):
        generator = style_attngan_generator.Style2AttnGANGenerator(ngf=4, image_size=64,
                                                                   w_avg_beta=0.9)
        z, sentence, words, mask, noise = helpers.text_inputs()
        generator(z, sentence, words, mask, ca_noise=noise, training=True)
        w = self._mapped_w(generator, z, sentence, noise)
        self.assertAllClose(generator.w_average, 0.1 * w.mean(0), atol=1e-6)
        generator(z, sentence, words, mask, ca_noise=noise, training=False)
        self.assertAllClose(generator.w_average, 0.1 * w.mean(0), atol=1e-6)

    @parameterized.parameters(style_attngan_generator.Style1AttnGANGenerator,
                              style_attngan_generator.Style2AttnGANGenerator)
    def test_mixing_regularisation_switches_later_layers(self, cls):
        generator = cls(ngf=4, image_size=64, mixing_probability=1.0)
        z, sentence, words, mask, noise = helpers.text_inputs()
        generator.build()
        w = self._mapped_w(generator, z, sentence, noise)
        crossovers = set()
        for _ in range(3):
            ws = generator(z, sentence, words, mask, ca_noise=noise,
                           training=True)["ws"].numpy()
            # One crossover layer per example, so that an example's image does
            # not depend on the rest of the batch.
            for b in range(len(ws)):
                same = np.all(np.isclose(ws[b], w[b][None]), axis=1)
                crossover = int(np.argmin(same))
                self.assertBetween(crossover, 1, 9)
                self.assertTrue(same[:crossover].all())
                self.assertFalse(same[crossover:].any())
                # One second w for all later layers.
                self.assertAllClose(
                    ws[b, crossover:],
                    np.broadcast_to(ws[b, -1:], ws[b, crossover:].shape))
                crossovers.add(crossover)
        self.assertGreater(len(crossovers), 1)
        generator.mixing_probability = 0.0
        ws = generator(z, sentence, words, mask, ca_noise=noise,
                       training=True)["ws"]
        self.assertAllClose(ws, np.repeat(w[:, None], 10, axis=1))

    @parameterized.parameters(style_attngan_generator.Style1AttnGANGenerator,
                              style_attngan_generator.Style2AttnGANGenerator)
    def test_style_mixing_at_sampling_changes_later_stages_only(self, cls):
        generator = cls(ngf=4, image_size=128, truncation_psi=1.0)
        z, sentence, words, mask, noise = helpers.text_inputs()
        other_z = helpers.text_inputs(1)[0]
        plain = generator(z, sentence, words, mask, ca_noise=noise)
        # From index 10 on, only 128 px layers read w in both generators.
        mixed = generator(z, sentence, words, mask, ca_noise=noise,
                          mixing_z=other_z, mixing_layer=10)
        w_other = self._mapped_w(generator, other_z, sentence, noise)
        self.assertAllClose(mixed["ws"][:, :10], plain["ws"][:, :10])
        self.assertAllClose(mixed["ws"][:, 10:],
                            np.repeat(w_other[:, None], 2, axis=1))
        self.assertAllClose(mixed["images"][0], plain["images"][0])
        self.assertGreater(
            np.abs(mixed["images"][1] - plain["images"][1]).max(), 1e-4)
        mixed = generator(z, sentence, words, mask, ca_noise=noise,
                          mixing_z=other_z, mixing_layer=2)
        self.assertGreater(
            np.abs(mixed["images"][0] - plain["images"][0]).max(), 1e-4)

    @parameterized.parameters(style_attngan_generator.Style1AttnGANGenerator,
                              style_attngan_generator.Style2AttnGANGenerator)
    def test_attention_ignores_padding_words(self, cls):
        generator = cls(ngf=4, image_size=128)
        z, sentence, words, mask, noise = helpers.text_inputs()
        seed = tf.constant([1, 2])
        out = generator(z, sentence, words, mask, ca_noise=noise,
                        noise_seed=seed)
        changed = words.copy()
        changed[0, 3:] -= 10.0
        out_padding = generator(z, sentence, changed, mask, ca_noise=noise,
                                noise_seed=seed)
        self.assertAllClose(out_padding["images"][1], out["images"][1],
                            atol=1e-6)
        changed = words.copy()
        changed[0, 0] -= 10.0
        out_word = generator(z, sentence, changed, mask, ca_noise=noise,
                             noise_seed=seed)
        self.assertGreater(
            np.abs(out_word["images"][1][0] - out["images"][1][0]).max(),
            1e-4)

    @parameterized.parameters(style_attngan_generator.Style1AttnGANGenerator,
                              style_attngan_generator.Style2AttnGANGenerator)
    def test_noise_inputs(self, cls):
        generator = cls(ngf=4, image_size=64, truncation_psi=1.0)
        z, sentence, words, mask, noise = helpers.text_inputs()
        first = generator(z, sentence, words, mask, ca_noise=noise)
        second = generator(z, sentence, words, mask, ca_noise=noise)
        # Noise strengths start at 0, as in the references.
        self.assertAllClose(first["images"][0], second["images"][0])
        for weight in generator.weights:
            if "noise" in weight.path:
                weight.assign(tf.ones(weight.shape))
        first = generator(z, sentence, words, mask, ca_noise=noise)
        second = generator(z, sentence, words, mask, ca_noise=noise)
        self.assertGreater(
            np.abs(first["images"][0] - second["images"][0]).max(), 1e-4)
        seed = tf.constant([5, 6])
        first = generator(z, sentence, words, mask, noise_seed=seed)
        second = generator(z, sentence, words, mask, noise_seed=seed)
        self.assertAllEqual(first["images"][0], second["images"][0])

    def test_config_round_trip_and_graph_mode(self):
        generator = style_attngan_generator.Style2AttnGANGenerator(
            ngf=4, image_size=128, mixing_probability=0.5,
            truncation_psi=0.7, truncation_cutoff_stage=3)
        clone = helpers.config_round_trip(self, generator)
        z, sentence, words, mask, noise = helpers.text_inputs()
        seed = tf.constant([0, 1])
        eager = generator(z, sentence, words, mask, ca_noise=noise,
                          noise_seed=seed)
        self.assertAllClose(
            clone(z, sentence, words, mask, ca_noise=noise,
                  noise_seed=seed)["images"][1], eager["images"][1])
        graph = tf.function(lambda *a: generator(
            *a, ca_noise=noise, noise_seed=seed))(z, sentence, words, mask)
        self.assertAllClose(graph["images"][1], eager["images"][1],
                            atol=1e-5)

    def test_mixed_precision(self):
        generator = style_attngan_generator.Style1AttnGANGenerator(
            ngf=4, image_size=128, dtype="mixed_bfloat16")
        z, sentence, words, mask, _ = helpers.text_inputs()
        out = generator(z, sentence, words, mask, training=True)
        self.assertEqual(out["images"][1].dtype, tf.float32)
        self.assertEqual(out["ws"].dtype, tf.float32)
        self.assertEqual(generator.w_average.dtype, "float32")


class DiscriminatorTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(0)

    @parameterized.product(
        cls=[style_attngan_discriminator.StyleAttnGANDiscriminator,
             style_attngan_discriminator.Style2AttnGANDiscriminator],
        image_size=[64, 128])
    def test_features_and_logits(self, cls, image_size):
        discriminator = cls(ndf=2, image_size=image_size)
        self.assertLen(discriminator.block_convs,
                       int(math.log2(image_size)) - 2)
        images = tf.random.uniform((4, image_size, image_size, 3), -1, 1)
        features = discriminator(images, training=True)
        self.assertEqual(features.shape, (4, 4, 4, 16))
        sentence = tf.random.normal((4, SENTENCE_DIM))
        conditional = discriminator.conditional_logits(features, sentence)
        unconditional = discriminator.unconditional_logits(features)
        for logits in (conditional, unconditional):
            self.assertEqual(logits.shape, (4,))
            self.assertEqual(logits.dtype, tf.float32)
        other = discriminator.conditional_logits(
            features, tf.random.normal((4, SENTENCE_DIM)))
        self.assertGreater(np.abs(other - conditional).max(), 1e-5)

    def test_features_depend_on_the_rest_of_the_group(self):
        # Minibatch stddev: changing sample 3 changes sample 0's features
        # (same group of 4) but not sample 4's (next group).
        discriminator = style_attngan_discriminator.StyleAttnGANDiscriminator(ndf=2, image_size=64)
        images = np.random.default_rng(0).uniform(
            -1, 1, (8, 64, 64, 3)).astype(np.float32)
        features = discriminator(images).numpy()
        changed = images.copy()
        changed[3] *= -1.0
        features_changed = discriminator(changed).numpy()
        self.assertGreater(np.abs(features_changed[0] - features[0]).max(),
                           1e-6)
        self.assertAllClose(features_changed[4], features[4])

    def test_config_round_trip(self):
        discriminator = style_attngan_discriminator.Style2AttnGANDiscriminator(
            ndf=2, sentence_dim=8, image_size=64, mbstd_group_size=2)
        clone = helpers.config_round_trip(self, discriminator)
        images = tf.random.uniform((BATCH, 64, 64, 3), -1, 1)
        self.assertAllClose(discriminator(images), clone(images))


if __name__ == "__main__":
    tf.test.main()
