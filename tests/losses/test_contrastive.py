"""Tests for tf_t2i.losses.contrastive (single replica)."""

import math

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tf_t2i.losses import contrastive


def _numpy_nt_xent_per_example(a, b, temperature):
    """Loop implementation of NT-Xent, written from the paper's Eq. (1)-(2)."""
    n = a.shape[0]
    vectors = []
    for row in list(a) + list(b):
        row = np.asarray(row, np.float64)
        vectors.append(row / max(np.sqrt(np.sum(row * row)), 1e-8))
    anchor_losses = []
    for k in range(2 * n):
        partner = k + n if k < n else k - n
        denominator = 0.0
        for m in range(2 * n):
            if m != k:
                denominator += math.exp(np.dot(vectors[k], vectors[m]) / temperature)
        positive = np.dot(vectors[k], vectors[partner]) / temperature
        anchor_losses.append(math.log(denominator) - positive)
    return np.array(
        [(anchor_losses[i] + anchor_losses[n + i]) / 2 for i in range(n)])


class NTXentTest(tf.test.TestCase, parameterized.TestCase):

    def test_identical_pairs_hand_computed(self):
        # z = [e1, e2, e1, e2], temperature 0.5. Anchor e1 (k=0) sees
        # m=1: cos 0 -> logit 0; m=2 (positive): cos 1 -> 2; m=3: cos 0 -> 0.
        # loss = -2 + log(e^0 + e^2 + e^0) = log(1 + 2 e^-2) ~= 0.2395,
        # and every anchor is the same by symmetry.
        a = tf.constant([[1.0, 0.0], [0.0, 1.0]])
        expected = math.log(1.0 + 2.0 * math.exp(-2.0))
        self.assertAllClose(
            contrastive.nt_xent_per_example(a, a), [expected, expected])
        self.assertAllClose(contrastive.nt_xent_loss(a, a), expected)

    def test_swapped_pairs_hand_computed(self):
        # b = [e2, e1]: z = [e1, e2, e2, e1]. Anchor e1 (k=0): m=1 cos 0, m=2
        # (positive, e2) cos 0, m=3 (e1) cos 1 -> logits [0, 0, 2];
        # loss = log(2 + e^2) ~= 2.2395 for every anchor.
        a = tf.constant([[1.0, 0.0], [0.0, 1.0]])
        b = tf.constant([[0.0, 1.0], [1.0, 0.0]])
        expected = math.log(2.0 + math.exp(2.0))
        self.assertAllClose(contrastive.nt_xent_loss(a, b), expected)

    def test_asymmetric_hand_computed(self):
        # Temperature 1. Normalised: a0 = (.6, .8), a1 = (1, 0), b0 = (1, 0),
        # b1 = (0, 1). Cosines to the other three vectors (positive marked *):
        #   a0: a1 .6, b0* .6, b1 .8 -> log(2e^.6 + e^.8) - .6
        #   a1: a0 .6, b0 1, b1* 0   -> log(e^.6 + e + 1)
        #   b0: a0* .6, a1 1, b1 0   -> log(e^.6 + e + 1) - .6
        #   b1: a0 .8, a1* 0, b0 0   -> log(e^.8 + 2)
        a = tf.constant([[3.0, 4.0], [1.0, 0.0]])
        b = tf.constant([[1.0, 0.0], [0.0, 2.0]])
        e = math.exp
        loss_a0 = math.log(2 * e(0.6) + e(0.8)) - 0.6
        loss_a1 = math.log(e(0.6) + e(1.0) + 1.0)
        loss_b0 = math.log(e(0.6) + e(1.0) + 1.0) - 0.6
        loss_b1 = math.log(e(0.8) + 2.0)
        expected = [(loss_a0 + loss_b0) / 2, (loss_a1 + loss_b1) / 2]
        self.assertAllClose(
            contrastive.nt_xent_per_example(a, b, temperature=1.0), expected)

    @parameterized.parameters(0.5, 0.1)
    def test_random_against_numpy(self, temperature):
        rng = np.random.default_rng(3)
        a = rng.normal(size=[5, 7]).astype(np.float32)
        b = rng.normal(size=[5, 7]).astype(np.float32)
        expected = _numpy_nt_xent_per_example(a, b, temperature)
        per_example = contrastive.nt_xent_per_example(
            tf.constant(a), tf.constant(b), temperature=temperature)
        self.assertEqual(per_example.shape, (5,))
        self.assertAllClose(per_example, expected, rtol=1e-5, atol=1e-5)
        self.assertAllClose(
            contrastive.nt_xent_loss(tf.constant(a), tf.constant(b), temperature),
            np.mean(expected), rtol=1e-5, atol=1e-5)

    def test_invariant_to_row_scaling(self):
        rng = np.random.default_rng(4)
        a = rng.normal(size=[4, 6]).astype(np.float32)
        b = rng.normal(size=[4, 6]).astype(np.float32)
        scale_a = np.array([[0.1], [3.0], [7.0], [0.5]], np.float32)
        scale_b = np.array([[2.0], [0.01], [1.0], [40.0]], np.float32)
        self.assertAllClose(
            contrastive.nt_xent_per_example(a * scale_a, b * scale_b),
            contrastive.nt_xent_per_example(a, b), rtol=1e-5, atol=1e-6)

    def test_symmetric_in_swapping_views(self):
        rng = np.random.default_rng(5)
        a = tf.constant(rng.normal(size=[4, 6]).astype(np.float32))
        b = tf.constant(rng.normal(size=[4, 6]).astype(np.float32))
        self.assertAllClose(
            contrastive.nt_xent_per_example(a, b),
            contrastive.nt_xent_per_example(b, a), rtol=1e-6, atol=1e-6)
        # Not a trivial symmetry: the values differ between examples.
        values = contrastive.nt_xent_per_example(a, b).numpy()
        self.assertGreater(np.ptp(values), 1e-3)

    def test_gradient_finite_and_in_tf_function_with_mixed_precision(self):
        rng = np.random.default_rng(6)
        a = tf.Variable(rng.normal(size=[3, 4]).astype(np.float32))
        b = tf.Variable(rng.normal(size=[3, 4]).astype(np.float32))

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = contrastive.nt_xent_loss(
                    tf.cast(a, tf.bfloat16), tf.cast(b, tf.bfloat16))
            return loss, tape.gradient(loss, [a, b])

        loss, grads = step()
        self.assertEqual(loss.dtype, tf.float32)
        expected = np.mean(
            _numpy_nt_xent_per_example(
                tf.cast(tf.cast(a, tf.bfloat16), tf.float32).numpy(),
                tf.cast(tf.cast(b, tf.bfloat16), tf.float32).numpy(), 0.5))
        self.assertAllClose(loss, expected, rtol=1e-5, atol=1e-5)
        for g in grads:
            self.assertTrue(np.all(np.isfinite(g.numpy())))
            self.assertGreater(np.abs(g.numpy()).sum(), 0.0)


if __name__ == '__main__':
    tf.test.main()
