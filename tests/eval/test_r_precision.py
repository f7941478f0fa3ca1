"""R-precision on constructed embeddings with known answers; mismatched caption sampling."""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tf_t2i.eval import r_precision


def constructed_case():
    """20 images, 4-d codes; image i's own caption wins for i < 15 and loses otherwise.

    Image codes are unit axes; the true sentence is the image code itself for the first 15
    and orthogonal for the last 5, where one mismatched sentence equals the code.
    """
    n, m, d = 20, 3, 4
    codes = np.zeros((n, d))
    codes[np.arange(n), np.arange(n) % d] = 1.0
    true = codes.copy()
    true[15:] = np.roll(codes[15:], 1, axis=1)  # orthogonal: cosine 0
    mismatched = np.full((n, m, d), 0.0)
    mismatched[:, :, :] = np.roll(codes, 2, axis=1)[:, None, :] * 0.5 + 0.01
    mismatched[15:, 0] = codes[15:] * 3.0  # cosine 1 with the image: beats the true one
    return codes, true, mismatched


class RPrecisionTest(parameterized.TestCase, tf.test.TestCase):

    def test_known_answer_with_contiguous_folds(self):
        codes, true, mismatched = constructed_case()
        # Folds of 10: [10 hits], [5 hits + 5 misses] -> means 1.0 and 0.5.
        mean, std = r_precision.r_precision(codes, true, mismatched, folds=2)
        self.assertAllClose((mean, std), (0.75, 0.25))
        # Four folds of 5: 1, 1, 1, 0.
        mean, std = r_precision.r_precision(codes, true, mismatched, folds=4)
        self.assertAllClose((mean, std), (0.75, np.std([1, 1, 1, 0])))

    def test_cosine_ignores_scale(self):
        codes, true, mismatched = constructed_case()
        scaled = r_precision.r_precision(codes * 7.0, true * 0.1, mismatched * 3.0, folds=2)
        self.assertAllClose(scaled, r_precision.r_precision(codes, true, mismatched, folds=2))

    def test_collapsed_encoder_scores_zero(self):
        # Every embedding the same vector: all ties, which are misses.
        n, m, d = 30, 99, 8
        same = np.ones(d)
        mean, std = r_precision.r_precision(np.tile(same, (n, 1)), np.tile(same, (n, 1)),
                                            np.tile(same, (n, m, 1)), folds=3)
        self.assertEqual((mean, std), (0.0, 0.0))

    def test_perfect_and_random(self):
        rng = np.random.default_rng(0)
        n, m, d = 1000, 99, 32
        codes = rng.standard_normal((n, d))
        mismatched = rng.standard_normal((n, m, d))
        self.assertEqual(r_precision.r_precision(codes, codes, mismatched)[0], 1.0)
        # Independent random sentences: the true one ranks first 1 time in 100.
        mean, _ = r_precision.r_precision(codes, rng.standard_normal((n, d)), mismatched)
        self.assertBetween(mean, 0.0, 0.04)

    def test_indexed_equals_materialised(self):
        rng = np.random.default_rng(1)
        n, m, d = 257, 9, 6
        codes = rng.standard_normal((n, d))
        sentences = codes + 0.8 * rng.standard_normal((n, d))
        index = r_precision.sample_mismatched(np.arange(n), m, rng)
        expected = r_precision.r_precision(codes, sentences, sentences[index], folds=5)
        got = r_precision.r_precision_indexed(codes, sentences, index, folds=5, chunk=50)
        self.assertAllClose(got, expected)
        self.assertGreater(expected[0], 0.0)

    def test_bad_shapes(self):
        with self.assertRaisesRegex(ValueError, "Shapes do not fit"):
            r_precision.r_precision(np.zeros((10, 4)), np.zeros((10, 3)), np.zeros((10, 2, 4)))
        with self.assertRaisesRegex(ValueError, "at least 10 images"):
            r_precision.r_precision(np.ones((5, 4)), np.ones((5, 4)), np.ones((5, 2, 4)))


class SampleMismatchedTest(tf.test.TestCase):

    def test_other_group_only_and_seeded(self):
        groups = np.array([0, 0, 1, 1, 2, 2, 2, 3] * 5)
        a = r_precision.sample_mismatched(groups, 99, np.random.default_rng(3))
        b = r_precision.sample_mismatched(groups, 99, np.random.default_rng(3))
        self.assertEqual(a.shape, (len(groups), 99))
        self.assertAllEqual(a, b)
        self.assertFalse(np.any(groups[a] == groups[:, None]))

    def test_one_group_raises(self):
        with self.assertRaisesRegex(ValueError, "two different"):
            r_precision.sample_mismatched(np.zeros(5, int), 3, np.random.default_rng(0))

    def test_groups_are_classes_where_every_item_has_one(self):
        self.assertAllEqual(r_precision.mismatched_groups([3, 3, 4], [10, 11, 12]), [3, 3, 4])
        self.assertAllEqual(r_precision.mismatched_groups([-1, -1, -1], [10, 11, 12]),
                            [10, 11, 12])
