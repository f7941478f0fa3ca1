"""Tests for tf_t2i.models.attngan_blocks, attngan_generator and attngan_discriminator.

Parameter counts are those of the official PyTorch models (taoxugit/AttnGAN
code/model.py at the CUB and COCO configs, ../shared/reference/
attngan_counts.md); other expectations come from numpy re-implementations.
"""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests.models import helpers
from tf_t2i.models import attngan_blocks
from tf_t2i.models import attngan_discriminator
from tf_t2i.models import attngan_generator
from tf_t2i.models import params

BATCH = helpers.BATCH
WORDS = helpers.WORDS
SENTENCE_DIM = helpers.SENTENCE_DIM


class ParameterCountTest(tf.test.TestCase, parameterized.TestCase):
    """Trainable counts equal `sum(p.numel())` of the official models."""

    @parameterized.named_parameters(
        ("cub", 32, 64, 2, 7_084_592, (6_313_730, 19_424_002, 71_858_946)),
        ("coco", 48, 96, 3, 13_811_456,
         (13_304_450, 42_800_258, 160_774_274)),
    )
    def test_counts_match_reference(self, ngf, ndf, num_residual,
                                    generator_count, discriminator_counts):
        generator = attngan_generator.AttnGANGenerator(
            ngf=ngf, num_residual=num_residual, image_size=256)
        self.assertEqual(params.count_trainable_parameters(generator),
                         generator_count)
        self.assertEqual(
            params.count_trainable_parameters(generator.ca), 102_800)
        discriminators = attngan_discriminator.build_attngan_discriminators(
            ndf=ndf, image_size=256)
        self.assertEqual(
            [params.count_trainable_parameters(d) for d in discriminators],
            list(discriminator_counts))

    def test_cub_heads_and_batch_norm_statistics(self):
        discriminator = attngan_discriminator.AttnGANDiscriminator(ndf=64, image_size=64)
        discriminator.build()
        self.assertEqual(params.count_trainable_parameters(
            discriminator.conditional_head), 3_548_161)
        self.assertEqual(params.count_trainable_parameters(
            discriminator.unconditional_head), 8_193)
        # BN running mean + var are buffers in torch, weights here.
        self.assertEqual(
            params.count_weights(discriminator.non_trainable_weights), 2_816)


class AttnGANGeneratorTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(0)

    def test_rejects_unsupported_size(self):
        with self.assertRaisesRegex(ValueError, "image_size"):
            attngan_generator.AttnGANGenerator(image_size=96)

    @parameterized.parameters((64, True), (128, True), (128, False))
    def test_output_shapes_and_ranges(self, image_size, training):
        generator = attngan_generator.AttnGANGenerator(ngf=4, image_size=image_size)
        z, sentence, words, mask, _ = helpers.text_inputs()
        out = generator(z, sentence, words, mask, training=training)
        helpers.check_stage_outputs(self, out, image_size)
        for weights in out["attention"]:
            self.assertAllClose(tf.reduce_sum(weights, -1),
                                np.ones(weights.shape[:-1]), atol=1e-5)
        self.assertEqual(out["logvar"].shape, (BATCH, 100))

    def test_conditioning_augmentation_matches_numpy(self):
        generator = attngan_generator.AttnGANGenerator(ngf=4, image_size=64)
        z, sentence, words, mask, noise = helpers.text_inputs()
        out = generator(z, sentence, words, mask, ca_noise=noise)
        fc = generator.ca.fc
        h = sentence @ fc.kernel.numpy() + fc.bias.numpy()
        h = h[:, :200] * helpers.np_sigmoid(h[:, 200:])
        self.assertAllClose(out["mu"], h[:, :100], atol=1e-5)
        self.assertAllClose(out["logvar"], h[:, 100:], atol=1e-5)
        c, _, _ = generator.ca(sentence, noise)
        self.assertAllClose(
            c, h[:, :100] + np.exp(0.5 * h[:, 100:]) * noise, atol=1e-5)

    def test_attention_ignores_padding_words(self):
        generator = attngan_generator.AttnGANGenerator(ngf=4, image_size=128)
        z, sentence, words, mask, noise = helpers.text_inputs()
        out = generator(z, sentence, words, mask, ca_noise=noise)
        self.assertAllEqual(out["attention"][0][0, :, :, 3:],
                            np.zeros((64, 64, 2)))
        changed = words.copy()
        changed[0, 3:] += 10.0  # Padding of sample 0.
        out_padding = generator(z, sentence, changed, mask, ca_noise=noise)
        self.assertAllClose(out_padding["images"][1], out["images"][1],
                            atol=1e-6)
        changed = words.copy()
        changed[0, 1] += 10.0  # A real word of sample 0.
        out_word = generator(z, sentence, changed, mask, ca_noise=noise)
        self.assertGreater(
            np.abs(out_word["images"][1][0] - out["images"][1][0]).max(),
            1e-4)

    def test_word_attention_matches_numpy(self):
        layer = attngan_blocks.WordAttention(8, word_dim=6)
        rng = np.random.default_rng(1)
        h = rng.standard_normal((BATCH, 3, 3, 8)).astype(np.float32)
        words = rng.standard_normal((BATCH, WORDS, 6)).astype(np.float32)
        _, _, _, mask, _ = helpers.text_inputs()
        context, weights = layer(h, words, mask)
        source = words @ layer.word_projection.kernel.numpy()  # [B, T, 8]
        scores = np.einsum("bhwc,btc->bhwt", h, source)
        scores = np.where(mask[:, None, None, :], scores, -np.inf)
        expected = np.exp(scores - scores.max(-1, keepdims=True))
        expected /= expected.sum(-1, keepdims=True)
        self.assertAllClose(weights, expected, atol=1e-5)
        self.assertAllClose(
            context, np.einsum("bhwt,btc->bhwc", expected, source),
            atol=1e-5)

    def test_empty_caption_gives_uniform_attention_not_nan(self):
        layer = attngan_blocks.WordAttention(4, word_dim=6)
        _, weights = layer(tf.ones([1, 2, 2, 4]), tf.ones([1, 3, 6]),
                           tf.zeros([1, 3], tf.bool))
        self.assertAllClose(weights, np.full((1, 2, 2, 3), 1 / 3))

    def test_random_draws(self):
        generator = attngan_generator.AttnGANGenerator(ngf=4, image_size=64)
        z, sentence, words, mask, _ = helpers.text_inputs()
        seed = tf.constant([3, 4])
        first = generator(z, sentence, words, mask, noise_seed=seed)
        again = generator(z, sentence, words, mask, noise_seed=seed)
        self.assertAllEqual(first["images"][0], again["images"][0])
        stateful = generator(z, sentence, words, mask)
        stateful_again = generator(z, sentence, words, mask)
        self.assertGreater(np.abs(stateful["images"][0]
                                  - stateful_again["images"][0]).max(), 1e-6)

    def test_config_round_trip(self):
        generator = attngan_generator.AttnGANGenerator(
            ngf=4, z_dim=100, condition_dim=100, sentence_dim=SENTENCE_DIM,
            num_residual=1, image_size=128)
        clone = helpers.config_round_trip(self, generator)
        z, sentence, words, mask, noise = helpers.text_inputs()
        self.assertAllClose(
            generator(z, sentence, words, mask, ca_noise=noise)["images"][1],
            clone(z, sentence, words, mask, ca_noise=noise)["images"][1])

    def test_graph_mode_and_mixed_precision(self):
        generator = attngan_generator.AttnGANGenerator(ngf=4, image_size=128)
        z, sentence, words, mask, noise = helpers.text_inputs()
        eager = generator(z, sentence, words, mask, ca_noise=noise)
        graph = tf.function(lambda *args: generator(*args, ca_noise=noise))(
            z, sentence, words, mask)
        self.assertAllClose(graph["images"][1], eager["images"][1],
                            atol=1e-5)
        mixed = attngan_generator.AttnGANGenerator(
            ngf=4, image_size=128, dtype="mixed_bfloat16")
        out = mixed(z, sentence, words, mask, training=True)
        self.assertEqual(out["images"][1].dtype, tf.float32)
        self.assertEqual(out["attention"][0].dtype, tf.float32)
        self.assertEqual(out["mu"].dtype, tf.float32)


class AttnGANDiscriminatorTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(0)

    @parameterized.parameters((64, 0), (128, 1), (256, 2))
    def test_features_and_logits(self, image_size, num_blocks):
        discriminator = attngan_discriminator.AttnGANDiscriminator(
            ndf=2, image_size=image_size)
        self.assertLen(discriminator.block_convs, num_blocks)
        images = tf.random.uniform((BATCH, image_size, image_size, 3), -1, 1)
        features = discriminator(images, training=True)
        self.assertEqual(features.shape, (BATCH, 4, 4, 16))
        _, sentence, _, _, _ = helpers.text_inputs()
        for logits in (discriminator.conditional_logits(features, sentence),
                       discriminator.unconditional_logits(features)):
            self.assertEqual(logits.shape, (BATCH,))
            self.assertEqual(logits.dtype, tf.float32)

    def test_heads_match_numpy(self):
        discriminator = attngan_discriminator.AttnGANDiscriminator(ndf=2, image_size=64)
        discriminator.build()
        rng = np.random.default_rng(0)
        features = rng.standard_normal((BATCH, 4, 4, 16)).astype(np.float32)
        _, sentence, _, _, _ = helpers.text_inputs()
        head = discriminator.unconditional_head
        expected = np.einsum("bhwc,hwco->b", features,
                             head.logits_conv.kernel.numpy())
        expected += head.logits_conv.bias.numpy()
        self.assertAllClose(discriminator.unconditional_logits(features),
                            expected, atol=1e-4)
        # Conditional, inference BN at init is x / sqrt(1 + eps).
        head = discriminator.conditional_head
        tiled = np.broadcast_to(sentence[:, None, None, :],
                                (BATCH, 4, 4, SENTENCE_DIM))
        h = np.concatenate([features, tiled], axis=-1)
        padded = np.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
        kernel = head.joint_conv.kernel.numpy()
        joint = sum(np.einsum("bhwc,co->bhwo",
                              padded[:, i:i + 4, j:j + 4], kernel[i, j])
                    for i in range(3) for j in range(3))
        joint = joint / np.sqrt(1.0 + 1e-5)
        joint = np.where(joint > 0, joint, 0.2 * joint)
        expected = np.einsum("bhwc,hwco->b", joint,
                             head.logits_conv.kernel.numpy())
        expected += head.logits_conv.bias.numpy()
        self.assertAllClose(
            discriminator.conditional_logits(features, sentence, False),
            expected, atol=1e-4)

    def test_config_round_trip(self):
        discriminator = attngan_discriminator.AttnGANDiscriminator(
            ndf=2, sentence_dim=8, image_size=128)
        clone = helpers.config_round_trip(self, discriminator)
        images = tf.random.uniform((BATCH, 128, 128, 3), -1, 1)
        self.assertAllClose(discriminator(images), clone(images))


if __name__ == "__main__":
    tf.test.main()
