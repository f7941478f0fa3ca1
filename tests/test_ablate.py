"""The ablation driver: its grid, what it skips, and its one-line errors (no training)."""

import os
import subprocess
import sys

import tensorflow as tf

from tf_t2i import ablate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "tf_t2i.ablate", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


class AblateTest(tf.test.TestCase):

    def test_every_row_has_its_config_and_differs_only_in_loss_terms(self):
        for row, path in ablate.ROWS.items():
            self.assertTrue(os.path.exists(os.path.join(ROOT, path)), row)
        for row in list(ablate.ROWS)[1:]:
            with open(os.path.join(ROOT, ablate.ROWS[row])) as f:
                lines = [l.strip() for l in f if l.startswith("--")]
            self.assertEqual(lines[0], "--flagfile=shapes_ssagan_30min.cfg", row)
            self.assertTrue(all(l.startswith(("--loss_", "--experiment_name")) for l in lines[1:]),
                            (row, lines))

    def test_plan_is_seed_major_and_sees_finished_runs(self):
        out = self.create_tempdir().full_path
        open(os.path.join(out, "b_seed1.json"), "w").close()
        grid = ablate.plan(["a", "b"], 2, out)
        self.assertEqual([(r, s, done) for r, s, _, done in grid],
                         [("a", 0, False), ("b", 0, False), ("a", 1, False), ("b", 1, True)])
        self.assertEqual(grid[3][2], os.path.join(out, "b_seed1.json"))

    def test_dry_run_lists_the_grid_and_skips_finished(self):
        out = self.create_tempdir().full_path
        open(os.path.join(out, "shapes_ssagan_seed0.json"), "w").close()
        result = _run("--dry_run", f"--out={out}", "--rows=shapes_ssagan,shapes_ssagan_cl_f2f",
                      "--seeds=2")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("Ablation: 4 runs, 1 finished, 3 to go.", result.stdout)
        self.assertIn("done  shapes_ssagan_seed0", result.stdout)
        self.assertIn("todo  shapes_ssagan_cl_f2f_seed1", result.stdout)

    def test_bad_rows_and_seeds_are_one_line(self):
        for args, message in ((["--rows=shapes_ssagan,nope"], "Unknown rows ['nope']"),
                              (["--seeds=0"], "--seeds must be >= 1"),
                              (["--seeds=three"], "invalid int value: 'three'"),
                              (["--no_such_flag"], "unrecognized arguments: --no_such_flag")):
            result = _run("--dry_run", *args)
            self.assertEqual(result.returncode, 2)
            self.assertLen(result.stderr.strip().splitlines(), 1, result.stderr)
            self.assertIn(message, result.stderr)

    def test_recap_row_waits_for_a_captioner_that_reads_shapes(self):
        self.assertTrue(ablate.captioner_reads_shapes(
            {"color_word_precision": 0.95, "shape_word_precision": 0.9}, 0.9))
        self.assertFalse(ablate.captioner_reads_shapes(
            {"color_word_precision": 0.99, "shape_word_precision": 0.348}, 0.9))
        self.assertFalse(ablate.captioner_reads_shapes({}, 0.9))


if __name__ == "__main__":
    tf.test.main()
