"""The study tools: tools/shapes_quality.py (results JSON), tools/plot_training.py,
tools/plot_ablation.py, tools/probe_damsm.py, tools/damsm_sweep.py and
tools/profile_gan_step.py."""

import importlib.util
import json
import os
import subprocess
import sys
import types

import numpy as np

import tensorflow as tf

from tests.training import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows():
    """In-training rows at steps 250 and 500 (1k images) and final rows at 500 (2k)."""
    per = {"color": 0.9, "shape": 0.7, "size": 0.8, "position": 0.95, "color_shape": 0.6,
           "all_named": 0.5}
    rows = []
    for step, seconds in ((250, 100.0), (500, 200.0)):
        rows += [{"metric": "attribute_accuracy1k", "value": 0.5 + step / 1000, "step": step,
                  "per_attribute": per, "train_seconds": seconds},
                 {"metric": "r_precision1k", "value": 0.6, "step": step,
                  "train_seconds": seconds}]
    rows += [{"metric": "attribute_accuracy2k", "value": 0.8375, "step": 500,
              "per_attribute": per, "real_images": 0.99},
             {"metric": "r_precision2k", "value": 0.7, "step": 500},
             {"metric": "shapes_fid2k", "value": 400.0, "real_vs_real": 150.0, "step": 500},
             {"metric": "diversity50x16", "value": 0.55, "step": 500,
              "generated_distance": 5.5, "real_distance": 10.0, "captions": 50,
              "samples_per_caption": 16, "background_spread": 0.9, "open_attributes": {}}]
    return rows


class ShapesQualityTest(tf.test.TestCase):

    def test_summary_and_targets(self):
        tool = _tool("shapes_quality")
        out = tool.summarize(_rows(), step=500, num_images=2000, damsm_r_precision=0.75)
        self.assertEqual(out["attribute_accuracy"], 0.8375)
        self.assertEqual(out["per_attribute"]["shape"], 0.7)
        self.assertEqual(out["shapes_fid_real_vs_real"], 150.0)
        met = out["targets_met"]
        self.assertFalse(met["attribute_accuracy"])      # 0.8375 < 0.85
        self.assertFalse(met["per_attribute"])           # shape 0.7 < 0.75
        self.assertFalse(met["all_named"])               # 0.5 < 0.6
        self.assertTrue(met["r_precision"])              # 0.7 >= 0.8 * 0.75
        self.assertTrue(met["shapes_fid"])               # 400 <= 3 * 150
        self.assertTrue(met["diversity"])                # 0.55 >= 0.5

    def test_curve_keeps_in_training_rows_by_step(self):
        points = _tool("shapes_quality").curve(_rows())
        self.assertEqual([p["step"] for p in points], [250, 500])
        self.assertEqual(points[1]["train_seconds"], 200.0)
        self.assertAlmostEqual(points[0]["attribute_accuracy"], 0.75)
        self.assertEqual(points[0]["shape"], 0.7)
        self.assertEqual(points[0]["r_precision"], 0.6)

    def test_last_checkpoint_step(self):
        model_dir = helpers.scratch_dir()
        os.makedirs(os.path.join(model_dir, "checkpoints"))
        for name in ("ckpt-250.index", "ckpt-1250.index", "ckpt-1250.data-00000-of-00001",
                     "checkpoint"):
            open(os.path.join(model_dir, "checkpoints", name), "w").close()
        self.assertEqual(_tool("shapes_quality").last_checkpoint_step(model_dir), 1250)


class PlotTrainingTest(tf.test.TestCase):

    def test_writes_the_figure(self):
        model_dir = helpers.scratch_dir()
        with open(os.path.join(model_dir, "metrics.jsonl"), "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in _rows())
        tool = _tool("plot_training")
        runs = tool.read_runs([f"main={model_dir}"])
        # The final 2k row replaces the in-training 1k row of the same step.
        steps, values, seconds = tool.series(runs["main"], "attribute_accuracy")
        self.assertEqual(steps, [250, 500])
        self.assertEqual(values[-1], 0.8375)
        self.assertEqual(seconds, [100.0, 200.0])
        # The same curve read back from a results JSON (no run needed).
        results = os.path.join(model_dir, "run.json")
        with open(results, "w") as f:
            json.dump({"curve": [
                {"step": 250, "train_seconds": 100.0, "attribute_accuracy": 0.75, "color": 0.9,
                 "shape": 0.7, "size": 0.8, "position": 0.95, "all_named": 0.5,
                 "r_precision": 0.6},
                {"step": 500, "train_seconds": 200.0, "attribute_accuracy": 0.8,
                 "color": 0.9, "shape": 0.75, "size": 0.8, "position": 0.95,
                 "all_named": 0.55, "r_precision": 0.7, "shapes_fid": 300.0}]}, f)
        from_json = tool.read_runs([results])["run.json"]
        self.assertEqual(tool.series(from_json, "attribute_accuracy"),
                         ([250, 500], [0.75, 0.8], [100.0, 200.0]))
        self.assertEqual(tool.series(from_json, "attribute_accuracy", "shape")[1], [0.7, 0.75])
        self.assertEqual(tool.series(from_json, "r_precision")[:2], ([250, 500], [0.6, 0.7]))
        self.assertEqual(tool.series(from_json, "shapes_fid")[:2], ([500], [300.0]))
        output = os.path.join(model_dir, "curves.png")
        tool.plot(runs, output, {"overall": 0.85, "attribute": 0.75, "all_named": 0.6},
                  ablation=runs)
        self.assertGreater(os.path.getsize(output), 10_000)


class PlotAblationTest(tf.test.TestCase):

    def test_rows_in_order_with_seed_statistics_and_the_figure(self):
        tmp = self.create_tempdir().full_path
        def write(name, row, seed, accuracy, curve):
            with open(os.path.join(tmp, name), "w") as f:
                json.dump({"row": row, "seed": seed, "steps": 10, "train_seconds": 60.0,
                           "final": {"attribute_accuracy": accuracy, "shapes_fid": 500.0},
                           "curve": curve}, f)
        write("b0.json", "shapes_ssagan_cl_f2f", 0, 0.7,
              [{"step": 5, "train_seconds": 30.0, "attribute_accuracy": 0.5},
               {"step": 10, "train_seconds": 60.0, "attribute_accuracy": 0.65},
               {"step": 10, "train_seconds": 60.0, "attribute_accuracy": 0.7}])
        write("a0.json", "shapes_ssagan", 0, 0.6, [])
        write("a1.json", "shapes_ssagan", 1, 0.8, [])
        with open(os.path.join(tmp, "other.json"), "w") as f:
            json.dump({"row": "not_an_ablation_row", "final": {"attribute_accuracy": 1.0}}, f)
        tool = _tool("plot_ablation")
        rows = tool.read_rows(tmp)
        self.assertEqual([r.row for r in rows], ["shapes_ssagan", "shapes_ssagan_cl_f2f"])
        stat = rows[0].metrics["attribute_accuracy"]
        # Sample standard deviation of 0.6 and 0.8: sqrt((0.1^2 + 0.1^2) / 1).
        self.assertAllClose([stat.mean, stat.std, stat.count], [0.7, 0.02 ** 0.5, 2])
        self.assertIsNone(rows[1].metrics["attribute_accuracy"].std)
        curves = tool.read_curves(tmp)
        self.assertEqual(list(curves), ["b0.json"])
        self.assertEqual([(p["step"], p["attribute_accuracy"]) for p in curves["b0.json"]],
                         [(5, 0.5), (10, 0.7)])
        self.assertEqual(tool.best_cl_row(rows), "shapes_ssagan_cl_f2f")
        extra_path = os.path.join(tmp, "longer", "baseline_20.json")
        os.makedirs(os.path.dirname(extra_path))
        with open(extra_path, "w") as f:
            json.dump({"curve": [{"step": 10, "attribute_accuracy": 0.6, "shape": 0.3},
                                 {"step": 20, "attribute_accuracy": 0.75, "shape": 0.4}]}, f)
        extra = tool.read_extra([f"baseline 20 steps={extra_path}"])
        self.assertEqual([(label, [p["step"] for p in points]) for label, points in extra],
                         [("baseline 20 steps", [10, 20])])
        output = tool.plot(rows, curves, os.path.join(tmp, "ablation.png"), extra)
        self.assertGreater(os.path.getsize(output), 10_000)
        with self.assertRaisesRegex(SystemExit, "expected LABEL=PATH"):
            tool.read_extra([extra_path])

    def test_mean_curve_over_the_steps_every_run_has(self):
        tool = _tool("plot_ablation")
        runs = [[{"step": 5, "shape": 0.2}, {"step": 10, "shape": 0.4}, {"step": 15, "shape": 0.5}],
                [{"step": 5, "shape": 0.4}, {"step": 10, "shape": 0.6}]]
        steps, means, stds = tool.mean_curve(runs, "shape")
        self.assertEqual(steps, [5, 10])
        self.assertAllClose(means, [0.3, 0.5])
        self.assertAllClose(stds, [0.02 ** 0.5, 0.02 ** 0.5])   # sample std of two values
        self.assertEqual(tool.mean_curve(runs[:1], "shape")[2], [0.0, 0.0, 0.0])


class ProbeDAMSMTest(tf.test.TestCase):
    """tools/probe_damsm.py's counting, on hand-made readings with known answers."""

    def test_confusion_is_row_normalised(self):
        tool = _tool("probe_damsm")
        m = tool.confusion(np.array([0, 0, 0, 0, 1]), np.array([0, 0, 0, 2, 1]))
        self.assertAllClose(m[0, [0, 2]], [0.75, 0.25])
        self.assertAllClose(m[1, 1], 1.0)
        self.assertAllClose(m[3], np.zeros(6))          # no real star: a row of zeros

    def test_fooled_counts_the_fakes_drawn_wrong_read_as_the_caption(self):
        tool = _tool("probe_damsm")
        caption = np.array([3, 3, 3, 5, 0])             # star, star, star, cross, circle
        drawn = np.array([2, 2, 3, 4, 1])               # triangle, triangle, star, diamond, square
        probe = np.array([3, 2, 3, 5, 1])               # reads star, triangle, star, cross, square
        real = np.zeros([6, 6])
        real[2, 3], real[4, 5], real[1, 0] = 0.1, 0.3, 0.0
        fooled, expected, count = tool.fooled_fractions(caption, drawn, probe, real)
        # Drawn wrong: examples 0, 1, 3, 4; read as the caption's shape: 0 and 3.
        self.assertEqual(count, 4)
        self.assertAllClose(fooled, 2 / 4)
        # Real triangles read as stars 0.1 (twice), diamonds as crosses 0.3, squares as circles 0.
        self.assertAllClose(expected, (0.1 + 0.1 + 0.3 + 0.0) / 4)
        self.assertEqual(tool.fooled_fractions(caption, caption, probe, real), (0.0, 0.0, 0))

    def test_drawn_shape_is_read_in_the_most_likely_occupied_slot(self):
        tool = _tool("probe_damsm")
        occupied = np.zeros([2, 9], bool)
        occupied[0, 4], occupied[1, 0] = True, True
        shape = np.zeros([2, 9], int)
        shape[0, 4], shape[0, 0], shape[1, 0] = 5, 1, 2
        reading = types.SimpleNamespace(occupied=occupied, shape=shape)
        self.assertAllEqual(tool.drawn_shapes(reading), [5, 2])

    def test_shape_captions_take_the_first_caption_naming_one_shape(self):
        tool = _tool("probe_damsm")
        source = types.SimpleNamespace(captions=[
            ["a red object on the left", "a red star on the left"],
            ["a blue disc and a green square", "a blue disc"],
            ["something large"]])
        captions, named, picked = tool.shape_captions(source, [0, 1, 2], limit=10)
        self.assertEqual(captions, ["a red star on the left", "a blue disc"])
        self.assertAllEqual(named, [3, 0])
        self.assertAllEqual(picked, [0, 1])
        self.assertLen(tool.shape_captions(source, [0, 1, 2], limit=1)[0], 1)
        # A skipped image: the picked places say which images the captions belong to.
        _, _, picked = tool.shape_captions(source, [2, 0], limit=10)
        self.assertAllEqual(picked, [1])

    def test_ranked_first_needs_the_caption_to_beat_every_swap(self):
        tool = _tool("probe_damsm")
        logits = np.array([[5.0, 1, 2, 3, 4, 4.9],
                           [5.0, 1, 2, 5, 0, 0],      # a tie is not a win
                           [0.0, 1, 0, 0, 0, 0]])
        self.assertAllEqual(tool.ranked_first(logits), [True, False, False])

    def test_scorer_logit_is_the_damsm_loss_logit_of_the_pair(self):
        # gamma3 * (word relevance + sentence cosine) from the tiny DAMSM run's encoders,
        # against the loss module's paired relevance and a numpy cosine.
        tool = _tool("probe_damsm")
        scorer = tool.DAMSMScorer.from_dir(helpers.damsm_run())
        rng = np.random.default_rng(0)
        size = scorer.cfg.data.image_size
        images = rng.integers(0, 256, [3, size, size, 3]).astype(np.uint8)
        captions = ["a red circle", "a blue square on the left", "a small green star"]
        ids = tf.constant(scorer.tokenizer.encode(captions, scorer.cfg.data.max_caption_length))
        words, sentence = scorer.text_encoder(ids, training=False)
        regions, code = scorer.image_encoder(tf.constant(images, tf.float32) / 127.5 - 1.0,
                                             training=False)
        loss = scorer.cfg.loss
        relevance = np.asarray(tool.damsm_losses.paired_word_relevance(
            words, tf.not_equal(ids, 0), regions, loss.gamma1, loss.gamma2))
        code, sentence = np.asarray(code, np.float64), np.asarray(sentence, np.float64)
        cosine = np.sum(code * sentence, 1) / (np.linalg.norm(code, axis=1)
                                               * np.linalg.norm(sentence, axis=1))
        self.assertAllClose(scorer.logits(images, captions, batch_size=2),
                            loss.gamma3 * (relevance + cosine), rtol=1e-4, atol=1e-4)

    def test_probe_learns_separable_codes(self):
        tool = _tool("probe_damsm")
        rng = np.random.default_rng(0)
        labels = np.repeat(np.arange(6), 40)
        codes = np.eye(6)[labels] * 5.0 + rng.normal(0, 0.5, [240, 6]) + 100.0
        probe = tool.ShapeProbe(codes.astype(np.float32), labels)
        self.assertGreater(np.mean(probe(codes.astype(np.float32)) == labels), 0.95)

    def test_missing_run_is_one_line(self):
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "tools", "probe_damsm.py"),
             "--run=/nonexistent/run"], capture_output=True, text=True, check=False)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.strip(),
                         "error: --run=/nonexistent/run is not a run directory.")


def _damsm_run(runs_dir, name, batch, steps, r_precision, dropout=0.1, seconds=600.0,
               precision="none"):
    run_dir = os.path.join(runs_dir, name)
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump({"train": {"batch_size": batch, "damsm_learning_rate": 0.002,
                             "damsm_lr_decay": 0.98}, "text": {"dropout": dropout},
                   "runtime": {"mixed_precision": precision}}, f)
    with open(os.path.join(run_dir, "r_precision.json"), "w") as f:
        json.dump({"r_precision": r_precision, "r_precision_std": 0.02, "step": steps,
                   "train_seconds": seconds}, f)


class DAMSMSweepTest(tf.test.TestCase):

    def test_variants_and_step_seconds_are_parsed(self):
        tool = _tool("damsm_sweep")
        self.assertEqual(tool.parse_variant("E=--train_batch_size=32 --text_dropout=0.1"),
                         ("E", ["--train_batch_size=32", "--text_dropout=0.1"]))
        self.assertEqual(tool.parse_variant("stock="), ("stock", []))
        for bad in ("no_flags", "=--a=1", "a/b=--a=1"):
            with self.assertRaisesRegex(ValueError, "NAME=FLAGS"):
                tool.parse_variant(bad)
        self.assertEqual(tool.parse_step_seconds(["32:0.30", "48:0.56"]), {32: 0.3, 48: 0.56})
        for bad in ("32", "x:0.3", "32:fast"):
            with self.assertRaisesRegex(ValueError, "BATCH:SECONDS"):
                tool.parse_step_seconds([bad])

    def test_collects_finished_runs_in_order_with_minutes_alone(self):
        tool = _tool("damsm_sweep")
        runs = helpers.scratch_dir()
        _damsm_run(runs, "b48", 48, 1400, 0.753, dropout=0.5)
        _damsm_run(runs, "b32", 32, 1900, 0.78)
        _damsm_run(runs, "b24", 24, 2200, 0.734)
        variants = [("b32", ["--train_batch_size=32"]), ("unfinished", []), ("b48", []),
                    ("b24", [])]
        rows = tool.collect(runs, variants, {32: 0.30, 48: 0.56})
        self.assertEqual([r["name"] for r in rows], ["b32", "b48", "b24"])
        self.assertEqual(rows[0]["flags"], "--train_batch_size=32")
        self.assertEqual(rows[0]["minutes_alone"], 9.5)      # 1,900 x 0.30 s
        self.assertEqual(rows[1]["minutes_alone"], 13.1)     # 1,400 x 0.56 s
        self.assertIsNone(rows[2]["minutes_alone"])          # no step time for batch 24
        self.assertEqual(rows[1]["text_dropout"], 0.5)
        self.assertEqual(rows[0]["r_precision_real_images"], 0.78)
        output = os.path.join(runs, "budget.png")
        tool.plot(rows, output, budget_minutes=10)
        self.assertGreater(os.path.getsize(output), 10_000)

    def test_runs_timed_alone_take_their_own_seconds(self):
        tool = _tool("damsm_sweep")
        runs = helpers.scratch_dir()
        _damsm_run(runs, "fp32", 32, 3800, 0.836, seconds=700.0)
        _damsm_run(runs, "bf16", 32, 3800, 0.84, seconds=540.0, precision="mixed_bfloat16")
        variants = [("fp32", []), ("bf16", ["--mixed_precision=mixed_bfloat16"])]
        rows = tool.collect(runs, variants, {32: 0.30}, timed_alone=True)
        self.assertEqual([r["minutes_alone"] for r in rows], [11.7, 9.0])  # 700 s, 540 s
        self.assertEqual([r["mixed_precision"] for r in rows], ["none", "mixed_bfloat16"])
        # Without the flag the step-time table applies: 3,800 x 0.30 s = 19 minutes.
        self.assertEqual(tool.collect(runs, variants, {32: 0.30})[0]["minutes_alone"], 19.0)

    def test_collect_only_writes_the_json_without_training(self):
        runs = helpers.scratch_dir()
        _damsm_run(runs, "E", 32, 1900, 0.78)
        results = os.path.join(runs, "sweep.json")
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "tools", "damsm_sweep.py"), "--no_train",
             f"--runs={runs}", f"--results={results}", "--variant=E=--train_batch_size=32",
             "--variant=F=--train_batch_size=32", "--step_seconds=32:0.3"],
            capture_output=True, text=True, check=False, cwd=ROOT)
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(results) as f:
            written = json.load(f)
        self.assertEqual([r["name"] for r in written["runs"]], ["E"])
        self.assertEqual(written["step_seconds_alone"], {"32": 0.3})
        self.assertFalse(os.path.exists(os.path.join(runs, "F")))

    def test_bad_variant_is_one_line(self):
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "tools", "damsm_sweep.py"),
             "--results=/tmp/unused.json", "--variant=E"], capture_output=True, text=True,
            check=False, cwd=ROOT)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.strip(),
                         "error: --variant='E' must be NAME=FLAGS, NAME a folder name.")


class ProfileGanStepTest(tf.test.TestCase):
    """tools/profile_gan_step.py reads the ops and their durations out of a real trace."""

    def test_traced_ops_have_names_types_and_durations(self):
        profile = _tool("profile_gan_step")
        x = tf.random.normal([64, 64])
        matmul = tf.function(lambda a: tf.matmul(a, a, name="probe_matmul"))
        matmul(x).numpy()
        logdir = self.create_tempdir().full_path
        tf.profiler.experimental.start(logdir)
        for _ in range(3):
            matmul(x).numpy()
        tf.profiler.experimental.stop()
        ops = [op for op in profile.op_durations(logdir) if "probe_matmul" in op[0]]
        self.assertLen(ops, 3)
        for scope, kind, seconds in ops:
            self.assertIn("MatMul", kind)
            self.assertGreater(seconds, 0.0)
            self.assertLess(seconds, 1.0)
