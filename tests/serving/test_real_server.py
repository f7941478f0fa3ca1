"""The export under the real `tensorflow_model_server`, with the client library.

Skipped unless the binary is on PATH (it cannot be installed from PyPI; see
serving/README.md). Runs it as docker-compose.yml does (batching, warmup, REST,
monitoring) on free ports, and talks to it on 127.0.0.1 only (the binary has no flag to
bind a single interface).
"""

import os
import shutil
import socket
import subprocess
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from tests.serving import helpers
from tf_t2i.serving import client as client_lib
from tf_t2i.serving import export_lib

BINARY = shutil.which("tensorflow_model_server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(BINARY is None, reason="tensorflow_model_server is not on PATH")
class RealServerTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helpers.in_memory_model()
        exported = helpers.exported()
        tmp = os.path.join(os.path.dirname(exported["base"]), "real_server")
        os.makedirs(tmp, exist_ok=True)
        config = os.path.join(tmp, "models.config")
        with open(config, "w") as f:
            f.write(export_lib.model_config_text("t2i", exported["base"], versions=[1],
                                                 labels={"stable": 1}))
        cls.port, cls.rest_port = _free_port(), _free_port()
        serving = os.path.join(helpers.ROOT, "serving")
        cls.log = open(os.path.join(tmp, "server.log"), "w")
        cls.proc = subprocess.Popen(
            [BINARY, f"--port={cls.port}", f"--rest_api_port={cls.rest_port}",
             f"--model_config_file={config}", "--enable_batching=true",
             f"--batching_parameters_file={serving}/batching.config",
             f"--monitoring_config_file={serving}/monitoring.config"],
            stdout=cls.log, stderr=subprocess.STDOUT)
        cls.client = client_lib.GrpcClient(f"127.0.0.1:{cls.port}", "t2i")
        try:
            cls.client.wait_until_available(timeout_s=180)
        except TimeoutError:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.proc.terminate()
        try:
            cls.proc.wait(30)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
            cls.proc.wait(30)
        cls.log.close()
        super().tearDownClass()

    def test_round_trip_matches_the_in_memory_generator(self):
        captions, seeds = list(helpers.CAPTIONS), list(helpers.SEEDS)
        images = self.client.generate(captions, seeds)
        self.assertAllEqual(images, helpers.reference_images(captions, seeds))
        pngs = self.client.generate_png(captions, seeds)
        for png, image in zip(pngs, images):
            self.assertAllEqual(tf.io.decode_png(png, channels=3), image)
        with client_lib.GrpcClient(f"127.0.0.1:{self.port}", "t2i",
                                   version_label="stable") as client:
            self.assertAllEqual(client.generate(captions[:1], seeds[:1]), images[:1])

    def test_metadata_and_status(self):
        self.assertEqual(self.client.status(), {1: "AVAILABLE"})
        self.assertContainsSubset({"serving_default", "generate_unseeded"},
                                  self.client.signature_defs())

    def test_rest(self):
        with client_lib.RestClient(f"127.0.0.1:{self.rest_port}", "t2i") as client:
            rest = client.generate(["a red circle"], [3])
        self.assertAllEqual(rest, self.client.generate(["a red circle"], [3]))
        with urllib.request.urlopen(
                f"http://127.0.0.1:{self.rest_port}/monitoring/prometheus/metrics") as r:
            self.assertIn(b":tensorflow:", r.read())

    def test_common_mistakes_get_the_same_codes_as_the_local_server(self):
        cases = [
            (dict(captions=["a"], seeds=np.array([1], np.int32)), "serving_default",
             "INVALID_ARGUMENT"),
            (dict(captions=["a"]), "serving_default", "INVALID_ARGUMENT"),
            (dict(captions=["a"], seeds=[1]), "nope", "FAILED_PRECONDITION"),
        ]
        for inputs, signature, code in cases:
            inputs = {k: (np.array(v, dtype=object) if k == "captions" else np.asarray(v))
                      for k, v in inputs.items()}
            with self.assertRaises(client_lib.ServingError) as caught:
                self.client.predict(inputs, signature)
            self.assertEqual(caught.exception.code, code, caught.exception.message)
        with client_lib.GrpcClient(f"127.0.0.1:{self.port}", "nope") as client:
            with self.assertRaisesRegex(client_lib.ServingError, r"NOT_FOUND.*Latest\(nope\)"):
                client.generate(["a"], [1])
        self.assertEqual(self.client.generate(["a"], [1]).shape, (1, 64, 64, 3))
