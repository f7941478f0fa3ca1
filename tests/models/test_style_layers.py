"""Tests for the StyleGAN layers: style_ops, equalized_layers, mapping_network,
adain_style_layer and modulated_conv.

Expectations come from numpy re-implementations of the reference operations.
"""

import math

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests.models import helpers
from tf_t2i.models import adain_style_layer
from tf_t2i.models import equalized_layers
from tf_t2i.models import mapping_network
from tf_t2i.models import modulated_conv
from tf_t2i.models import style_ops

BATCH = helpers.BATCH


class StyleLayersTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(0)

    @parameterized.parameters(True, False)
    def test_modulated_conv_matches_numpy(self, demodulate):
        kernel_size = 3 if demodulate else 1
        layer = modulated_conv.ModulatedConv2D(
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
            expected.append(helpers.np_conv_same(x[b:b + 1], weight)[0])
        self.assertAllClose(layer(x, w), np.stack(expected), atol=1e-4)

    def test_affine_starts_at_one(self):
        layer = modulated_conv.ModulatedConv2D(4, 5, 3, w_dim=6)
        layer.build()
        self.assertAllClose(layer.styles(tf.zeros([1, 6])), np.ones((1, 4)))

    def test_mapping_network_equalised_learning_rate(self):
        mapping = mapping_network.MappingNetwork(
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
            x = helpers.np_leaky_relu(x @ kernel * 0.01 + layer.bias.numpy() * 0.01)
        self.assertAllClose(mapping(z, c), x, atol=1e-4, rtol=1e-4)

    def test_equalised_conv_stores_unit_weights(self):
        conv = equalized_layers.EqualizedConv2D(64, 3)
        conv.build((None, 8, 8, 32))
        self.assertAllClose(np.std(conv.kernel.numpy()), 1.0, rtol=0.05)
        x = np.random.default_rng(0).standard_normal(
            (1, 8, 8, 32)).astype(np.float32)
        expected = helpers.np_conv_same(
            x, conv.kernel.numpy() * math.sqrt(2.0 / (32 * 9)))
        self.assertAllClose(conv(x), expected, atol=1e-4)

    def test_adain_layer_on_constant_matches_numpy(self):
        layer = adain_style_layer.AdaINStyleLayer(3, 3, w_dim=4, use_conv=False)
        layer.build()
        rng = np.random.default_rng(0)
        layer.noise.strength.assign([0.5, -1.0, 2.0])
        layer.bias.assign([0.1, 0.2, -0.3])
        x = rng.standard_normal((BATCH, 4, 4, 3)).astype(np.float32)
        w = rng.standard_normal((BATCH, 4)).astype(np.float32)
        noise = rng.standard_normal((BATCH, 4, 4, 1)).astype(np.float32)
        h = helpers.np_leaky_relu(x + np.array([0.5, -1.0, 2.0]) * noise
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
        out = style_ops.minibatch_stddev(x, 4, unbiased, grouping)
        self.assertAllClose(out[..., :3], x)
        for members in groups:
            std = np.sqrt(np.var(x[members], axis=0, ddof=int(unbiased))
                          + 1e-8).mean()
            for i in members:
                self.assertAllClose(out[i, ..., 3], np.full((2, 2), std),
                                    atol=1e-5)
        single = style_ops.minibatch_stddev(x[:1], 4)
        self.assertAllEqual(single[..., 3], np.zeros((1, 2, 2)))

    def test_fir_resampling_keeps_constants_inside(self):
        ones = tf.ones([1, 8, 8, 2])
        up = style_ops.fir_upsample_2x(ones)
        self.assertEqual(up.shape, (1, 16, 16, 2))
        self.assertAllClose(up[:, 1:-1, 1:-1], np.ones((1, 14, 14, 2)))
        down = style_ops.fir_downsample_2x(ones)
        self.assertEqual(down.shape, (1, 4, 4, 2))
        self.assertAllClose(down[:, 1:-1, 1:-1], np.ones((1, 2, 2, 2)))
        blurred = style_ops.fir_blur_for_strided_conv(ones)
        self.assertEqual(blurred.shape, (1, 9, 9, 2))


if __name__ == "__main__":
    tf.test.main()
