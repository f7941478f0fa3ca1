"""FID: the symmetric-eigh Frechet distance against scipy's sqrtm formula, statistics files."""

import os

from absl.testing import parameterized
import numpy as np
import scipy.linalg
import tensorflow as tf

from tf_t2i.eval import fid


def scipy_frechet_distance(mu1, sigma1, mu2, sigma2):
    """TTUR / pytorch-fid's formula: sqrtm(S1 S2), real part."""
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2)
                 - 2 * np.trace(np.real(covmean)))


def seeded_features(n, d, seed):
    """Two feature sets with different means and correlated covariances."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d))
    mixing = np.eye(d) + 0.3 * rng.standard_normal((d, d)) / np.sqrt(d)
    b = rng.standard_normal((n, d)) @ mixing + 0.2
    return a, b


class FrechetDistanceTest(parameterized.TestCase, tf.test.TestCase):

    @parameterized.parameters((512, 256, 0), (2000, 64, 1), (300, 16, 2), (5000, 128, 3))
    def test_matches_scipy_sqrtm(self, n, d, seed):
        a, b = seeded_features(n, d, seed)
        stats = fid.feature_statistics(a) + fid.feature_statistics(b)
        expected = scipy_frechet_distance(*stats)
        got = fid.frechet_distance(*stats)
        self.assertIsInstance(got, float)
        self.assertAllClose(got, expected, rtol=1e-9, atol=0)

    def test_tf_gan_reference_case(self):
        # TF-GAN's classifier_metrics_test: np.random.seed(0), randn(512, 256) features.
        np.random.seed(0)
        real = np.random.randn(512, 256)
        fake = np.random.randn(512, 256) * 1.5 + 0.1
        m1, s1 = np.mean(real, axis=0), np.cov(real, rowvar=False)
        m2, s2 = np.mean(fake, axis=0), np.cov(fake, rowvar=False)
        self.assertAllClose(fid.frechet_distance(m1, s1, m2, s2),
                            scipy_frechet_distance(m1, s1, m2, s2), rtol=1e-9, atol=0)

    def test_fewer_samples_than_dimensions_stays_finite(self):
        a, b = seeded_features(50, 128, 4)  # N < D: both covariances have rank 49
        stats = fid.feature_statistics(a) + fid.feature_statistics(b)
        got = fid.frechet_distance(*stats)
        self.assertTrue(np.isfinite(got))
        self.assertGreater(got, 0.0)
        # scipy's route goes complex here; its real part still agrees closely.
        self.assertAllClose(got, scipy_frechet_distance(*stats), rtol=1e-6, atol=0)

    def test_zero_covariance_is_finite(self):
        mu = np.ones(8)
        got = fid.frechet_distance(mu, np.zeros((8, 8)), np.zeros(8), np.eye(8))
        self.assertAllClose(got, 8.0 + 8.0)

    def test_known_values(self):
        # pytorch-fid's test: equal covariances leave |mu1 - mu2|^2.
        d = 20
        self.assertAllClose(fid.frechet_distance(np.zeros(d), np.eye(d), np.ones(d), np.eye(d)),
                            float(d), atol=1e-12)
        # Scalar Gaussians: (m1 - m2)^2 + (s1 - s2)^2 with s the standard deviations.
        got = fid.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]),
                                   np.array([[9.0]]))
        self.assertAllClose(got, 4.0 + 1.0, atol=1e-12)

    def test_terms_split_the_distance(self):
        # Scalar Gaussians N(1, 4) and N(3, 9): the means give (1 - 3)^2 = 4, the spreads
        # (2 - 3)^2 = 1.
        terms = fid.frechet_terms(np.array([1.0]), np.array([[4.0]]), np.array([3.0]),
                                  np.array([[9.0]]))
        self.assertAllClose(terms["mean"], 4.0, atol=1e-12)
        self.assertAllClose(terms["covariance"], 1.0, atol=1e-12)
        # Equal covariances leave nothing to the covariance term; equal means nothing to
        # the mean term.
        d = 6
        shifted = fid.frechet_terms(np.zeros(d), np.eye(d), np.full(d, 2.0), np.eye(d))
        self.assertAllClose([shifted["mean"], shifted["covariance"]], [4.0 * d, 0.0],
                            atol=1e-12)
        stats = fid.feature_statistics(seeded_features(400, 16, 8)[0]) + \
            fid.feature_statistics(seeded_features(400, 16, 8)[1])
        terms = fid.frechet_terms(*stats)
        self.assertAllClose(terms["mean"] + terms["covariance"],
                            scipy_frechet_distance(*stats), rtol=1e-9)
        self.assertAllClose(terms["mean"], float(np.sum((stats[0] - stats[2]) ** 2)))

    def test_identical_statistics_give_zero(self):
        a, _ = seeded_features(1000, 32, 5)
        mu, sigma = fid.feature_statistics(a)
        self.assertAllClose(fid.frechet_distance(mu, sigma, mu, sigma), 0.0, atol=1e-9)

    def test_statistics_equal_numpy(self):
        a, _ = seeded_features(300, 16, 6)
        mu, sigma = fid.feature_statistics(a.astype(np.float32))
        self.assertEqual(mu.dtype, np.float64)
        self.assertAllClose(mu, np.mean(a, axis=0), rtol=1e-6)
        self.assertAllClose(sigma, np.cov(a, rowvar=False), rtol=1e-5, atol=1e-7)

    def test_shape_mismatch_raises(self):
        with self.assertRaisesRegex(ValueError, "Shapes do not fit"):
            fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
        with self.assertRaisesRegex(ValueError, "N >= 2"):
            fid.feature_statistics(np.zeros((1, 3)))

    def test_npz_round_trip_in_pytorch_fid_format(self):
        a, _ = seeded_features(100, 8, 7)
        mu, sigma = fid.feature_statistics(a)
        path = os.path.join(self.create_tempdir().full_path, "stats.npz")
        fid.save_statistics(path, mu, sigma)
        with np.load(path) as data:  # what pytorch-fid reads: f['mu'], f['sigma']
            self.assertAllEqual(data["mu"], mu)
            self.assertAllEqual(data["sigma"], sigma)
        mu2, sigma2 = fid.load_statistics(path)
        self.assertAllEqual(mu2, mu)
        self.assertAllEqual(sigma2, sigma)

    def test_published_style_file_loads(self):
        # A file written the way pytorch-fid's --save-stats writes it, float32 included.
        path = os.path.join(self.create_tempdir().full_path, "published.npz")
        np.savez_compressed(path, mu=np.zeros(4, np.float32), sigma=np.eye(4, dtype=np.float32))
        mu, sigma = fid.load_statistics(path)
        self.assertEqual(mu.dtype, np.float64)
        self.assertAllEqual(sigma, np.eye(4))

    def test_bad_statistics_files(self):
        tmp = self.create_tempdir().full_path
        with self.assertRaises(FileNotFoundError):
            fid.load_statistics(os.path.join(tmp, "missing.npz"))
        wrong = os.path.join(tmp, "wrong.npz")
        np.savez(wrong, mean=np.zeros(3))
        with self.assertRaisesRegex(ValueError, "'mu' and 'sigma'"):
            fid.load_statistics(wrong)
        broken = os.path.join(tmp, "broken.npz")
        with open(broken, "wb") as f:
            f.write(b"PK\x03\x04 not really a zip")
        with self.assertRaises(ValueError):
            fid.load_statistics(broken)
        text = os.path.join(tmp, "stats.txt")  # numpy would speak of "pickled data"
        with open(text, "w") as f:
            f.write("mu sigma")
        with self.assertRaisesRegex(ValueError, r"stats.txt is not a .npz file"):
            fid.load_statistics(text)
        small = os.path.join(tmp, "small.npz")
        np.savez(small, mu=np.zeros(5), sigma=np.eye(5))
        self.assertEqual(fid.load_statistics(small)[0].shape, (5,))
        with self.assertRaisesRegex(ValueError, "holds 5-d statistics; FID needs the 2048-d"):
            fid.load_statistics(small, dim=2048)
