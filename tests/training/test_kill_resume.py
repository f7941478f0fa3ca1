"""`kill -9` at random points after a checkpoint, then resume: the run ends with the
weights of an uninterrupted one (slow: `make test-slow`).

The training binary runs configs/tiny.cfg (a checkpoint every step) for 8 steps in a
subprocess; a watcher kills it with SIGKILL at a random moment after a new checkpoint
appears, three times, and the command is rerun until it finishes. Killed mid-write, a
checkpoint must never be left half-made as the latest one.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.training import helpers
from tf_t2i.models import trained_run

STEPS = 8
KILLS = 3


def _command(model_dir):
    return [sys.executable, "-m", "tf_t2i.train", "--flagfile=configs/tiny.cfg",
            f"--damsm_dir={helpers.damsm_run()}", f"--data_data_dir={helpers.data_dir()}",
            f"--model_dir={model_dir}", f"--train_steps={STEPS}", "--train_sample_every=1000"]


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def _latest_step(model_dir):
    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else -1


def _generator_weights(model_dir):
    """(step, the variables of G and of EMA G) of a run's latest checkpoint."""
    run = trained_run.load_run(model_dir)
    return run.step, [v.numpy() for m in (run.generator, run.ema_generator) for v in m.variables]


@pytest.mark.slow
class KillResumeTest(tf.test.TestCase):

    def test_killed_three_times_then_resumed_equals_uninterrupted(self):
        tmp = self.create_tempdir().full_path
        straight = os.path.join(tmp, "straight")
        result = subprocess.run(_command(straight), cwd=helpers.ROOT, env=_env(),
                                capture_output=True, text=True, timeout=900)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])

        killed = os.path.join(tmp, "killed")
        rng = np.random.default_rng(7)
        kills, starts = [], 0
        while _latest_step(killed) < STEPS:
            starts += 1
            self.assertLess(starts, KILLS + 3, f"no progress: killed at {kills}")
            proc = subprocess.Popen(_command(killed), cwd=helpers.ROOT, env=_env(),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if len(kills) < KILLS:
                before = _latest_step(killed)
                deadline = time.time() + 600
                while _latest_step(killed) <= before and proc.poll() is None:
                    self.assertLess(time.time(), deadline)
                    time.sleep(0.05)
                time.sleep(float(rng.uniform(0.0, 1.5)))  # anywhere in the next step
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills.append(_latest_step(killed))
            self.assertIn(proc.wait(timeout=900), (0, -signal.SIGKILL))
        self.assertLen(kills, KILLS)

        step_a, straight_weights = _generator_weights(straight)
        step_b, resumed_weights = _generator_weights(killed)
        self.assertEqual((step_a, step_b), (STEPS, STEPS))
        for a, b in zip(straight_weights, resumed_weights):
            self.assertAllClose(b, a, rtol=1e-6, atol=1e-6)
