"""Inception Score against the original formula; classifiers loaded from files."""

import os

from absl.testing import parameterized
import keras
import numpy as np
import tensorflow as tf

from tf_t2i.eval import inception_score


def original_inception_score(preds, splits=10):
    """openai/improved-gan inception_score/model.py, transcribed to numpy."""
    scores = []
    for i in range(splits):
        part = preds[(i * preds.shape[0] // splits):((i + 1) * preds.shape[0] // splits), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        kl = np.mean(np.sum(kl, 1))
        scores.append(np.exp(kl))
    return np.mean(scores), np.std(scores)


def random_probs(n, k, seed, temperature=1.0):
    rng = np.random.default_rng(seed)
    return inception_score.softmax(rng.standard_normal((n, k)) * 3.0 / temperature)


class InceptionScoreTest(parameterized.TestCase, tf.test.TestCase):

    @parameterized.parameters((1000, 50, 10, 0), (999, 1008, 10, 1), (300, 10, 3, 2),
                              (64, 200, 1, 3))
    def test_matches_original_formula(self, n, k, splits, seed):
        probs = random_probs(n, k, seed)
        expected = original_inception_score(probs, splits)
        self.assertAllClose(inception_score.inception_score(probs, splits), expected,
                            rtol=1e-12, atol=0)

    def test_float32_input_is_computed_in_float64(self):
        probs = random_probs(500, 30, 4)
        got = inception_score.inception_score(probs.astype(np.float32))
        self.assertAllClose(got[0], original_inception_score(probs)[0], rtol=1e-6)

    def test_one_hot_rows_give_the_true_score_not_nan(self):
        k = 50
        probs = np.eye(k)[np.arange(1000) % k]  # every split holds each class twice
        with np.errstate(divide="ignore", invalid="ignore"):
            self.assertTrue(np.isnan(original_inception_score(probs)[0]))
        mean, std = inception_score.inception_score(probs)
        self.assertAllClose((mean, std), (50.0, 0.0))

    def test_uniform_predictions_score_one(self):
        self.assertAllClose(inception_score.inception_score(np.full((100, 7), 1 / 7)), (1.0, 0.0))

    def test_splits_are_contiguous_not_shuffled(self):
        # First half confident one-hot over 2 classes, second half uniform: split scores
        # differ, so any shuffle would change the std.
        probs = np.concatenate([np.eye(2)[np.arange(50) % 2], np.full((50, 2), 0.5)])
        mean, std = inception_score.inception_score(probs, splits=2)
        self.assertAllClose((mean, std), (1.5, 0.5))

    def test_rejects_logits_and_too_few_rows(self):
        with self.assertRaisesRegex(ValueError, "probabilities"):
            inception_score.inception_score(np.random.default_rng(0).standard_normal((20, 5)))
        with self.assertRaisesRegex(ValueError, "N >= splits"):
            inception_score.inception_score(np.full((5, 2), 0.5), splits=10)


def fake_classifier(size=32, classes=12, softmax_output=False):
    """A small Keras classifier of images in [-1, 1] (the documented convention)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(classes, activation="softmax" if softmax_output else None)(x)
    return keras.Model(inputs, x)


class ClassifierLoadingTest(parameterized.TestCase, tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.images = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3)).astype(np.uint8)

    def expected_probs(self, model):
        out = model(self.images.astype(np.float32) / 127.5 - 1.0).numpy().astype(np.float64)
        return out if np.allclose(out.sum(1), 1.0) else inception_score.softmax(out)

    @parameterized.parameters(("model.keras", False), ("model.h5", False),
                              ("model.keras", True))
    def test_keras_file(self, name, softmax_output):
        model = fake_classifier(softmax_output=softmax_output)
        path = os.path.join(self.create_tempdir().full_path, name)
        model.save(path)
        classifier = inception_score.load_classifier(path, batch_size=5)
        probs = classifier(self.images)
        self.assertEqual(probs.shape, (12, 12))
        self.assertAllClose(probs, self.expected_probs(model), rtol=1e-5, atol=1e-6)
        mean, _ = inception_score.inception_score(probs, splits=3)
        self.assertGreaterEqual(mean, 1.0)

    def test_saved_model_directory(self):
        model = fake_classifier()
        path = os.path.join(self.create_tempdir().full_path, "saved")
        model.export(path)
        probs = inception_score.load_classifier(path)(self.images)
        self.assertAllClose(probs, self.expected_probs(model), rtol=1e-5, atol=1e-6)

    def test_images_are_resized_to_the_input_size(self):
        model = fake_classifier(size=16)
        path = os.path.join(self.create_tempdir().full_path, "small.keras")
        model.save(path)
        probs = inception_score.load_classifier(path)(self.images)
        resized = tf.image.resize(self.images.astype(np.float32) / 127.5 - 1.0, [16, 16])
        expected = inception_score.softmax(model(resized).numpy())
        self.assertAllClose(probs, expected, rtol=1e-5, atol=1e-6)

    def test_says_plainly_when_no_classifier_is_available(self):
        tmp = self.create_tempdir().full_path
        original = inception_score.candidate_paths
        inception_score.candidate_paths = lambda: [os.path.join(tmp, "none.pth")]
        try:
            with self.assertRaisesRegex(inception_score.ClassifierUnavailableError,
                                        "--is_classifier"):
                inception_score.load_classifier()
        finally:
            inception_score.candidate_paths = original
        with self.assertRaisesRegex(inception_score.ClassifierUnavailableError, "not exist"):
            inception_score.load_classifier(os.path.join(tmp, "missing.pth"))

    def test_torch_file_without_classifier_layer_is_refused(self):
        from tests.eval import torch_files  # pylint: disable=g-import-not-at-top
        path = os.path.join(self.create_tempdir().full_path, "not_inception.pth")
        torch_files.write_zip(path, {"layer.weight": np.zeros((3, 3), np.float32)})
        with self.assertRaisesRegex(ValueError, "fc.weight"):
            inception_score.load_classifier(path)
