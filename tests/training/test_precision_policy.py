"""`--mixed_precision=auto`: bfloat16 where the hardware computes it natively, float32 elsewhere.

The detection reads the CPU's feature flags and the GPUs' compute capability
(training/runtime.py); here it is fed written cpuinfo files and capability lists, and a
pretraining run continued with `auto` on a patched "native" CPU records what it chose.
"""

import contextlib
import io
import json
import os
from unittest import mock

import keras
import tensorflow as tf

from tests.training import helpers
from tf_t2i import config as config_lib
from tf_t2i.training import pretrain_lib
from tf_t2i.training import runtime

AVX2 = frozenset({"fpu", "sse2", "avx", "avx2", "fma"})


class DetectionTest(tf.test.TestCase):

    def _cpuinfo(self, text):
        path = os.path.join(self.create_tempdir().full_path, "cpuinfo")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_reads_x86_flags_and_arm_features(self):
        x86 = self._cpuinfo("processor\t: 0\nmodel name\t: AMD EPYC\n"
                            "flags\t\t: fpu avx2 avx512f avx512_bf16\n\nprocessor\t: 1\n"
                            "flags\t\t: fpu\n")
        self.assertEqual(runtime.cpu_features(x86), {"fpu", "avx2", "avx512f", "avx512_bf16"})
        arm = self._cpuinfo("processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd bf16\n")
        self.assertEqual(runtime.cpu_features(arm), {"fp", "asimd", "bf16"})

    def test_unreadable_cpuinfo_has_no_features(self):
        self.assertEqual(runtime.cpu_features("/nonexistent/cpuinfo"), frozenset())
        self.assertEqual(runtime.cpu_features(self._cpuinfo("processor\t: 0\n")), frozenset())

    def test_auto_on_cpus(self):
        for features, expected in ((AVX2, "none"),
                                   (AVX2 | {"avx512f"}, "none"),  # AVX-512 alone emulates
                                   (AVX2 | {"avx512f", "avx512_bf16"}, "mixed_bfloat16"),
                                   (AVX2 | {"amx_bf16", "amx_tile"}, "mixed_bfloat16"),
                                   (frozenset({"fp", "asimd", "bf16"}), "mixed_bfloat16"),
                                   (frozenset(), "none")):
            self.assertEqual(runtime.resolve_precision("auto", features, []), expected,
                             sorted(features))

    def test_auto_on_gpus_ignores_the_cpu(self):
        self.assertEqual(runtime.resolve_precision("auto", AVX2, [(8, 0)]), "mixed_bfloat16")
        self.assertEqual(runtime.resolve_precision("auto", AVX2, [(9, 0), (8, 6)]),
                         "mixed_bfloat16")
        # One pre-Ampere GPU (a V100 beside an A100) emulates it for the whole step.
        self.assertEqual(runtime.resolve_precision("auto", AVX2, [(8, 0), (7, 0)]), "none")
        self.assertEqual(runtime.resolve_precision("auto", {"amx_bf16"}, [(7, 5)]), "none")

    def test_explicit_policies_are_kept(self):
        for policy in ("none", "mixed_bfloat16", "mixed_float16"):
            self.assertEqual(runtime.resolve_precision(policy, AVX2, []), policy)

    def test_warning_only_for_emulated_bfloat16(self):
        warning = runtime.emulated_bfloat16_warning("mixed_bfloat16", AVX2, [])
        self.assertIn("emulated on this CPU", warning)
        self.assertIn("--mixed_precision=auto", warning)
        self.assertNotIn("\n", warning)
        self.assertIn("GPUs", runtime.emulated_bfloat16_warning("mixed_bfloat16", AVX2,
                                                                [(7, 0)]))
        self.assertIsNone(runtime.emulated_bfloat16_warning("mixed_bfloat16",
                                                            {"avx512_bf16"}, []))
        for policy in ("none", "auto", "mixed_float16"):
            self.assertIsNone(runtime.emulated_bfloat16_warning(policy, AVX2, []), policy)

    def test_config_takes_auto_and_rejects_others(self):
        base = config_lib.ExperimentConfig().replace(train={"task": "damsm"})
        cfg = base.replace(runtime={"mixed_precision": "auto"}).validate()
        self.assertEqual(cfg.runtime.mixed_precision, "auto")
        with self.assertRaisesRegex(config_lib.ConfigError, "mixed_precision"):
            base.replace(runtime={"mixed_precision": "bf16"}).validate()


class AutoRunTest(tf.test.TestCase):
    """A run continued with `auto` takes the policy this machine gets and records it."""

    def tearDown(self):
        keras.mixed_precision.set_global_policy("float32")
        super().tearDown()

    def _continue(self, features, name, requested="auto"):
        run_dir = helpers.copy_run(helpers.damsm_run(), name)
        cfg = helpers.tiny_damsm_config().replace(train={"steps": helpers.DAMSM_STEPS + 1},
                                                  runtime={"mixed_precision": requested})
        out = io.StringIO()
        with mock.patch.object(runtime, "cpu_features", return_value=features), \
                mock.patch.object(runtime, "gpu_compute_capabilities", return_value=[]), \
                contextlib.redirect_stdout(out):
            pretrain_lib.run_pretraining(cfg, run_dir, verbose=0)
            policy = keras.mixed_precision.global_policy().name
        with open(os.path.join(run_dir, "config.json")) as f:
            recorded = json.load(f)["runtime"]["mixed_precision"]
        return policy, recorded, out.getvalue()

    def test_native_cpu_trains_in_bfloat16(self):
        policy, recorded, log = self._continue(AVX2 | {"avx512_bf16"}, "auto_native")
        self.assertEqual(policy, "mixed_bfloat16")
        self.assertEqual(recorded, "mixed_bfloat16")
        self.assertIn("--mixed_precision=auto: mixed_bfloat16 (native bfloat16 here)", log)
        # The tiny run was trained in float32: continuing it is a change the log names.
        self.assertIn("--mixed_precision: none -> mixed_bfloat16", log)

    def test_emulating_cpu_trains_in_float32(self):
        policy, recorded, log = self._continue(AVX2, "auto_emulated")
        self.assertEqual(policy, "float32")
        self.assertEqual(recorded, "none")
        self.assertIn("--mixed_precision=auto: none (no native bfloat16 here)", log)
        self.assertNotIn("--mixed_precision:", log)  # none, as the run was trained

    def test_explicit_bfloat16_on_an_emulating_cpu_runs_with_one_warning(self):
        policy, recorded, log = self._continue(AVX2, "explicit_emulated", "mixed_bfloat16")
        self.assertEqual((policy, recorded), ("mixed_bfloat16", "mixed_bfloat16"))
        warnings = [line for line in log.splitlines() if line.startswith("Warning:")]
        self.assertEqual(len(warnings), 1, log)
        self.assertIn("--mixed_precision=mixed_bfloat16 is emulated on this CPU", warnings[0])
