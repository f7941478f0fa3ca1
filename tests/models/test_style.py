"""Tests for tf_t2i.models.style and tf_t2i.models.style_layers.

Style-AttnGAN counts are those of the official PyTorch models
(sidward14/Style-AttnGAN code/model.py with gan-lab 0.4.2 at
bird_attn2_style.yml, ../shared/reference/attngan_counts.md). Style2AttnGAN
has no public reference: its counts are derived here layer by layer from the
architecture. Other expectations come from numpy re-implementations.
"""

import inspect
import math

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tf_t2i.models import attngan
from tf_t2i.models import style
from tf_t2i.models import style_layers

BATCH = 2
WORDS = 5
SENTENCE_DIM = 256
W_DIM = 100


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((BATCH, 100)).astype(np.float32)
    sentence = rng.standard_normal((BATCH, SENTENCE_DIM)).astype(np.float32)
    words = rng.standard_normal((BATCH, WORDS, SENTENCE_DIM)).astype(
        np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    ca_noise = rng.standard_normal((BATCH, 100)).astype(np.float32)
    return z, sentence, words, mask, ca_noise


def _count(model):
    return attngan.count_trainable_parameters(model)


def _np_leaky_relu(x):
    return np.where(x > 0, x, 0.2 * x)


def _np_conv_same(x, kernel):
    k = kernel.shape[0]
    pad = (k - 1) // 2
    height, width = x.shape[1], x.shape[2]
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    return sum(np.einsum("bhwc,co->bhwo", padded[:, i:i + height, j:j + width],
                         kernel[i, j])
               for i in range(k) for j in range(k))


def _init_arg_names(cls):
    names = inspect.signature(cls.__init__).parameters
    return {n for n in names if n not in ("self", "kwargs")}


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
        generator = style.Style1AttnGANGenerator(ngf=32, image_size=256)
        self.assertEqual(_count(generator), 2_766_473)
        self.assertEqual(_count(generator.mapping), 90_800)
        self.assertEqual(_count(generator.ca), 102_800)
        self.assertEqual(_count(generator.residual_blocks[0]), 443_136)
        self.assertEqual(_count(generator.attentions[0]), 16_384)
        discriminators = style.build_style_discriminators(
            ndf=32, image_size=256, style_version=1)
        self.assertEqual([_count(d) for d in discriminators],
                         [5_764_482, 6_059_650, 6_354_818])
        self.assertEqual(_count(discriminators[0].conditional_head),
                         1_184_257)
        self.assertEqual(_count(discriminators[0].unconditional_head), 4_097)

    def test_style2_counts_match_layer_by_layer_derivation(self):
        generator = style.Style2AttnGANGenerator(ngf=32, image_size=256)
        self.assertEqual(_count(generator), _style2_generator_count(32, 2))
        self.assertEqual(_count(generator), 2_701_858)
        discriminators = style.build_style_discriminators(
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
        cls=[style.Style1AttnGANGenerator, style.Style2AttnGANGenerator],
        image_size=[64, 128], training=[True, False])
    def test_output_shapes_and_ranges(self, cls, image_size, training):
        generator = cls(ngf=4, image_size=image_size)
        z, sentence, words, mask, _ = _inputs()
        out = generator(z, sentence, words, mask, training=training)
        sizes = [64 * 2 ** i for i in range(image_size // 64)]
        self.assertEqual([image.shape for image in out["images"]],
                         [(BATCH, s, s, 3) for s in sizes])
        for image in out["images"]:
            self.assertEqual(image.dtype, tf.float32)
            self.assertAllInRange(image, -1.0, 1.0)
        self.assertEqual([a.shape for a in out["attention"]],
                         [(BATCH, s, s, WORDS) for s in sizes[:-1]])
        self.assertEqual(out["mu"].shape, (BATCH, 100))
        num_ws = 10 + 2 * (len(sizes) - 1)
        self.assertEqual(out["ws"].shape, (BATCH, num_ws, W_DIM))

    def _mapped_w(self, generator, z, sentence, ca_noise):
        c, _, _ = generator.ca(sentence, ca_noise)
        return generator.mapping(z, c).numpy()

    @parameterized.parameters(style.Style1AttnGANGenerator,
                              style.Style2AttnGANGenerator)
    def test_truncation(self, cls):
        generator = cls(ngf=4, image_size=128, truncation_cutoff_stage=None)
        z, sentence, words, mask, noise = _inputs()
        generator.build()
        average = np.random.default_rng(3).standard_normal(W_DIM)
        generator.w_average.assign(average)
        for seed in (0, 1):
            z = _inputs(seed)[0]
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
        self.assertEqual(below.sum(), 8 if cls is style.Style1AttnGANGenerator
                         else 7)
        expected = np.where(below[None, :, None],
                            average + 0.5 * (w[:, None] - average),
                            w[:, None])
        self.assertAllClose(out["ws"], expected, atol=1e-5)

    def test_truncation_default_psi_and_training_is_untruncated(self):
        generator = style.Style1AttnGANGenerator(
            ngf=4, image_size=64, truncation_psi=0.0,
            truncation_cutoff_stage=None, mixing_probability=0.0)
        z, sentence, words, mask, noise = _inputs()
        out = generator(z, sentence, words, mask, ca_noise=noise)
        self.assertAllClose(out["ws"], np.zeros(out["ws"].shape))
        out = generator(z, sentence, words, mask, ca_noise=noise,
                        training=True)
        w = self._mapped_w(generator, z, sentence, noise)
        self.assertAllClose(out["ws"], np.repeat(w[:, None], 10, axis=1))

    def test_w_average_tracks_the_mean_in_training(self):
        generator = style.Style2AttnGANGenerator(ngf=4, image_size=64,
                                                 w_avg_beta=0.9)
        z, sentence, words, mask, noise = _inputs()
        generator(z, sentence, words, mask, ca_noise=noise, training=True)
        w = self._mapped_w(generator, z, sentence, noise)
        self.assertAllClose(generator.w_average, 0.1 * w.mean(0), atol=1e-6)
        generator(z, sentence, words, mask, ca_noise=noise, training=False)
        self.assertAllClose(generator.w_average, 0.1 * w.mean(0), atol=1e-6)

    @parameterized.parameters(style.Style1AttnGANGenerator,
                              style.Style2AttnGANGenerator)
    def test_mixing_regularisation_switches_later_layers(self, cls):
        generator = cls(ngf=4, image_size=64, mixing_probability=1.0)
        z, sentence, words, mask, noise = _inputs()
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

    @parameterized.parameters(style.Style1AttnGANGenerator,
                              style.Style2AttnGANGenerator)
    def test_style_mixing_at_sampling_changes_later_stages_only(self, cls):
        generator = cls(ngf=4, image_size=128, truncation_psi=1.0)
        z, sentence, words, mask, noise = _inputs()
        other_z = _inputs(1)[0]
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

    @parameterized.parameters(style.Style1AttnGANGenerator,
                              style.Style2AttnGANGenerator)
    def test_attention_ignores_padding_words(self, cls):
        generator = cls(ngf=4, image_size=128)
        z, sentence, words, mask, noise = _inputs()
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

    @parameterized.parameters(style.Style1AttnGANGenerator,
                              style.Style2AttnGANGenerator)
    def test_noise_inputs(self, cls):
        generator = cls(ngf=4, image_size=64, truncation_psi=1.0)
        z, sentence, words, mask, noise = _inputs()
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
        generator = style.Style2AttnGANGenerator(
            ngf=4, image_size=128, mixing_probability=0.5,
            truncation_psi=0.7, truncation_cutoff_stage=3)
        self.assertContainsSubset(
            _init_arg_names(style.Style2AttnGANGenerator),
            generator.get_config())
        clone = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(generator))
        self.assertIsInstance(clone, style.Style2AttnGANGenerator)
        generator.build()
        clone.build()
        clone.set_weights(generator.get_weights())
        z, sentence, words, mask, noise = _inputs()
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
        generator = style.Style1AttnGANGenerator(
            ngf=4, image_size=128, dtype="mixed_bfloat16")
        z, sentence, words, mask, _ = _inputs()
        out = generator(z, sentence, words, mask, training=True)
        self.assertEqual(out["images"][1].dtype, tf.float32)
        self.assertEqual(out["ws"].dtype, tf.float32)
        self.assertEqual(generator.w_average.dtype, "float32")


class StyleLayersTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(0)

    @parameterized.parameters(True, False)
    def test_modulated_conv_matches_numpy(self, demodulate):
        kernel_size = 3 if demodulate else 1
        layer = style_layers.ModulatedConv2D(
            4, 5, kernel_size, w_dim=6, demodulate=demodulate)
        layer.build()
        rng = np.random.default_rng(0)
        layer.affine.bias.assign(rng.uniform(0.5, 1.5, 4))
        x = rng.standard_normal((BATCH, 6, 6, 4)).astype(np.float32)
        w = rng.standard_normal((BATCH, 6)).astype(np.float32)
        styles = w @ layer.affine.kernel.numpy() / math.sqrt(6)
        styles += layer.affine.bias.numpy()
        kernel = layer.kernel.numpy().astype(np.float64)
        expected = []
        for b in range(BATCH):
            weight = kernel * styles[b][None, None, :, None]
            if demodulate:
                weight /= np.sqrt(
                    np.sum(weight ** 2, axis=(0, 1, 2), keepdims=True)
                    + 1e-8)
            else:
                weight /= math.sqrt(4 * kernel_size ** 2)
            expected.append(_np_conv_same(x[b:b + 1], weight)[0])
        self.assertAllClose(layer(x, w), np.stack(expected), atol=1e-4)

    def test_affine_starts_at_one(self):
        layer = style_layers.ModulatedConv2D(4, 5, 3, w_dim=6)
        layer.build()
        self.assertAllClose(layer.styles(tf.zeros([1, 6])), np.ones((1, 4)))

    def test_mapping_network_equalised_learning_rate(self):
        mapping = style_layers.MappingNetwork(
            z_dim=100, condition_dim=100, w_dim=100, num_layers=8,
            lr_multiplier=0.01)
        mapping.build()
        dense = mapping.dense_layers[0]
        # Stored at 1 / lr_multiplier (gan-lab's normal_(0, 1 / lrmul)).
        stored_std = np.std(dense.kernel.numpy())
        self.assertAllClose(stored_std, 100.0, rtol=0.05)
        # Applied at He's std: sqrt(2 / fan_in).
        self.assertAllClose(np.std(dense.effective_kernel().numpy()),
                            math.sqrt(2.0 / 200), rtol=0.05)
        rng = np.random.default_rng(0)
        for layer in mapping.dense_layers:
            layer.bias.assign(rng.standard_normal(layer.bias.shape))
        z = rng.standard_normal((BATCH, 100)).astype(np.float32)
        c = rng.standard_normal((BATCH, 100)).astype(np.float32)
        x = np.concatenate([z, c], axis=1).astype(np.float64)
        x = x / np.sqrt(np.mean(x ** 2, axis=1, keepdims=True) + 1e-8)
        for layer in mapping.dense_layers:
            kernel = layer.kernel.numpy() * math.sqrt(2.0 / x.shape[1])
            x = _np_leaky_relu(x @ kernel * 0.01 + layer.bias.numpy() * 0.01)
        self.assertAllClose(mapping(z, c), x, atol=1e-4, rtol=1e-4)

    def test_equalised_conv_stores_unit_weights(self):
        conv = style_layers.EqualizedConv2D(64, 3)
        conv.build((None, 8, 8, 32))
        self.assertAllClose(np.std(conv.kernel.numpy()), 1.0, rtol=0.05)
        x = np.random.default_rng(0).standard_normal(
            (1, 8, 8, 32)).astype(np.float32)
        expected = _np_conv_same(
            x, conv.kernel.numpy() * math.sqrt(2.0 / (32 * 9)))
        self.assertAllClose(conv(x), expected, atol=1e-4)

    def test_adain_layer_on_constant_matches_numpy(self):
        layer = style_layers.AdaINStyleLayer(3, 3, w_dim=4, use_conv=False)
        layer.build()
        rng = np.random.default_rng(0)
        layer.noise.strength.assign([0.5, -1.0, 2.0])
        layer.bias.assign([0.1, 0.2, -0.3])
        x = rng.standard_normal((BATCH, 4, 4, 3)).astype(np.float32)
        w = rng.standard_normal((BATCH, 4)).astype(np.float32)
        noise = rng.standard_normal((BATCH, 4, 4, 1)).astype(np.float32)
        h = _np_leaky_relu(x + np.array([0.5, -1.0, 2.0]) * noise
                           + np.array([0.1, 0.2, -0.3]))
        h = (h - h.mean((1, 2), keepdims=True)) / np.sqrt(
            h.var((1, 2), keepdims=True) + 1e-8)
        y = w @ layer.style.kernel.numpy() / 2.0  # gain 1 / sqrt(4).
        expected = h * (1 + y[:, None, None, :3]) + y[:, None, None, 3:]
        self.assertAllClose(layer(x, w, noise), expected, atol=1e-4)

    @parameterized.parameters(
        (8, True, "consecutive", [[0, 1, 2, 3], [4, 5, 6, 7]]),
        (8, False, "strided", [[0, 2, 4, 6], [1, 3, 5, 7]]),
        (6, True, "consecutive", [[0, 1, 2, 3, 4, 5]]),
    )
    def test_minibatch_stddev_matches_numpy(self, batch, unbiased, grouping,
                                            groups):
        x = np.random.default_rng(0).standard_normal(
            (batch, 2, 2, 3)).astype(np.float32)
        out = style_layers.minibatch_stddev(x, 4, unbiased, grouping)
        self.assertAllClose(out[..., :3], x)
        for members in groups:
            std = np.sqrt(np.var(x[members], axis=0, ddof=int(unbiased))
                          + 1e-8).mean()
            for i in members:
                self.assertAllClose(out[i, ..., 3], np.full((2, 2), std),
                                    atol=1e-5)
        single = style_layers.minibatch_stddev(x[:1], 4)
        self.assertAllEqual(single[..., 3], np.zeros((1, 2, 2)))

    def test_fir_resampling_keeps_constants_inside(self):
        ones = tf.ones([1, 8, 8, 2])
        up = style_layers.fir_upsample_2x(ones)
        self.assertEqual(up.shape, (1, 16, 16, 2))
        self.assertAllClose(up[:, 1:-1, 1:-1], np.ones((1, 14, 14, 2)))
        down = style_layers.fir_downsample_2x(ones)
        self.assertEqual(down.shape, (1, 4, 4, 2))
        self.assertAllClose(down[:, 1:-1, 1:-1], np.ones((1, 2, 2, 2)))
        blurred = style_layers.fir_blur_for_strided_conv(ones)
        self.assertEqual(blurred.shape, (1, 9, 9, 2))


class DiscriminatorTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(0)

    @parameterized.product(
        cls=[style.StyleAttnGANDiscriminator,
             style.Style2AttnGANDiscriminator],
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
        discriminator = style.StyleAttnGANDiscriminator(ndf=2, image_size=64)
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
        discriminator = style.Style2AttnGANDiscriminator(
            ndf=2, sentence_dim=8, image_size=64, mbstd_group_size=2)
        self.assertContainsSubset(
            _init_arg_names(style.StyleAttnGANDiscriminator),
            discriminator.get_config())
        clone = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(discriminator))
        self.assertIsInstance(clone, style.Style2AttnGANDiscriminator)
        discriminator.build()
        clone.build()
        clone.set_weights(discriminator.get_weights())
        images = tf.random.uniform((BATCH, 64, 64, 3), -1, 1)
        self.assertAllClose(discriminator(images), clone(images))


if __name__ == "__main__":
    tf.test.main()
