"""Tests for tf_t2i.models.ssagan_discriminator.

Expectations come from numpy re-implementations of the reference operations,
or parameter counts of the PyTorch reference (wtliao/text2image, model.py).
"""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests.models import helpers
from tf_t2i.models import params
from tf_t2i.models import ssagan_discriminator

BATCH = helpers.BATCH
SENTENCE_DIM = helpers.SENTENCE_DIM


class SSAGANDiscriminatorTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(0)

    def test_parameter_counts_at_256_match_reference(self):
        discriminator = ssagan_discriminator.SSAGANDiscriminator(ndf=64, image_size=256)
        discriminator.build()
        # Counted on the PyTorch NetD(64) with its COND_DNET; this includes the
        # 1x1 shortcut convs the reference builds but never applies (blocks 4
        # and 5, 1024 -> 1024).
        self.assertEqual(params.count_weights(discriminator.trainable_weights), 80_379_526)
        self.assertEqual(params.count_weights(discriminator.head.trainable_weights),
                         1_476_608)

    @parameterized.parameters((64, 4), (128, 5))
    def test_features_and_logits_shapes(self, image_size, num_blocks):
        discriminator = ssagan_discriminator.SSAGANDiscriminator(ndf=4, image_size=image_size)
        self.assertLen(discriminator.blocks, num_blocks)
        images = tf.random.uniform((BATCH, image_size, image_size, 3), -1, 1)
        features = discriminator(images, training=True)
        self.assertEqual(features.shape, (BATCH, 4, 4, 64))
        _, sentence = helpers.noise_and_sentence()
        logits = discriminator.logits(features, sentence)
        self.assertEqual(logits.shape, (BATCH,))
        self.assertEqual(logits.dtype, tf.float32)

    def test_features_at_init_are_the_shortcut_path(self):
        # gamma = 0: conv_img, then per block avg-pool 2 and the 1x1 conv (at
        # 64 px every block changes width).
        discriminator = ssagan_discriminator.SSAGANDiscriminator(ndf=8, image_size=64)
        images = np.random.default_rng(0).uniform(
            -1, 1, (BATCH, 64, 64, 3)).astype(np.float32)
        features = discriminator(images)
        x = helpers.np_conv_same(images, discriminator.image_conv.kernel.numpy(),
                                 discriminator.image_conv.bias.numpy())
        for block in discriminator.blocks:
            b, h, w, c = x.shape
            x = x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
            x = helpers.np_conv_same(x, block.shortcut_conv.kernel.numpy(),
                                     block.shortcut_conv.bias.numpy())
        self.assertAllClose(features, x, atol=1e-4)

    def test_residual_gate_init(self):
        discriminator = ssagan_discriminator.SSAGANDiscriminator(
            ndf=8, image_size=64, residual_gate_init=0.5)
        discriminator.build()
        self.assertEqual([float(b.gamma.numpy()) for b in discriminator.blocks],
                         [0.5] * 4)
        self.assertEqual(discriminator.get_config()["residual_gate_init"], 0.5)
        # The gate scales the residual branch: features differ from the
        # shortcut-only model with the same weights.
        closed = ssagan_discriminator.SSAGANDiscriminator(ndf=8, image_size=64)
        closed.build()
        closed.set_weights([np.zeros_like(w) if w.shape == () else w
                            for w in discriminator.get_weights()])
        images = np.random.default_rng(0).uniform(
            -1, 1, (BATCH, 64, 64, 3)).astype(np.float32)
        self.assertGreater(
            np.abs(discriminator(images) - closed(images)).max(), 1e-3)

    def test_residual_downsamples_with_torch_padding(self):
        # conv4x4 stride 2 padding 1 in torch: output (i, j) reads input rows
        # 2i-1 .. 2i+2 and columns 2j-1 .. 2j+2, zero outside.
        block = ssagan_discriminator.ResDBlock(2, 3)
        block.build((None, 8, 8, 2))
        block.gamma.assign(1.0)
        block.shortcut_conv.kernel.assign(np.zeros((1, 1, 2, 3)))
        block.shortcut_conv.bias.assign(np.zeros((3,)))
        x = np.random.default_rng(0).standard_normal((1, 8, 8, 2))
        out = block(tf.constant(x, tf.float32))
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        kernel = block.conv_down.kernel.numpy()
        down = np.zeros((1, 4, 4, 3))
        for i in range(4):
            for j in range(4):
                patch = padded[0, 2 * i:2 * i + 4, 2 * j:2 * j + 4]
                down[0, i, j] = np.einsum("hwc,hwco->o", patch, kernel)
        h = helpers.np_leaky_relu(down)
        h = helpers.np_leaky_relu(helpers.np_conv_same(h, block.conv_same.kernel.numpy()))
        self.assertAllClose(out, h, atol=1e-5)

    def test_head_matches_numpy(self):
        discriminator = ssagan_discriminator.SSAGANDiscriminator(ndf=8, image_size=64)
        discriminator.build()
        rng = np.random.default_rng(0)
        features = rng.standard_normal((BATCH, 4, 4, 128)).astype(np.float32)
        _, sentence = helpers.noise_and_sentence()
        logits = discriminator.logits(features, sentence)
        tiled = np.broadcast_to(sentence[:, None, None, :],
                                (BATCH, 4, 4, SENTENCE_DIM))
        h = np.concatenate([features, tiled], axis=-1)
        h = helpers.np_leaky_relu(
            helpers.np_conv_same(h, discriminator.head.joint_conv.kernel.numpy()))
        expected = np.einsum("bhwc,hwco->b", h,
                             discriminator.head.logits_conv.kernel.numpy())
        self.assertAllClose(logits, expected, atol=1e-4)

    def test_head_depends_on_sentence(self):
        discriminator = ssagan_discriminator.SSAGANDiscriminator(ndf=8, image_size=64)
        images = tf.random.uniform((BATCH, 64, 64, 3), -1, 1)
        features = discriminator(images)
        _, sentence_a = helpers.noise_and_sentence(0)
        _, sentence_b = helpers.noise_and_sentence(1)
        logits_a = discriminator.logits(features, sentence_a)
        logits_b = discriminator.logits(features, sentence_b)
        self.assertGreater(np.abs(logits_a - logits_b).max(), 1e-4)
        self.assertAllClose(discriminator.score(images, sentence_a), logits_a)

    def test_gradients_for_matching_aware_penalty(self):
        discriminator = ssagan_discriminator.SSAGANDiscriminator(ndf=8, image_size=64)
        images = tf.random.uniform((BATCH, 64, 64, 3), -1, 1)
        _, sentence = helpers.noise_and_sentence()
        sentence = tf.constant(sentence)
        with tf.GradientTape() as tape:
            tape.watch([images, sentence])
            logits = discriminator.score(images, sentence, training=True)
        grad_images, grad_sentence = tape.gradient(logits, [images, sentence])
        self.assertEqual(grad_images.shape, images.shape)
        self.assertEqual(grad_sentence.shape, sentence.shape)
        for grad in (grad_images, grad_sentence):
            self.assertGreater(np.abs(grad.numpy()).max(), 0.0)

    def test_config_round_trip(self):
        discriminator = ssagan_discriminator.SSAGANDiscriminator(
            ndf=4, sentence_dim=32, image_size=64)
        config = discriminator.get_config()
        self.assertContainsSubset(
            helpers.init_arg_names(ssagan_discriminator.SSAGANDiscriminator), config)
        clone = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(discriminator))
        self.assertIsInstance(clone, ssagan_discriminator.SSAGANDiscriminator)
        discriminator.build()
        clone.build()
        self.assertEqual([w.shape for w in clone.weights],
                         [w.shape for w in discriminator.weights])
        for weight in discriminator.weights:
            weight.assign(tf.random.normal(weight.shape) * 0.1)
        clone.set_weights(discriminator.get_weights())
        images = tf.random.uniform((BATCH, 64, 64, 3), -1, 1)
        sentence = tf.random.normal((BATCH, 32))
        self.assertAllClose(discriminator.score(images, sentence),
                            clone.score(images, sentence))

    def test_mixed_precision_policy(self):
        discriminator = ssagan_discriminator.SSAGANDiscriminator(
            ndf=4, image_size=64, dtype="mixed_bfloat16")
        images = tf.random.uniform((BATCH, 64, 64, 3), -1, 1)
        features = discriminator(images)
        self.assertEqual(features.dtype, tf.bfloat16)
        _, sentence = helpers.noise_and_sentence()
        self.assertEqual(discriminator.logits(features, sentence).dtype,
                         tf.float32)


if __name__ == "__main__":
    tf.test.main()
