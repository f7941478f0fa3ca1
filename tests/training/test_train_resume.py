"""GAN runs: resume equals an uninterrupted run; a non-finite loss stops training; binaries.

Runs on configs/tiny.cfg (checkpoint every step) with the shared tiny DAMSM run:

* straight: `run_training` with train.steps=4;
* split: train.steps=2, then train.steps=4 on the same model_dir (restores, continues);
* poisoned: a copy of split at step 2 trained on with a NaN put into D before step 3.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.training import helpers
from tf_t2i.training import loop
from tf_t2i.training import train_lib

TOLERANCE = dict(rtol=1e-6, atol=1e-6)


class _PoisonDiscriminator(keras.callbacks.Callback):
    """Writes NaN into D's logits head just before the step that starts at `at_step`.

    `self.model` is the TextToImageGAN that run_training builds and fits.
    """

    def __init__(self, at_step):
        super().__init__()
        self.at_step = at_step

    def on_train_batch_begin(self, batch, logs=None):
        if int(self.model.step.numpy()) == self.at_step:
            kernel = self.model.discriminators[-1].head.trainable_variables[-1]
            kernel.assign(tf.fill(kernel.shape, float("nan")))


class _Snapshot(keras.callbacks.Callback):
    """Copies the GAN's weights (models and optimizers) when training begins and ends."""

    NAMES = ("generator", "discriminators", "ema_generator", "g_optimizer", "d_optimizer")

    def __init__(self):
        super().__init__()
        self.begin = self.end = None

    def _copy(self):
        return {n: [v.numpy() for v in _all_variables(getattr(self.model, n))]
                for n in self.NAMES}

    def on_train_begin(self, logs=None):
        self.begin = self._copy()

    def on_train_end(self, logs=None):
        self.end = self._copy()


def _all_variables(obj):
    """The variables of a model or optimizer, or of every model of a list."""
    return [v for m in obj for v in m.variables] if isinstance(obj, list) else obj.variables


def _variables(parts, name):
    return [v.numpy() for v in _all_variables(getattr(parts, name))]


def _file_digests(directory):
    digests = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                digests[name] = hashlib.sha256(f.read()).hexdigest()
    return digests


def _load(model_dir):
    _, _, parts = train_lib.restore_components(model_dir)
    return parts


class ResumeTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        root = helpers.scratch_dir()
        # Sample grids only at the end (samples.png), not every step: saves time.
        cfg2 = helpers.tiny_gan_config(train={"steps": 2, "sample_every": 1000})
        cfg4 = helpers.tiny_gan_config(train={"steps": 4, "sample_every": 1000})
        assert cfg4.train.checkpoint_every == 1 and cfg4.train.ema_decay > 0
        cls.cfg = cfg4

        cls.straight = os.path.join(root, "gan_straight")
        cls.straight_snapshot = _Snapshot()
        cls.straight_logs = train_lib.run_training(cfg4, cls.straight, verbose=0,
                                                   extra_callbacks=[cls.straight_snapshot])

        cls.split = os.path.join(root, "gan_split")
        cls.first_logs = train_lib.run_training(cfg2, cls.split, verbose=0)
        cls.checkpoints_at_2 = sorted(os.listdir(os.path.join(cls.split, "checkpoints")))
        cls.poisoned = helpers.copy_run(cls.split, "gan_poisoned")
        cls.budgeted = helpers.copy_run(cls.split, "gan_budgeted")
        cls.split_snapshot = _Snapshot()
        cls.split_logs = train_lib.run_training(cfg4, cls.split, verbose=0,
                                                extra_callbacks=[cls.split_snapshot])

        cls.straight_parts = _load(cls.straight)

    def test_checkpoint_holds_every_weight_of_the_run(self):
        # load_run must give back exactly what training ended with, for every variable of
        # G, D, EMA G and both optimizers (a checkpoint missing some would leave those at
        # a fresh initialisation).
        for name in _Snapshot.NAMES:
            loaded = _variables(self.straight_parts, name)
            self.assertLen(loaded, len(self.straight_snapshot.end[name]))
            for a, b in zip(self.straight_snapshot.end[name], loaded):
                self.assertAllEqual(b, a, msg=name)
        # ... and training moved the weights of every part of G and D, including the
        # blocks that Keras keeps in lists (and whose residual branches only get a
        # gradient from step 2 on, once their gate has moved).
        begin, end = self.straight_snapshot.begin, self.straight_snapshot.end
        for name, part in (("generator", "conv_in/kernel"),
                           ("discriminators", "conv_down/kernel")):
            model = self.straight_parts.generator if name == "generator" else \
                self.straight_parts.discriminators[0]
            moved = {v.path for v, a, b in zip(model.variables, begin[name], end[name])
                     if np.any(a != b)}
            self.assertGreaterEqual(len(model.blocks), 3)
            for block in model.blocks:
                self.assertIn(f"{model.name}/{block.name}/{part}", moved)

    def test_split_run_equals_straight_run(self):
        # Every variable of G, D, EMA G and both optimizers (Adam moments included) at
        # the end of each run.
        straight, split = self.straight_snapshot.end, self.split_snapshot.end
        for name in _Snapshot.NAMES:
            print(f"resume: {name}: max |straight - split| = "
                  f"{helpers.max_abs_diff(straight[name], split[name]):.3g}")
            self.assertLen(split[name], len(straight[name]))
            for a, b in zip(straight[name], split[name]):
                self.assertAllClose(b, a, **TOLERANCE, msg=name)
        # The last step logged the same terms.
        self.assertEqual(set(self.split_logs), set(self.straight_logs))
        for name, value in self.straight_logs.items():
            self.assertAllClose(self.split_logs[name], value, rtol=1e-5, atol=1e-6, msg=name)

    def test_step_counter_continues(self):
        self.assertIn("ckpt-2.index", self.checkpoints_at_2)
        self.assertNotIn("ckpt-3.index", self.checkpoints_at_2)
        begin, end = self.split_snapshot.begin, self.split_snapshot.end
        # optimizer.variables[0] is its iteration count; D takes 2 updates per step.
        self.assertEqual((int(begin["g_optimizer"][0]), int(end["g_optimizer"][0])), (2, 4))
        self.assertEqual((int(begin["d_optimizer"][0]), int(end["d_optimizer"][0])), (4, 8))
        state = tf.train.get_checkpoint_state(os.path.join(self.split, "checkpoints"))
        self.assertEqual([os.path.basename(p) for p in state.all_model_checkpoint_paths],
                         ["ckpt-2", "ckpt-3", "ckpt-4"])
        self.assertEqual(os.path.basename(state.model_checkpoint_path), "ckpt-4")

    def test_model_dir_contents(self):
        for run in (self.straight, self.split):
            for name in ("config.json", "vocab.txt", "samples.png"):
                self.assertTrue(os.path.isfile(os.path.join(run, name)), f"{run}/{name}")
        with open(os.path.join(self.split, "config.json")) as f:
            self.assertEqual(json.load(f)["train"]["steps"], 4)
        with open(os.path.join(self.split, "vocab.txt")) as f, \
                open(os.path.join(helpers.damsm_run(), "vocab.txt")) as g:
            self.assertEqual(f.read(), g.read())

    def test_data_stream_resumes_at_the_step(self):
        # What makes the split run see batches 2 and 3: batch k of a stream started at
        # step s equals batch k of the stream from 0, noise included.
        from_zero = helpers.train_batches(self.cfg, 0, 4)
        from_two = helpers.train_batches(self.cfg, 2, 2)
        for k in (0, 1):
            for key in ("real_images", "caption_ids", "mismatched_ids", "z", "image_id"):
                self.assertAllEqual(from_two[k][key], from_zero[2 + k][key], msg=key)
        self.assertNotAllClose(from_zero[0]["z"], from_zero[2]["z"])

    @pytest.mark.slow
    def test_a_spent_time_budget_trains_nothing_and_a_larger_one_goes_on(self):
        # The first sitting's 2 steps took more than 1e-9 s (recorded at its checkpoint):
        # a sitting with that budget trains nothing and writes nothing; one without a
        # budget goes on to 4 and records the first sitting's seconds and its own.
        ckpt_dir = os.path.join(self.budgeted, "checkpoints")
        spent = loop.read_clock(ckpt_dir)["2"]
        self.assertGreater(spent, 0.0)
        before = _file_digests(ckpt_dir)
        train_lib.run_training(self.cfg.replace(train={"max_seconds": 1e-9}), self.budgeted,
                               verbose=0)
        self.assertEqual(_file_digests(ckpt_dir), before)
        train_lib.run_training(self.cfg, self.budgeted, verbose=0)
        self.assertEqual(os.path.basename(tf.train.latest_checkpoint(ckpt_dir)), "ckpt-4")
        self.assertGreater(loop.read_clock(ckpt_dir)["4"], spent)

    def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(self):
        model_dir = self.poisoned
        ckpt_dir = os.path.join(model_dir, "checkpoints")
        before = _file_digests(ckpt_dir)
        latest_before = tf.train.latest_checkpoint(ckpt_dir)
        self.assertEqual(os.path.basename(latest_before), "ckpt-2")
        samples_before = _file_digests(model_dir)["samples.png"]

        with self.assertRaises(FloatingPointError) as ctx:
            train_lib.run_training(self.cfg, model_dir, verbose=0,
                                   extra_callbacks=[_PoisonDiscriminator(at_step=2)])
        message = str(ctx.exception)
        # Step 3 is the first step run with the NaN weight; every D term is NaN then.
        self.assertRegex(message, r"'d_(loss|adv|ma_gp)' is nan at step 3")
        self.assertEqual(tf.train.latest_checkpoint(ckpt_dir), latest_before)
        self.assertEqual(_file_digests(ckpt_dir), before)
        self.assertEqual(_file_digests(model_dir)["samples.png"], samples_before)
        # The kept checkpoint is the finite state of step 2.
        parts = _load(model_dir)
        self.assertEqual(int(parts.gan.step.numpy()), 2)
        for w in parts.discriminator.weights + parts.generator.weights:
            self.assertTrue(np.all(np.isfinite(w.numpy())), w.path)


def _run_binary(module, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=helpers.ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


class TrainBinaryTest(tf.test.TestCase):
    """`python -m tf_t2i.train` / `tf_t2i.sample` in a subprocess (each ~5-10 s)."""

    def _flags(self, *extra):
        return ("--flagfile=configs/tiny.cfg", f"--damsm_dir={helpers.damsm_run()}",
                f"--data_data_dir={helpers.data_dir()}", *extra)

    def test_dry_run_prints_config_and_sizes_and_writes_nothing(self):
        model_dir = os.path.join(self.create_tempdir().full_path, "run")
        result = _run_binary("tf_t2i.train", *self._flags(f"--model_dir={model_dir}",
                                                          "--dry_run"))
        self.assertEqual(result.returncode, 0, result.stderr)
        out = result.stdout
        text = out[out.index("{"):]
        config_json, _ = json.JSONDecoder().raw_decode(text)
        self.assertEqual(config_json["train"]["task"], "gan")
        self.assertEqual(config_json["generator"]["ngf"], 8)
        self.assertEqual(config_json["runtime"]["damsm_dir"], helpers.damsm_run())
        counts = {}
        for line in out.splitlines():
            if line.strip().endswith(" parameters"):
                name, _, count = line.strip().rpartition(": ")
                counts[name] = int(count.split()[0].replace(",", ""))
        self.assertContainsSubset({"generator", "discriminator"}, set(counts))
        self.assertTrue(all(c > 0 for c in counts.values()), counts)
        self.assertFalse(os.path.exists(model_dir))

    def _unknown_gen_arch(self):
        return _run_binary("tf_t2i.train", *self._flags("--gen_arch=foo",
                                                        "--model_dir=/tmp/unused"))

    def test_unknown_gen_arch_is_rejected_before_training(self):
        result = self._unknown_gen_arch()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--gen_arch=foo", result.stderr)
        self.assertIn("ssagan", result.stderr)  # the allowed values are listed
        self.assertNotIn("Training a text-to-image GAN", result.stdout)

    def test_unknown_gen_arch_exits_2_with_one_line(self):
        result = self._unknown_gen_arch()
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertLen(_error_lines(result), 1, result.stderr)

    def test_other_architecture_on_an_existing_run_changes_nothing(self):
        from tests.serving import helpers as serving_helpers  # pylint: disable=g-import-not-at-top
        run = os.path.join(self.create_tempdir().full_path, "run")
        shutil.copytree(serving_helpers.trained_run(), run)
        before = helpers.tree_digests(run)
        result = _run_binary("tf_t2i.train", *self._flags(f"--model_dir={run}",
                                                          "--gen_arch=attngan"))
        self.assertEqual(result.returncode, 2, result.stderr)
        errors = _error_lines(result)
        self.assertLen(errors, 1, result.stderr)
        self.assertIn(f"{run} was trained with --gen_arch=ssagan; this command asks for "
                      "--gen_arch=attngan", errors[0])
        self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(helpers.tree_digests(run), before)

    def test_sample_rejects_an_empty_caption(self):
        result = _run_binary("tf_t2i.sample", f"--model_dir={helpers.scratch_dir()}",
                             "--caption= ,. ")
        self.assertEqual(result.returncode, 2, result.stderr)
        errors = _error_lines(result)
        self.assertLen(errors, 1, result.stderr)
        self.assertIn("Empty caption", errors[0])
        self.assertIn("' ,. '", errors[0])


if __name__ == "__main__":
    tf.test.main()
