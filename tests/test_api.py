"""The Python API: `tf_t2i.TextToImage` from a run and from its export draws the same
images, as the server does; bad input is refused with one clear message."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tf_t2i
from tests.serving import helpers as serving
from tests.training import helpers
from tf_t2i import api
from tf_t2i.serving import export_lib

CAPTIONS = list(serving.CAPTIONS)
SEEDS = list(serving.SEEDS)


class TextToImageTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.exported = serving.exported()
        cls.from_run = tf_t2i.TextToImage.from_run(serving.trained_run())
        cls.from_export = tf_t2i.TextToImage.from_export(cls.exported["version_dir"])

    def test_run_and_export_draw_the_same_images(self):
        images = self.from_run.generate(CAPTIONS, seeds=SEEDS)
        self.assertEqual(images.shape, (len(CAPTIONS), 64, 64, 3))
        self.assertEqual(images.dtype, np.uint8)
        self.assertAllEqual(self.from_export.generate(CAPTIONS, seeds=SEEDS), images)
        # ... and the server's function, computed in memory.
        self.assertAllEqual(serving.reference_images(CAPTIONS, SEEDS), images)
        self.assertNotAllEqual(images[0], images[1])

    def test_an_image_depends_on_its_caption_and_seed_only(self):
        both = self.from_run.generate(CAPTIONS[:2], seeds=[7, 8])
        alone = self.from_export.generate(CAPTIONS[1], seeds=8)
        self.assertAllEqual(alone[0], both[1])
        other_seed = self.from_run.generate(CAPTIONS[1], seeds=9)
        self.assertNotAllEqual(other_seed[0], both[1])

    def test_default_seeds_are_the_servers_caption_hashes(self):
        unseeded = self.from_run.generate(CAPTIONS)
        hashed = export_lib.caption_seeds(CAPTIONS).numpy()
        self.assertAllEqual(unseeded, self.from_run.generate(CAPTIONS, seeds=hashed))
        self.assertAllEqual(self.from_export.generate(CAPTIONS), unseeded)

    def test_export_base_means_its_newest_version(self):
        model = tf_t2i.TextToImage.from_export(self.exported["base"])
        self.assertEqual(model.source, self.exported["version_dir"])
        self.assertEqual(model.image_size, 64)
        self.assertTrue(model.use_ema)

    def test_save_grid(self):
        path = os.path.join(self.create_tempdir().full_path, "grid.png")
        self.assertEqual(self.from_export.save_grid(CAPTIONS[:2], path, samples_per_caption=3,
                                                    seed=5), path)
        with Image.open(path) as grid:
            width, height = grid.size
        self.assertGreaterEqual(width, 3 * 64)
        self.assertGreaterEqual(height, 2 * 64)

    def test_many_images_are_drawn_in_bounded_batches_with_the_same_result(self):
        count = api.GENERATE_BATCH + 3
        captions = [CAPTIONS[i % len(CAPTIONS)] for i in range(count)]
        seeds = np.arange(count) + 11
        calls = []
        model = self.from_export
        original = model._generate_fn  # pylint: disable=protected-access
        def recording(c, s):
            calls.append(len(c))
            return original(c, s)
        model._generate_fn = recording  # pylint: disable=protected-access
        try:
            images = model.generate(captions, seeds=seeds)
        finally:
            model._generate_fn = original  # pylint: disable=protected-access
        self.assertEqual(calls, [api.GENERATE_BATCH, 3])
        self.assertAllEqual(images[-3:], model.generate(captions[-3:], seeds=seeds[-3:]))
        self.assertAllEqual(images[:2], model.generate(captions[:2], seeds=seeds[:2]))

    def test_captions_longer_than_the_model_reads_are_named(self):
        limit = self.from_run.max_words
        self.assertEqual(self.from_export.max_words, limit)
        long_caption = " ".join(["red"] * (limit + 1))
        self.assertEqual(self.from_run.too_long([CAPTIONS[0], long_caption]), [long_caption])
        self.assertEqual(self.from_run.too_long([" ".join(["red"] * limit)]), [])

    def test_bad_input_is_refused_with_one_line(self):
        with self.assertRaisesRegex(ValueError, "Empty caption"):
            self.from_run.generate(["a red circle", "   "])
        with self.assertRaisesRegex(ValueError, "2 seeds for 1 captions"):
            self.from_export.generate(["a red circle"], seeds=[1, 2])
        with self.assertRaisesRegex(ValueError, "truncation_psi applies to the style"):
            self.from_run.generate(["a red circle"], seeds=[1], truncation_psi=0.5)
        with self.assertRaisesRegex(ValueError, "samples_per_caption"):
            self.from_run.save_grid(["a red circle"], "unused.png", samples_per_caption=0)
        with self.assertRaisesRegex(ValueError, "more than a grid holds"):
            self.from_run.save_grid(["a red circle"] * 2, "unused.png",
                                    samples_per_caption=api.MAX_GRID_IMAGES)
        missing = os.path.join(self.create_tempdir().full_path, "nothing")
        with self.assertRaisesRegex(FileNotFoundError, "No SavedModel at"):
            tf_t2i.TextToImage.from_export(missing)
        with self.assertRaisesRegex(FileNotFoundError, "not a training run"):
            tf_t2i.TextToImage.from_run(missing)


@pytest.mark.slow
class StyleTruncationTest(tf.test.TestCase):
    """truncation_psi reaches a style generator for one call, then is put back."""

    def test_truncation(self):
        from tf_t2i.training import train_lib  # pylint: disable=g-import-not-at-top
        cfg = helpers.tiny_gan_config(generator={"arch": "style1_attngan", "ngf": 4},
                                      train={"steps": 1, "sample_every": 1000})
        model_dir = os.path.join(helpers.scratch_dir(), "api_style_run")
        train_lib.run_training(cfg, model_dir, verbose=0)
        model = tf_t2i.TextToImage.from_run(model_dir)
        caption, seeds = ["a red circle", "a red circle"], [1, 2]
        plain = model.generate(caption, seeds)
        self.assertAllEqual(model.generate(caption, seeds, truncation_psi=1.0), plain)
        # psi = 0: every w below the cutoff is the average, so the two seeds' images
        # move together.
        truncated = model.generate(caption, seeds, truncation_psi=0.0)
        self.assertNotAllEqual(truncated, plain)
        spread = lambda x: np.abs(x[0].astype(int) - x[1]).mean()
        self.assertLess(spread(truncated), spread(plain))
        self.assertAllEqual(model.generate(caption, seeds), plain)  # put back
        with self.assertRaisesRegex(ValueError, r"in \[0, 1\]"):
            model.generate(caption, seeds, truncation_psi=2.0)


class FIDTest(tf.test.TestCase):
    """The FID functions' plumbing with a stand-in feature extractor (the FID Inception
    network has its own parity tests): arrays and pytorch-fid .npz files alike."""

    @staticmethod
    def features(images):
        # A fixed linear map of the pixels: deterministic, distribution-sensitive.
        x = np.asarray(images, np.float64).reshape(len(images), -1)
        return x @ np.random.default_rng(0).normal(size=(x.shape[1], 5))

    def test_fid_matches_the_reference_formula(self):
        rng = np.random.default_rng(1)
        a = rng.integers(0, 256, (40, 4, 4, 3), dtype=np.uint8)
        b = rng.integers(0, 128, (30, 4, 4, 3), dtype=np.uint8)
        fa, fb = self.features(a), self.features(b)
        from scipy import linalg  # pylint: disable=g-import-not-at-top
        s1, s2 = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
        expected = (np.sum((fa.mean(0) - fb.mean(0)) ** 2) + np.trace(s1) + np.trace(s2)
                    - 2 * np.trace(linalg.sqrtm(s1 @ s2).real))
        self.assertAllClose(tf_t2i.fid(a, b, features=self.features), expected, rtol=1e-6)
        self.assertAllClose(tf_t2i.fid(a, a, features=self.features), 0.0, atol=1e-6)

    def test_npz_statistics_stand_for_images(self):
        rng = np.random.default_rng(2)
        a = rng.integers(0, 256, (20, 4, 4, 3), dtype=np.uint8)
        b = rng.integers(50, 256, (25, 4, 4, 3), dtype=np.uint8)
        path = os.path.join(self.create_tempdir().full_path, "b.npz")
        mu, sigma = tf_t2i.fid_statistics(b, save_to=path, features=self.features)
        with np.load(path) as saved:  # the pytorch-fid layout
            self.assertAllClose(saved["mu"], mu)
            self.assertAllClose(saved["sigma"], sigma)
        direct = tf_t2i.fid(a, b, features=self.features)
        self.assertAllClose(tf_t2i.fid(a, path, features=self.features), direct)
        self.assertAllClose(tf_t2i.fid(path, path), 0.0, atol=1e-6)

    def test_bad_input(self):
        with self.assertRaisesRegex(ValueError, r"Expected images \[N, H, W, 3\]"):
            tf_t2i.fid_statistics(np.zeros([4, 4, 4]), features=self.features)
        with self.assertRaisesRegex(FileNotFoundError, "No statistics file"):
            tf_t2i.fid("nothing.npz", "nothing.npz")


class RPrecisionTest(tf.test.TestCase):
    """`tf_t2i.r_precision` on the tiny DAMSM run, against R-precision computed by hand
    (cosine scores, strict win over every mismatched caption) on the same encodings."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from tf_t2i.data import sources  # pylint: disable=g-import-not-at-top
        cfg = helpers.tiny_config()
        test = sources.load_source(cfg.data, "test")
        cls.images = np.asarray(test.images)
        cls.captions = [c[0] for c in test.captions]
        cls.damsm_dir = helpers.damsm_run()

    def test_matches_the_protocol_by_hand(self):
        from tf_t2i import api  # pylint: disable=g-import-not-at-top
        from tf_t2i import config as config_lib  # pylint: disable=g-import-not-at-top
        from tf_t2i.data import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
        from tf_t2i.training import pretrain_lib, train_lib  # pylint: disable=g-import-not-at-top
        mean, std = tf_t2i.r_precision(self.images, self.captions, self.damsm_dir,
                                       candidates=8, folds=2, seed=3)
        cfg = config_lib.load_config(self.damsm_dir)
        tok = tokenizer_lib.CaptionTokenizer.load(self.damsm_dir, cfg.data.max_caption_length)
        text_encoder, image_encoder = pretrain_lib.build_encoders(cfg, tok.vocab_size)
        train_lib.restore_encoders(text_encoder, image_encoder, self.damsm_dir)
        codes = image_encoder(self.images.astype(np.float32) / 127.5 - 1.0)[1].numpy()
        sentences = text_encoder(tf.cast(tok.encode(self.captions), tf.int32))[1].numpy()
        cos = lambda a, b: a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
        mismatched = api._mismatched_captions(self.captions, 7, 3)  # pylint: disable=protected-access
        wins = [all(cos(codes[i], sentences[i]) > cos(codes[i], sentences[j])
                    for j in mismatched[i]) for i in range(len(codes))]
        half = len(wins) // 2
        folds = [np.mean(wins[:half]), np.mean(wins[half:])]
        self.assertAllClose(mean, np.mean(folds), atol=1e-9)
        self.assertAllClose(std, np.std(folds), atol=1e-9)

    def test_mismatched_captions_differ_from_the_true_one(self):
        from tf_t2i import api  # pylint: disable=g-import-not-at-top
        captions = ["a", "a", "b", "c", "d", "e"]
        rows = api._mismatched_captions(captions, 4, seed=0)  # pylint: disable=protected-access
        self.assertEqual(rows.shape, (6, 4))
        for i, row in enumerate(rows):
            self.assertLen(set(row), 4)
            self.assertNotIn(captions[i], [captions[j] for j in row])
        self.assertAllEqual(rows, api._mismatched_captions(captions, 4, seed=0))  # pylint: disable=protected-access
        with self.assertRaisesRegex(ValueError, "needs at least 5 captions different"):
            api._mismatched_captions(captions, 5, seed=0)  # pylint: disable=protected-access

    def test_bad_input(self):
        with self.assertRaisesRegex(ValueError, "3 captions for 32 images"):
            tf_t2i.r_precision(self.images, self.captions[:3], self.damsm_dir)
        with self.assertRaisesRegex(FileNotFoundError, "is not a DAMSM pretraining run"):
            tf_t2i.r_precision(self.images, self.captions, self.create_tempdir().full_path,
                               candidates=8, folds=2)
