"""benchmarks/damsm_word_loss.py: its baseline is the same loss, and it runs."""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from tf_t2i.losses import damsm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "damsm_word_loss.py")
sys.path.insert(0, os.path.dirname(SCRIPT))

import damsm_word_loss as bench  # pylint: disable=g-import-not-at-top,wrong-import-position


class DAMSMWordLossBenchTest(tf.test.TestCase):

    def test_the_baselines_compute_the_same_loss(self):
        # A speed ratio means something only if every row computes one loss: 9 regions of
        # 6 dimensions (the library's |c| from the context vectors) and of 16 (from the
        # regions' Gram matrix).
        for dim in (6, 16):
            rng = np.random.default_rng(3)
            lengths = np.array([7, 2, 5, 1])
            mask = tf.constant(np.arange(7)[None] < lengths[:, None])
            words = tf.Variable(rng.normal(size=[4, 7, dim]).astype(np.float32))
            regions = tf.Variable(rng.normal(size=[4, 3, 3, dim]).astype(np.float32))
            results = []
            for loss_fn in (lambda w, m, r: damsm.damsm_word_loss(w, m, r)[0],
                            bench.all_slots_word_loss, bench.context_word_loss):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(loss_fn(words, mask, regions))
                results.append((loss, tape.gradient(loss, regions)))
            for baseline in results[1:]:
                self.assertAllClose(baseline[0], results[0][0], rtol=1e-5)
                self.assertAllClose(baseline[1], results[0][1], rtol=1e-4, atol=1e-6)

    def test_word_counts_are_those_of_shapes_captions(self):
        counts = bench.shapes_word_counts(200, 18)
        self.assertBetween(int(np.median(counts)), 6, 12)
        self.assertLessEqual(counts.max(), 18)
        self.assertGreaterEqual(counts.min(), 3)

    def test_runs_and_prints_the_four_rows(self):
        result = subprocess.run(
            [sys.executable, SCRIPT, "--batch=4", "--regions=2", "--dim=8", "--repeats=1"],
            cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True,
            text=True, timeout=300, check=False)
        self.assertEqual(result.returncode, 0, result.stderr)
        rows = [line for line in result.stdout.splitlines() if " ms " in line]
        self.assertEqual(len(rows), 4, result.stdout)
        self.assertIn("x1.00", rows[0])
