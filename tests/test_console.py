"""What the binaries print: TensorFlow's start-up block recognised and held back, the
config shown as the flags that differ from the defaults."""

import os
import subprocess
import sys

import tensorflow as tf

from tests.serving import helpers as serving
from tf_t2i import config as config_lib
from tf_t2i import console
from tf_t2i import flags as t2i_flags

# Lines TF 2.21 printed on import on the project's VMs.
STARTUP = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796218236.316345    7800 port.cc:153] oneDNN custom operations are on.",
    "I0000 00:00:1796218236.318386    7800 cudart_stub.cc:31] Could not find cuda drivers",
    "I0000 00:00:1796218236.389922    7800 cpu_feature_guard.cc:227] This TensorFlow binary",
    "To enable the following instructions: AVX2 AVX512F, in other operations, rebuild",
)
KEPT = (
    "E0000 00:00:1796218239.970250    7800 cuda_platform.cc:52] failed call to cuInit",
    "error: --model_dir does not exist.",
    "Traceback (most recent call last):",
    "I think therefore I am",
)


class ConsoleTest(tf.test.TestCase):

    def test_startup_block_is_recognised_and_nothing_else(self):
        for line in STARTUP:
            self.assertTrue(console.is_startup_noise(line), line)
        for line in KEPT:
            self.assertFalse(console.is_startup_noise(line), line)

    def test_a_binary_prints_nothing_on_stderr(self):
        # sample on the tiny run, TF_CPP_MIN_LOG_LEVEL unset as for a user: the start-up
        # block, absl INFO lines and Keras warnings all held back.
        out = os.path.join(self.create_tempdir().full_path, "grid.png")
        env = {k: v for k, v in serving.subprocess_env().items()
               if k != "TF_CPP_MIN_LOG_LEVEL"}
        result = subprocess.run(
            [sys.executable, "-m", "tf_t2i.sample", f"--model_dir={serving.trained_run()}",
             "--caption=a red circle", "--num_samples=2", f"--output={out}"],
            cwd=serving.ROOT, env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertEqual(result.stderr, "")
        self.assertIn("Wrote ", result.stdout)
        self.assertTrue(os.path.exists(out))

    def test_config_shown_as_the_flags_that_differ(self):
        cfg = config_lib.ExperimentConfig().replace(
            name="x", generator={"ngf": 8, "noise_in_affine": True},
            train={"steps": 7})
        text = t2i_flags.describe_config(cfg, "Training", where="run/config.json")
        self.assertEqual(text.splitlines(), [
            "Training; settings other than the defaults (all of them: run/config.json):",
            "  --experiment_name=x", "  --gen_ngf=8", "  --gen_noise_in_affine=true",
            "  --train_steps=7"])
        full = t2i_flags.describe_config(cfg, "Training", full=True)
        self.assertIn('"noise_in_affine": true', full)
        self.assertIn('"batch_size": 24', full)  # a default, shown only in full
