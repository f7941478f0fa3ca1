"""`--jit_compile`: the train step XLA-compiled, and `auto` only where that was measured
faster (the GAN step in float32 on a CPU; training/runtime.resolve_jit_compile)."""

import contextlib
import io
import json
import os
from unittest import mock

from absl import flags
import keras
import pytest
import tensorflow as tf

from tests import test_config
from tests.training import helpers
from tests.training.test_precision_policy import AVX2
from tf_t2i import config as config_lib
from tf_t2i.training import loop
from tf_t2i.training import runtime
from tf_t2i.training import train_lib


class ResolveTest(tf.test.TestCase):

    def test_auto_is_xla_for_the_float32_gan_step_on_a_cpu(self):
        self.assertIs(runtime.resolve_jit_compile("auto", "gan", "none", []), True)

    def test_auto_is_off_where_xla_was_slower_or_not_measured(self):
        for task, policy, gpus in (("damsm", "none", []),  # 2x slower with XLA
                                   ("captioner", "none", []),
                                   ("gan", "mixed_bfloat16", []),
                                   ("gan", "mixed_float16", []),
                                   ("gan", "none", [(8, 0)])):
            self.assertIs(runtime.resolve_jit_compile("auto", task, policy, gpus), False,
                          (task, policy, gpus))
        # A lazy MA-GP's tf.cond made the XLA step 3.4x slower.
        self.assertIs(runtime.resolve_jit_compile("auto", "gan", "none", [], lazy_ma_gp=True),
                      False)

    def test_explicit_values_are_kept(self):
        for value in (True, False):
            for task, policy in (("gan", "none"), ("damsm", "mixed_bfloat16")):
                self.assertIs(runtime.resolve_jit_compile(value, task, policy, [(8, 0)]), value)

    def test_use_xla_resolves_the_configs_precision_first(self):
        gan = config_lib.ExperimentConfig().replace(train={"task": "gan"},
                                                    runtime={"jit_compile": "auto"})
        with mock.patch.object(runtime, "gpu_compute_capabilities", return_value=[]):
            with mock.patch.object(runtime, "cpu_features", return_value=AVX2):
                self.assertTrue(runtime.use_xla(gan.replace(runtime={"mixed_precision": "auto"})))
            with mock.patch.object(runtime, "cpu_features", return_value=AVX2 | {"amx_bf16"}):
                self.assertFalse(runtime.use_xla(gan.replace(
                    runtime={"mixed_precision": "auto"})))
        self.assertFalse(runtime.use_xla(config_lib.ExperimentConfig()))  # the default
        lazy = gan.replace(loss={"ma_gp_mode": "joint", "ma_gp_interval": 4})
        with mock.patch.object(runtime, "gpu_compute_capabilities", return_value=[]):
            with mock.patch.object(runtime, "cpu_features", return_value=AVX2):
                self.assertTrue(runtime.use_xla(lazy.replace(loss={"ma_gp_interval": 1})))
                self.assertFalse(runtime.use_xla(lazy))


class ConfigTest(tf.test.TestCase):

    def test_flag_takes_true_false_and_auto(self):
        for text, value in (("true", True), ("false", False), ("auto", "auto")):
            cfg = test_config.parse_args(f"--jit_compile={text}")
            self.assertEqual(cfg.runtime.jit_compile, value)
            self.assertIs(type(cfg.runtime.jit_compile), type(value))
        self.assertIs(test_config.parse_args().runtime.jit_compile, False)

    def test_flag_rejects_other_values_at_parse(self):
        for text in ("yes", "True", "xla"):
            with self.assertRaises(flags.IllegalFlagValueError, msg=text):
                test_config.parse_args(f"--jit_compile={text}")

    def test_config_json_of_earlier_runs_still_loads(self):
        base = config_lib.ExperimentConfig().replace(train={"task": "damsm"})
        for value in (True, False, "auto"):
            cfg = base.replace(runtime={"jit_compile": value})
            again = config_lib.ExperimentConfig.from_json(cfg.to_json())
            self.assertEqual(again.runtime.jit_compile, value)
            again.validate()
        with self.assertRaisesRegex(config_lib.ConfigError, "jit_compile"):
            base.replace(runtime={"jit_compile": "on"}).validate()


@pytest.mark.slow  # XLA compiles the tiny GAN step for about a minute on 2 cores
class XLAStepTest(tf.test.TestCase):
    """One GAN step XLA-compiled against the same step as a plain graph, same weights."""

    def _step(self, cfg, name):
        keras.utils.set_random_seed(cfg.train.seed)
        parts = train_lib.GANComponents(cfg, helpers.vocab_size(),
                                        os.path.join(helpers.scratch_dir(), name))
        parts.gan.init_ema()
        history = parts.gan.fit(helpers.one_batch_dataset(helpers.train_batch(cfg)),
                                steps_per_epoch=1, epochs=1, verbose=0).history
        return parts, {k: float(v[-1]) for k, v in history.items()}

    def test_xla_step_matches_the_graph_step(self):
        cfg = helpers.tiny_gan_config()
        graph, expected = self._step(cfg, "xla_off")
        xla, logs = self._step(cfg.replace(runtime={"jit_compile": True}), "xla_on")
        self.assertFalse(graph.gan.jit_compile)
        self.assertTrue(xla.gan.jit_compile)  # Keras kept it: the model supports XLA
        self.assertEqual(set(logs), set(expected))
        for key, value in logs.items():
            self.assertAllClose(value, expected[key], rtol=1e-4, atol=1e-5, msg=key)
        moved = helpers.max_abs_diff(helpers.weights(graph)["generator"],
                                     helpers.weights(xla)["generator"])
        self.assertLess(moved, 1e-4)


class _StopBeforeFit(Exception):
    """Raised in place of fit(): the run is set up (compiled, config written) by then."""


class AutoRunTest(tf.test.TestCase):
    """A tiny GAN run with `auto` on a float32 CPU compiles its step for XLA and records it
    (set-up only here; the compiled training run is the slow test)."""

    def _run(self, name, stop_before_fit):
        run_dir = os.path.join(helpers.scratch_dir(), name)
        cfg = helpers.tiny_gan_config(train={"steps": 2},
                                      runtime={"jit_compile": "auto", "mixed_precision": "auto"})
        compiled = []
        original = keras.Model.compile

        def spy(model, *args, **kwargs):
            compiled.append(kwargs.get("jit_compile"))
            return original(model, *args, **kwargs)

        def no_fit(*args, **kwargs):
            raise _StopBeforeFit()

        out = io.StringIO()
        with contextlib.ExitStack() as stack:
            stack.enter_context(mock.patch.object(runtime, "cpu_features", return_value=AVX2))
            stack.enter_context(mock.patch.object(runtime, "gpu_compute_capabilities",
                                                  return_value=[]))
            stack.enter_context(mock.patch.object(keras.Model, "compile", spy))
            stack.enter_context(contextlib.redirect_stdout(out))
            if stop_before_fit:
                stack.enter_context(mock.patch.object(loop, "fit_to_total_steps", no_fit))
                with self.assertRaises(_StopBeforeFit):
                    train_lib.run_training(cfg, run_dir, verbose=0)
            else:
                train_lib.run_training(cfg, run_dir, verbose=0)
        with open(os.path.join(run_dir, "config.json")) as f:
            recorded = json.load(f)["runtime"]
        self.assertEqual(recorded["jit_compile"], True)
        self.assertEqual(recorded["mixed_precision"], "none")
        self.assertIn("--jit_compile=auto: true (the gan step in float32 on a CPU)",
                      out.getvalue())
        self.assertIn(True, compiled)
        return run_dir

    def test_records_and_logs_the_choice(self):
        # Up to fit(): the XLA compilation of the step itself is the slow test below.
        self._run("jit_auto_setup", stop_before_fit=True)

    @pytest.mark.slow  # XLA compiles the tiny GAN step for about 40 s on 2 cores
    def test_trains_compiled(self):
        run_dir = self._run("jit_auto", stop_before_fit=False)
        latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
        self.assertEqual(os.path.basename(latest), "ckpt-2")  # both steps trained
