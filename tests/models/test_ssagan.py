"""Tests for tf_t2i.models.ssagan and the shared layers it uses.

Expectations come from numpy re-implementations of the reference operations
(convolution, batch norm, bilinear align_corners resize), hand-computed values,
or parameter counts of the PyTorch reference (wtliao/text2image, model.py).
"""

import inspect

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tf_t2i.models import layers as t2i_layers
from tf_t2i.models import ssagan

BATCH = 2
Z_DIM = 100
SENTENCE_DIM = 256


def _count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def _np_conv_same(x, kernel, bias=None):
    """Stride-1 convolution with symmetric zero padding, odd square kernels."""
    k = kernel.shape[0]
    pad = (k - 1) // 2
    height, width = x.shape[1], x.shape[2]
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],), np.float64)
    for i in range(k):
        for j in range(k):
            out += np.einsum("bhwc,co->bhwo",
                             padded[:, i:i + height, j:j + width], kernel[i, j])
    return out if bias is None else out + bias


def _np_batch_norm_train(x, eps=1e-5):
    mean = x.mean(axis=(0, 1, 2))
    var = x.var(axis=(0, 1, 2))  # Biased, as torch normalises with.
    return (x - mean) / np.sqrt(var + eps)


def _np_leaky_relu(x):
    return np.where(x > 0, x, 0.2 * x)


def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np_resize_align_corners(x, out_h, out_w):
    """torch's bilinear interpolation with align_corners=True, by its formula."""
    _, in_h, in_w, _ = x.shape

    def coords(n_out, n_in):
        src = np.arange(n_out) * ((n_in - 1) / (n_out - 1))
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    y0, y1, wy = coords(out_h, in_h)
    x0, x1, wx = coords(out_w, in_w)
    wy = wy[None, :, None, None]
    wx = wx[None, None, :, None]
    top = x[:, y0][:, :, x0] * (1 - wx) + x[:, y0][:, :, x1] * wx
    bottom = x[:, y1][:, :, x0] * (1 - wx) + x[:, y1][:, :, x1] * wx
    return top * (1 - wy) + bottom * wy


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((BATCH, Z_DIM)).astype(np.float32)
    sentence = rng.standard_normal((BATCH, SENTENCE_DIM)).astype(np.float32)
    return z, sentence


def _init_arg_names(cls):
    return set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}


class SharedLayersTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(1)

    @parameterized.named_parameters(
        ("conv3x3", "conv", 64, 3, 64 * 9),
        ("conv1x1", "conv", 512, 1, 512),
        ("dense", "dense", 256, None, 256),
    )
    def test_torch_default_init_bounds(self, kind, in_channels, kernel_size,
                                       fan_in):
        if kind == "conv":
            layer = t2i_layers.torch_conv2d(in_channels, 64, kernel_size)
            layer.build((None, 8, 8, in_channels))
        else:
            layer = t2i_layers.torch_dense(in_channels, 256)
            layer.build((None, in_channels))
        bound = 1.0 / np.sqrt(fan_in)
        kernel = layer.kernel.numpy()
        bias = layer.bias.numpy()
        self.assertLessEqual(np.abs(kernel).max(), bound)
        self.assertLessEqual(np.abs(bias).max(), bound)
        # U(-b, b) has standard deviation b / sqrt(3).
        self.assertAllClose(kernel.std(), bound / np.sqrt(3.0), rtol=0.1)
        self.assertGreater(np.abs(bias).max(), 0.5 * bound)

    def test_zero_init_dense(self):
        layer = t2i_layers.torch_dense(256, 32, zero_init=True)
        layer.build((None, 256))
        self.assertAllEqual(layer.kernel.numpy(), np.zeros((256, 32)))
        self.assertAllEqual(layer.bias.numpy(), np.zeros((32,)))

    def test_bias_initializer_serializes(self):
        init = t2i_layers.TorchBiasInitializer(fan_in=27, seed=3)
        restored = keras.initializers.deserialize(
            keras.initializers.serialize(init))
        self.assertIsInstance(restored, t2i_layers.TorchBiasInitializer)
        self.assertEqual(restored.get_config(), {"fan_in": 27, "seed": 3})

    def test_resize_align_corners_hand_computed(self):
        x = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)[None, :, :, None]
        out = t2i_layers.resize_bilinear_align_corners(tf.constant(x), (3, 3))
        # Corners stay, edge midpoints and the centre are means.
        expected = np.array([[0.0, 0.5, 1.0],
                             [1.0, 1.5, 2.0],
                             [2.0, 2.5, 3.0]])[None, :, :, None]
        self.assertAllClose(out, expected)
        out = t2i_layers.resize_bilinear_align_corners(tf.constant(x), (4, 4))
        # Output column j samples input column j / 3.
        self.assertAllClose(out[0, 0, :, 0], [0.0, 1 / 3, 2 / 3, 1.0])

    @parameterized.parameters((4, 8), (8, 16), (5, 7))
    def test_resize_align_corners_matches_torch_formula(self, size_in, size_out):
        x = np.random.default_rng(0).standard_normal(
            (2, size_in, size_in, 1)).astype(np.float32)
        out = t2i_layers.resize_bilinear_align_corners(
            tf.constant(x), (size_out, size_out))
        self.assertAllClose(
            out, _np_resize_align_corners(x, size_out, size_out), atol=1e-5)

    def test_upsample_nearest_2x(self):
        x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
        out = t2i_layers.upsample_nearest_2x(tf.constant(x, tf.float32))
        expected = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
        self.assertAllClose(out, expected)


class SSCBNTest(tf.test.TestCase):

    def test_matches_formula(self):
        keras.utils.set_random_seed(2)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((BATCH, 4, 4, 8)).astype(np.float32)
        sentence = rng.standard_normal((BATCH, 16)).astype(np.float32)
        mask = rng.uniform(size=(BATCH, 4, 4, 1)).astype(np.float32)
        layer = ssagan.SSCBN(8, sentence_dim=16)
        layer.build(x.shape)
        # The output layers start at zero; give them values to test with.
        for dense in (layer.gamma_out, layer.beta_out):
            dense.kernel.assign(rng.standard_normal((256, 8)) * 0.1)
            dense.bias.assign(rng.standard_normal((8,)) * 0.1)
        out = layer(x, sentence, mask, training=True)

        def mlp(hidden, final):
            h = np.maximum(sentence @ hidden.kernel.numpy()
                           + hidden.bias.numpy(), 0.0)
            return h @ final.kernel.numpy() + final.bias.numpy()

        gamma = mlp(layer.gamma_hidden, layer.gamma_out)[:, None, None, :]
        beta = mlp(layer.beta_hidden, layer.beta_out)[:, None, None, :]
        expected = (_np_batch_norm_train(x) * (1 + mask * gamma)
                    + mask * beta)
        self.assertAllClose(out, expected, atol=1e-4)
        self.assertEqual(_count(layer.trainable_weights),
                         2 * (16 * 256 + 256 + 256 * 8 + 8))


class SSAGANGeneratorTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(0)

    def test_parameter_count_at_256_matches_reference(self):
        generator = ssagan.SSAGANGenerator(ngf=64, image_size=256)
        generator.build()
        # Counted on the PyTorch NetG(ngf=64, nz=100).
        self.assertEqual(_count(generator.trainable_weights), 29_494_273)

    @parameterized.parameters((64, 5, 4), (128, 6, 2), (256, 7, 1))
    def test_block_list_truncates_with_image_size(self, image_size, num_blocks,
                                                  head_multiplier):
        generator = ssagan.SSAGANGenerator(ngf=4, image_size=image_size)
        self.assertLen(generator.blocks, num_blocks)
        self.assertEqual(generator.image_channels, 4 * head_multiplier)
        # Only the last block has no mask predictor: nothing follows it.
        self.assertEqual(
            [block.mask_predictor is not None for block in generator.blocks],
            [True] * (num_blocks - 1) + [False])

    def test_rejects_unsupported_image_size(self):
        with self.assertRaisesRegex(ValueError, "image_size"):
            ssagan.SSAGANGenerator(image_size=96)

    @parameterized.parameters(True, False)
    def test_output_shapes_and_ranges(self, training):
        generator = ssagan.SSAGANGenerator(ngf=8, image_size=64)
        z, sentence = _inputs()
        images, masks = generator(z, sentence, training=training)
        self.assertEqual(images.shape, (BATCH, 64, 64, 3))
        self.assertEqual(images.dtype, tf.float32)
        self.assertAllInRange(images, -1.0, 1.0)
        self.assertEqual([m.shape for m in masks],
                         [(BATCH, s, s, 1) for s in (4, 8, 16, 32, 64)])
        for mask in masks:
            self.assertAllInRange(mask, 0.0, 1.0)

    def test_list_input_equals_two_arguments(self):
        generator = ssagan.SSAGANGenerator(ngf=8, image_size=64)
        z, sentence = _inputs()
        images_a, _ = generator(z, sentence, training=False)
        images_b, _ = generator([z, sentence], training=False)
        self.assertAllEqual(images_a, images_b)

    def test_output_at_init_is_the_shortcut_path(self):
        # With every residual gamma at 0 only fc, the shortcuts and the output
        # head act: x0 = fc(z) read as (C, H, W), four identity blocks with
        # nearest upsampling, then block4's 1x1 conv (8ngf -> 4ngf).
        generator = ssagan.SSAGANGenerator(ngf=8, image_size=64)
        z, sentence = _inputs()
        images, _ = generator(z, sentence, training=True)

        fc = z @ generator.fc.kernel.numpy() + generator.fc.bias.numpy()
        x = fc.reshape(BATCH, 64, 4, 4).transpose(0, 2, 3, 1)
        x = np.repeat(np.repeat(x, 16, axis=1), 16, axis=2)  # 4 -> 64 px.
        shortcut = generator.blocks[4].shortcut_conv
        x = _np_conv_same(x, shortcut.kernel.numpy(), shortcut.bias.numpy())
        h = _np_leaky_relu(_np_batch_norm_train(x))
        h = _np_conv_same(h, generator.image_conv.kernel.numpy(),
                          generator.image_conv.bias.numpy())
        self.assertAllClose(images, np.tanh(h), atol=1e-4)

    def test_mask_flow(self):
        # masks[0] comes from the fc output; masks[k] is the sigmoid of block
        # k-1's logits resized with align_corners. At init each block passes
        # its input through, so block0's output is the fc output itself.
        generator = ssagan.SSAGANGenerator(ngf=8, image_size=64)
        z, sentence = _inputs()
        _, masks = generator(z, sentence, training=False)
        fc = z @ generator.fc.kernel.numpy() + generator.fc.bias.numpy()
        x0 = fc.reshape(BATCH, 64, 4, 4).transpose(0, 2, 3, 1)
        logits0 = generator.initial_mask_predictor(x0, training=False).numpy()
        self.assertAllClose(masks[0], _np_sigmoid(logits0), atol=1e-5)
        logits1 = generator.blocks[0].mask_predictor(
            x0, training=False).numpy()
        self.assertAllClose(
            masks[1], _np_sigmoid(_np_resize_align_corners(logits1, 8, 8)),
            atol=1e-5)

    def test_sentence_has_no_effect_at_init(self):
        generator = ssagan.SSAGANGenerator(ngf=8, image_size=64)
        z, sentence_a = _inputs(0)
        _, sentence_b = _inputs(1)
        images_a, _ = generator(z, sentence_a, training=True)
        images_b, _ = generator(z, sentence_b, training=True)
        self.assertAllEqual(images_a, images_b)
        # Open the residual paths: the zero-initialised SSCBN output layers
        # still keep the sentence out.
        for block in generator.blocks:
            block.gamma.assign(1.0)
        images_a, _ = generator(z, sentence_a, training=True)
        images_b, _ = generator(z, sentence_b, training=True)
        self.assertAllEqual(images_a, images_b)
        self._perturb_sscbn(generator.blocks)
        images_a, _ = generator(z, sentence_a, training=True)
        images_b, _ = generator(z, sentence_b, training=True)
        self.assertGreater(np.abs(images_a - images_b).max(), 1e-3)

    def test_residual_gate_init(self):
        # A gate starting at 1 opens every residual branch from the first step:
        # the output is no longer the shortcut path and every gamma reads 1.
        z, sentence = _inputs()
        closed = ssagan.SSAGANGenerator(ngf=8, image_size=64)
        opened = ssagan.SSAGANGenerator(ngf=8, image_size=64,
                                        residual_gate_init=1.0)
        closed.build()
        opened.build()
        opened.set_weights([np.ones_like(w) if w.shape == () else w
                            for w in closed.get_weights()])
        fresh = ssagan.SSAGANGenerator(ngf=8, image_size=64, residual_gate_init=1.0)
        fresh.build()
        self.assertEqual([float(b.gamma.numpy()) for b in fresh.blocks], [1.0] * 5)
        self.assertEqual(opened.get_config()["residual_gate_init"], 1.0)
        for block in closed.blocks:
            block.gamma.assign(1.0)
        self.assertAllClose(opened(z, sentence, training=True)[0],
                            closed(z, sentence, training=True)[0])

    def _perturb_sscbn(self, blocks):
        rng = np.random.default_rng(5)
        for block in blocks:
            for sscbn in (block.sscbn_in, block.sscbn_out):
                for dense in (sscbn.gamma_out, sscbn.beta_out):
                    dense.kernel.assign(
                        rng.standard_normal(dense.kernel.shape) * 0.1)

    @parameterized.parameters(0, 2)
    def test_block_is_gated_by_previous_mask(self, k):
        # Only block k's residual is open and conditioned. Forcing the mask
        # that should gate it to 0 removes the sentence; forcing it to 1 keeps
        # it.
        generator = ssagan.SSAGANGenerator(ngf=8, image_size=64)
        z, sentence_a = _inputs(0)
        _, sentence_b = _inputs(1)
        generator.build()
        generator.blocks[k].gamma.assign(1.0)
        self._perturb_sscbn(generator.blocks)
        source = (generator.initial_mask_predictor if k == 0
                  else generator.blocks[k - 1].mask_predictor)
        for logit, expect_equal in ((-1e4, True), (1e4, False)):
            source.conv_logits.bias.assign([logit])
            images_a, masks = generator(z, sentence_a, training=True)
            images_b, _ = generator(z, sentence_b, training=True)
            self.assertAllEqual(masks[k], np.full(masks[k].shape, logit > 0))
            if expect_equal:
                self.assertAllEqual(images_a, images_b)
            else:
                self.assertGreater(np.abs(images_a - images_b).max(), 1e-3)

    def test_training_and_inference_batch_norm(self):
        generator = ssagan.SSAGANGenerator(ngf=8, image_size=64)
        z, sentence = _inputs()
        generator(z, sentence, training=False)
        moving_mean = generator.image_batch_norm.moving_mean
        self.assertAllEqual(moving_mean, np.zeros(moving_mean.shape))
        images_train, _ = generator(z, sentence, training=True)
        # Momentum 0.9: the moving mean moved a tenth of the way to the batch
        # mean, which is not zero after the 1x1 shortcut conv.
        self.assertGreater(np.abs(moving_mean.numpy()).max(), 0.0)
        images_infer, _ = generator(z, sentence, training=False)
        images_infer_again, _ = generator(z, sentence, training=False)
        self.assertAllEqual(images_infer, images_infer_again)
        self.assertGreater(np.abs(images_train - images_infer).max(), 1e-3)

    def test_config_round_trip(self):
        generator = ssagan.SSAGANGenerator(
            ngf=8, z_dim=32, sentence_dim=64, image_size=64, mask_channels=10)
        config = generator.get_config()
        self.assertContainsSubset(_init_arg_names(ssagan.SSAGANGenerator),
                                  config)
        clone = ssagan.SSAGANGenerator.from_config(config)
        generator.build()
        clone.build()
        self.assertEqual([w.shape for w in clone.weights],
                         [w.shape for w in generator.weights])
        clone.set_weights(generator.get_weights())
        rng = np.random.default_rng(0)
        z = rng.standard_normal((BATCH, 32)).astype(np.float32)
        sentence = rng.standard_normal((BATCH, 64)).astype(np.float32)
        self.assertAllClose(generator(z, sentence, training=False)[0],
                            clone(z, sentence, training=False)[0])

    def test_graph_mode_matches_eager(self):
        generator = ssagan.SSAGANGenerator(ngf=4, image_size=64)
        z, sentence = _inputs()
        eager, _ = generator(z, sentence, training=False)
        graph_fn = tf.function(
            lambda z, s: generator(z, s, training=False)[0])
        self.assertAllClose(graph_fn(z, sentence), eager, atol=1e-5)

    def test_mixed_precision_policy(self):
        generator = ssagan.SSAGANGenerator(
            ngf=4, image_size=64, dtype="mixed_bfloat16")
        z, sentence = _inputs()
        images, masks = generator(z, sentence, training=True)
        self.assertEqual(images.dtype, tf.float32)
        self.assertEqual(masks[-1].dtype, tf.float32)
        self.assertEqual(generator.blocks[0].conv_in.compute_dtype, "bfloat16")
        self.assertEqual(generator.blocks[0].gamma.dtype, "float32")


class SSAGANDiscriminatorTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(0)

    def test_parameter_counts_at_256_match_reference(self):
        discriminator = ssagan.SSAGANDiscriminator(ndf=64, image_size=256)
        discriminator.build()
        # Counted on the PyTorch NetD(64) with its COND_DNET; this includes the
        # 1x1 shortcut convs the reference builds but never applies (blocks 4
        # and 5, 1024 -> 1024).
        self.assertEqual(_count(discriminator.trainable_weights), 80_379_526)
        self.assertEqual(_count(discriminator.head.trainable_weights),
                         1_476_608)

    @parameterized.parameters((64, 4), (128, 5))
    def test_features_and_logits_shapes(self, image_size, num_blocks):
        discriminator = ssagan.SSAGANDiscriminator(ndf=4, image_size=image_size)
        self.assertLen(discriminator.blocks, num_blocks)
        images = tf.random.uniform((BATCH, image_size, image_size, 3), -1, 1)
        features = discriminator(images, training=True)
        self.assertEqual(features.shape, (BATCH, 4, 4, 64))
        _, sentence = _inputs()
        logits = discriminator.logits(features, sentence)
        self.assertEqual(logits.shape, (BATCH,))
        self.assertEqual(logits.dtype, tf.float32)

    def test_features_at_init_are_the_shortcut_path(self):
        # gamma = 0: conv_img, then per block avg-pool 2 and the 1x1 conv (at
        # 64 px every block changes width).
        discriminator = ssagan.SSAGANDiscriminator(ndf=8, image_size=64)
        images = np.random.default_rng(0).uniform(
            -1, 1, (BATCH, 64, 64, 3)).astype(np.float32)
        features = discriminator(images)
        x = _np_conv_same(images, discriminator.image_conv.kernel.numpy(),
                          discriminator.image_conv.bias.numpy())
        for block in discriminator.blocks:
            b, h, w, c = x.shape
            x = x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
            x = _np_conv_same(x, block.shortcut_conv.kernel.numpy(),
                              block.shortcut_conv.bias.numpy())
        self.assertAllClose(features, x, atol=1e-4)

    def test_residual_gate_init(self):
        discriminator = ssagan.SSAGANDiscriminator(
            ndf=8, image_size=64, residual_gate_init=0.5)
        discriminator.build()
        self.assertEqual([float(b.gamma.numpy()) for b in discriminator.blocks],
                         [0.5] * 4)
        self.assertEqual(discriminator.get_config()["residual_gate_init"], 0.5)
        # The gate scales the residual branch: features differ from the
        # shortcut-only model with the same weights.
        closed = ssagan.SSAGANDiscriminator(ndf=8, image_size=64)
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
        block = ssagan.ResDBlock(2, 3)
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
        h = _np_leaky_relu(down)
        h = _np_leaky_relu(_np_conv_same(h, block.conv_same.kernel.numpy()))
        self.assertAllClose(out, h, atol=1e-5)

    def test_head_matches_numpy(self):
        discriminator = ssagan.SSAGANDiscriminator(ndf=8, image_size=64)
        discriminator.build()
        rng = np.random.default_rng(0)
        features = rng.standard_normal((BATCH, 4, 4, 128)).astype(np.float32)
        _, sentence = _inputs()
        logits = discriminator.logits(features, sentence)
        tiled = np.broadcast_to(sentence[:, None, None, :],
                                (BATCH, 4, 4, SENTENCE_DIM))
        h = np.concatenate([features, tiled], axis=-1)
        h = _np_leaky_relu(
            _np_conv_same(h, discriminator.head.joint_conv.kernel.numpy()))
        expected = np.einsum("bhwc,hwco->b", h,
                             discriminator.head.logits_conv.kernel.numpy())
        self.assertAllClose(logits, expected, atol=1e-4)

    def test_head_depends_on_sentence(self):
        discriminator = ssagan.SSAGANDiscriminator(ndf=8, image_size=64)
        images = tf.random.uniform((BATCH, 64, 64, 3), -1, 1)
        features = discriminator(images)
        _, sentence_a = _inputs(0)
        _, sentence_b = _inputs(1)
        logits_a = discriminator.logits(features, sentence_a)
        logits_b = discriminator.logits(features, sentence_b)
        self.assertGreater(np.abs(logits_a - logits_b).max(), 1e-4)
        self.assertAllClose(discriminator.score(images, sentence_a), logits_a)

    def test_gradients_for_matching_aware_penalty(self):
        discriminator = ssagan.SSAGANDiscriminator(ndf=8, image_size=64)
        images = tf.random.uniform((BATCH, 64, 64, 3), -1, 1)
        _, sentence = _inputs()
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
        discriminator = ssagan.SSAGANDiscriminator(
            ndf=4, sentence_dim=32, image_size=64)
        config = discriminator.get_config()
        self.assertContainsSubset(
            _init_arg_names(ssagan.SSAGANDiscriminator), config)
        clone = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(discriminator))
        self.assertIsInstance(clone, ssagan.SSAGANDiscriminator)
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
        discriminator = ssagan.SSAGANDiscriminator(
            ndf=4, image_size=64, dtype="mixed_bfloat16")
        images = tf.random.uniform((BATCH, 64, 64, 3), -1, 1)
        features = discriminator(images)
        self.assertEqual(features.dtype, tf.bfloat16)
        _, sentence = _inputs()
        self.assertEqual(discriminator.logits(features, sentence).dtype,
                         tf.float32)


if __name__ == "__main__":
    tf.test.main()
