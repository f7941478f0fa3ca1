"""Tests for tf_t2i.models.layers: torch-initialised layers, resizing and GLU.

Expectations are hand-computed or come from numpy re-implementations of the
PyTorch operations.
"""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests.models import helpers
from tf_t2i.models import layers as t2i_layers


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
            out, helpers.np_resize_align_corners(x, size_out, size_out), atol=1e-5)

    def test_upsample_nearest_2x(self):
        x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
        out = t2i_layers.upsample_nearest_2x(tf.constant(x, tf.float32))
        expected = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
        self.assertAllClose(out, expected)


class SoftmaxOverRealWordsTest(tf.test.TestCase):

    def test_padding_words_take_no_weight_at_any_rank(self):
        rng = np.random.default_rng(0)
        mask = np.array([[1, 1, 0], [1, 0, 0]], bool)
        for shape in ((2, 3), (2, 5, 3), (2, 2, 4, 3)):
            logits = rng.standard_normal(shape).astype(np.float32)
            out = t2i_layers.softmax_over_real_words(
                tf.constant(logits, tf.bfloat16 if len(shape) == 4 else tf.float32), mask)
            self.assertEqual(out.dtype, tf.float32)
            real = mask.reshape((2,) + (1,) * (len(shape) - 2) + (3,))
            expected = np.where(real, np.exp(logits), 0.0)
            expected /= expected.sum(-1, keepdims=True)
            self.assertAllClose(out, expected, atol=1e-2 if len(shape) == 4 else 1e-6)

    def test_a_caption_without_words_gets_uniform_weights(self):
        out = t2i_layers.softmax_over_real_words(tf.zeros([1, 2, 4]), tf.zeros([1, 4], bool))
        self.assertAllClose(out, np.full((1, 2, 4), 0.25))


class GLUTest(tf.test.TestCase):

    def test_glu_gates_first_half_with_second(self):
        x = np.arange(8, dtype=np.float32).reshape(2, 4) - 3.0
        expected = x[:, :2] * helpers.np_sigmoid(x[:, 2:])
        self.assertAllClose(t2i_layers.glu(tf.constant(x)), expected)


if __name__ == "__main__":
    tf.test.main()
