"""The page's server (`tf_t2i.serving.ui_server`) against a fake REST backend: the fixed
list of files, the config, the proxy of `/v1/models/...`, the body limit, the Host
check; the page's files load nothing from elsewhere; the dataset an export was trained
on picks the example captions. The page in a real browser: test_ui_browser.py."""

import http.client
import http.server
import json
import os
import re
import socket
import threading

from absl.testing import parameterized
import tensorflow as tf

from tests.serving import helpers
from tf_t2i.serving import ui_server


_PREDICTION = (200, {"outputs": {"png_bytes": [{"b64": "AAAA"}]}})


class _FakeREST(http.server.ThreadingHTTPServer):
    """Answers every request with `answer` (status, JSON) and records what it received."""

    daemon_threads = True

    def __init__(self):
        self.received = []
        self.answer = _PREDICTION
        super().__init__(("127.0.0.1", 0), _FakeRESTHandler)


class _FakeRESTHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.server.received.append((self.command, self.path, self.rfile.read(length)))
        status, payload = self.server.answer
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UIServerTest(parameterized.TestCase, tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.backend = _FakeREST()
        threading.Thread(target=cls.backend.serve_forever, daemon=True).start()
        cls.config = ui_server.ui_config("t2i", 4, "shapes")
        cls.ui = ui_server.UIServer(("127.0.0.1", cls.backend.server_address[1]), cls.config,
                                    max_body_bytes=1000)
        cls.port = cls.ui.start()

    @classmethod
    def tearDownClass(cls):
        cls.ui.stop()
        cls.backend.shutdown()
        cls.backend.server_close()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.backend.received.clear()

    def _request(self, method, path, body=None, headers=None, port=None):
        """(status, headers, body bytes); the path is sent exactly as given."""
        connection = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def test_serves_the_page_files_with_a_strict_policy(self):
        for path, name in (("/", "index.html"), ("/index.html", "index.html"),
                           ("/app.js", "app.js"), ("/style.css", "style.css"),
                           ("/app.js?v=2", "app.js")):
            status, headers, body = self._request("GET", path)
            self.assertEqual(status, 200, path)
            with open(os.path.join(ui_server.UI_DIR, name), "rb") as f:
                self.assertEqual(body, f.read(), path)
            self.assertIn("default-src 'none'", headers["Content-Security-Policy"])
            self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
        self.assertStartsWith(self._request("GET", "/app.js")[1]["Content-Type"],
                              "text/javascript")

    @parameterized.parameters("/../setup.py", "/%2e%2e/setup.py", "/ui/index.html",
                              "/ui_server.py", "/..%2fserve.py", "//etc/passwd",
                              "/index.html/../../setup.py", "/v1/../../setup.py",
                              "/monitoring/prometheus/metrics", "/favicon.ico")
    def test_any_other_path_is_not_found(self, path):
        status, _, body = self._request("GET", path)
        self.assertEqual(status, 404, body)
        self.assertNotIn(b"setuptools", body)
        self.assertEqual(self.backend.received, [])  # nothing outside /v1/models/ is forwarded

    def test_only_get_reads_files(self):
        status, _, _ = self._request("POST", "/index.html", body=b"{}")
        self.assertEqual(status, 405)
        status, _, _ = self._request("PUT", "/v1/models/t2i:predict", body=b"{}")
        self.assertEqual(status, 405)
        self.assertEqual(self.backend.received, [])

    def test_config(self):
        status, _, body = self._request("GET", "/ui-config.json")
        self.assertEqual(status, 200)
        config = json.loads(body)
        self.assertEqual(config["model"], "t2i")
        self.assertEqual(config["max_batch_size"], 4)
        self.assertEqual(config["example_captions"], list(ui_server.EXAMPLE_CAPTIONS["shapes"]))

    def test_predict_and_metadata_are_forwarded(self):
        body = json.dumps({"signature_name": "serving_default",
                           "inputs": {"captions": ["a red circle"], "seeds": [7]}}).encode()
        status, headers, answer = self._request(
            "POST", "/v1/models/t2i:predict", body=body,
            headers={"Content-Type": "application/json"})
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(answer), self.backend.answer[1])
        self.assertEqual(headers["Content-Type"], "application/json")
        status, _, _ = self._request("GET", "/v1/models/t2i/labels/stable/metadata?x=1")
        self.assertEqual(status, 200)
        self.assertEqual(self.backend.received,
                         [("POST", "/v1/models/t2i:predict", body),
                          ("GET", "/v1/models/t2i/labels/stable/metadata", b"")])

    def test_errors_of_the_model_server_are_passed_on(self):
        self.backend.answer = (400, {"error": "Task size 5 is larger than maximum input "
                                              "batch size 4"})
        try:
            status, _, answer = self._request("POST", "/v1/models/t2i:predict", body=b"{}")
        finally:
            self.backend.answer = _PREDICTION
        self.assertEqual(status, 400)
        self.assertIn("larger than maximum input batch size 4", json.loads(answer)["error"])

    def test_a_body_over_the_limit_is_refused_unread(self):
        status, _, answer = self._request("POST", "/v1/models/t2i:predict", body=b"x" * 1001)
        self.assertEqual(status, 413)
        self.assertIn("larger than the limit of 1000 bytes", json.loads(answer)["error"])
        # A huge announced length is refused before any byte of it is read.
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.putrequest("POST", "/v1/models/t2i:predict")
        connection.putheader("Content-Length", str(10 ** 12))
        connection.endheaders()
        self.assertEqual(connection.getresponse().status, 413)
        connection.close()
        status, _, _ = self._request("POST", "/v1/models/t2i:predict", body=b"x" * 1000)
        self.assertEqual(status, 200)
        self.assertLen(self.backend.received, 1)

    def test_foreign_host_names_are_refused(self):
        # DNS rebinding: a page of evil.example resolved to 127.0.0.1 sends its own Host.
        status, _, _ = self._request("GET", "/", headers={"Host": "evil.example"})
        self.assertEqual(status, 403)
        status, _, _ = self._request("POST", "/v1/models/t2i:predict", body=b"{}",
                                     headers={"Host": "evil.example:80"})
        self.assertEqual(status, 403)
        self.assertEqual(self.backend.received, [])
        for host in ("localhost", f"localhost:{self.port}", f"127.0.0.1:{self.port}"):
            self.assertEqual(self._request("GET", "/", headers={"Host": host})[0], 200, host)

    def test_a_dead_model_server_is_a_502_with_its_address(self):
        dead = _free_port()
        ui = ui_server.UIServer(("127.0.0.1", dead), self.config)
        port = ui.start()
        try:
            status, _, answer = self._request("POST", "/v1/models/t2i:predict", body=b"{}",
                                              port=port)
        finally:
            ui.stop()
        self.assertEqual(status, 502)
        self.assertIn(f"The model server at 127.0.0.1:{dead} is not reachable",
                      json.loads(answer)["error"])

    def test_a_port_in_use_is_one_error(self):
        with self.assertRaisesRegex(OSError, f"Could not bind the UI to 127.0.0.1:{self.port}"):
            ui_server.UIServer(("127.0.0.1", 1), self.config, port=self.port).start()


class PageFilesTest(tf.test.TestCase):

    def test_the_page_loads_nothing_from_elsewhere(self):
        for name in ("index.html", "app.js", "style.css"):
            with open(os.path.join(ui_server.UI_DIR, name)) as f:
                text = f.read()
            # Any absolute URL (a CDN, a web font, an API elsewhere), protocol-relative
            # ones included; CSS that fetches (url(), @import, @font-face).
            for pattern in (r"(?i)\b(https?|wss?|ftp):", r"""(?i)(src|href)\s*=\s*["']//""",
                            r"(?i)@import|@font-face|(?<![\w.])url\("):
                found = re.search(pattern, text)
                self.assertIsNone(found, f"{name}: {found and found.group(0)}")
            for line in text.splitlines():
                self.assertLessEqual(len(line), 100, f"{name}: {line}")

    def test_the_page_never_writes_html_from_data(self):
        with open(os.path.join(ui_server.UI_DIR, "app.js")) as f:
            text = f.read()
        found = re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(",
                          text)
        self.assertIsNone(found, found and found.group(0))

    def test_the_files_are_package_data(self):
        with open(os.path.join(helpers.ROOT, "setup.py")) as f:
            self.assertRegex(f.read(), r'"tf_t2i\.serving": \["ui/\*"\]')


class ExampleCaptionsTest(tf.test.TestCase):

    def _export(self, info, run_config=None):
        version_dir = self.create_tempdir().full_path
        os.makedirs(os.path.join(version_dir, "assets.extra"))
        if run_config is not None:
            run = self.create_tempdir().full_path
            with open(os.path.join(run, "config.json"), "w") as f:
                json.dump(run_config, f)
            info = dict(info, model_dir=run)
        if info is not None:
            with open(os.path.join(version_dir, "assets.extra", "t2i_export.json"), "w") as f:
                json.dump(info, f)
        return version_dir

    def test_the_dataset_comes_from_the_export_then_the_run_then_the_name(self):
        self.assertEqual(ui_server.dataset_of_export(self._export({"dataset": "cub"})), "cub")
        self.assertEqual(ui_server.dataset_of_export(
            self._export({"experiment": "tiny"}, {"data": {"dataset": "coco"}})), "coco")
        self.assertEqual(ui_server.dataset_of_export(
            self._export({"experiment": "shapes_ssagan_30min", "model_dir": "/nope"})),
            "shapes")
        self.assertIsNone(ui_server.dataset_of_export(self._export({"experiment": "mine"})))
        self.assertIsNone(ui_server.dataset_of_export(self._export(None)))
        broken = self._export(None)
        with open(os.path.join(broken, "assets.extra", "t2i_export.json"), "w") as f:
            f.write("{not json")
        self.assertIsNone(ui_server.dataset_of_export(broken))

    def test_examples_follow_the_dataset(self):
        self.assertEqual(ui_server.ui_config("m", 8, "coco")["example_captions"],
                         list(ui_server.EXAMPLE_CAPTIONS["coco"]))
        generic = ui_server.ui_config("m", None, None)
        self.assertEqual(generic["example_captions"],
                         list(ui_server.GENERIC_EXAMPLE_CAPTIONS))
        self.assertIsNone(generic["max_batch_size"])
        self.assertTrue(re.fullmatch(r"[a-z ,]+", " ".join(
            c for cs in ui_server.EXAMPLE_CAPTIONS.values() for c in cs)))
