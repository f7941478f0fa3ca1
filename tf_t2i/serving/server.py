"""A local model server that speaks TF Serving's gRPC API (and optionally its REST API).

`tensorflow_model_server` cannot be installed everywhere (no pip wheel); this server is
the stand-in for development and tests. It implements, over the same exports:

* `tensorflow.serving.PredictionService`: `Predict` and `GetModelMetadata`
  (`Classify`, `Regress`, `MultiInference` answer UNIMPLEMENTED: the t2i exports have
  predict signatures only);
* `tensorflow.serving.ModelService`: `GetModelStatus`;
* optionally TF Serving's REST API (`tf_t2i.serving.rest`).

It loads versions with `tf.saved_model.load` in a process that must not have imported
tensorflow-text or keras-hub (`tf_t2i.serve` blocks them), so that an export using an
op the stock server lacks fails here too. Clients written against it (the
`tensorflow-serving-api` stubs) work unchanged against a real TF Serving.

Example:
    manager = servable_manager.ServableManager([servable_manager.ServedModel("t2i", "export/t2i")])
    server = ModelServer(manager, port=0)
    port = server.start()          # loads, warms up, then listens on 127.0.0.1:port
    ...
    server.stop()
"""

import concurrent.futures
import logging
import sys
import threading
from typing import Optional

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tf_t2i.serving import errors
from tf_t2i.serving import servable_manager

logger = logging.getLogger("tf_t2i.serve")

# TF Serving sets both limits to INT_MAX: a batch of 256 px images as int_val exceeds
# gRPC's default 4 MB receive limit.
_MAX_MESSAGE_BYTES = 2 ** 31 - 1
# Modules whose presence would let this server load ops the stock server lacks.
EXTRA_OP_MODULES = ("tensorflow_text", "keras_hub", "tensorflow_decision_forests")


def extra_op_modules_loaded():
    """Names of op-registering libraries imported in this process (should be empty)."""
    return [name for name in EXTRA_OP_MODULES if sys.modules.get(name) is not None]


def _abort(context, error: errors.ServingError):
    context.abort(error.code, error.message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService over a ServableManager."""

    def __init__(self, manager: servable_manager.ServableManager, max_batch_size: int,
                 as_tensor_content: bool = False, metrics_path: Optional[str] = None):
        self.manager = manager
        self.metrics_path = metrics_path
        self.max_batch_size = max_batch_size
        self.as_tensor_content = as_tensor_content

    def Predict(self, request, context):
        try:
            return self.manager.predict(request, self.max_batch_size, self.as_tensor_content)
        except errors.ServingError as e:
            _abort(context, e)
        except Exception as e:  # pylint: disable=broad-except
            # Never let one request take the server down; report it as TF Serving
            # reports an unexpected session error.
            logger.exception("Predict failed")
            _abort(context, errors.ServingError(grpc.StatusCode.INTERNAL,
                                                f"{type(e).__name__}: {e}"))

    def GetModelMetadata(self, request, context):
        try:
            return self.manager.get_model_metadata(request)
        except errors.ServingError as e:
            _abort(context, e)

    def Classify(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "Classify is not supported: the exports have predict signatures only.")

    def Regress(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "Regress is not supported: the exports have predict signatures only.")

    def MultiInference(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "MultiInference is not supported: the exports have predict signatures "
                      "only.")


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService: GetModelStatus (config reload is not supported)."""

    def __init__(self, manager: servable_manager.ServableManager):
        self.manager = manager

    def GetModelStatus(self, request, context):
        try:
            return self.manager.get_model_status(request)
        except errors.ServingError as e:
            _abort(context, e)

    def HandleReloadConfigRequest(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "HandleReloadConfigRequest is not supported by tf_t2i.serve; restart it "
                      "with the new --model_config_file.")


class ModelServer:
    """gRPC (and optional REST) front end over a ServableManager.

    Args:
      manager: the models to serve.
      host: interface to bind; 127.0.0.1 keeps the server local.
      port: gRPC port; 0 picks a free one (see the return value of `start`).
      rest_port: REST port, None for no REST endpoint; 0 picks a free one.
      max_batch_size: requests with a larger dimension 0 get INVALID_ARGUMENT.
      max_workers: concurrent requests handled.
      poll_interval_s: seconds between scans of the base paths for new versions; <= 0
        scans only at start.
      as_tensor_content: answer with `tensor_content` instead of typed fields.
      metrics_path: REST path of the Prometheus metrics (needs rest_port); None: none.
    """

    def __init__(self, manager: servable_manager.ServableManager, host: str = "127.0.0.1",
                 port: int = 8500, rest_port: Optional[int] = None, max_batch_size: int = 64,
                 max_workers: int = 16, poll_interval_s: float = 1.0,
                 as_tensor_content: bool = False, metrics_path: Optional[str] = None):
        self.manager = manager
        self.metrics_path = metrics_path
        self.host = host
        self.port = port
        self.rest_port = rest_port
        self.max_batch_size = max_batch_size
        self.max_workers = max_workers
        self.poll_interval_s = poll_interval_s
        self.as_tensor_content = as_tensor_content
        self._grpc = None
        self._rest = None
        self._rest_thread = None
        self.bound_port = None
        self.bound_rest_port = None

    def load(self) -> None:
        """Loads every model's versions (with warmup) and checks the version labels.

        Raises:
          ServingError: a version failed to load, or a label names no available version
            (TF Serving refuses to start in both cases).
        """
        extra = extra_op_modules_loaded()
        if extra:
            logger.warning("%s imported in this process: exports using their ops load here "
                           "but not in a stock tensorflow_model_server.", ", ".join(extra))
        load_errors = self.manager.poll()
        if load_errors:
            raise load_errors[0]
        self.manager.check_labels()

    def start(self) -> int:
        """Loads the models, then listens. Returns the bound gRPC port."""
        self.load()
        options = [("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                   ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                   # Fail on a port in use instead of silently sharing it.
                   ("grpc.so_reuseport", 0)]
        self._grpc = grpc.server(
            concurrent.futures.ThreadPoolExecutor(max_workers=self.max_workers,
                                                  thread_name_prefix="grpc"),
            options=options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(self.manager, self.max_batch_size, self.as_tensor_content),
            self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelServicer(self.manager), self._grpc)
        address = f"{self.host}:{self.port}"
        try:
            self.bound_port = self._grpc.add_insecure_port(address)
        except RuntimeError as e:
            raise OSError(f"Could not bind gRPC to {address}: {e}") from e
        if not self.bound_port:
            raise OSError(f"Could not bind gRPC to {address} (in use?).")
        if self.rest_port is not None:
            from tf_t2i.serving import rest  # pylint: disable=g-import-not-at-top
            self._rest = rest.make_http_server(self.manager, self.host, self.rest_port,
                                               self.max_batch_size, self.metrics_path)
            self.bound_rest_port = self._rest.server_address[1]
            self._rest_thread = threading.Thread(target=self._rest.serve_forever,
                                                 name="rest", daemon=True)
            self._rest_thread.start()
        self._grpc.start()
        self.manager.start_polling(self.poll_interval_s)
        return self.bound_port

    def stop(self, grace_s: float = 2.0) -> None:
        """Stops polling and both endpoints, letting requests in flight finish."""
        self.manager.stop()
        if self._rest is not None:
            self._rest.shutdown()
            self._rest.server_close()
            self._rest = None
        if self._grpc is not None:
            self._grpc.stop(grace_s).wait()
            self._grpc = None

    def wait(self, timeout_s: Optional[float] = None) -> bool:
        """Blocks until the gRPC server terminates (or the timeout passes)."""
        return self._grpc.wait_for_termination(timeout_s) if self._grpc else True
