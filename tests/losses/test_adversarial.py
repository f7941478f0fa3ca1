"""Tests for tf_t2i.losses.adversarial."""

import math

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tf_t2i.losses import adversarial


def _softplus(x):
    return math.log1p(math.exp(x))


class HingeTest(tf.test.TestCase, parameterized.TestCase):

    def test_discriminator_hand_computed(self):
        real = [2.0, 0.5, -1.0, 1.0]
        fake = [-2.0, 0.0, 1.5, -0.5]
        mismatched = [0.5, -3.0, 0.0, 2.0]
        # relu(1 - real)       = [0,   0.5, 2,   0]
        # relu(1 + fake)       = [0,   1,   2.5, 0.5]
        # relu(1 + mismatched) = [1.5, 0,   1,   3]
        # real + (fake + mismatched) / 2 = [0.75, 1.0, 3.75, 1.75]
        loss = adversarial.hinge_discriminator_loss(
            tf.constant(real), tf.constant(fake), tf.constant(mismatched))
        self.assertAllClose(loss, [0.75, 1.0, 3.75, 1.75])

    def test_discriminator_without_mismatched(self):
        # relu(1 - real) + relu(1 + fake) = [0+0, 0.5+1, 2+2.5, 0+0.5]
        loss = adversarial.hinge_discriminator_loss(
            tf.constant([2.0, 0.5, -1.0, 1.0]), tf.constant([-2.0, 0.0, 1.5, -0.5]))
        self.assertAllClose(loss, [0.0, 1.5, 4.5, 0.5])

    def test_fake_term_hand_computed(self):
        # relu(1 + x) for x = [-2, -1, 0, 1.5], as a column too
        expected = [0.0, 0.0, 1.0, 2.5]
        self.assertAllClose(adversarial.hinge_fake_term(tf.constant([-2.0, -1.0, 0.0, 1.5])),
                            expected)
        self.assertAllClose(adversarial.hinge_fake_term(tf.constant([[-2.0], [-1.0], [0.0],
                                                                     [1.5]])), expected)

    def test_discriminator_accepts_column_logits(self):
        real = tf.constant([[2.0], [0.5], [-1.0], [1.0]])
        fake = tf.constant([[-2.0], [0.0], [1.5], [-0.5]])
        mismatched = tf.constant([[0.5], [-3.0], [0.0], [2.0]])
        loss = adversarial.hinge_discriminator_loss(real, fake, mismatched)
        self.assertEqual(loss.shape, (4,))
        self.assertAllClose(loss, [0.75, 1.0, 3.75, 1.75])

    def test_generator_hand_computed(self):
        loss = adversarial.hinge_generator_loss(
            tf.constant([[1.0], [-2.0], [0.5], [0.0]]))
        self.assertAllClose(loss, [-1.0, 2.0, -0.5, 0.0])

    def test_mixed_precision_inputs_give_float32(self):
        loss = adversarial.hinge_discriminator_loss(
            tf.constant([2.0, 0.5, -1.0, 1.0], tf.float16),
            tf.constant([-2.0, 0.0, 1.5, -0.5], tf.bfloat16))
        self.assertEqual(loss.dtype, tf.float32)
        self.assertAllClose(loss, [0.0, 1.5, 4.5, 0.5])


class GeneratorMatchingLossTest(tf.test.TestCase):

    def test_hand_computed(self):
        # softplus(0 - 2) = log(1 + e^-2) = 0.126928; softplus(0) = log 2; softplus(2).
        loss = adversarial.generator_matching_loss(
            tf.constant([[2.0], [0.0], [-1.0]]), tf.constant([0.0, 0.0, 1.0]))
        self.assertEqual(loss.shape, (3,))
        self.assertAllClose(loss, [0.126928, 0.693147, 2.126928], atol=1e-6)

    def test_gradient_raises_matched_and_lowers_mismatched(self):
        matched, mismatched = tf.Variable([0.5, -1.0]), tf.Variable([0.0, 3.0])
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(adversarial.generator_matching_loss(matched, mismatched))
        d_matched, d_mismatched = tape.gradient(loss, [matched, mismatched])
        # d/d matched = -sigmoid(mismatched - matched); d/d mismatched = its negative.
        expected = -1.0 / (1.0 + np.exp(-np.array([-0.5, 4.0])))
        self.assertAllClose(d_matched, expected, atol=1e-6)
        self.assertAllClose(d_mismatched, -expected, atol=1e-6)

    def test_only_the_difference_counts(self):
        # A shift shared by both logits (the unconditional part of D) changes nothing.
        base = adversarial.generator_matching_loss(tf.constant([1.0, -2.0]),
                                                   tf.constant([0.5, 0.0]))
        shifted = adversarial.generator_matching_loss(tf.constant([-9.0, 8.0]),
                                                      tf.constant([-9.5, 10.0]))
        self.assertAllClose(base, shifted, atol=1e-5)

    def test_large_logits_are_finite(self):
        loss = adversarial.generator_matching_loss(tf.constant([-500.0, 500.0]),
                                                   tf.constant([500.0, -500.0]))
        self.assertAllClose(loss, [1000.0, 0.0])


class MatchingAwareGradientPenaltyTest(tf.test.TestCase, parameterized.TestCase):

    def test_all_ones(self):
        # Per example 2*2*3 = 12 image entries + 4 sentence entries = 16 ones:
        # norm = sqrt(16) = 4, penalty = 2 * 4**6 = 2 * 16**3 = 8192.
        image_grads = tf.ones([3, 2, 2, 3])
        sentence_grads = tf.ones([3, 4])
        penalty = adversarial.matching_aware_gradient_penalty(
            image_grads, sentence_grads)
        self.assertAllClose(penalty, [8192.0] * 3)

    def test_image_only(self):
        # 12 ones: penalty = 2 * 12**3 = 3456.
        penalty = adversarial.matching_aware_gradient_penalty(tf.ones([2, 2, 2, 3]))
        self.assertAllClose(penalty, [3456.0, 3456.0])

    def test_hand_computed_mixed_rows(self):
        image_grads = np.zeros([2, 1, 2, 1], np.float32)
        image_grads[0] = [[[0.3], [0.0]]]
        image_grads[1] = [[[1.0], [-1.0]]]
        sentence_grads = np.array([[0.4, 0.0], [0.0, 0.0]], np.float32)
        # Row 0: norm = sqrt(0.09 + 0.16) = 0.5 -> 2 * 0.5**6 = 0.03125.
        # Row 1: norm = sqrt(2)               -> 2 * 2**3    = 16.
        # With weight 3, power 2: row 0 = 3 * 0.25 = 0.75, row 1 = 3 * 2 = 6.
        penalty = adversarial.matching_aware_gradient_penalty(
            tf.constant(image_grads), tf.constant(sentence_grads))
        self.assertAllClose(penalty, [0.03125, 16.0])
        penalty = adversarial.matching_aware_gradient_penalty(
            tf.constant(image_grads), tf.constant(sentence_grads), weight=3.0,
            power=2.0)
        self.assertAllClose(penalty, [0.75, 6.0])

    def test_zero_grads_give_zero_and_finite_gradient(self):
        image_grads = tf.zeros([2, 2, 2, 3])
        sentence_grads = tf.zeros([2, 5])
        with tf.GradientTape() as tape:
            tape.watch([image_grads, sentence_grads])
            penalty = adversarial.matching_aware_gradient_penalty(
                image_grads, sentence_grads)
        self.assertAllEqual(penalty, [0.0, 0.0])
        for g in tape.gradient(penalty, [image_grads, sentence_grads]):
            self.assertAllEqual(g, tf.zeros_like(g))

    def test_random_against_numpy(self):
        rng = np.random.default_rng(0)
        image_grads = rng.normal(size=[3, 4, 4, 3]).astype(np.float32) * 0.1
        sentence_grads = rng.normal(size=[3, 6]).astype(np.float32) * 0.1
        expected = []
        for i in range(3):
            total = 0.0
            for v in image_grads[i].ravel():
                total += float(v) ** 2
            for v in sentence_grads[i]:
                total += float(v) ** 2
            expected.append(2.0 * math.sqrt(total) ** 6)
        penalty = adversarial.matching_aware_gradient_penalty(
            tf.constant(image_grads), tf.constant(sentence_grads))
        self.assertAllClose(penalty, expected, rtol=1e-5)


class BCETest(tf.test.TestCase, parameterized.TestCase):

    def test_discriminator_hand_computed(self):
        real = [0.0, 2.0, -1.0, 30.0]
        fake = [0.0, -2.0, 1.0, -30.0]
        mismatched = [0.0, 1.0, -3.0, 0.5]
        # softplus(-real) + softplus(fake), softplus(x) = log(1 + e^x):
        #   [log2 + log2, 2*softplus(-2), 2*softplus(1), 2*softplus(-30)]
        without = [2 * math.log(2.0), 2 * _softplus(-2.0), 2 * _softplus(1.0),
                   2 * _softplus(-30.0)]
        loss = adversarial.bce_discriminator_loss(tf.constant(real),
                                                  tf.constant(fake))
        self.assertAllClose(loss, without)
        # Adding softplus(mismatched) = [log2, softplus(1), softplus(-3),
        # softplus(0.5)].
        with_mismatched = [
            without[0] + math.log(2.0), without[1] + _softplus(1.0),
            without[2] + _softplus(-3.0), without[3] + _softplus(0.5)
        ]
        loss = adversarial.bce_discriminator_loss(
            tf.constant(real), tf.constant(fake), tf.constant(mismatched))
        self.assertAllClose(loss, with_mismatched)

    def test_discriminator_matches_bce_on_probabilities(self):
        real = np.array([0.3, -1.2, 2.0, 0.0], np.float32)
        fake = np.array([-0.7, 0.4, 1.1, -2.5], np.float32)
        expected = []
        for r, f in zip(real, fake):
            p_real = 1.0 / (1.0 + math.exp(-r))
            p_fake = 1.0 / (1.0 + math.exp(-f))
            expected.append(-math.log(p_real) - math.log(1.0 - p_fake))
        loss = adversarial.bce_discriminator_loss(tf.constant(real),
                                                  tf.constant(fake))
        self.assertAllClose(loss, expected, rtol=1e-5)

    def test_large_logits_are_finite(self):
        loss = adversarial.bce_discriminator_loss(
            tf.constant([-200.0, 200.0, 0.0, 0.0]),
            tf.constant([200.0, -200.0, 0.0, 0.0]))
        # softplus(200) = 200 (to float32 precision); two of them for row 0.
        self.assertAllClose(loss, [400.0, 0.0, 2 * math.log(2.0),
                                   2 * math.log(2.0)])

    def test_generator_hand_computed(self):
        # softplus(-fake) = [log2, softplus(-2), softplus(1), softplus(50)=50].
        loss = adversarial.bce_generator_loss(
            tf.constant([[0.0], [2.0], [-1.0], [-50.0]]))
        self.assertAllClose(
            loss, [math.log(2.0), _softplus(-2.0), _softplus(1.0), 50.0])


class AttnGANDiscriminatorLossTest(tf.test.TestCase):

    def test_hand_computed(self):
        # Logits 0 give BCE log 2 for every term: (2 log 2) / 2 + (3 log 2) / 3 = 2 log 2.
        zeros = tf.zeros([1])
        self.assertAllClose(
            adversarial.attngan_discriminator_loss(zeros, zeros, zeros, zeros, zeros),
            [2.0 * math.log(2.0)])

    def test_matches_reference_formula_on_probabilities(self):
        # miscc/losses.py: (uncond_real + cond_real) / 2 + (uncond_fake + cond_fake +
        # cond_wrong) / 3, each a BCELoss on sigmoid outputs.
        rng = np.random.default_rng(3)
        logits = rng.normal(size=[5, 4]).astype(np.float32)
        cr, cf, cw, ur, uf = logits
        sig = lambda x: 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
        bce = lambda p, label: -(label * np.log(p) + (1 - label) * np.log(1 - p))
        expected = ((bce(sig(ur), 1) + bce(sig(cr), 1)) / 2
                    + (bce(sig(uf), 0) + bce(sig(cf), 0) + bce(sig(cw), 0)) / 3)
        got = adversarial.attngan_discriminator_loss(cr, cf, cw, ur, uf)
        self.assertAllClose(got, expected, rtol=1e-5)

    def test_confident_correct_discriminator_has_small_loss(self):
        big = 20.0 * tf.ones([2])
        loss = adversarial.attngan_discriminator_loss(big, -big, -big, big, -big)
        self.assertAllLess(loss, 1e-6)


class R1AndKLTest(tf.test.TestCase, parameterized.TestCase):

    def test_r1_hand_computed(self):
        grads = np.zeros([4, 2, 1, 1], np.float32)
        grads[0] = [[[1.0]], [[1.0]]]  # ||g||^2 = 2 -> 10/2 * 2 = 10
        grads[1] = [[[3.0]], [[4.0]]]  # ||g||^2 = 25 -> 125
        grads[2] = [[[0.0]], [[0.0]]]  # 0
        grads[3] = [[[-0.5]], [[0.0]]]  # 0.25 -> 1.25
        self.assertAllClose(
            adversarial.r1_penalty(tf.constant(grads)), [10.0, 125.0, 0.0, 1.25])
        # gamma = 1: half the squared norm.
        self.assertAllClose(
            adversarial.r1_penalty(tf.constant(grads), gamma=1.0),
            [1.0, 12.5, 0.0, 0.125])

    def test_kl_hand_computed(self):
        mu = tf.constant([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [2.0, -1.0]])
        logvar = tf.constant([[0.0, 0.0], [0.0, 0.0], [math.log(2.0), 0.0],
                              [0.0, 0.0]])
        # element = 1 + logvar - mu^2 - exp(logvar):
        #   row 0: [0, 0]                     -> 0
        #   row 1: [-1, 0]        mean -0.5   -> 0.25
        #   row 2: [1 + ln2 - 2, 0] = [ln2 - 1, 0] -> -0.5 * (ln2 - 1) / 2
        #   row 3: [-4, -1]       mean -2.5   -> 1.25
        expected = [0.0, 0.25, 0.25 * (1.0 - math.log(2.0)), 1.25]
        self.assertAllClose(adversarial.kl_loss(mu, logvar), expected)

    def test_kl_batch_mean_equals_reference_mean_over_all_elements(self):
        rng = np.random.default_rng(1)
        mu = rng.normal(size=[4, 5]).astype(np.float32)
        logvar = rng.normal(size=[4, 5]).astype(np.float32)
        total = 0.0
        for i in range(4):
            for d in range(5):
                total += 1.0 + logvar[i, d] - mu[i, d]**2 - math.exp(logvar[i, d])
        reference = -0.5 * total / 20
        per_example = adversarial.kl_loss(tf.constant(mu), tf.constant(logvar))
        self.assertEqual(per_example.shape, (4,))
        self.assertAllClose(tf.reduce_mean(per_example), reference, rtol=1e-5)


class ModeSeekingLossTest(tf.test.TestCase):

    def test_hand_computed(self):
        # Example 0: images differ by 0.5 on every pixel, noise by 1 -> 1 / 0.5 = 2.
        # Example 1: equal images -> 1 / eps.
        images_a = np.zeros([2, 2, 2, 3], np.float32)
        images_b = np.stack([np.full([2, 2, 3], 0.5), np.zeros([2, 2, 3])]).astype(
            np.float32)
        z_a = np.zeros([2, 4], np.float32)
        z_b = np.array([[1, -1, 1, -1], [2, 2, 2, 2]], np.float32)
        loss = adversarial.mode_seeking_loss(images_a, images_b, z_a, z_b, eps=1e-3)
        self.assertAllClose(loss, [1.0 / (0.5 + 1e-3), 1.0 / 1e-3])

    def test_gradient_pushes_images_apart(self):
        images_a = tf.Variable(np.zeros([1, 2, 2, 1], np.float32))
        images_b = tf.constant(np.full([1, 2, 2, 1], 0.25, np.float32))
        z = tf.zeros([1, 3])
        with tf.GradientTape() as tape:
            loss = adversarial.mode_seeking_loss(images_a, images_b, z, z + 1.0)
        grad = tape.gradient(loss, images_a)
        # Moving images_a away from images_b (down) lowers the loss.
        self.assertTrue(np.all(grad.numpy() > 0))


if __name__ == '__main__':
    tf.test.main()
