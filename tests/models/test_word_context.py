"""Tests for tf_t2i.models.word_context: scaled dot-product attention from pixels to
words, checked against a numpy computation of the same formula."""

import types

import numpy as np
import tensorflow as tf

from tests.models import helpers
from tf_t2i.models import word_context


def _numpy_context(x, words, mask, layer):
    """softmax over real words of q(x) . k(w) / sqrt(d), times v(w); float64."""
    q = x.astype(np.float64) @ layer.query.kernel.numpy()
    k = words.astype(np.float64) @ layer.key.kernel.numpy()
    v = words.astype(np.float64) @ layer.value.kernel.numpy() + layer.value.bias.numpy()
    logits = np.einsum("bhwd,btd->bhwt", q, k) / np.sqrt(layer.channels)
    logits = np.where(mask[:, None, None, :], logits, -np.inf)
    attention = np.exp(logits - logits.max(-1, keepdims=True))
    attention /= attention.sum(-1, keepdims=True)
    return np.einsum("bhwt,btd->bhwd", attention, v), attention


class WordContextTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        _, _, words, mask, _ = helpers.text_inputs(0)
        self.words, self.mask = words[..., :12], mask
        self.x = np.random.default_rng(1).standard_normal((2, 3, 3, 8)).astype(np.float32)
        self.layer = word_context.WordContext(in_channels=8, word_dim=12, channels=6)

    def test_matches_numpy(self):
        context, attention = self.layer(self.x, self.words, self.mask)
        expected_context, expected_attention = _numpy_context(
            self.x, self.words, self.mask, self.layer)
        self.assertEqual(context.shape, (2, 3, 3, 6))
        self.assertAllClose(attention, expected_attention, atol=1e-5, rtol=1e-5)
        self.assertAllClose(context, expected_context, atol=1e-5, rtol=1e-5)
        # Guard: the attention is not uniform, so the query matters.
        self.assertGreater(np.ptp(attention.numpy()[1], axis=-1).max(), 0.05)

    def test_padding_words_get_no_attention_and_change_nothing(self):
        context, attention = self.layer(self.x, self.words, self.mask)
        self.assertAllEqual(attention.numpy()[0, ..., 3:], np.zeros((3, 3, 2)))
        self.assertAllClose(attention.numpy().sum(-1), np.ones((2, 3, 3)), atol=1e-6)
        other = self.words.copy()
        other[0, 3:] = 100.0  # sample 0's padding
        context_other, _ = self.layer(self.x, other, self.mask)
        self.assertAllClose(context_other, context, atol=1e-6, rtol=0)

    def test_mixed_precision_keeps_a_float32_softmax(self):
        layer = word_context.WordContext(8, 12, 6, dtype="mixed_bfloat16")
        context, attention = layer(self.x, self.words, self.mask)
        self.assertEqual(context.dtype, tf.bfloat16)
        self.assertEqual(attention.dtype, tf.float32)
        self.assertAllClose(attention.numpy().sum(-1), np.ones((2, 3, 3)), atol=1e-6)

    def test_coordinate_grid_holds_pixel_centres(self):
        grid = word_context.coordinate_grid(2, 4)
        self.assertEqual(grid.shape, (2, 4, 2))
        self.assertAllEqual(grid[0, :, 0], [-0.75, -0.25, 0.25, 0.75])  # x along the width
        self.assertAllEqual(grid[:, 2, 1], [-0.5, 0.5])  # y along the height

    def test_coords_let_equal_features_attend_by_position(self):
        layer = word_context.WordContext(8, 12, 6, coords=True)
        flat = np.broadcast_to(self.x[:, :1, :1], self.x.shape).copy()  # one feature vector
        context, attention = layer(flat, self.words, self.mask)
        _, plain = self.layer(flat, self.words, self.mask)
        # Without coordinates every pixel of a constant map attends alike; with them the
        # numpy formula holds on [x, x-coordinate, y-coordinate] with the query's kernel
        # [Wx; Wc], and the pixels differ.
        self.assertAllClose(np.ptp(plain.numpy(), axis=(1, 2)), np.zeros((2, 5)), atol=1e-6)
        grid = np.broadcast_to(word_context.coordinate_grid(3, 3), (2, 3, 3, 2))
        joined = types.SimpleNamespace(
            query=types.SimpleNamespace(kernel=tf.concat(
                [layer.query.kernel, layer.query_coords.kernel], axis=0)),
            key=layer.key, value=layer.value, channels=layer.channels)
        expected_context, expected_attention = _numpy_context(
            np.concatenate([flat, grid], axis=-1), self.words, self.mask, joined)
        self.assertAllClose(attention, expected_attention, atol=1e-5, rtol=1e-5)
        self.assertAllClose(context, expected_context, atol=1e-5, rtol=1e-5)
        self.assertGreater(np.ptp(attention.numpy()[..., :3], axis=(1, 2)).max(), 1e-3)
        clone = word_context.WordContext.from_config(layer.get_config())
        clone.build()
        clone.set_weights(layer.get_weights())
        self.assertAllClose(clone(flat, self.words, self.mask)[0], context)
        unknown_side = tf.function(layer).get_concrete_function
        with self.assertRaisesRegex(ValueError, "needs a static height and width"):
            unknown_side(tf.TensorSpec([2, None, None, 8]), tf.TensorSpec([2, 5, 12]),
                         tf.TensorSpec([2, 5], tf.bool))

    def test_config_round_trip(self):
        clone = word_context.WordContext.from_config(self.layer.get_config())
        self.layer.build()
        clone.build()
        clone.set_weights(self.layer.get_weights())
        self.assertAllClose(clone(self.x, self.words, self.mask)[0],
                            self.layer(self.x, self.words, self.mask)[0])


if __name__ == "__main__":
    tf.test.main()
