"""benchmarks/gpu_check.py: its CPU fallback end to end, its budget, search and table."""

import json
import os
import subprocess
import sys
import time
import types

from absl.testing import parameterized
import pytest
import tensorflow as tf

from tf_t2i import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.py")
sys.path.insert(0, os.path.dirname(SCRIPT))  # the script imports gan_step beside it

import gpu_check  # pylint: disable=g-import-not-at-top,wrong-import-position

ROWS = [name for name, _ in gpu_check.row_names()]


def _run(output, *args):
    """The script without a GPU: (seconds, stdout)."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    started = time.monotonic()
    result = subprocess.run([sys.executable, SCRIPT, f"--output={output}", *args], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return time.monotonic() - started, result.stdout


def _row(name, ips=None, status="ok", baseline="step fp32"):
    return {"name": name, "baseline": baseline, "status": status, "images_per_second": ips}


class _FakeBench:
    """Stands in for GANBench: steps take `seconds` per image; batches above `fits` OOM."""

    def __init__(self, fits, seconds=0.001, jit_compile=False, error=None):
        self.fits, self.seconds, self.error, self.tried = fits, seconds, error, []
        self.cfg = config_lib.ExperimentConfig().replace(
            runtime={"jit_compile": jit_compile})

    def time(self, batch, warmup, steps, max_seconds):
        del warmup, steps, max_seconds  # unused
        self.tried.append(batch)
        if self.error is not None:
            raise self.error
        if batch > self.fits:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return gpu_check.Timing(batch, self.seconds * batch, self.seconds * batch, None)


class GPUCheckTest(tf.test.TestCase, parameterized.TestCase):

    def test_ratios_are_images_per_second_over_the_fp32_row_of_the_kind(self):
        rows = gpu_check.add_ratios([
            _row("step fp32", 100.0), _row("step mixed_bfloat16", 250.0),
            _row("step mixed_float16", None, status="error"),
            _row("largest batch fp32", 120.0, baseline="largest batch fp32"),
            _row("largest batch mixed_bfloat16", 300.0, baseline="largest batch fp32"),
            _row("2 devices fp32", 190.0)])
        self.assertEqual([r["ratio_to_fp32"] for r in rows], [1.0, 2.5, None, 1.0, 2.5, 1.9])

    def test_no_ratio_without_a_baseline_figure(self):
        rows = gpu_check.add_ratios([_row("step fp32", None, status="skipped"),
                                     _row("step mixed_bfloat16", 250.0)])
        self.assertEqual([r["ratio_to_fp32"] for r in rows], [None, None])

    def test_an_op_error_becomes_its_message_line_without_the_stack(self):
        message = ("Graph execution error:\n\nDetected at node gen/conv defined at (most "
                   "recent call last):\n  File \"x.py\", line 1, in <module>\n\n"
                   "OOM when allocating tensor with shape[96,64,256,256]\n"
                   "\t [[{{node gen/conv}}]]\nHint: If you want to see ...\n [Op:__inference]")
        error = tf.errors.ResourceExhaustedError(None, None, message)
        self.assertEqual(gpu_check.one_line(error), "ResourceExhaustedError: OOM when "
                         "allocating tensor with shape[96,64,256,256]")
        self.assertTrue(gpu_check.is_out_of_memory(error))
        long = gpu_check.one_line(ValueError("a\nb " + "x" * 300))
        self.assertLen(long, 200)
        self.assertTrue(long.startswith("ValueError: a b x"))
        self.assertFalse(gpu_check.is_out_of_memory(ValueError("shape mismatch")))

    @parameterized.named_parameters(
        ("out_of_memory", 60, 1000, [48, 96], 48, "out of memory at 96"),
        ("capped", 1000, 100, [48, 96], 96, "search capped at 100"),
    )
    def test_largest_batch_is_the_last_that_ran(self, fits, max_batch, tried, found, note):
        bench = _FakeBench(fits)
        args = types.SimpleNamespace(max_batch=max_batch, search_s=60, row_s=10)
        first = bench.time(24, 0, 1, 10)
        bench.tried.clear()
        last, got_note = gpu_check.search_largest_batch(bench, first, args,
                                                        time.monotonic() + 60)
        self.assertEqual((bench.tried, last.batch, got_note), (tried, found, note))

    def test_search_stops_when_a_trial_would_overrun_or_fails(self):
        args = types.SimpleNamespace(max_batch=1000, search_s=60, row_s=10)
        bench = _FakeBench(1000, seconds=1.0)  # 24 s a step: a 48 trial needs ~288 s
        first = gpu_check.Timing(24, 24.0, 30.0, None)
        last, note = gpu_check.search_largest_batch(bench, first, args, time.monotonic() + 60)
        self.assertEqual((bench.tried, last, note), ([], first, "search stopped before 48 "
                                                     "(time)"))
        bench = _FakeBench(1000, error=ValueError("bad\nshape"))
        last, note = gpu_check.search_largest_batch(
            bench, gpu_check.Timing(24, 0.01, 0.02, None), args, time.monotonic() + 60)
        self.assertEqual(note, "at 48: ValueError: bad shape")

    def test_no_time_left_skips_every_row_and_still_writes_the_table(self):
        output = os.path.join(self.create_tempdir().full_path, "check.json")
        _, stdout = _run(output, "--budget_s=1")
        self.assertIn("no GPU", stdout)
        with open(output) as f:
            report = json.load(f)
        self.assertTrue(report["cpu_fallback"])
        self.assertEqual([r["name"] for r in report["rows"]], ROWS)
        for row in report["rows"]:
            self.assertEqual((row["status"], row["error"], row["ratio_to_fp32"]),
                             ("skipped", "skipped (time budget)", None), row["name"])
            self.assertIn(f"{row['name']:28s}        skipped (time budget)", stdout)

    @pytest.mark.slow
    def test_cpu_fallback_fills_the_table(self):
        output = os.path.join(self.create_tempdir().full_path, "check.json")
        # The CPU default budget is 120 s; on a loaded machine importing and the first row
        # alone can take 80 s, so the test gives more and checks that the script keeps it.
        budget = 400
        seconds, stdout = _run(output, f"--budget_s={budget}")
        print(f"gpu_check CPU fallback: {seconds:.0f}s\n{stdout}")
        self.assertIn("no GPU", stdout)
        self.assertLess(seconds, budget + 60)  # the last row's overrun, the exit
        with open(output) as f:
            rows = {r["name"]: r for r in json.load(f)["rows"]}
        self.assertEqual(list(rows), ROWS)
        for name, row in rows.items():
            self.assertIn(name, stdout)
            if row["status"] == "ok":
                self.assertGreater(row["seconds_per_step"], 0)
                self.assertAllClose(row["images_per_second"],
                                    row["batch"] / row["seconds_per_step"], rtol=1e-3)
                self.assertIsNone(row["peak_memory_gib"])  # no GPU
                base = rows[row["baseline"]]
                if base["status"] == "ok":
                    self.assertAllClose(row["ratio_to_fp32"], row["images_per_second"] /
                                        base["images_per_second"], rtol=1e-2)
            else:  # an error or a skip: one line, no figures
                self.assertIn(row["status"], ("error", "skipped"), name)
                self.assertTrue(row["error"] and "\n" not in row["error"], name)
                self.assertIsNone(row["ratio_to_fp32"], name)
        # The distinct code paths run first, so that they always fit the budget.
        for name in ("step fp32", "inference fp32", "2 devices fp32"):
            self.assertEqual(rows[name]["status"], "ok", str(rows[name]))
        self.assertEqual(rows["step fp32"]["ratio_to_fp32"], 1.0)
        self.assertEqual(rows["2 devices fp32"]["batch"], 2 * rows["step fp32"]["batch"])
        self.assertEqual(rows["largest batch fp32"]["batch"], 4)  # 2, doubled to the cap


if __name__ == "__main__":
    tf.test.main()
