"""`python -m tf_t2i.report` and its library on small fixture files written here."""

import json
import math
import os
import subprocess
import sys

import tensorflow as tf

from tf_t2i.eval import report_compare, report_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f)
    return path


def write_cub_run(root, run="runs/cub"):
    """A cub_ssagan run: an in-training evaluation at steps 100 and 200, then a final one."""
    model_dir = os.path.join(root, run)
    write_json(os.path.join(model_dir, "config.json"),
               {"name": "cub_ssagan", "data": {"dataset": "cub"},
                "generator": {"arch": "ssagan"}})
    lines = [
        {"metric": "fid1k", "value": 40.0, "std": None, "num_images": 1000, "step": 100,
         "ema": True, "seconds": 9.0, "train_seconds": 600.0},
        {"metric": "fid1k", "value": 30.0, "std": None, "num_images": 1000, "step": 200,
         "ema": True, "seconds": 9.0, "train_seconds": 1200.0},
        {"metric": "r_precision1k", "value": 0.5, "std": 0.01, "num_images": 1000,
         "step": 200, "ema": True, "seconds": 9.0, "train_seconds": 1200.0},
        {"metric": "fid30k", "value": 12.5, "std": None, "num_images": 30000, "step": 200,
         "ema": True, "seconds": 300.0},
        {"metric": "is30k", "value": 4.5, "std": 0.05, "num_images": 30000, "step": 200,
         "ema": True, "seconds": 300.0},
        {"metric": "r_precision30k", "value": 0.7, "std": 0.02, "num_images": 30000,
         "step": 200, "ema": True, "seconds": 300.0},
    ]
    with open(os.path.join(model_dir, "metrics.jsonl"), "w") as f:
        f.write("".join(json.dumps(line) + "\n" for line in lines))
    return model_dir


def write_shapes_result(root):
    """The tools/shapes_quality.py layout: no paper row."""
    return write_json(os.path.join(root, "results", "ssagan_30min.json"), {
        "name": "ssagan_30min", "config": "configs/shapes_ssagan_30min.cfg", "steps": 2700,
        "gan_train_seconds": 1800.0, "num_images": 2000,
        "final": {"attribute_accuracy": 0.75,
                  "per_attribute": {"color": 0.85, "shape": 0.4, "size": 0.9,
                                    "position": 0.85},
                  "all_named": 0.375, "attribute_accuracy_real_images": 0.99,
                  "r_precision": 0.89, "r_precision_real_images": 0.75,
                  "shapes_fid": 882.5, "shapes_fid_real_vs_real": 119.0,
                  "diversity": 0.25, "diversity_details": {"captions": 50},
                  "targets_met": {"r_precision": True}}})


def write_seeds(root):
    """Two seeds of one ablation row (the tf_t2i.ablate layout)."""
    common = {"row": "shapes_ssagan_cl_f2f", "steps": 1000, "num_images": 2000}
    return [
        write_json(os.path.join(root, "ablation", "f2f_seed0.json"), {
            **common, "seed": 0, "train_seconds": 600.0,
            "metrics": {"attribute_accuracy": 0.6, "r_precision": 0.5, "shapes_fid2000": 900.0}}),
        write_json(os.path.join(root, "ablation", "f2f_seed1.json"), {
            **common, "seed": 1, "train_seconds": 720.0,
            "metrics": {"attribute_accuracy": 0.7, "r_precision": 0.7, "shapes_fid2000": 800.0,
                        "sharpness": 0.3}}),
    ]


def run_report(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "tf_t2i.report", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def errors(stderr):
    """stderr without the -X importtime lines."""
    return [line for line in stderr.splitlines() if not line.startswith("import time:")]


class ReadTest(tf.test.TestCase):

    def test_metric_base_drops_the_sample_count(self):
        for label, base in (("fid30k", "fid"), ("is2500", "is"), ("shapes_fid2000", "shapes_fid"),
                            ("diversity50x16", "diversity"), ("r_precision", "r_precision"),
                            ("attribute_accuracy1k", "attribute_accuracy")):
            self.assertEqual(report_lib.metric_base(label), base)

    def test_run_directory_takes_the_last_step_and_the_largest_evaluation(self):
        result = report_lib.read_model_dir(write_cub_run(self.create_tempdir().full_path))
        self.assertEqual(result.row, "cub_ssagan")
        self.assertEqual(result.steps, 200)
        self.assertEqual(result.train_seconds, 1200.0)
        self.assertEqual(result.metrics, {"fid": 12.5, "is": 4.5, "r_precision": 0.7})

    def test_run_directory_without_a_name_is_named_after_itself(self):
        model_dir = write_cub_run(self.create_tempdir().full_path)
        os.remove(os.path.join(model_dir, "config.json"))
        self.assertEqual(report_lib.read_model_dir(model_dir).row, "cub")

    def test_damsm_run_directory(self):
        model_dir = self.create_tempdir().full_path
        write_json(os.path.join(model_dir, "config.json"), {"name": "shapes_damsm"})
        write_json(os.path.join(model_dir, "r_precision.json"),
                   {"r_precision": 0.75, "r_precision_std": 0.02, "step": 1400,
                    "train_seconds": 544.3})
        result = report_lib.read_model_dir(model_dir)
        self.assertEqual((result.row, result.metrics, result.steps, result.train_seconds),
                         ("shapes_damsm", {"r_precision": 0.75}, 1400, 544.3))

    def test_shapes_quality_result_leaves_out_references_and_details(self):
        result = report_lib.read_result_file(write_shapes_result(self.create_tempdir().full_path))
        self.assertEqual(result.row, "shapes_ssagan_30min")
        self.assertEqual((result.steps, result.train_seconds), (2700, 1800.0))
        self.assertEqual(result.metrics, {
            "attribute_accuracy": 0.75, "color": 0.85, "shape": 0.4, "size": 0.9,
            "position": 0.85, "all_named": 0.375, "r_precision": 0.89, "shapes_fid": 882.5,
            "diversity": 0.25})

    def test_directory_of_results_reads_json_and_run_directories(self):
        root = self.create_tempdir().full_path
        write_seeds(root)
        write_cub_run(root, "ablation/cub")
        write_json(os.path.join(root, "ablation", "notes.json"), {"what": "no metrics"})
        results, skipped = report_lib.read_path(os.path.join(root, "ablation"))
        self.assertEqual([r.row for r in results],
                         ["shapes_ssagan_cl_f2f", "shapes_ssagan_cl_f2f", "cub_ssagan"])
        self.assertLen(skipped, 1)
        self.assertIn("notes.json", skipped[0])

    def test_bad_inputs_name_the_path(self):
        root = self.create_tempdir().full_path
        broken = os.path.join(root, "broken.json")
        with open(broken, "w") as f:
            f.write("{not json")
        empty_dir = os.path.join(root, "empty_run")
        write_json(os.path.join(empty_dir, "config.json"), {"name": "x"})
        bad_line_dir = os.path.join(root, "bad_line")
        os.makedirs(bad_line_dir)
        with open(os.path.join(bad_line_dir, "metrics.jsonl"), "w") as f:
            f.write('{"metric": "fid1k", "value": 1.0, "step": 1}\n{oops\n')
        no_metrics = write_json(os.path.join(root, "no_metrics.json"), {"name": "x"})
        for path, message in ((os.path.join(root, "missing"), "no such file or directory"),
                              (broken, "not valid JSON"),
                              (empty_dir, "no metrics.jsonl, r_precision.json, results JSON"),
                              (bad_line_dir, "metrics.jsonl:2: not valid JSON"),
                              (no_metrics, "no 'metrics' or 'final' dict")):
            with self.assertRaisesRegex(report_lib.ReportInputError, message):
                report_lib.build_report([path])


class ReportTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        root = self.create_tempdir().full_path
        self.paths = [write_cub_run(root), write_shapes_result(root), *write_seeds(root)]
        self.rows = report_lib.build_report(self.paths).rows

    def test_rows_group_seeds_and_match_the_paper(self):
        self.assertEqual([(r.row, r.n) for r in self.rows],
                         [("cub_ssagan", 1), ("shapes_ssagan_30min", 1),
                          ("shapes_ssagan_cl_f2f", 2)])
        cub, shapes, seeds = self.rows
        self.assertEqual((cub.paper.inception_score, cub.paper.fid, cub.paper.r_precision),
                         (4.89, 9.76, 75.67))
        self.assertIsNone(shapes.paper)
        self.assertIsNone(seeds.paper)
        # Mean and sample standard deviation by hand: (0.6, 0.7) -> 0.65, sqrt(2 * 0.05^2).
        accuracy = seeds.metrics["attribute_accuracy"]
        self.assertAllClose((accuracy.mean, accuracy.std, accuracy.count),
                            (0.65, math.sqrt(2 * 0.05 ** 2), 2))
        self.assertAllClose((seeds.train_seconds.mean, seeds.train_seconds.std),
                            (660.0, math.sqrt(2 * 60.0 ** 2)))
        self.assertEqual(seeds.metrics["sharpness"].count, 1)
        self.assertIsNone(seeds.metrics["sharpness"].std)

    def test_text_table(self):
        lines = report_lib.format_report(self.rows, "text").splitlines()
        self.assertLen(lines, 5)
        header = lines[0].split()
        self.assertEqual(header[:4], ["row", "n", "steps", "train"])
        self.assertEqual(lines[0].split("  ")[-1].strip(), "paper R-prec %")
        self.assertEqual(len({len(line) for line in lines[:2]}), 1)   # aligned
        cub = lines[2]
        self.assertStartsWith(cub, "cub_ssagan ")
        for cell in ("200", "20.0", "70.00", "12.50", "4.50", "9.76", "75.67"):
            self.assertIn(f" {cell}", cub)
        self.assertEqual(lines[3].split()[-3:], ["-", "-", "-"])
        seeds = lines[4]
        for cell in ("0.650 ± 0.071", "60.00 ± 14.14", "850.0 ± 70.7", "11.0 ± 1.4",
                     "0.3000 [1]"):
            self.assertIn(cell, seeds)

    def test_markdown_table(self):
        lines = report_lib.format_report(self.rows, "markdown").splitlines()
        self.assertLen(lines, 5)
        headers = [c.strip() for c in lines[0].strip("|").split("|")]
        self.assertEqual(headers, ["row", "n", "steps", "train min", "attr acc", "color",
                                   "shape", "size", "position", "all named", "R-prec %",
                                   "shapes-FID", "FID", "IS", "diversity", "sharpness",
                                   "paper IS", "paper FID", "paper R-prec %"])
        self.assertEqual(lines[1], "|---|" + "---:|" * (len(headers) - 1))
        cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
        self.assertTrue(all(len(row) == len(headers) for row in cells))
        cub = dict(zip(headers, cells[0]))
        self.assertEqual((cub["R-prec %"], cub["FID"], cub["IS"]), ("70.00", "12.50", "4.50"))
        self.assertEqual((cub["paper IS"], cub["paper FID"], cub["paper R-prec %"]),
                         ("4.89", "9.76", "75.67"))
        self.assertEqual(cub["attr acc"], "-")
        shapes = dict(zip(headers, cells[1]))
        self.assertEqual((shapes["steps"], shapes["train min"], shapes["shapes-FID"]),
                         ("2700", "30.0", "882.5"))
        self.assertEqual((shapes["paper IS"], shapes["paper FID"]), ("-", "-"))
        seeds = dict(zip(headers, cells[2]))
        self.assertEqual((seeds["n"], seeds["attr acc"]), ("2", "0.650 ± 0.071"))

    def test_json(self):
        rows = json.loads(report_lib.format_report(self.rows, "json"))
        self.assertEqual(rows[0]["paper"]["r_precision_percent"], 75.67)
        self.assertEqual(rows[0]["metrics"]["r_precision"]["mean"], 0.7)
        self.assertEqual(rows[2]["seeds"], [0, 1])
        self.assertAllClose(rows[2]["metrics"]["shapes_fid"]["std"], math.sqrt(2 * 50.0 ** 2))
        with self.assertRaisesRegex(ValueError, "Unknown format"):
            report_lib.format_report(self.rows, "html")


def write_baseline_seeds(root):
    """Three seeds of the baseline row beside write_seeds' two of the F2F row."""
    values = [(0.50, 0.55, 1000.0), (0.52, 0.6, 1200.0), (0.54, 0.65, 1100.0)]
    return [write_json(os.path.join(root, "ablation", f"base_seed{seed}.json"), {
        "row": "shapes_ssagan", "steps": 1000, "seed": seed,
        "metrics": {"attribute_accuracy": acc, "r_precision": rp, "shapes_fid2000": fid}})
        for seed, (acc, rp, fid) in enumerate(values)]


class CompareTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        root = self.create_tempdir().full_path
        paths = [*write_baseline_seeds(root), *write_seeds(root), write_shapes_result(root)]
        self.rows = report_lib.build_report(paths).rows

    def test_welch_p_value_matches_scipy(self):
        from scipy import stats
        samples = [([0.6, 0.7], [0.5, 0.52, 0.54]), ([1.0, 2.0, 4.0], [1.5, 1.6, 1.7, 9.0]),
                   ([0.791, 0.787, 0.795], [0.770, 0.777, 0.763]),
                   ([10.0, 10.1], [-3.0, 40.0, 12.0, 7.5, 0.0])]
        for a, b in samples:
            expected = stats.ttest_ind(a, b, equal_var=False).pvalue
            self.assertAllClose(report_compare.welch_p_value(a, b), expected, rtol=1e-9)
        self.assertIsNone(report_compare.welch_p_value([1.0], [1.0, 2.0]))
        self.assertEqual(report_compare.welch_p_value([1.0, 1.0], [1.0, 1.0]), 1.0)
        self.assertEqual(report_compare.welch_p_value([2.0, 2.0], [1.0, 1.0]), 0.0)

    def test_differences_and_spread_by_hand(self):
        [(row, diffs)] = [(r, d) for r, d in report_compare.compare_to(self.rows, "shapes_ssagan")
                          if r.row == "shapes_ssagan_cl_f2f"]
        # Accuracy: F2F (0.6, 0.7) mean 0.65 std 0.0707; baseline (0.50, 0.52, 0.54) mean
        # 0.52 std 0.02: +0.13 against a spread of 0.0907 -> beyond it.
        accuracy = diffs["attribute_accuracy"]
        self.assertAllClose((accuracy.delta, accuracy.spread),
                            (0.13, math.sqrt(0.005) + 0.02))
        self.assertTrue(accuracy.beyond_spread)
        # R-precision: (0.5, 0.7) mean 0.6 std 0.1414 against (0.55, 0.6, 0.65) mean 0.6.
        self.assertAllClose(diffs["r_precision"].delta, 0.0, atol=1e-12)
        self.assertFalse(diffs["r_precision"].beyond_spread)
        # shapes-FID: 850 +- 70.7 against 1100 +- 100: -250 beyond 170.7.
        self.assertAllClose(diffs["shapes_fid"].delta, -250.0)
        self.assertTrue(diffs["shapes_fid"].beyond_spread)
        # One seed (the shapes_quality row): a difference, but no spread and no p-value.
        [(_, single)] = [(r, d) for r, d in report_compare.compare_to(self.rows, "shapes_ssagan")
                         if r.row == "shapes_ssagan_30min"]
        self.assertAllClose(single["attribute_accuracy"].delta, 0.23)
        self.assertIsNone(single["attribute_accuracy"].spread)
        self.assertFalse(single["attribute_accuracy"].beyond_spread)
        self.assertIsNone(single["attribute_accuracy"].p_value)

    def test_markdown_comparison(self):
        text = report_compare.format_comparison(self.rows, "shapes_ssagan", "markdown")
        lines = text.splitlines()
        self.assertEqual(lines[0], "| metric: row - shapes_ssagan | shapes_ssagan_cl_f2f | "
                                   "shapes_ssagan_30min |")
        cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")][1:]
                 for line in lines[2:] if line.startswith("| ")}
        self.assertStartsWith(cells["attr acc"][0], "+0.130* (p ")
        self.assertEqual(cells["attr acc"][1], "+0.230")
        self.assertStartsWith(cells["R-prec %"][0], "+0.00 (p 1.00)")
        self.assertStartsWith(cells["shapes-FID"][0], "-250.0* (p ")
        self.assertEqual(lines[-1], report_compare.COMPARISON_LEGEND)

    def test_unknown_baseline_names_the_rows(self):
        with self.assertRaisesRegex(report_lib.ReportInputError,
                                    r"--baseline=nope: no such row; the rows are "
                                    r"shapes_ssagan, shapes_ssagan_cl_f2f, shapes_ssagan_30min\."):
            report_compare.compare_to(self.rows, "nope")


class ReportCommandTest(tf.test.TestCase):

    def test_markdown_without_tensorflow(self):
        root = self.create_tempdir().full_path
        proc = run_report(write_cub_run(root), write_shapes_result(root), "--format=markdown")
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        self.assertNotIn("tensorflow", proc.stderr)   # -X importtime lists every import
        lines = proc.stdout.splitlines()
        self.assertLen(lines, 4)
        self.assertStartsWith(lines[2], "| cub_ssagan | 1 | 200 |")
        self.assertTrue(lines[2].endswith("| 4.89 | 9.76 | 75.67 |"), lines[2])
        self.assertTrue(lines[3].endswith("| - | - | - |"), lines[3])

    def test_baseline_table_and_unknown_baseline(self):
        root = self.create_tempdir().full_path
        paths = [*write_baseline_seeds(root), *write_seeds(root)]
        proc = run_report(*paths, "--baseline=shapes_ssagan")
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        tables = proc.stdout.split("\n\n")
        self.assertLen(tables, 2)
        self.assertStartsWith(tables[1], "metric: row - shapes_ssagan  shapes_ssagan_cl_f2f")
        self.assertIn("+0.130* (p ", tables[1])
        proc = run_report(*paths, "--baseline=shapes_ssagan", "--format=json")
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        out = json.loads(proc.stdout)
        self.assertEqual([r["row"] for r in out["rows"]], ["shapes_ssagan", "shapes_ssagan_cl_f2f"])
        accuracy = out["comparison"]["rows"][0]["differences"]["attribute_accuracy"]
        self.assertAllClose(accuracy["delta"], 0.13)
        self.assertTrue(accuracy["beyond_spread"])
        proc = run_report(*paths, "--baseline=shapes_ssagan_typo")
        self.assertEqual(proc.returncode, 2)
        self.assertEqual(errors(proc.stderr), [
            "error: --baseline=shapes_ssagan_typo: no such row; the rows are shapes_ssagan, "
            "shapes_ssagan_cl_f2f."])
        self.assertEqual(proc.stdout, "")

    def test_a_missing_path_is_one_line(self):
        missing = os.path.join(self.create_tempdir().full_path, "no_such_run")
        proc = run_report(missing)
        self.assertEqual(proc.returncode, 2)
        self.assertEqual(errors(proc.stderr),
                         [f"error: {missing}: no such file or directory."])
        self.assertEqual(proc.stdout, "")

    def test_no_path_is_one_line(self):
        proc = run_report()
        self.assertEqual(proc.returncode, 2)
        self.assertLen(errors(proc.stderr), 1)
        self.assertStartsWith(errors(proc.stderr)[0], "error: Name one or more run")


if __name__ == "__main__":
    tf.test.main()
