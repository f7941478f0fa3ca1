"""The local server (`tf_t2i.serve`, a subprocess on 127.0.0.1) with the client library
and binary: gRPC round trip, status, metadata, versions and labels, bad requests, REST,
and a version appearing while serving."""

import base64
import io
import json
import os
import shutil
import urllib.error
import urllib.request

from absl.testing import parameterized
import grpc
import numpy as np
from PIL import Image
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.serving import helpers
from tf_t2i.serving import client as client_lib

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _strings(values):
    return tf.make_tensor_proto(np.array(values, dtype=object), dtype=tf.string)


def _ints(values, dtype=tf.int64):
    return tf.make_tensor_proto(np.array(values), dtype=dtype)


def _request(model="t2i", signature="", **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    for alias, proto in inputs.items():
        request.inputs[alias].CopyFrom(proto)
    return request


# (name, request, expected status code or None for a well-defined answer, message part)
BAD_REQUESTS = (
    ("empty_caption_list", _request(captions=_strings([]), seeds=_ints([])), None, ""),
    ("empty_string", _request(captions=_strings([b"a red circle", b" ,. "]),
                              seeds=_ints([1, 2])),
     INVALID, "Empty caption (no word) at index"),
    ("long_caption", _request(captions=_strings([b"red " * 2500]), seeds=_ints([1])), None, ""),
    ("non_utf8", _request(captions=_strings([b"\xff\xfe\xc3\x28 red"]), seeds=_ints([1])),
     None, ""),
    ("int32_seeds", _request(captions=_strings([b"a"]), seeds=_ints([1], tf.int32)), INVALID,
     "Expects arg[1] to be int64 but int32 is provided"),
    ("missing_input", _request(captions=_strings([b"a"])), INVALID,
     "input size does not match signature: 1!=2 len({captions}) != len({captions,seeds}). "
     "Sent extra: {}. Missing but required: {seeds}."),
    ("extra_input", _request(captions=_strings([b"a"]), seeds=_ints([1]), x=_ints([1])),
     INVALID, "Sent extra: {x}."),
    ("misnamed_input", _request(captions=_strings([b"a"]), seed=_ints([1])), INVALID,
     "Signature input alias: seeds(feed name: serving_default_seeds:0) not found in request"),
    ("unknown_model", _request(model="nope", captions=_strings([b"a"]), seeds=_ints([1])),
     grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
    ("no_model_name", _request(model="", captions=_strings([b"a"]), seeds=_ints([1])),
     INVALID, "ModelSpec has no name specified."),
    ("unknown_signature", _request(signature="nope", captions=_strings([b"a"]),
                                   seeds=_ints([1])),
     grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found.'),
    ("above_batch_limit", _request(captions=_strings([b"a"] * 65), seeds=_ints(range(65))),
     INVALID, "Task size 65 is larger than maximum input batch size 64"),
    ("rank_2_captions", _request(captions=_strings([[b"a"], [b"b"]]), seeds=_ints([1, 2])),
     INVALID, "input 'captions' has shape [2,1]"),
    ("scalar_caption", _request(captions=_strings(b"a"), seeds=_ints(1)), INVALID, "shape []"),
    ("fewer_seeds", _request(captions=_strings([b"a", b"b"]), seeds=_ints([1])), INVALID,
     "captions and seeds must have the same length"),
)


_FUZZ_DTYPES = (tf.string, tf.int64, tf.int32, tf.float32, tf.uint8, tf.bool, tf.float64)


def _fuzzed_tensor(rng, alias):
    """A tensor proto of a random dtype and shape; sometimes the right one for `alias`."""
    if rng.random() < 0.4:
        dtype = tf.string if alias == "captions" else tf.int64
    else:
        dtype = _FUZZ_DTYPES[rng.integers(len(_FUZZ_DTYPES))]
    rank = int(rng.choice([0, 1, 1, 1, 2, 3]))
    shape = [int(rng.choice([0, 1, 2, 3, 65])) if d == 0 else int(rng.integers(1, 3))
             for d in range(rank)]
    size = int(np.prod(shape)) if shape else 1
    if dtype == tf.string:
        values = [bytes(rng.integers(0, 256, int(rng.integers(0, 40)), dtype=np.uint8))
                  if rng.random() < 0.5 else b"a red circle" for _ in range(size)]
        array = np.array(values, dtype=object).reshape(shape)
    else:
        array = rng.integers(-2**31, 2**31, size).reshape(shape).astype(dtype.as_numpy_dtype)
    proto = tf.make_tensor_proto(array, dtype=dtype)
    if dtype != tf.string and rng.random() < 0.1:
        proto.tensor_content = proto.tensor_content[:-1] + b""  # one byte short
    return proto


def _fuzzed_request(rng):
    aliases = [a for a in ("captions", "seeds") if rng.random() < 0.85]
    if rng.random() < 0.2:
        aliases.append(rng.choice(["x", "seed", "", "captions\x00"]))
    request = _request(signature=str(rng.choice(["", "", "", "generate_unseeded", "nope"])))
    for alias in aliases:
        request.inputs[str(alias)].CopyFrom(_fuzzed_tensor(rng, alias))
    return request


class ServerTest(parameterized.TestCase, tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helpers.in_memory_model()  # while the export binary runs in the background
        cls.exported = helpers.exported()
        # All versions, so that test_new_version_is_loaded_while_serving leaves version 1
        # (and its label) in place for the other tests.
        cls.server = helpers.ServerProcess(
            f"--model_base={cls.exported['base']}", "--version_labels=stable=1",
            "--model_version_policy=all", "--file_system_poll_wait_seconds=0.5",
            f"--monitoring_config_file={helpers.ROOT}/serving/monitoring.config", rest=True)
        cls.port = cls.server.wait_ready()
        cls.address = f"127.0.0.1:{cls.port}"
        cls.channel = grpc.insecure_channel(cls.address)
        cls.predict = prediction_service_pb2_grpc.PredictionServiceStub(cls.channel)
        cls.models = model_service_pb2_grpc.ModelServiceStub(cls.channel)
        cls.client = client_lib.GrpcClient(cls.address, "t2i")

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.channel.close()
        code = cls.server.stop()
        super().tearDownClass()
        assert code == 0, f"server exited with {code}:\n{cls.server.output[-3000:]}"

    def _good_request_works(self):
        images = self.client.generate(["a red circle"], seeds=[3])
        self.assertEqual(images.shape, (1, 64, 64, 3))
        self.assertTrue(self.server.alive())

    def test_serves_with_plain_tensorflow_ops(self):
        self.assertIn("op libraries: plain TensorFlow; keras not imported", self.server.output)
        self.assertIn("Loaded t2i version 1", self.server.output)
        self.assertIn("4 warmup records", self.server.output)
        # The server's log reads like its other lines, without absl's prefix.
        self.assertRegex(self.server.output, r"(?m)^tf_t2i\.serve: Loaded t2i version 1 from ")
        self.assertRegex(self.server.output, r"(?m)^tf_t2i\.serve: Serving t2i version\(s\) 1\.$")
        self.assertNotRegex(self.server.output, r"(?m)^[IWE]\d{4} .*servable_")

    def test_round_trip_gives_decodable_pngs_equal_to_the_in_memory_generator(self):
        captions, seeds = list(helpers.CAPTIONS), list(helpers.SEEDS)
        pngs = self.client.generate_png(captions, seeds)
        self.assertLen(pngs, len(captions))
        decoded = np.stack([np.array(Image.open(io.BytesIO(p)).convert("RGB")) for p in pngs])
        images = self.client.generate(captions, seeds)
        self.assertEqual(images.dtype, np.uint8)
        self.assertAllEqual(decoded, images)
        self.assertAllEqual(images, helpers.reference_images(captions, seeds))
        one = client_lib.generate_images([captions[1]], [seeds[1]], server=self.address)
        self.assertAllEqual(one[0], images[1])  # the batch does not change an image

    def test_unseeded_is_deterministic_per_caption(self):
        first = self.client.generate(["a red circle", "a blue square"])
        again = self.client.generate(["a blue square", "a red circle"])
        self.assertAllEqual(first[0], again[1])
        self.assertAllEqual(first[1], again[0])
        self.assertNotAllEqual(first[0], first[1])

    def test_model_status_reports_available(self):
        self.assertEqual(self.client.status().get(1), "AVAILABLE")
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "t2i"
        request.model_spec.version.value = 1
        (status,) = self.models.GetModelStatus(request, timeout=30).model_version_status
        self.assertEqual(status.state, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
        self.assertEqual(status.status.error_code, 0)
        request.model_spec.name = "nope"
        request.model_spec.ClearField("version")
        with self.assertRaises(grpc.RpcError) as caught:
            self.models.GetModelStatus(request, timeout=30)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(caught.exception.details(), "Could not find any versions of model nope")

    def test_metadata_lists_every_signature(self):
        signatures = self.client.signature_defs()
        self.assertContainsSubset({"serving_default", "generate_unseeded",
                                   "generate_with_maps", "caption_words"}, signatures)
        self.assertEqual(sorted(signatures["generate_with_maps"].outputs),
                         ["images", "map_labels", "map_png_bytes", "map_words", "maps",
                          "png_bytes"])
        self.assertEqual(sorted(signatures["caption_words"].inputs), ["captions"])
        self.assertEqual(sorted(signatures["serving_default"].inputs), ["captions", "seeds"])
        self.assertEqual(sorted(signatures["generate_unseeded"].outputs),
                         ["images", "png_bytes"])
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        request.model_spec.name = "t2i"
        with self.assertRaises(grpc.RpcError) as caught:
            self.predict.GetModelMetadata(request, timeout=30)
        self.assertEqual(caught.exception.code(), INVALID)
        self.assertIn("must specify at least one metadata_field", caught.exception.details())

    def test_versions_and_labels(self):
        expected = self.client.generate(["a red circle"], [5])
        for kwargs in ({"version": 1}, {"version_label": "stable"}):
            with client_lib.GrpcClient(self.address, "t2i", **kwargs) as client:
                self.assertAllEqual(client.generate(["a red circle"], [5]), expected)
        with client_lib.GrpcClient(self.address, "t2i", version=7) as client:
            with self.assertRaisesRegex(client_lib.ServingError,
                                        r"NOT_FOUND: .*Specific\(t2i, 7\)"):
                client.generate(["a red circle"], [5])
        with client_lib.GrpcClient(self.address, "t2i", version_label="canary") as client:
            with self.assertRaisesRegex(client_lib.ServingError,
                                        "Unrecognized servable version label: canary"):
                client.generate(["a red circle"], [5])

    def test_output_filter(self):
        request = _request(captions=_strings([b"a red circle"]), seeds=_ints([1]))
        request.output_filter.append("png_bytes")
        response = self.predict.Predict(request, timeout=60)
        self.assertEqual(list(response.outputs), ["png_bytes"])
        self.assertEqual(response.model_spec.version.value, 1)
        self.assertEqual(response.model_spec.signature_name, "serving_default")
        request.output_filter[:] = ["pngs"]
        with self.assertRaises(grpc.RpcError) as caught:
            self.predict.Predict(request, timeout=60)
        self.assertEqual(caught.exception.code(), INVALID)
        self.assertIn("output tensor alias not found in signature: pngs",
                      caught.exception.details())

    def test_images_come_back_as_typed_fields(self):
        # TF Serving answers with AsProtoField (int_val for uint8), not tensor_content.
        request = _request(captions=_strings([b"a red circle"]), seeds=_ints([1]))
        proto = self.predict.Predict(request, timeout=60).outputs["images"]
        self.assertEqual(proto.dtype, tf.uint8.as_datatype_enum)
        self.assertEqual(len(proto.int_val), 64 * 64 * 3)
        self.assertEqual(proto.tensor_content, b"")

    @parameterized.named_parameters(*BAD_REQUESTS)
    def test_bad_request(self, request, code, message):
        if code is None:
            response = self.predict.Predict(request, timeout=60)
            n = len(tf.make_ndarray(request.inputs["captions"]))
            images = tf.make_ndarray(response.outputs["images"])
            self.assertEqual(images.shape, (n, 64, 64, 3))
            self.assertLen(tf.make_ndarray(response.outputs["png_bytes"]), n)
        else:
            with self.assertRaises(grpc.RpcError) as caught:
                self.predict.Predict(request, timeout=60)
            self.assertEqual(caught.exception.code(), code, caught.exception.details())
            self.assertIn(message, caught.exception.details())
        self._good_request_works()

    def test_fuzzed_predict_requests_each_get_a_status(self):
        """Random dtypes, shapes, sizes, non-UTF-8 bytes, missing, extra and misnamed
        inputs, malformed tensor bytes: every request is answered (OK or a client-error
        status), none takes more than its deadline, and the server stays up."""
        rng = np.random.default_rng(0)
        answered = {}
        for _ in range(120):
            request = _fuzzed_request(rng)
            try:
                self.predict.Predict(request, timeout=30)
                code = grpc.StatusCode.OK
            except grpc.RpcError as e:
                code = e.code()
                self.assertNotIn(code, (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL,
                                        grpc.StatusCode.DEADLINE_EXCEEDED,
                                        grpc.StatusCode.UNAVAILABLE),
                                 f"{e.details()}\n{request}"[:2000])
            answered[code] = answered.get(code, 0) + 1
        self.assertEqual(sum(answered.values()), 120)
        self.assertGreater(answered.get(INVALID, 0), 30, answered)
        self.assertGreater(answered.get(grpc.StatusCode.OK, 0), 0, answered)
        self._good_request_works()

    def test_rest(self):
        rest = f"127.0.0.1:{self.server.rest_port}"
        with client_lib.RestClient(rest, "t2i") as client:
            self.assertEqual(client.status().get(1), "AVAILABLE")
            pngs = client.generate_png(["a red circle", b"\xff\xfe"], [7, 8])
            images = client.generate(["a red circle", b"\xff\xfe"], [7, 8])
        decoded = np.stack([np.array(Image.open(io.BytesIO(p)).convert("RGB")) for p in pngs])
        self.assertAllEqual(decoded, images)
        self.assertAllEqual(images, self.client.generate(["a red circle", b"\xff\xfe"], [7, 8]))
        # Row format, as in TF Serving's documentation; png_bytes comes back as b64.
        body = {"instances": [{"captions": "a red circle", "seeds": 7}]}
        row = self._post(f"http://{rest}/v1/models/t2i/labels/stable:predict", body)
        (prediction,) = row["predictions"]
        self.assertEqual(base64.b64decode(prediction["png_bytes"]["b64"]), pngs[0])
        self.assertAllEqual(np.asarray(prediction["images"], np.uint8), images[0])
        # A one-input signature takes bare values as instances.
        unseeded = self._post(f"http://{rest}/v1/models/t2i:predict",
                              {"signature_name": "generate_unseeded",
                               "instances": ["a red circle"]})
        self.assertAllEqual(np.asarray(unseeded["predictions"][0]["images"], np.uint8),
                            self.client.generate(["a red circle"])[0])
        with self.assertRaises(urllib.error.HTTPError) as caught:
            self._post(f"http://{rest}/v1/models/nope:predict", body)
        self.assertEqual(caught.exception.code, 404)
        self.assertEqual(json.loads(caught.exception.read()),
                         {"error": "Servable not found for request: Latest(nope)"})
        with self.assertRaises(urllib.error.HTTPError) as caught:
            self._post(f"http://{rest}/v1/models/t2i:predict", {"instances": [{"seeds": 1}]})
        self.assertEqual(caught.exception.code, 400)

    def test_rest_explainability_signatures(self):
        rest = f"http://127.0.0.1:{self.server.rest_port}/v1/models/t2i"
        body = {"signature_name": "generate_with_maps",
                "instances": [{"captions": "a red circle", "seeds": 7}]}
        (row,) = self._post(f"{rest}:predict", body)["predictions"]
        self.assertAllEqual(np.asarray(row["images"], np.uint8),
                            self.client.generate(["a red circle"], [7])[0])
        self.assertLen(row["map_png_bytes"], 5)  # tiny.cfg's SSA-GAN: a mask per block
        maps = np.asarray(row["maps"], np.float32)
        for encoded, values in zip(row["map_png_bytes"], maps):
            pixels = np.array(Image.open(io.BytesIO(base64.b64decode(encoded["b64"]))))
            self.assertAllEqual(pixels, np.round(values * 255))
        self.assertEqual(row["map_labels"][0], "mask, block 0 (4x4)")
        self.assertEqual(row["map_words"], [""] * 5)
        # caption_words: a one-input signature; its bool output is JSON true / false.
        words = self._post(f"{rest}:predict", {"signature_name": "caption_words",
                                               "instances": ["a red zebra"]})["predictions"]
        self.assertEqual(words[0]["words"][:4], ["a", "red", "zebra", ""])
        self.assertEqual(words[0]["in_vocabulary"][:4], [True, True, False, False])
        self.assertEqual(words[0]["num_words"], 3)

    def test_prometheus_metrics(self):
        self.client.generate(["a red circle"], [1])
        with self.assertRaises(client_lib.ServingError):
            client_lib.generate_images(["a"], [1], server=self.address, model="absent")
        url = f"http://127.0.0.1:{self.server.rest_port}/monitoring/prometheus/metrics"
        with urllib.request.urlopen(url, timeout=30) as response:
            text = response.read().decode()
        self.assertRegex(text, r':tensorflow:serving:request_count\{model_name="t2i",'
                               r'status="OK"\} [1-9]')
        self.assertIn(':tensorflow:serving:request_count{model_name="absent",'
                      'status="NOT_FOUND"} 1', text)
        self.assertRegex(text, r':tensorflow:serving:request_latency_count\{model_name="t2i",'
                               r'API="predict",entrypoint="GRPC"\} [1-9]')

    @staticmethod
    def _post(url, body):
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def test_client_binary(self):
        out = os.path.join(self.create_tempdir().full_path, "out.png")
        proc = helpers.run_binary("tf_t2i.client", f"--server={self.address}", "--model=t2i",
                                  "--caption=a red circle", "--caption=a blue square",
                                  "--seed=4", f"--output={out}", timeout_s=120)
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        image = np.array(Image.open(out).convert("RGB"))
        self.assertEqual(image.shape, (64, 2 * 64 + 2, 3))
        expected = self.client.generate(["a red circle", "a blue square"], [4, 4])
        self.assertAllEqual(image[:, :64], expected[0])
        self.assertAllEqual(image[:, 66:], expected[1])
        proc = helpers.run_binary("tf_t2i.client", f"--server={self.address}", "--model=nope",
                                  "--caption=a red circle", f"--output={out}.2", timeout_s=120)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("NOT_FOUND: Servable not found for request: Latest(nope)", proc.stderr)
        self.assertFalse(os.path.exists(f"{out}.2"))

    def test_new_version_is_loaded_while_serving(self):
        base = self.exported["base"]
        # What tf_t2i.export does: write under a non-numeric name, then rename.
        tmp = os.path.join(base, ".tmp-export-2-test")
        shutil.copytree(self.exported["version_dir"], tmp)
        self.assertNotIn(2, self.client.status())
        os.rename(tmp, os.path.join(base, "2"))
        try:
            states = helpers.wait_for(
                lambda: (s := self.client.status()).get(2) == "AVAILABLE" and s, 120)
            self.assertTrue(states, self.server.output[-2000:])
            self.assertEqual(states[1], "AVAILABLE")  # policy "all" keeps version 1
            with client_lib.GrpcClient(self.address, "t2i", version=2) as client:
                self.assertAllEqual(client.generate(["a red circle"], [5]),
                                    self.client.generate(["a red circle"], [5]))
        finally:
            shutil.rmtree(os.path.join(base, "2"), ignore_errors=True)
            # Gone from disk: unloaded at the next poll (END), so "latest" is 1 again.
            self.assertTrue(helpers.wait_for(lambda: self.client.status().get(2) == "END", 60))
