"""End to end through the command line, as a user runs it (slow: `make test-slow`).

pretrain 2 steps -> train 2 steps -> rerun to 4 steps (resumes) -> sample a grid.
"""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.mark.slow
class EndToEndTest(tf.test.TestCase):

    def test_pretrain_train_resume_sample(self):
        tmp = self.create_tempdir().full_path
        data = f"--data_data_dir={tmp}/tfds"
        damsm, gan = f"{tmp}/damsm", f"{tmp}/gan"
        run("tf_t2i.pretrain", "--flagfile=configs/tiny.cfg", data, f"--model_dir={damsm}")
        results = json.load(open(os.path.join(damsm, "r_precision.json")))
        self.assertBetween(results["r_precision"], 0.0, 1.0)

        run("tf_t2i.train", "--flagfile=configs/tiny.cfg", data, f"--damsm_dir={damsm}",
            f"--model_dir={gan}")
        self.assertEqual(tf.train.latest_checkpoint(f"{gan}/checkpoints").rsplit("-", 1)[1], "2")
        out = run("tf_t2i.train", "--flagfile=configs/tiny.cfg", data, f"--damsm_dir={damsm}",
                  f"--model_dir={gan}", "--train_steps=4")
        self.assertIn("at step 2 of 4", out)
        self.assertEqual(tf.train.latest_checkpoint(f"{gan}/checkpoints").rsplit("-", 1)[1], "4")
        self.assertTrue(os.path.exists(f"{gan}/samples.png"))

        grid = f"{tmp}/grid.png"
        run("tf_t2i.sample", f"--model_dir={gan}", "--caption=a red circle",
            "--caption=a blue square on the left", "--num_samples=3", f"--output={grid}")
        image = Image.open(grid)
        self.assertEqual(image.mode, "RGB")
        self.assertGreater(image.size[0], 3 * 64)
