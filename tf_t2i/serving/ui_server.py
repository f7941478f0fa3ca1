"""A one-page web UI for a served model, on the same origin as TF Serving's REST API.

  GET  /, /index.html, /app.js, /style.css  -> the page (files of tf_t2i/serving/ui/)
  GET  /ui-config.json                      -> model name, batch limit, example captions
  GET|POST /v1/models/...                   -> forwarded to the REST server unchanged

The page talks to the model only through TF Serving's REST API (`:predict`,
`/metadata`), so the same files work in front of a stock `tensorflow_model_server`
behind any reverse proxy (serving/nginx.conf); `ui-config.json` is optional there.
Serving the page and the API from one origin is what makes it work without CORS:
TF Serving's REST server sends no CORS headers.

Security: it binds 127.0.0.1 unless told otherwise; the paths it answers are a fixed
list read into memory at start, so nothing in a request names a file; request bodies
above `max_body_bytes` (the REST server's own limit) are refused before being read;
on a loopback address, requests whose Host header is not a loopback name are refused
(a web page elsewhere cannot reach it through DNS rebinding).

Example:
    ui = UIServer(("127.0.0.1", 8501), ui_config("t2i", 64, "shapes"), port=8080)
    ui.start()      # http://127.0.0.1:8080/
    ...
    ui.stop()
"""

import http.client
import http.server
import json
import logging
import os
import re
import threading
from typing import Dict, Optional, Tuple

from tf_t2i.serving import rest

logger = logging.getLogger("tf_t2i.serve")

UI_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ui")
CONFIG_PATH = "/ui-config.json"
# URL path -> (file in UI_DIR, Content-Type). Nothing else is ever read from disk.
STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
# The page loads nothing from elsewhere; images arrive as data: URLs of the PNG bytes.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                           "form-action 'none'; frame-ancestors 'none'")
# Only TF Serving's model API is forwarded (not its monitoring or anything else).
_PROXY_PATH_RE = re.compile(r"^/v1/models/[A-Za-z0-9._~%:/@+=-]*$")
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
# Generation of a full batch on a CPU can take minutes.
DEFAULT_PROXY_TIMEOUT_S = 600.0

# Captions of each dataset's style, shown as examples on the page.
EXAMPLE_CAPTIONS = {
    "shapes": ("a large red circle in the center",
               "a small blue square on the left",
               "a green triangle at the top",
               "a big yellow star on the right",
               "a purple cross at the bottom and a small white diamond at the top"),
    "cub": ("this bird has a red crown, a short black beak and white wings",
            "a small yellow bird with black wings and a white belly",
            "this bird is blue with a long pointed beak and a grey breast",
            "a brown bird with a spotted chest and a short tail"),
    "coco": ("a man riding a wave on top of a surfboard",
             "a plate of food with broccoli and rice",
             "a red double decker bus driving down a city street",
             "a cat sleeping on a wooden bench"),
}
GENERIC_EXAMPLE_CAPTIONS = ("a large red circle in the center",
                            "a small yellow bird with black wings")


def dataset_of_export(version_dir: str) -> Optional[str]:
    """The dataset ("shapes", "cub", "coco") an export was trained on, or None.

    Read from the export's `assets.extra/t2i_export.json`: its `dataset` field; else
    the `data.dataset` of the run's config.json it names (when that run is still
    there); else the dataset its experiment name starts with.
    """
    path = os.path.join(version_dir, "assets.extra", "t2i_export.json")
    try:
        with open(path) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    if info.get("dataset") in EXAMPLE_CAPTIONS:
        return info["dataset"]
    model_dir = info.get("model_dir")
    if isinstance(model_dir, str):
        try:
            with open(os.path.join(model_dir, "config.json")) as f:
                dataset = json.load(f).get("data", {}).get("dataset")
            if dataset in EXAMPLE_CAPTIONS:
                return dataset
        except (OSError, ValueError, AttributeError):
            pass
    experiment = str(info.get("experiment", "")).lower()
    for dataset in EXAMPLE_CAPTIONS:
        if experiment.startswith(dataset):
            return dataset
    return None


def ui_config(model_name: str, max_batch_size: Optional[int],
              dataset: Optional[str] = None) -> Dict:
    """What the page reads from `/ui-config.json` (every field optional for the page)."""
    return {"model": model_name, "max_batch_size": max_batch_size, "dataset": dataset,
            "example_captions": list(EXAMPLE_CAPTIONS.get(dataset, GENERIC_EXAMPLE_CAPTIONS))}


def ui_config_for_model(model, max_batch_size: int) -> Dict:
    """The page's config for a `servable_manager.ServedModel` (its newest loaded version)."""
    available = model.available()
    dataset = None
    if available:
        dataset = dataset_of_export(os.path.join(model.base_path, str(max(available))))
    return ui_config(model.name, max_batch_size, dataset)


def _read_static_files() -> Dict[str, Tuple[bytes, str]]:
    files = {}
    for url_path, (name, content_type) in STATIC_FILES.items():
        with open(os.path.join(UI_DIR, name), "rb") as f:
            files[url_path] = (f.read(), content_type)
    return files


class _Handler(http.server.BaseHTTPRequestHandler):
    """One request: a static file, the config, or a forwarded API call."""

    protocol_version = "HTTP/1.1"
    server_version = "tf_t2i-ui"

    def log_message(self, fmt, *args):  # quieter than stderr per request
        logger.debug("ui: " + fmt, *args)

    def _send(self, status: int, data: bytes, content_type: str, page: bool = False):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        if page:
            self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_error_json(self, status: int, message: str):
        # The body may be unread: never reuse this connection for another request.
        self.close_connection = True
        self._send(status, json.dumps({"error": message}).encode("utf-8"), "application/json")

    def _host_allowed(self) -> bool:
        if self.server.host not in _LOOPBACK_NAMES:
            return True  # exposed on purpose (--host): any name may reach it
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in _LOOPBACK_NAMES

    def _handle(self):
        if not self._host_allowed():
            self._send_error_json(403, "Host not allowed: use http://127.0.0.1 or "
                                       "http://localhost to reach this page.")
            return
        path = self.path.split("?", 1)[0]
        if path.startswith("/v1/"):
            self._proxy(path)
        elif self.command not in ("GET", "HEAD"):
            self._send_error_json(405, f"{self.command} is not allowed on {path}")
        elif path in self.server.files:
            data, content_type = self.server.files[path]
            self._send(200, data, content_type, page=True)
        elif path == CONFIG_PATH:
            self._send(200, self.server.config_json, "application/json")
        else:
            self._send_error_json(404, f"Not found: {path}")

    def _read_body(self) -> Optional[bytes]:
        """The request body, or None after answering with an error."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._send_error_json(411, "A Content-Length is required.")
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._send_error_json(400, "Bad Content-Length header")
            return None
        limit = self.server.max_body_bytes
        if length < 0 or length > limit:
            self._send_error_json(413, f"Request body of {length} bytes is larger than the "
                                       f"limit of {limit} bytes.")
            return None
        return self.rfile.read(length)

    def _proxy(self, path: str):
        if not _PROXY_PATH_RE.match(path):
            self._send_error_json(404, f"Not found: {path}")
            return
        if self.command not in ("GET", "POST"):
            self._send_error_json(405, f"{self.command} is not allowed on {path}")
            return
        body = self._read_body() if self.command == "POST" else b""
        if body is None:
            return
        host, port = self.server.rest_address
        connection = http.client.HTTPConnection(host, port, timeout=self.server.proxy_timeout_s)
        try:
            headers = {"Content-Type": self.headers.get("Content-Type") or "application/json"}
            connection.request(self.command, path, body=body if self.command == "POST" else None,
                               headers=headers)
            response = connection.getresponse()
            data = response.read()
            content_type = response.getheader("Content-Type") or "application/json"
        except OSError as e:  # refused, reset, timed out
            self._send_error_json(502, f"The model server at {host}:{port} is not reachable "
                                       f"({type(e).__name__}: {e}).")
            return
        except http.client.HTTPException as e:
            self._send_error_json(502, f"The model server at {host}:{port} answered with a "
                                       f"broken response ({type(e).__name__}).")
            return
        finally:
            connection.close()
        self._send(response.status, data, content_type)

    def do_GET(self):  # pylint: disable=invalid-name
        self._handle()

    def do_HEAD(self):  # pylint: disable=invalid-name
        self._handle()

    def do_POST(self):  # pylint: disable=invalid-name
        self._handle()

    def do_PUT(self):  # pylint: disable=invalid-name
        self._handle()

    def do_DELETE(self):  # pylint: disable=invalid-name
        self._handle()


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False


class UIServer:
    """The page, its config and a proxy of `/v1/models/...` to a REST server.

    Args:
      rest_address: (host, port) of the TF Serving REST API to forward to.
      config: what `/ui-config.json` answers (see `ui_config`).
      host: interface to bind; 127.0.0.1 keeps the page local.
      port: port to bind; 0 picks a free one (the return value of `start`).
      max_body_bytes: largest request body forwarded (the REST server's limit).
      proxy_timeout_s: how long one forwarded request may take.
    """

    def __init__(self, rest_address: Tuple[str, int], config: Dict, host: str = "127.0.0.1",
                 port: int = 0, max_body_bytes: int = rest.MAX_BODY_BYTES,
                 proxy_timeout_s: float = DEFAULT_PROXY_TIMEOUT_S):
        self.rest_address = (rest_address[0], int(rest_address[1]))
        self.config = dict(config)
        self.host = host
        self.port = port
        self.max_body_bytes = int(max_body_bytes)
        self.proxy_timeout_s = proxy_timeout_s
        self.bound_port: Optional[int] = None
        self._server = None
        self._thread = None

    def start(self) -> int:
        """Binds and serves in a background thread; returns the bound port.

        Raises:
          OSError: the port cannot be bound, or a page file is missing (a broken install).
        """
        files = _read_static_files()
        try:
            server = _HTTPServer((self.host, self.port), _Handler)
        except OSError as e:
            raise OSError(f"Could not bind the UI to {self.host}:{self.port}: {e}") from e
        server.host = self.host
        server.files = files
        server.config_json = json.dumps(self.config).encode("utf-8")
        server.rest_address = self.rest_address
        server.max_body_bytes = self.max_body_bytes
        server.proxy_timeout_s = self.proxy_timeout_s
        self._server = server
        self.bound_port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, name="ui", daemon=True)
        self._thread.start()
        return self.bound_port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.bound_port}/"

    def stop(self) -> None:
        """Stops listening (requests in flight are cut off)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
