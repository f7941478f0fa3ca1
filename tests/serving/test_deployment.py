"""The TF Serving deployment files in serving/, the README's commands and `make demo`."""

import json
import os
import re

from google.protobuf import text_format
import tensorflow as tf
from tensorflow_serving.config import model_server_config_pb2

from tests.serving import helpers
from tf_t2i.serving import rest

SERVING = os.path.join(helpers.ROOT, "serving")
# tensorflow_serving/servables/tensorflow/session_bundle_config.proto BatchingParameters
# (not in the tensorflow-serving-api wheel, so checked by name).
BATCHING_FIELDS = {"max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                   "num_batch_threads", "thread_pool_name", "allowed_batch_sizes",
                   "pad_variable_length_inputs", "enable_large_batch_splitting",
                   "max_execution_batch_size"}


def _read(name):
    with open(os.path.join(SERVING, name)) as f:
        return f.read()


def _code(text):
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


class DeploymentFilesTest(tf.test.TestCase):

    def test_models_config_parses_with_the_serving_protos(self):
        config = text_format.Parse(_read("models.config"),
                                   model_server_config_pb2.ModelServerConfig())
        (model,) = config.model_config_list.config
        self.assertEqual(model.name, "t2i")
        self.assertEqual(model.base_path, "/models/t2i")
        self.assertEqual(model.model_platform, "tensorflow")
        self.assertEqual(model.model_version_policy.WhichOneof("policy_choice"), "specific")
        versions = list(model.model_version_policy.specific.versions)
        self.assertEqual(dict(model.version_labels), {"stable": versions[0]})

    def test_batching_config_fields(self):
        values = {}
        for line in _code(_read("batching.config")).splitlines():
            if not line.strip():
                continue
            match = (re.fullmatch(r"\s*(\w+)\s*\{\s*value:\s*(\d+)\s*\}\s*", line)
                     or re.fullmatch(r"\s*(\w+)\s*:\s*(\w+)\s*", line))
            self.assertIsNotNone(match, f"unparsable line: {line!r}")
            self.assertIn(match.group(1), BATCHING_FIELDS)
            values[match.group(1)] = match.group(2)
        # Same limit as tf_t2i.serve's default --max_batch_size.
        self.assertEqual(values["max_batch_size"], "64")
        self.assertGreater(int(values["num_batch_threads"]), 0)

    def test_monitoring_config(self):
        text = re.sub(r"\s+", " ", _code(_read("monitoring.config"))).strip()
        self.assertEqual(text, 'prometheus_config { enable: true path: '
                               '"/monitoring/prometheus/metrics" }')

    def test_docker_compose_runs_tf_serving_on_the_exports(self):
        text = _read("docker-compose.yml")
        try:
            import yaml  # pylint: disable=g-import-not-at-top
        except ImportError:
            yaml = None
        if yaml is not None:
            service = yaml.safe_load(text)["services"]["tf-serving"]
            flags = service["command"]
            volumes = service["volumes"]
            image = service["image"]
        else:
            flags = re.findall(r"- (--\S+)", text)
            volumes = re.findall(r"- (\S+:/\S+)", text)
            image = re.search(r"image: (\S+)", text).group(1)
        self.assertTrue(image.startswith("tensorflow/serving:"), image)
        self.assertIn("../export:/models:ro", volumes)
        mounted = {}
        for volume in volumes:
            source, target = volume.split(":")[:2]
            mounted[target] = source
        for flag, name in (("--model_config_file", "models.config"),
                           ("--batching_parameters_file", "batching.config"),
                           ("--monitoring_config_file", "monitoring.config")):
            (value,) = [f.split("=", 1)[1] for f in flags if f.startswith(flag + "=")]
            self.assertEqual(mounted[value], f"./{name}")
        self.assertIn("--enable_batching=true", flags)
        self.assertIn("--rest_api_port=8501", flags)

    def test_docker_compose_serves_the_page_through_nginx(self):
        text = _read("docker-compose.yml")
        ui = text.split("\n  ui:\n", 1)[1]
        self.assertRegex(ui, r"image: nginx:")
        self.assertIn('"127.0.0.1:8080:8080"', ui)  # local only, as the other ports
        volumes = dict(reversed(v.split(":")[:2]) for v in re.findall(r"- (\S+:/\S+)", ui))
        self.assertEqual(volumes["/etc/nginx/conf.d/default.conf"], "./nginx.conf")
        self.assertEqual(volumes["/etc/t2i-ui/ui-config.json"], "./ui-config.json")
        ui_dir = os.path.normpath(os.path.join(SERVING, volumes["/usr/share/nginx/t2i-ui"]))
        self.assertEqual(ui_dir, os.path.join(helpers.ROOT, "tf_t2i", "serving", "ui"))
        nginx = _read("nginx.conf")
        self.assertIn("root /usr/share/nginx/t2i-ui;", nginx)
        self.assertIn("alias /etc/t2i-ui/ui-config.json;", nginx)
        self.assertIn("proxy_pass http://tf-serving:8501;", nginx)  # the service's REST port
        # The body limit of tf_t2i.serve's REST API and page (nginx's "m" is MiB).
        self.assertIn(f"client_max_body_size {rest.MAX_BODY_BYTES // 2 ** 20}m;", nginx)
        # The page's config matches the deployment: batching.config's limit.
        config = json.loads(_read("ui-config.json"))
        self.assertEqual(config["model"], "t2i")
        self.assertIn("max_batch_size { value: 64 }", _read("batching.config"))
        self.assertEqual(config["max_batch_size"], 64)

    def test_readme_has_the_commands(self):
        readme = _read("README.md")
        for command in ("python -m tf_t2i.export --model_dir=", "docker compose -f "
                        "serving/docker-compose.yml up", "python -m tf_t2i.serve --model_base=",
                        "python -m tf_t2i.client --server=localhost:8500 --model=t2i"):
            self.assertIn(command, readme)

    def test_make_demo_exports_serves_and_requests(self):
        with open(os.path.join(helpers.ROOT, "Makefile")) as f:
            makefile = f.read()
        demo = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
        for step in ("tf_t2i.export", "tf_t2i.serve", "tf_t2i.client", "kill"):
            self.assertIn(step, demo)
        self.assertLess(demo.index("tf_t2i.sample"), demo.index("tf_t2i.export"))
