"""`python -m tf_t2i.evaluate` end to end on a tiny trained run, and the library beneath it."""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.eval import helpers
from tf_t2i.eval import callback as eval_callback
from tf_t2i.eval import context as eval_context
from tf_t2i.eval import eval_lib
from tf_t2i.models import trained_run

ALL_METRICS = "fid,is,r_precision,attribute_accuracy,shapes_fid,diversity,f2f_consistency"


def run_evaluate(*args, cache=None, home=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_T2I_CACHE=cache or helpers.cache_dir())
    if home:
        env["HOME"] = home
    return subprocess.run([sys.executable, "-m", "tf_t2i.evaluate", *args], cwd=helpers.ROOT,
                          env=env, capture_output=True, text=True, timeout=900)


def read_rows(model_dir):
    with open(os.path.join(model_dir, eval_lib.RESULTS_FILENAME)) as f:
        return [json.loads(line) for line in f]


class EvaluateCommandTest(tf.test.TestCase):

    @pytest.mark.slow  # every metric through the binary; each is unit-tested fast
    def test_all_metrics_end_to_end(self):
        _, gan_dir = helpers.tiny_runs()
        model_dir = os.path.join(self.create_tempdir().full_path, "gan")
        shutil.copytree(gan_dir, model_dir)
        proc = run_evaluate(f"--model_dir={model_dir}", f"--metrics={ALL_METRICS}",
                            "--num_images=20", "--batch_size=10", "--diversity_captions=2",
                            "--diversity_samples=3", "--f2f_pairs=4",
                            f"--inception_weights={helpers.fake_inception_weights()}",
                            f"--is_classifier={helpers.fake_is_classifier()}")
        self.assertEqual(proc.returncode, 0, proc.stdout[-3000:] + proc.stderr[-3000:])
        rows = read_rows(model_dir)
        self.assertEqual([r["metric"] for r in rows],
                         ["fid20", "is20", "r_precision20", "attribute_accuracy20",
                          "shapes_fid20", "diversity2x3", "f2f_consistency4"])
        for row in rows:
            self.assertTrue(helpers.finite(row["value"]), row)
            self.assertEqual(row["num_images"], 20)
            self.assertEqual(row["step"], 2)
            self.assertTrue(row["ema"])
            self.assertGreaterEqual(row["seconds"], 0.0)
        by_name = {r["metric"]: r for r in rows}
        self.assertGreaterEqual(by_name["fid20"]["value"], 0.0)
        self.assertIn("rank-deficient", by_name["fid20"]["note"])
        self.assertBetween(by_name["is20"]["value"], 1.0, 10.0)
        self.assertTrue(helpers.finite(by_name["is20"]["std"]))
        self.assertBetween(by_name["r_precision20"]["value"], 0.0, 1.0)
        self.assertTrue(helpers.finite(by_name["r_precision20"]["std"]))
        self.assertBetween(by_name["attribute_accuracy20"]["value"], 0.0, 1.0)
        self.assertIn("color", by_name["attribute_accuracy20"]["per_attribute"])
        self.assertIn("by_objects", by_name["attribute_accuracy20"]["breakdown"])
        self.assertIsNone(by_name["shapes_fid20"]["std"])
        self.assertGreater(by_name["shapes_fid20"]["real_vs_real"], 0.0)
        # The split itself is checked by hand in test_fid.py; here, that the rows carry it:
        # both terms are squared distances (the covariance one, Bures'), never negative.
        for name in ("fid20", "shapes_fid20"):
            row = by_name[name]
            self.assertGreaterEqual(row["mean_term"], 0.0)
            self.assertGreaterEqual(row["covariance_term"], -1e-6)
        # tr((S1 S2)^(1/2)) <= sqrt(tr S1 tr S2) (Cauchy-Schwarz), so the covariance term
        # is at least (sqrt(tr S1) - sqrt(tr S2))^2.
        row = by_name["shapes_fid20"]
        self.assertGreater(min(row["trace"], row["real_trace"]), 0.0)
        self.assertGreaterEqual(row["covariance_term"] + 1e-6,
                                (np.sqrt(row["trace"]) - np.sqrt(row["real_trace"])) ** 2)
        spread = by_name["diversity2x3"]
        self.assertEqual((spread["captions"], spread["samples_per_caption"]), (2, 3))
        self.assertAllClose(spread["value"],
                            spread["generated_distance"] / spread["real_distance"])
        self.assertEqual(by_name["f2f_consistency4"]["pairs"], 4)
        self.assertBetween(by_name["f2f_consistency4"]["value"], 0.0, 1.0)
        # Real statistics were computed once and cached in the pytorch-fid format.
        stats = by_name["fid20"]["real_stats"]
        self.assertTrue(stats.startswith(helpers.cache_dir()))
        with np.load(stats) as data:
            self.assertEqual(data["mu"].shape, (2048,))
            self.assertEqual(data["sigma"].shape, (2048, 2048))
        self.assertIn("metric", proc.stdout)
        self.assertIn("Appended 7 line(s)", proc.stdout)

    def test_missing_classifier_fails_before_generating(self):
        _, gan_dir = helpers.tiny_runs()
        tmp = self.create_tempdir().full_path
        proc = run_evaluate(f"--model_dir={gan_dir}", "--metrics=is", "--num_images=10",
                            cache=os.path.join(tmp, "empty_cache"), home=tmp)
        self.assertEqual(proc.returncode, 2, proc.stderr[-2000:])
        self.assertIn("--is_classifier", proc.stderr)
        self.assertNotIn("Evaluating", proc.stdout)

    def test_bad_flags(self):
        proc = run_evaluate("--model_dir=/nonexistent", "--metrics=fid,bogus")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("Unknown metric(s) ['bogus']", proc.stderr)
        proc = run_evaluate("--model_dir=/nonexistent", "--diversity_samples=1")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("--diversity_samples", proc.stderr)
        proc = run_evaluate("--model_dir=/nonexistent", "--f2f_pairs=0")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("--f2f_pairs", proc.stderr)


class EvalLibTest(tf.test.TestCase):

    def context(self, **options):
        _, gan_dir = helpers.tiny_runs()
        run = trained_run.load_run(gan_dir)
        return eval_context.EvalContext(run.cfg, run.tokenizer, run,
                                        eval_context.EvalOptions(**options),
                                        log=lambda *_: None)

    def test_unavailable_metrics_are_skipped_by_default(self):
        tmp = self.create_tempdir().full_path
        ctx = self.context(num_images=10, inception_weights=os.path.join(tmp, "none.pt"),
                           is_classifier=os.path.join(tmp, "none.pth"))
        names, skipped = eval_lib.available_metrics(ctx, ["fid", "is", "r_precision"],
                                                    required=False)
        self.assertEqual(names, ["r_precision"])
        self.assertIn("--fetch_inception", skipped["fid"])
        self.assertIn("does not exist", skipped["is"])
        with self.assertRaisesRegex(eval_context.MetricUnavailableError, "fid"):
            eval_lib.available_metrics(ctx, ["fid"], required=True)

    def test_rows_record_the_evaluation_seed(self):
        # Two evaluations of one run differ by their seed (captions and noise); a row must
        # say which draw it measured, or two rows of one step cannot be told apart.
        rows = {seed: eval_lib.evaluate(self.context(num_images=10, batch_size=10, seed=seed),
                                        ["r_precision"], step=2, progress=False)[0]
                for seed in (0, 5)}
        self.assertEqual([rows[s]["eval_seed"] for s in (0, 5)], [0, 5])
        self.assertTrue(all(r["ema"] is True and r["step"] == 2 for r in rows.values()))

    def test_callback_logs_to_jsonl_and_tensorboard(self):
        from tf_t2i.training import train_lib  # pylint: disable=g-import-not-at-top
        _, gan_dir = helpers.tiny_runs()
        model_dir = os.path.join(self.create_tempdir().full_path, "gan")
        shutil.copytree(gan_dir, model_dir)
        _, _, parts = train_lib.restore_components(model_dir)
        logs = []
        callback = eval_callback.EvaluationCallback(
            model_dir, every=2, options=eval_context.EvalOptions(
                metrics=["r_precision", "fid"], num_images=10, batch_size=5,
                inception_weights=os.path.join(model_dir, "missing.pt")), log=logs.append)
        callback.set_model(parts.gan)  # as fit() does; the run is at step 2
        callback.on_train_begin()
        callback.on_train_batch_end(0)
        callback.on_train_batch_end(1)  # same step: not evaluated twice
        callback.on_train_end()         # the last step is evaluated already
        rows = read_rows(model_dir)
        self.assertEqual([r["metric"] for r in rows], ["r_precision10"])
        self.assertEqual(rows[0]["step"], 2)
        self.assertGreaterEqual(rows[0]["train_seconds"], 0.0)
        self.assertTrue(any("skips fid" in line for line in logs), logs)
        self.assertTrue(os.listdir(os.path.join(model_dir, "logs", "eval")))
        # A run that stops at a step `every` does not divide is evaluated at its end.
        parts.gan.step.assign(3)
        callback.on_train_batch_end(0)
        callback.on_train_end()
        self.assertEqual([r["step"] for r in read_rows(model_dir)], [2, 3])

    def test_draws_are_seeded_and_cover_the_test_split(self):
        ctx = self.context(num_images=70)
        eval_context.generate_and_collect(ctx, ["damsm"], progress=False)
        first = (ctx.draw_images.copy(), ctx.draw_captions.copy(),
                 ctx.streams["damsm_sentences"].copy())
        self.assertAllEqual(first[0], np.arange(70) % len(ctx.test_source))
        eval_context.generate_and_collect(ctx, ["damsm"], progress=False)
        self.assertAllEqual(ctx.draw_captions, first[1])
        self.assertAllClose(ctx.streams["damsm_sentences"], first[2])
        self.assertEqual(ctx.streams["damsm_codes"].shape[0], 70)

    def test_training_clock_excludes_evaluations_and_resumes(self):
        clock = eval_callback.TrainingClock(offset=100.0)
        time.sleep(0.05)
        first = clock.pause()
        time.sleep(0.2)  # an evaluation
        clock.resume()
        second = clock.pause()
        self.assertBetween(first, 100.04, 100.19)
        self.assertBetween(second - first, 0.0, 0.1)
        model_dir = self.create_tempdir().full_path
        self.assertEqual(eval_lib.previous_train_seconds(model_dir, 10), 0.0)
        eval_lib.append_results(model_dir, [
            {"metric": "a", "value": 1.0, "step": 4, "train_seconds": 40.0},
            {"metric": "b", "value": 1.0, "step": 4, "train_seconds": 40.0},
            {"metric": "a", "value": 1.0, "step": 8, "train_seconds": 80.0},
            {"metric": "a", "value": 1.0, "step": 12, "train_seconds": 120.0}])
        # A run resumed from its step-10 checkpoint continues the clock of step 8.
        self.assertEqual(eval_lib.previous_train_seconds(model_dir, 10), 80.0)
        self.assertEqual(eval_lib.previous_train_seconds(model_dir, 3), 0.0)

    def test_training_clock_excludes_preparing_the_metrics(self):
        # The first evaluation builds its context (on a new machine the shapes classifier
        # trains there): the clock of training stops for it too.
        callback = eval_callback.EvaluationCallback(self.create_tempdir().full_path, every=1,
                                                    names=[])
        callback._clock = eval_callback.TrainingClock()

        def slow_context():
            time.sleep(0.3)
            return None
        callback._context = slow_context
        self.assertEqual(callback.evaluate(1), [])
        self.assertLess(callback._clock.pause(), 0.2)

    def test_metric_labels(self):
        self.assertEqual(eval_context.metric_label("fid", 30000), "fid30k")
        self.assertEqual(eval_context.metric_label("is", 2500), "is2500")
