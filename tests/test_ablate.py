"""The ablation driver: its grid, what it skips, and its one-line errors (no training)."""

import json
import os
import subprocess
import sys
import types

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
        self.assertEqual([(r, s, status) for r, s, _, status in grid],
                         [("a", 0, "todo"), ("b", 0, "todo"), ("a", 1, "todo"),
                          ("b", 1, "done")])
        self.assertEqual(grid[3][2], os.path.join(out, "b_seed1.json"))

    def test_row_settings_expand_the_chain(self):
        os.chdir(ROOT)
        base = ablate.row_settings(ablate.ROWS["shapes_ssagan"])
        f2f = ablate.row_settings(ablate.ROWS["shapes_ssagan_cl_f2f"])
        self.assertEqual(f2f["loss_f2f_weight"], "0.2")
        self.assertEqual(f2f["experiment_name"], "shapes_ssagan_cl_f2f")  # the last wins
        self.assertEqual(f2f["gen_noise_in_affine"], base["gen_noise_in_affine"])
        self.assertNotIn("flagfile", f2f)
        self.assertEqual({k: v for k, v in f2f.items() if base.get(k) != v},
                         {"loss_f2f_weight": "0.2", "experiment_name": "shapes_ssagan_cl_f2f"})
        # The baseline config's 30-minute budget is lifted: every row trains its steps.
        self.assertEqual(base["train_max_seconds"], "0")
        short = ablate.row_settings(ablate.ROWS["shapes_ssagan"], train_steps=50)
        self.assertEqual(short["train_steps"], "50")
        self.assertNotEqual(ablate.settings_digest(short), ablate.settings_digest(base))

    def test_run_settings_include_the_damsm(self):
        os.chdir(ROOT)
        row = ablate.ROWS["shapes_ssagan"]
        settings = ablate.run_settings(row, "configs/shapes_damsm_10min.cfg")
        self.assertEqual({k: v for k, v in settings.items() if not k.startswith("damsm/")},
                         ablate.row_settings(row))
        self.assertEqual(settings["damsm/train_task"], "damsm")
        other = ablate.run_settings(row, "configs/shapes_damsm.cfg")
        self.assertNotEqual(ablate.settings_digest(settings), ablate.settings_digest(other))

    def test_a_changed_row_makes_its_runs_stale(self):
        out = self.create_tempdir().full_path
        path = lambda name: os.path.join(out, name + ".json")
        for name, content in (("same", {"settings_digest": "d1"}), ("older", {}),
                              ("changed", {"settings_digest": "d0"})):
            with open(path(name), "w") as f:
                json.dump(content, f)
        with open(path("corrupt"), "w") as f:
            f.write("{not json")
        self.assertEqual({n: ablate.run_status(path(n), "d1")
                          for n in ("same", "older", "changed", "corrupt", "missing")},
                         {"same": "done", "older": "done", "changed": "stale",
                          "corrupt": "stale", "missing": "todo"})

    def test_supersede_keeps_every_old_result(self):
        out = self.create_tempdir().full_path
        path = os.path.join(out, "r_seed0.json")
        for text in ("first", "second"):
            with open(path, "w") as f:
                f.write(text)
            os.utime(path, (0, 0))  # the same stamp twice: the second must not overwrite
            ablate.supersede(path)
            self.assertFalse(os.path.exists(path))
        kept = sorted(os.listdir(os.path.join(out, "superseded")))
        self.assertLen(kept, 2)
        self.assertTrue(all(k.startswith("r_seed0.") for k in kept))
        texts = {open(os.path.join(out, "superseded", k)).read() for k in kept}
        self.assertEqual(texts, {"first", "second"})
        ablate.supersede(path)  # nothing there: nothing happens

    def test_dry_run_lists_stale_runs(self):
        out = self.create_tempdir().full_path
        with open(os.path.join(out, "shapes_ssagan_seed0.json"), "w") as f:
            json.dump({"settings_digest": "0" * 16}, f)
        result = _run("--dry_run", f"--out={out}", "--rows=shapes_ssagan", "--seeds=1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("Ablation: 1 runs, 0 finished, 1 to go (1 stale: their row changed "
                      "since they ran).", result.stdout)
        self.assertIn("stale shapes_ssagan_seed0", result.stdout)

    def test_dry_run_lists_the_grid_and_skips_finished(self):
        out = self.create_tempdir().full_path
        with open(os.path.join(out, "shapes_ssagan_seed0.json"), "w") as f:
            f.write("{}")  # a result from before settings were recorded
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


class ClaimModelDirTest(tf.test.TestCase):

    def test_a_pretraining_of_other_settings_is_moved_aside_and_rerun(self):
        os.chdir(ROOT)
        runs = self.create_tempdir().full_path
        commands = []

        class _Study:  # stands in for tf_t2i.eval.study: "trains" by writing the result
            @staticmethod
            def run(command, log):
                commands.append(command)
                model_dir = next(c for c in command if c.startswith("--model_dir="))
                with open(os.path.join(model_dir.split("=", 1)[1], "r_precision.json"),
                          "w") as f:
                    json.dump({"r_precision": len(commands)}, f)

        args = types.SimpleNamespace(runs=runs)
        short, long_ = "configs/shapes_damsm.cfg", "configs/shapes_damsm_10min.cfg"
        _, first = ablate.pretrain(args, _Study, "damsm", short)
        _, again = ablate.pretrain(args, _Study, "damsm", short)  # finished: skipped
        self.assertEqual((first, again, len(commands)), ({"r_precision": 1},) * 2 + (1,))
        model_dir, other = ablate.pretrain(args, _Study, "damsm", long_)
        self.assertEqual(other, {"r_precision": 2})
        self.assertIn(f"--flagfile={long_}", commands[-1])
        moved = [n for n in os.listdir(runs) if n.startswith("damsm.superseded-")]
        self.assertLen(moved, 1)
        with open(os.path.join(runs, moved[0], "r_precision.json")) as f:
            self.assertEqual(json.load(f), {"r_precision": 1})  # nothing lost

    def test_a_run_of_other_settings_is_moved_aside_and_its_own_resumed(self):
        root = self.create_tempdir().full_path
        model_dir = os.path.join(root, "r_seed0")
        ablate.claim_model_dir(model_dir, {"train_steps": "10"})  # fresh
        with open(os.path.join(model_dir, "ckpt"), "w") as f:
            f.write("step 5")
        ablate.claim_model_dir(model_dir, {"train_steps": "10"})  # same settings: resumed
        self.assertTrue(os.path.exists(os.path.join(model_dir, "ckpt")))
        ablate.claim_model_dir(model_dir, {"train_steps": "20"})  # changed: moved aside
        self.assertFalse(os.path.exists(os.path.join(model_dir, "ckpt")))
        moved = [n for n in os.listdir(root) if n.startswith("r_seed0.superseded-")]
        self.assertLen(moved, 1)
        with open(os.path.join(root, moved[0], "ckpt")) as f:
            self.assertEqual(f.read(), "step 5")  # nothing lost
        with open(os.path.join(model_dir, "ablation_settings.json")) as f:
            self.assertEqual(json.load(f)["settings"], {"train_steps": "20"})

    def test_a_folder_without_recorded_settings_is_not_resumed(self):
        root = self.create_tempdir().full_path
        model_dir = os.path.join(root, "r_seed1")
        os.makedirs(model_dir)
        ablate.claim_model_dir(model_dir, {"a": "1"})
        self.assertLen([n for n in os.listdir(root) if ".superseded-" in n], 1)
