"""Checkpoints keyed by stable Keras paths: round trip, unrelated changes, old format.

Small Keras models show what the keys are made of; the tiny GAN run's models show that
each one's keys do not depend on what the process built before (Keras numbers unnamed
layers and seed generators from a per-process counter).
"""

import hashlib
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import strategies
from tests.training import helpers
from tf_t2i import config as config_lib
from tf_t2i.data import tokenizer as tokenizer_lib
from tf_t2i.training import captioner_lib
from tf_t2i.io import checkpoint_keys
from tf_t2i.io import checkpoints
from tf_t2i.models import trained_run
from tf_t2i.training import train_lib


class _Pair(keras.Model):
    """Two same-shaped Dense layers `first` and `second`, constructed in `order`.

    The order of `variables` follows construction, so swapping it swaps the variables'
    indices (what the index-keyed format stored) but not their paths. `extra` adds a
    third layer, constructed between the two.
    """

    def __init__(self, order=("first", "second"), extra=False, name="pair"):
        super().__init__(name=name)
        for i, layer_name in enumerate(order):
            setattr(self, layer_name, keras.layers.Dense(3, name=layer_name))
            if extra and i == 0:
                self.extra = keras.layers.Dense(3, name="extra")
        self.has_extra = extra

    def call(self, x):
        y = self.second(self.first(x))
        return self.extra(y) if self.has_extra else y


def _built_pair(**kwargs):
    model = _Pair(**kwargs)
    model(tf.zeros([1, 3]))
    return model


def _built_adam(model):
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    return optimizer


def _randomize(*objects):
    """Gives every float variable a distinct random value (so a swap would show)."""
    rng = np.random.default_rng(0)
    for obj in objects:
        for v in obj.variables:
            if "float" in v.dtype:
                v.assign(rng.normal(size=v.shape).astype(v.dtype))


def _values(obj):
    return {v.path.split("/", 1)[-1]: v.numpy() for v in obj.variables}


def _write_index_keyed(model_dir, **objects):
    """A checkpoint as tf_t2i wrote it before format 2: each object's variables by index."""
    ckpt = tf.train.Checkpoint(**{name: {str(i): v for i, v in enumerate(obj.variables)}
                                  for name, obj in objects.items()})
    manager = tf.train.CheckpointManager(
        ckpt, os.path.join(model_dir, checkpoints.CHECKPOINT_SUBDIR), max_to_keep=1)
    return manager.save(checkpoint_number=2)


def _file_digests(directory):
    digests = {}
    for root, _, files in os.walk(directory):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                digests[os.path.relpath(os.path.join(root, name), directory)] = (
                    hashlib.sha256(f.read()).hexdigest())
    return digests


class KeysTest(tf.test.TestCase):

    def test_keys_are_paths_relative_to_the_model_and_slots_follow_their_variable(self):
        model = _built_pair()
        keys = checkpoint_keys.keyed_variables({"pair": model, "opt": _built_adam(model)})
        self.assertEqual(list(keys["pair"]),
                         ["first/kernel", "first/bias", "second/kernel", "second/bias"])
        self.assertContainsSubset(
            {"iteration", "learning_rate", "pair/first/kernel/momentum",
             "pair/second/bias/velocity"}, set(keys["opt"]))
        self.assertLen(keys["opt"], 2 + 2 * 4)

    def test_auto_named_layers_get_the_same_keys_in_a_rebuild(self):
        def head():
            model = keras.Sequential([keras.layers.Dense(4), keras.layers.Dropout(0.5),
                                      keras.layers.Dense(2)])
            model.build([None, 3])
            return model

        first, second = head(), head()
        # The second's Keras paths carry other numbers (dense_2, seed_generator_1, ...).
        self.assertNotEqual([v.path for v in first.variables],
                            [v.path for v in second.variables])
        keys = [list(checkpoint_keys.model_keys(m)) for m in (first, second)]
        self.assertEqual(keys[0], keys[1])
        self.assertContainsSubset({"dense/kernel", "dense_1/kernel",
                                   "seed_generator/seed_generator_state"}, set(keys[0]))

    def test_two_variables_with_one_path_are_refused(self):
        class Twins(keras.Model):
            def __init__(self):
                super().__init__(name="twins")
                self.a = keras.layers.Dense(2, name="proj")
                self.b = keras.layers.Dense(2, name="proj")

            def call(self, x):
                return self.b(self.a(x))

        model = Twins()
        model(tf.zeros([1, 2]))
        self.assertEqual(model.a.kernel.path, model.b.kernel.path)
        with self.assertRaisesRegex(checkpoint_keys.DuplicateCheckpointKeyError,
                                    "'proj/kernel'.*distinct names"):
            checkpoints.make_checkpoint(twins=model)


class RestoreTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.model_dir = self.create_tempdir().full_path

    def _save(self, step=1, **objects):
        handle = checkpoints.CheckpointHandle(self.model_dir, **objects)
        return handle.save(step)

    def test_round_trip_with_optimizer_and_format_version(self):
        model = _built_pair()
        optimizer = _built_adam(model)
        _randomize(model, optimizer)
        optimizer.iterations.assign(5)
        path = self._save(model=model, optimizer=optimizer)
        reader = tf.train.load_checkpoint(path)
        self.assertEqual(reader.get_tensor("checkpoint_format/.ATTRIBUTES/VARIABLE_VALUE"),
                         checkpoints.FORMAT_VERSION)
        self.assertTrue(reader.has_tensor("model/first/kernel/.ATTRIBUTES/VARIABLE_VALUE"))

        restored = _built_pair()
        restored_optimizer = _built_adam(restored)
        handle = checkpoints.CheckpointHandle(self.model_dir, model=restored,
                                              optimizer=restored_optimizer)
        self.assertEqual(handle.restore_or_initialize(), path)
        for a, b in zip(model.variables + optimizer.variables,
                        restored.variables + restored_optimizer.variables):
            self.assertAllEqual(a, b)

    def test_two_replica_checkpoint_loads_into_two_replicas_and_into_one(self):
        with strategies.two_cpu_replicas().scope():
            model = _built_pair()
            optimizer = _built_adam(model)
            _randomize(model, optimizer)
            path = self._save(model=model, optimizer=optimizer)
            mirrored = _built_pair()
            mirrored_optimizer = _built_adam(mirrored)
            checkpoints.CheckpointHandle(self.model_dir, model=mirrored,
                                         optimizer=mirrored_optimizer).restore_or_initialize()
        single = _built_pair()
        single_optimizer = _built_adam(single)
        self.assertEqual(checkpoints.CheckpointHandle(
            self.model_dir, model=single, optimizer=single_optimizer).restore_or_initialize(),
            path)
        for restored in (mirrored.variables + mirrored_optimizer.variables,
                         single.variables + single_optimizer.variables):
            for a, b in zip(model.variables + optimizer.variables, restored):
                self.assertAllEqual(b.numpy(), a.numpy())

    def test_same_shaped_variables_in_swapped_construction_order_load_into_their_own_places(self):
        model = _built_pair()
        optimizer = _built_adam(model)
        _randomize(model, optimizer)
        self._save(model=model, optimizer=optimizer)

        swapped = _built_pair(order=("second", "first"))
        swapped_optimizer = _built_adam(swapped)
        self.assertEqual(swapped.variables[0].path, "pair/second/kernel")  # index 0 moved
        checkpoints.CheckpointHandle(self.model_dir, model=swapped,
                                     optimizer=swapped_optimizer).restore_or_initialize()
        self.assertAllEqual(swapped.first.kernel, model.first.kernel)
        self.assertAllEqual(swapped.second.kernel, model.second.kernel)
        self.assertNotAllClose(swapped.first.kernel, swapped.second.kernel)
        slots = {v.path: v for v in swapped_optimizer.variables}
        for v in optimizer.variables:
            self.assertAllEqual(slots[v.path.replace(optimizer.name, swapped_optimizer.name, 1)], v)

    def test_a_layer_added_elsewhere_leaves_the_other_variables_loadable(self):
        generator, discriminator = _built_pair(name="g"), _built_pair(name="d")
        _randomize(generator, discriminator)
        self._save(generator=generator, discriminator=discriminator)

        # D gained a layer (constructed before D's `second`): G loads fully, as sampling
        # does, and the checkpoint's D entries that nothing reads now are no error.
        new_generator = _built_pair(name="g")
        checkpoints.CheckpointHandle(self.model_dir,
                                     generator=new_generator).restore_or_initialize()
        self.assertAllClose(_values(new_generator), _values(generator))

        # D itself: its old layers still load into their places, the new one stays fresh.
        new_discriminator = _built_pair(name="d", extra=True)
        fresh_extra = new_discriminator.extra.kernel.numpy()
        handle = checkpoints.CheckpointHandle(self.model_dir, generator=_built_pair(name="g"),
                                              discriminator=new_discriminator)
        handle.restore_or_initialize(expect_partial=True)
        self.assertAllEqual(new_discriminator.first.kernel, discriminator.first.kernel)
        self.assertAllEqual(new_discriminator.second.kernel, discriminator.second.kernel)
        self.assertAllEqual(new_discriminator.extra.kernel, fresh_extra)

    def test_a_missing_variable_is_named_and_nothing_is_restored(self):
        self._save(discriminator=_built_pair(name="d"))
        new_discriminator = _built_pair(name="d", extra=True)
        before = _values(new_discriminator)
        handle = checkpoints.CheckpointHandle(self.model_dir, discriminator=new_discriminator)
        with self.assertRaisesRegex(checkpoints.CheckpointMismatchError,
                                    "lacks 2 of their variables, e.g. discriminator/extra/"):
            handle.restore_or_initialize()
        self.assertAllClose(_values(new_discriminator), before)

    def _three_checkpoints(self):
        """Saves steps 1, 2, 3 of a pair whose kernels hold the step; returns the paths."""
        model = _built_pair()
        handle = checkpoints.CheckpointHandle(self.model_dir, model=model)
        paths = []
        for step in (1, 2, 3):
            for v in model.variables:
                v.assign(tf.fill(v.shape, float(step)))
            paths.append(handle.save(step))
        return paths

    @staticmethod
    def _truncate(path, size=None):
        data = path + ".data-00000-of-00001"
        os.truncate(data, os.path.getsize(data) // 2 if size is None else size)

    def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(self):
        paths = self._three_checkpoints()
        self._truncate(paths[2])
        digests = _file_digests(self.model_dir)
        restored = _built_pair()
        handle = checkpoints.CheckpointHandle(self.model_dir, model=restored)
        with self.assertLogs(level="WARNING") as logs:
            self.assertEqual(handle.restore_or_initialize(), paths[1])
        self.assertIn(f"Checkpoint {paths[2]} cannot be read", logs.output[0])
        self.assertIn(f"restored the previous one, {paths[1]}", logs.output[0])
        for v in restored.variables:
            self.assertAllEqual(v, tf.fill(v.shape, 2.0))
        self.assertEqual(_file_digests(self.model_dir), digests)

    def test_no_readable_checkpoint_is_one_error_naming_the_latest(self):
        paths = self._three_checkpoints()
        for path in paths:
            self._truncate(path, size=10)
        handle = checkpoints.CheckpointHandle(self.model_dir, model=_built_pair())
        with self.assertRaises(checkpoints.CheckpointCorruptError) as raised:
            handle.restore_or_initialize()
        message = str(raised.exception)
        self.assertIn(f"the latest, {paths[2]}", message)
        self.assertLen(message.splitlines(), 1)
        self.assertIsInstance(raised.exception, checkpoints.CheckpointMismatchError)

    def test_a_damaged_state_file_restores_the_newest_checkpoint_file(self):
        paths = self._three_checkpoints()
        with open(os.path.join(self.model_dir, "checkpoints", "checkpoint"), "w") as f:
            f.write("model_checkpoint_path: {{{ not a proto")
        restored = _built_pair()
        handle = checkpoints.CheckpointHandle(self.model_dir, model=restored)
        with self.assertLogs(level="WARNING") as logs:
            self.assertEqual(handle.restore_or_initialize(), paths[2])
        self.assertIn("lists no checkpoint (missing or damaged); using the checkpoint files "
                      "found there, newest first: ckpt-3, ckpt-2, ckpt-1.", "".join(logs.output))
        for v in restored.variables:
            self.assertAllEqual(v, tf.fill(v.shape, 3.0))

    def test_older_format_fails_with_one_line_and_changes_nothing(self):
        model = _built_pair()
        _randomize(model)
        _write_index_keyed(self.model_dir, model=model)
        digests = _file_digests(self.model_dir)
        restored = _built_pair()
        before = _values(restored)
        handle = checkpoints.CheckpointHandle(self.model_dir, model=restored)
        with self.assertRaises(checkpoints.CheckpointFormatError) as raised:
            handle.restore_or_initialize()
        message = str(raised.exception)
        self.assertIn("older checkpoint format", message)
        self.assertIn("retrain", message)
        self.assertLen(message.splitlines(), 1)
        self.assertIsInstance(raised.exception, ValueError)  # binaries print it as one line
        # Restoring through a bare checkpoint (DAMSM encoders, captioner) is refused too.
        with self.assertRaisesRegex(checkpoints.CheckpointFormatError, "older checkpoint"):
            checkpoints.make_checkpoint(model=restored).restore(handle.latest)
        self.assertAllClose(_values(restored), before)
        self.assertEqual(_file_digests(self.model_dir), digests)

    def test_newer_format_is_refused(self):
        model = _built_pair()
        ckpt = checkpoints.make_checkpoint(model=model)
        ckpt.checkpoint_format.assign(checkpoints.FORMAT_VERSION + 1)
        path = ckpt.write(os.path.join(self.model_dir, "ckpt"))
        with self.assertRaisesRegex(checkpoints.CheckpointFormatError,
                                    f"format {checkpoints.FORMAT_VERSION + 1}, but"):
            checkpoints.make_checkpoint(model=_built_pair()).restore(path)


class RunModelsTest(tf.test.TestCase):
    """The models of a GAN run (all options that add one) and the captioner."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cfg = helpers.tiny_config(train={"task": "gan"}, loss={
            "contrastive_projection_dim": 8, "f2f_weight": 0.1})
        assert cls.cfg.train.ema_decay > 0
        cls.vocab = ["red", "blue", "circle", "square"]

    @pytest.mark.slow
    def test_a_checkpoint_loads_into_the_same_models_built_later_in_the_process(self):
        model_dir = self.create_tempdir().full_path
        first = train_lib.GANComponents(self.cfg, len(self.vocab) + 2, model_dir)
        names = ("generator", "discriminator", "ema_generator", "projection_head",
                 "text_encoder", "image_encoder", "g_optimizer", "d_optimizer")
        _randomize(*(getattr(first, n) for n in names))
        first.g_optimizer.iterations.assign(3)
        first.checkpoint.save(3)

        # Built second, its unnamed layers and seed generators have other Keras numbers.
        second = train_lib.GANComponents(self.cfg, len(self.vocab) + 2, model_dir)
        self.assertNotEqual([v.path for v in first.projection_head.variables],
                            [v.path for v in second.projection_head.variables])
        self.assertEqual(second.checkpoint.restore_or_initialize(),
                         first.checkpoint.latest)
        for name in names:
            a, b = getattr(first, name).variables, getattr(second, name).variables
            self.assertLen(b, len(a))
            for x, y in zip(a, b):
                self.assertAllEqual(y.numpy(), x.numpy(), msg=f"{name}: {y.path}")

    def test_captioner_keys_do_not_depend_on_what_was_built_before(self):
        cfg = helpers.tiny_config()
        first = captioner_lib.build_captioner(cfg, len(self.vocab) + 2)
        second = captioner_lib.build_captioner(cfg, len(self.vocab) + 2)
        self.assertNotEqual([v.path for v in first.variables],
                            [v.path for v in second.variables])
        self.assertEqual(list(checkpoint_keys.model_keys(first)),
                         list(checkpoint_keys.model_keys(second)))

    def _old_format_run(self):
        """A GAN run directory whose checkpoint is in the index-keyed format."""
        model_dir = self.create_tempdir().full_path
        config_lib.save_config(self.cfg, model_dir)
        tok = tokenizer_lib.CaptionTokenizer(self.vocab, self.cfg.data.max_caption_length)
        tok.save(model_dir)
        parts = train_lib.GANComponents(self.cfg, tok.vocab_size, self.create_tempdir().full_path)
        _write_index_keyed(model_dir, generator=parts.generator,
                           text_encoder=parts.text_encoder, image_encoder=parts.image_encoder,
                           g_optimizer=parts.g_optimizer, d_optimizer=parts.d_optimizer,
                           discriminator=parts.discriminator,
                           ema_generator=parts.ema_generator,
                           projection_head=parts.projection_head)
        return model_dir

    @pytest.mark.slow  # the library-level refusal is tested fast above
    def test_a_run_of_the_older_format_fails_to_load_with_one_line(self):
        model_dir = self._old_format_run()
        digests = _file_digests(model_dir)
        with self.assertRaisesRegex(checkpoints.CheckpointFormatError,
                                    "older checkpoint format"):
            trained_run.load_run(model_dir)
        self.assertEqual(_file_digests(model_dir), digests)

        export_base = os.path.join(self.create_tempdir().full_path, "exports")
        result = subprocess.run(
            [sys.executable, "-m", "tf_t2i.export", f"--model_dir={model_dir}",
             f"--export_base={export_base}"], cwd=helpers.ROOT, capture_output=True,
            text=True, timeout=300,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""))
        self.assertEqual(result.returncode, 2, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        self.assertLen(errors, 1, result.stderr)
        self.assertIn("older checkpoint format", errors[0])
        self.assertFalse(os.path.exists(export_base))
        self.assertEqual(_file_digests(model_dir), digests)
