"""Export: noise and seeds, SavedModel layout and signatures, op set, fresh-process load
equal to the in-memory generator, atomic versions, and the export binary."""

import json
import os
import signal
import subprocess
import sys
import textwrap

from absl.testing import parameterized
from google.protobuf import text_format
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from tests.serving import helpers
from tf_t2i.serving import export_lib


class _TinyModule:
    """Stands in for TextToImageExport where only the versioning is under test."""

    def save(self, path):
        module = tf.Module()
        module.double = tf.function(lambda x: {"y": 2.0 * x},
                                    input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        tf.saved_model.save(module, path, signatures={"serving_default": module.double})


class _FailingModule:

    def save(self, path):
        with open(os.path.join(path, "saved_model.pb"), "wb") as f:
            f.write(b"half written")
        raise RuntimeError("disk full")


class NoiseAndSeedsTest(tf.test.TestCase):

    def test_each_row_depends_only_on_its_seed(self):
        seeds = tf.constant([5, 7, 5, 2 ** 40], tf.int64)
        z = export_lib.noise_from_seeds(seeds, 16).numpy()
        self.assertEqual(z.shape, (4, 16))
        self.assertEqual(z.dtype, np.float32)
        self.assertAllEqual(z[0], z[2])
        self.assertNotAllClose(z[0], z[1])
        alone = export_lib.noise_from_seeds(tf.constant([7], tf.int64), 16).numpy()
        self.assertAllEqual(alone[0], z[1])

    def test_is_stateless_normal_with_the_fixed_key(self):
        expected = tf.random.stateless_normal([8], seed=[123, export_lib.NOISE_SEED_KEY],
                                              alg="philox")
        got = export_lib.noise_from_seeds(tf.constant([123], tf.int64), 8)[0]
        self.assertAllEqual(got, expected)

    def test_empty_batch(self):
        self.assertEqual(export_lib.noise_from_seeds(tf.zeros([0], tf.int64), 4).shape, (0, 4))

    def test_caption_seeds_are_deterministic_non_negative_and_distinct(self):
        captions = tf.constant(["a red circle", "a red circle", "a blue square", ""])
        seeds = export_lib.caption_seeds(captions).numpy()
        self.assertEqual(seeds.dtype, np.int64)
        self.assertEqual(seeds[0], seeds[1])
        self.assertLen(set(seeds[1:].tolist()), 3)
        self.assertTrue((seeds >= 0).all())


class ModelConfigTest(tf.test.TestCase):

    def test_snippet_parses_as_model_server_config(self):
        text = export_lib.model_config_text("t2i", "/models/t2i", versions=[3],
                                            labels={"stable": 3})
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
        (model,) = config.model_config_list.config
        self.assertEqual((model.name, model.base_path, model.model_platform),
                         ("t2i", "/models/t2i", "tensorflow"))
        self.assertEqual(list(model.model_version_policy.specific.versions), [3])
        self.assertEqual(dict(model.version_labels), {"stable": 3})

    def test_latest_policy_when_no_versions(self):
        text = export_lib.model_config_text("m", "/x")
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
        policy = config.model_config_list.config[0].model_version_policy
        self.assertEqual(policy.latest.num_versions, 1)


class VersioningTest(tf.test.TestCase):

    def test_next_version_and_existing_version(self):
        base = self.create_tempdir().full_path
        os.makedirs(os.path.join(base, "7"))
        os.makedirs(os.path.join(base, ".tmp-export-9-abc"))  # never a version
        os.makedirs(os.path.join(base, "notes"))
        self.assertEqual(export_lib.list_versions(base), [7])
        path, version = export_lib.export_modules(_TinyModule(), base)
        self.assertEqual((path, version), (os.path.join(base, "8"), 8))
        self.assertTrue(os.path.exists(os.path.join(path, "saved_model.pb")))
        with self.assertRaisesRegex(export_lib.ExportError, "already exists"):
            export_lib.export_modules(_TinyModule(), base, version=8)

    def test_failed_export_leaves_nothing(self):
        base = self.create_tempdir().full_path
        with self.assertRaisesRegex(RuntimeError, "disk full"):
            export_lib.export_modules(_FailingModule(), base, version=1)
        self.assertEqual(os.listdir(base), [])

    def test_killed_export_leaves_no_numbered_version(self):
        base = self.create_tempdir().full_path
        # SIGKILL in the step before the rename: the process gets no chance to clean up.
        script = textwrap.dedent(f"""
            import os, signal, sys
            sys.path.insert(0, {helpers.ROOT!r})
            from tf_t2i.serving import export_lib
            from tests.serving.test_export import _TinyModule
            export_lib._publish = lambda tmp, final: os.kill(os.getpid(), signal.SIGKILL)
            export_lib.export_modules(_TinyModule(), {base!r})
        """)
        proc = subprocess.run([sys.executable, "-c", script], cwd=helpers.ROOT,
                              env=helpers.subprocess_env(), capture_output=True, text=True,
                              timeout=300)
        self.assertEqual(proc.returncode, -signal.SIGKILL, proc.stderr[-2000:])
        leftovers = os.listdir(base)
        self.assertLen(leftovers, 1)  # the complete-but-unpublished temporary directory
        self.assertTrue(leftovers[0].startswith(".tmp-export-1-"), leftovers)
        self.assertTrue(os.path.exists(os.path.join(base, leftovers[0], "saved_model.pb")))
        self.assertEqual(export_lib.list_versions(base), [])
        # The next export is unaffected and takes version 1.
        _, version = export_lib.export_modules(_TinyModule(), base)
        self.assertEqual(version, 1)


class ExportedModelTest(parameterized.TestCase, tf.test.TestCase):
    """Against version 1 of the tiny run, exported by the binary."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helpers.in_memory_model()  # while the export binary runs in the background
        cls.exported = helpers.exported()
        cls.version_dir = cls.exported["version_dir"]

    def test_binary_output_and_layout(self):
        self.assertIn("Wrote version 1", self.exported["stdout"])
        self.assertEqual(export_lib.list_versions(self.exported["base"]), [1])
        self.assertEqual(sorted(os.listdir(self.exported["base"])), ["1"])  # no temporaries
        for name in ("saved_model.pb", "variables", "assets.extra/tf_serving_warmup_requests",
                     "assets.extra/t2i_export.json"):
            self.assertTrue(os.path.exists(os.path.join(self.version_dir, name)), name)
        info = json.load(open(os.path.join(self.version_dir, "assets.extra/t2i_export.json")))
        self.assertTrue(info["use_ema"])
        self.assertEqual(info["checkpoint"].rsplit("-", 1)[1], "2")
        config = text_format.Parse(open(self.exported["config"]).read(),
                                   model_server_config_pb2.ModelServerConfig())
        model = config.model_config_list.config[0]
        self.assertEqual(model.base_path, self.exported["base"])
        self.assertEqual(dict(model.version_labels), {"stable": 1})

    def test_warmup_has_one_predict_log_per_batch_size(self):
        path = os.path.join(self.version_dir, "assets.extra", "tf_serving_warmup_requests")
        sizes = []
        for record in tf.data.TFRecordDataset(path):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            request = log.predict_log.request
            self.assertEqual(request.model_spec.name, "t2i")
            captions = tf.make_ndarray(request.inputs["captions"])
            if "seeds" in request.inputs:
                seeds = tf.make_ndarray(request.inputs["seeds"])
                self.assertEqual(seeds.dtype, np.int64)
                self.assertEqual(len(captions), len(seeds))
            sizes.append((request.model_spec.signature_name, len(captions)))
        # serving_default per batch size, then each explainability signature once.
        self.assertEqual(sizes, [("serving_default", 1), ("serving_default", 8),
                                 ("generate_with_maps", 1), ("caption_words", 1)])

    def test_signatures_are_batched_on_dimension_0(self):
        from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
        saved_model = saved_model_pb2.SavedModel()
        saved_model.ParseFromString(open(os.path.join(self.version_dir, "saved_model.pb"),
                                         "rb").read())
        signatures = saved_model.meta_graphs[0].signature_def
        expected_inputs = {"serving_default": {"captions": tf.string, "seeds": tf.int64},
                           "generate_unseeded": {"captions": tf.string}}
        for name, inputs in expected_inputs.items():
            signature = signatures[name]
            self.assertEqual(signature.method_name, "tensorflow/serving/predict")
            self.assertEqual({k: tf.as_dtype(v.dtype) for k, v in signature.inputs.items()},
                             inputs)
            self.assertEqual({k: tf.as_dtype(v.dtype) for k, v in signature.outputs.items()},
                             {"images": tf.uint8, "png_bytes": tf.string})
            self.assertEqual([d.size for d in signature.outputs["images"].tensor_shape.dim],
                             [-1, 64, 64, 3])
            for info in list(signature.inputs.values()) + list(signature.outputs.values()):
                self.assertEqual(info.tensor_shape.dim[0].size, -1)  # batch dimension first
        explainability = {
            "generate_with_maps": {"images": tf.uint8, "png_bytes": tf.string,
                                   "maps": tf.float32, "map_png_bytes": tf.string,
                                   "map_labels": tf.string, "map_words": tf.string},
            "caption_words": {"words": tf.string, "in_vocabulary": tf.bool,
                              "num_words": tf.int32}}
        for name, outputs in explainability.items():
            signature = signatures[name]
            self.assertEqual({k: tf.as_dtype(v.dtype) for k, v in signature.outputs.items()},
                             outputs)
            for info in list(signature.inputs.values()) + list(signature.outputs.values()):
                self.assertEqual(info.tensor_shape.dim[0].size, -1)
        self.assertEqual([d.size for d in signatures["generate_with_maps"].outputs["maps"]
                          .tensor_shape.dim], [-1, 5, 64, 64])

    def test_fresh_tensorflow_only_process_gives_the_in_memory_images(self):
        tmp = self.create_tempdir().full_path
        non_utf8 = b"\xff\xfe caf\xe9 \x00".decode("latin-1")  # JSON-safe carrier of bytes
        captions = list(helpers.CAPTIONS) + ["x" * 10000, non_utf8]
        seeds = list(helpers.SEEDS) + [3, 4]
        inputs = os.path.join(tmp, "inputs.json")
        with open(inputs, "w") as f:
            json.dump({"captions": captions, "seeds": seeds}, f)
        out = os.path.join(tmp, "out.npz")
        proc = subprocess.run(
            [sys.executable, os.path.join(helpers.ROOT, "tests", "serving",
                                          "fresh_process_check.py"),
             self.version_dir, inputs, out],
            cwd=tmp, env=dict(helpers.subprocess_env(), PYTHONPATH=""), capture_output=True,
            text=True, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        result = np.load(out, allow_pickle=True)
        report = json.loads(str(result["report"]))

        # Only core TensorFlow ops, function bodies included (map_fn's EncodePng and the
        # stateless RNG live in nested functions).
        self.assertEqual(report["unregistered"], [])
        self.assertContainsSubset({"EncodePng", "StatelessRandomNormalV2", "StringSplitV2",
                                   "LookupTableFindV2"}, report["ops"])
        self.assertTrue(report["blocked_still_blocked"])
        self.assertEqual(report["signatures"], ["caption_words", "generate_unseeded",
                                                "generate_with_maps", "serving_default"])

        byte_captions = [c.encode("latin-1") for c in captions]
        model = helpers.in_memory_model()
        expected = model(byte_captions, seeds)["images"].numpy()
        self.assertEqual(result["images"].shape, (len(captions), 64, 64, 3))
        self.assertAllEqual(result["images"], expected)  # exactly, not approximately
        self.assertTrue(report["repeat_identical"])
        for png, image in zip(result["png_bytes"], result["images"]):
            self.assertAllEqual(tf.io.decode_png(png, channels=3), image)
        for other, image in zip(result["other_images"], result["images"]):
            self.assertNotAllEqual(other, image)  # another seed, another image
        unseeded = model(byte_captions, export_lib.caption_seeds(byte_captions))["images"]
        self.assertAllEqual(result["unseeded_images"], unseeded)
        # The explainability signatures run on plain TensorFlow too (tiny.cfg: SSA-GAN, 64
        # px, five blocks, so five masks); their images are serving_default's.
        self.assertAllEqual(result["maps_images"], result["images"])
        self.assertEqual(result["maps"].shape, (len(captions), 5, 64, 64))
        self.assertEqual(result["map_labels"][0, 3], b"mask, block 3 (32x32)")
        self.assertEqual(result["num_words"][:3].tolist(), [7, 7, 1])

    def test_raw_generator_differs_from_ema(self):
        captions, seeds = list(helpers.CAPTIONS[:2]), [0, 1]
        ema = helpers.reference_images(captions, seeds, use_ema=True)
        raw = helpers.reference_images(captions, seeds, use_ema=False)
        self.assertNotAllEqual(ema, raw)

    @parameterized.named_parameters(
        ("no_model_dir", [], "--model_dir is required"),
        ("missing_model_dir", ["--model_dir=/nonexistent/run"], "does not exist"),
        ("existing_version", ["--version=1"], "Version 1 already exists"),
    )
    def test_binary_fails_early_with_one_line(self, args, message):
        if args and args[0].startswith("--version"):
            args = [f"--model_dir={helpers.trained_run()}",
                    f"--export_base={self.exported['base']}", *args]
        proc = helpers.run_binary("tf_t2i.export", *args, timeout_s=120)
        self.assertEqual(proc.returncode, 2)
        self.assertIn(message, proc.stderr)
        self.assertLen(proc.stderr.strip().splitlines(), 1)
