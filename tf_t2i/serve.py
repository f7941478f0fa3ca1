r"""Serves exported models with TF Serving's gRPC API (and optionally its REST API).

  python -m tf_t2i.serve --model_base=export/t2i --port=8500
  python -m tf_t2i.serve --model_base=export/t2i --model_name=t2i --port=8500 \
      --rest_port=8501 --version_labels=stable=1
  python -m tf_t2i.export --model_dir=runs/ssagan --write_model_config=models.local.config
  python -m tf_t2i.serve --model_config_file=models.local.config --port=8500
  python -m tf_t2i.serve --model_base=export/t2i --rest_port=8501 --ui_port=8080

Loads the latest version under --model_base (or the versions a TF Serving
--model_config_file names), replays each version's warmup requests, then listens
on --host (127.0.0.1 by default). New versions appearing under the base path are
loaded within --file_system_poll_wait_seconds. Stop it with Ctrl-C or SIGTERM.
--port=0 picks a free port; the "listening" line says which. --ui_port serves a page to
try the model in a browser (http://127.0.0.1:8080/), which calls the REST API.
"""

import sys

# Load exports exactly as stock TF Serving would: a process that imported
# tensorflow-text or keras-hub registers their ops, and would then accept exports the
# real server refuses. Keras is not needed to serve either. Blocked before anything
# imports TensorFlow (which would otherwise import Keras itself).
for _name in ("keras", "tf_keras", "keras_hub", "tensorflow_text"):
    if _name not in sys.modules:
        sys.modules[_name] = None

import logging  # pylint: disable=g-import-not-at-top,wrong-import-position
import os  # pylint: disable=g-import-not-at-top,wrong-import-position
import signal  # pylint: disable=g-import-not-at-top,wrong-import-position
import threading  # pylint: disable=g-import-not-at-top,wrong-import-position

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from tf_t2i import console  # pylint: disable=g-import-not-at-top,wrong-import-position
from tf_t2i import flags as t2i_flags  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_string("model_base", None, "Base path of the model: its numeric "
                    "subdirectories are versions (what tf_t2i.export writes).")
flags.DEFINE_string("model_name", "t2i", "Name clients use for --model_base's model.")
flags.DEFINE_string("model_config_file", None, "A TF Serving ModelServerConfig text file "
                    "(serving/models.config format) instead of --model_base.")
flags.DEFINE_enum("model_version_policy", "latest", ["latest", "all"], "Versions of "
                  "--model_base to serve: the latest one, or all.")
flags.DEFINE_list("version_labels", [], "Labels for --model_base's versions, e.g. "
                  "stable=3,canary=4 (each must be a served version).")
flags.DEFINE_string("host", "127.0.0.1", "Interface to bind (0.0.0.0 exposes the server).")
flags.DEFINE_integer("port", 8500, "gRPC port (0: any free port).", lower_bound=0)
flags.DEFINE_integer("rest_port", None, "REST port (TF Serving's --rest_api_port); off "
                     "unless given (0: any free port).", lower_bound=0)
flags.DEFINE_integer("ui_port", None, "Port of a web page to try the model in a browser "
                     "(needs --rest_port; the page calls the REST API); off unless given "
                     "(0: any free port).", lower_bound=0)
flags.DEFINE_integer("max_batch_size", 64, "Largest dimension 0 of a request; above it "
                     "requests get INVALID_ARGUMENT.", lower_bound=1)
flags.DEFINE_integer("num_threads", 16, "Requests handled concurrently.", lower_bound=1)
flags.DEFINE_float("file_system_poll_wait_seconds", 1.0, "Seconds between scans of the "
                   "base paths for new versions (<= 0: only at start).")
flags.DEFINE_integer("num_request_iterations_for_warmup", 1, "Times each warmup record is "
                     "replayed at load.", lower_bound=1)
flags.DEFINE_string("monitoring_config_file", None, "TF Serving monitoring config "
                    "(serving/monitoring.config): Prometheus metrics on the REST port.")
flags.DEFINE_boolean("serialize_as_tensor_content", False, "Answer with tensor_content "
                     "instead of typed fields (TF Serving's default is typed fields).")


def _labels(values):
    labels = {}
    for item in values:
        name, sep, version = item.partition("=")
        if not sep or not name or not version.isdigit():
            t2i_flags.fail(f"--version_labels entries look like stable=3, got {item!r}.")
        labels[name] = int(version)
    return labels


class _ServerLogFormatter(logging.Formatter):
    """`tf_t2i.serve: <message>`, with `warning: ` or `error: ` before a message of
    those levels."""

    def format(self, record):
        level = "" if record.levelno <= logging.INFO else f"{record.levelname.lower()}: "
        text = f"tf_t2i.serve: {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _start_ui(server, model):
    """The page (tf_t2i.serving.ui_server) beside the REST API it forwards to."""
    from tf_t2i.serving import ui_server  # pylint: disable=g-import-not-at-top
    # Bound to every interface, the REST API is still reachable on loopback.
    rest_host = "127.0.0.1" if FLAGS.host in ("0.0.0.0", "") else FLAGS.host
    ui = ui_server.UIServer((rest_host, server.bound_rest_port),
                            ui_server.ui_config_for_model(model, FLAGS.max_batch_size),
                            host=FLAGS.host, port=FLAGS.ui_port)
    try:
        ui.start()
    except OSError as e:
        server.stop()
        t2i_flags.fail(str(e), status=1)
    return ui


def main(argv):
    if len(argv) > 1:
        t2i_flags.fail(f"Unexpected arguments: {argv[1:]}")
    if bool(FLAGS.model_base) == bool(FLAGS.model_config_file):
        t2i_flags.fail("Give exactly one of --model_base and --model_config_file.")
    labels = _labels(FLAGS.version_labels)
    if labels and FLAGS.model_config_file:
        t2i_flags.fail("--version_labels applies to --model_base; put the labels of a "
                       "--model_config_file in that file (version_labels).")
    if FLAGS.model_base and not os.path.isdir(FLAGS.model_base):
        t2i_flags.fail(f"--model_base={FLAGS.model_base} is not a directory (export a model "
                       "first: python -m tf_t2i.export).")
    if FLAGS.model_config_file and not os.path.isfile(FLAGS.model_config_file):
        t2i_flags.fail(f"--model_config_file={FLAGS.model_config_file} does not exist.")
    if FLAGS.ui_port is not None and FLAGS.rest_port is None:
        t2i_flags.fail("--ui_port needs --rest_port (the page talks to the model through "
                       "the REST API).")
    metrics_path = None
    if FLAGS.monitoring_config_file:
        if FLAGS.rest_port is None:
            t2i_flags.fail("--monitoring_config_file needs --rest_port (metrics are served "
                           "over HTTP).")
        from tf_t2i.serving import metrics  # pylint: disable=g-import-not-at-top
        try:
            with open(FLAGS.monitoring_config_file) as f:
                enabled, path = metrics.parse_monitoring_config(f.read())
        except (OSError, ValueError) as e:
            t2i_flags.fail(f"Bad --monitoring_config_file: {e}")
        metrics_path = path if enabled else None
    what = (f"model {FLAGS.model_name!r} from {os.path.abspath(FLAGS.model_base)}"
            if FLAGS.model_base else f"the models of {FLAGS.model_config_file}")
    print(f"Serving {what} on {FLAGS.host}:{FLAGS.port} (gRPC)"
          + (f" and {FLAGS.host}:{FLAGS.rest_port} (REST)" if FLAGS.rest_port is not None
             else "")
          + (f", page on {FLAGS.host}:{FLAGS.ui_port}" if FLAGS.ui_port is not None else ""),
          flush=True)
    if FLAGS.dry_run:
        return

    # The server's own log (versions loaded or refused, what is served) is its output:
    # INFO whatever level the console set for the libraries, on stdout in order with
    # the lines printed here, prefixed like them (not absl's "I1202 12:00:00 file.py:N]").
    server_log = logging.getLogger("tf_t2i.serve")
    server_log.setLevel(logging.INFO)
    server_log.propagate = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_ServerLogFormatter())
    server_log.addHandler(handler)
    console.import_tensorflow_quietly()  # TF start-up lines held back
    from tf_t2i.serving import server as server_lib  # pylint: disable=g-import-not-at-top
    from tf_t2i.serving import errors  # pylint: disable=g-import-not-at-top
    from tf_t2i.serving import model_config  # pylint: disable=g-import-not-at-top
    from tf_t2i.serving import servable_manager  # pylint: disable=g-import-not-at-top
    from tf_t2i.serving import version_policy  # pylint: disable=g-import-not-at-top
    if FLAGS.model_config_file:
        try:
            models = model_config.models_from_config_file(
                FLAGS.model_config_file, FLAGS.max_batch_size,
                FLAGS.num_request_iterations_for_warmup)
        except Exception as e:  # pylint: disable=broad-except
            t2i_flags.fail(f"Bad --model_config_file: {e}".replace("\n", " "))
    else:
        policy = version_policy.VersionPolicy(FLAGS.model_version_policy)
        models = [servable_manager.ServedModel(FLAGS.model_name, FLAGS.model_base, policy, labels,
                                               FLAGS.max_batch_size,
                                               FLAGS.num_request_iterations_for_warmup)]
    server = server_lib.ModelServer(
        servable_manager.ServableManager(models), host=FLAGS.host, port=FLAGS.port,
        rest_port=FLAGS.rest_port, max_batch_size=FLAGS.max_batch_size,
        max_workers=FLAGS.num_threads, poll_interval_s=FLAGS.file_system_poll_wait_seconds,
        as_tensor_content=FLAGS.serialize_as_tensor_content, metrics_path=metrics_path)
    try:
        port = server.start()
    except errors.ServingError as e:
        t2i_flags.fail(f"Could not load the models: {e}".replace("\n", " "), status=1)
    except OSError as e:
        t2i_flags.fail(str(e), status=1)

    ui = None
    if FLAGS.ui_port is not None:
        ui = _start_ui(server, models[0])
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    extra = server_lib.extra_op_modules_loaded()
    keras = "imported" if sys.modules.get("keras") is not None else "not imported"
    print(f"tf_t2i.serve: op libraries: "
          f"{'TensorFlow + ' + ', '.join(extra) if extra else 'plain TensorFlow'}; keras {keras}",
          flush=True)
    loaded = {m.name: sorted(m.available()) for m in models}
    rest = f", REST on {FLAGS.host}:{server.bound_rest_port}" if server.bound_rest_port else ""
    rest += f", page on {ui.url}" if ui else ""
    # Tests and scripts wait for this exact line.
    print(f"tf_t2i.serve: listening on {FLAGS.host}:{port} (gRPC){rest}; versions {loaded}",
          flush=True)
    while not stopping.wait(0.5):
        pass
    print("tf_t2i.serve: stopping", flush=True)
    if ui:
        ui.stop()
    server.stop()


if __name__ == "__main__":
    t2i_flags.define_flags(with_config=False, with_model_dir=False)
    app.run(main, flags_parser=t2i_flags.parse_flags_or_fail)
