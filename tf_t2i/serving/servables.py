"""Model versions on disk -> loaded SavedModels, and TF Serving's request semantics over them.

The server-independent core of `tf_t2i.serve`: which versions of which model are
loaded (version policy, labels, polling of the base path), and Predict,
GetModelMetadata and GetModelStatus as pure functions from request protos to response
protos, raising `ServingError` with TF Serving's status codes and messages (copied
from tensorflow_serving: predict_util.cc, saved_model/util.cc, server_core.cc,
basic_manager.cc, get_model_status_impl.cc, get_model_metadata_impl.cc and the
batching scheduler).

Dependencies are TensorFlow and the tensorflow-serving-api protos only: this module
must load exactly what the stock server loads, so it never imports Keras, keras-hub,
tensorflow-text or tf_t2i's model code.
"""

import logging
import os
import re
import threading
import time
from typing import Dict, List, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.apis import status_pb2
from tensorflow_serving.config import model_server_config_pb2

from tf_t2i.serving import metrics as metrics_lib

logger = logging.getLogger("tf_t2i.serve")

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHODS = ("tensorflow/serving/predict", "tensorflow/serving/classify",
                   "tensorflow/serving/regress")
SIGNATURE_DEF_FIELD = "signature_def"
WARMUP_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # saved_model_warmup_util.cc kMaxNumRecords
SERVE_TAG = "serve"
_VERSION_RE = re.compile(r"^[0-9]+$")
_STATE = get_model_status_pb2.ModelVersionStatus.State
_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request failed with a gRPC status code and TF Serving's message."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self):
        return f"{self.code.name}: {self.message}"


def _invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _from_tf_error(e: tf.errors.OpError) -> ServingError:
    # A SavedModel function's error starts with Python-side boilerplate ("Graph
    # execution error: Detected at node ... <stack traces unavailable>"); TF Serving's
    # session error is the kernel message, so keep that part.
    message = e.message
    marker = "<stack traces unavailable>"
    if marker in message:
        message = message.split(marker, 1)[1]
    message = message.strip()
    return ServingError(_GRPC_CODES.get(e.error_code, grpc.StatusCode.UNKNOWN), message)


def _status_proto(error: Optional[ServingError]) -> status_pb2.StatusProto:
    if error is None:
        return status_pb2.StatusProto(error_code=0, error_message="")
    return status_pb2.StatusProto(error_code=error.code.value[0], error_message=error.message)


# --------------------------------------------------------------------------- tensors

_PROTO_FIELDS = {
    tf.float32: "float_val", tf.float64: "double_val", tf.int32: "int_val",
    tf.int16: "int_val", tf.int8: "int_val", tf.uint8: "int_val", tf.uint16: "int_val",
    tf.int64: "int64_val", tf.uint32: "uint32_val", tf.uint64: "uint64_val",
    tf.bool: "bool_val", tf.string: "string_val",
}


def tensor_to_proto(array, as_tensor_content: bool = False) -> tensor_pb2.TensorProto:
    """numpy/Tensor -> TensorProto, in typed fields (`int_val` for uint8) as TF Serving does.

    TF Serving answers with `Tensor::AsProtoField` (typed repeated fields) unless it runs
    with tensor_content serialization; clients must decode with `tf.make_ndarray`.
    """
    dtype = tf.as_dtype(array.dtype)
    array = np.asarray(array)
    field = _PROTO_FIELDS.get(dtype)
    if as_tensor_content or field is None:
        return tf.make_tensor_proto(array, dtype=dtype)
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum)
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    values = array.ravel()
    # tolist() turns numpy scalars into Python ones in C, far faster than letting the
    # repeated field convert element by element.
    getattr(proto, field).extend(values.tolist())
    return proto


def _shape_string(dims: Sequence[int]) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"


# --------------------------------------------------------------------------- versions

class ServableVersion:
    """One version directory of a model: its SavedModel, signatures and load state."""

    def __init__(self, name: str, version: int, path: str):
        self.name = name
        self.version = version
        self.path = path
        self.state = _STATE.START
        self.error: Optional[ServingError] = None
        self.signature_defs: Dict = {}
        # (loaded SavedModel, its signature functions), replaced as a whole: a request
        # holds the pair, so an unload in the meantime cannot free what it runs.
        self._runtime = (None, {})

    def load(self, max_batch_size: int, warmup_iterations: int = 1) -> None:
        """Loads the SavedModel and replays its warmup records; raises ServingError."""
        self.state = _STATE.LOADING
        started = time.time()
        try:
            self.signature_defs = _read_signature_defs(self.path)
            loaded = tf.saved_model.load(self.path, tags=[SERVE_TAG])
            self._runtime = (loaded, dict(loaded.signatures))
            records = replay_warmup(self, max_batch_size, warmup_iterations)
        except ServingError as e:
            self._fail(e)
            raise
        except Exception as e:  # pylint: disable=broad-except
            # Anything a bad export raises (unregistered op, corrupt variables) makes the
            # version END with the reason, as TF Serving's loader does.
            self._fail(ServingError(grpc.StatusCode.UNKNOWN, f"{type(e).__name__}: {e}"))
            raise self.error from e
        self.state = _STATE.AVAILABLE
        logger.info("Loaded %s version %d from %s in %.1fs (%d warmup records).", self.name,
                    self.version, self.path, time.time() - started, records)

    def _fail(self, error: ServingError):
        self.state = _STATE.END
        self.error = error
        self._runtime = (None, {})

    def unload(self) -> None:
        self.state = _STATE.UNLOADING
        self._runtime = (None, {})
        self.state = _STATE.END
        logger.info("Unloaded %s version %d.", self.name, self.version)

    def predict(self, request: predict_pb2.PredictRequest, max_batch_size: int,
                as_tensor_content: bool = False) -> predict_pb2.PredictResponse:
        """TF Serving's RunPredict: validate the request against the SignatureDef, run it."""
        runtime = self._runtime  # kept for the whole request (see __init__)
        functions = runtime[1]
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature = self.signature_defs.get(signature_name)
        if signature is None:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               f'Serving signature key "{signature_name}" not found.')
        if signature.method_name not in PREDICT_METHODS:
            raise ServingError(
                grpc.StatusCode.INTERNAL,
                "Expected prediction signature method_name to be one of {"
                f"{', '.join(PREDICT_METHODS)}}}. Was: {signature.method_name}")
        inputs = _input_values(signature, request)
        aliases = _output_aliases(signature, request.output_filter)
        feeds = _checked_feeds(signature, inputs, max_batch_size)
        function = functions.get(signature_name)
        if function is None:
            raise ServingError(grpc.StatusCode.UNAVAILABLE,
                               f"Version {self.version} of model {self.name} was unloaded; "
                               "retry to reach the current version.")
        try:
            outputs = function(**feeds)
        except tf.errors.OpError as e:
            raise _from_tf_error(e) from e
        except (TypeError, ValueError) as e:
            raise _invalid(str(e)) from e
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.name
        response.model_spec.version.value = self.version
        response.model_spec.signature_name = signature_name
        for alias in aliases:
            response.outputs[alias].CopyFrom(
                tensor_to_proto(outputs[alias].numpy(), as_tensor_content))
        return response


def _read_signature_defs(path: str) -> Dict:
    pb = os.path.join(path, "saved_model.pb")
    if not os.path.exists(pb):
        raise ServingError(grpc.StatusCode.NOT_FOUND,
                           f"Could not find SavedModel .pb or .pbtxt at supplied export "
                           f"directory path: {path}")
    saved_model = saved_model_pb2.SavedModel()
    with open(pb, "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ServingError(grpc.StatusCode.NOT_FOUND,
                       f"Could not find meta graph def matching supplied tags: {{ {SERVE_TAG} }}. "
                       "To inspect available tag-sets in the SavedModel, please use the "
                       "SavedModel CLI: `saved_model_cli`")


def _input_values(signature, request) -> Dict[str, tensor_pb2.TensorProto]:
    """predict_util.cc VerifyRequestInputsSize + saved_model/util.cc GetInputValues."""
    request_inputs = set(request.inputs.keys())
    signature_inputs = set(signature.inputs.keys())
    n_req, n_sig = len(request_inputs), len(signature_inputs)
    if n_req > n_sig or (n_req < n_sig and not signature.defaults):
        join = lambda keys: ",".join(sorted(keys))
        raise _invalid(
            f"input size does not match signature: {n_req}!={n_sig} "
            f"len({{{join(request_inputs)}}}) != len({{{join(signature_inputs)}}}). Sent extra: "
            f"{{{join(request_inputs - signature_inputs)}}}. Missing but required: "
            f"{{{join(signature_inputs - request_inputs)}}}.")
    values, seen = {}, set()
    for alias in sorted(signature.inputs):
        if alias in request.inputs:
            values[alias] = request.inputs[alias]
            seen.add(alias)
        elif alias in signature.defaults:
            values[alias] = signature.defaults[alias]
        else:
            raise _invalid(
                f"Signature input alias: {alias}(feed name: {signature.inputs[alias].name}) "
                "not found in request and no default value provided. Inputs expected to be "
                f"in the request {{{','.join(sorted(request_inputs))}}}, or default input "
                f"alias set: {','.join(sorted(signature.defaults))}")
    if request_inputs and seen != request_inputs:
        raise _invalid(f"Inputs contains invalid name. Used request inputs: "
                       f"{','.join(sorted(seen))}, request input: "
                       f"{','.join(sorted(request_inputs))}")
    return values


def _output_aliases(signature, output_filter) -> List[str]:
    """predict_util.cc PreProcessPrediction: the outputs to return."""
    aliases = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise _invalid(f"output tensor alias not found in signature: {alias} Outputs "
                           f"expected to be in the set {{{','.join(sorted(signature.outputs))}}}.")
        if alias in aliases:
            raise _invalid(f"duplicate output tensor alias: {alias}")
        aliases.append(alias)
    return aliases or sorted(signature.outputs)


def _checked_feeds(signature, inputs, max_batch_size: int) -> Dict[str, tf.Tensor]:
    """Parses the input protos; checks dtype, shape and batch size against the signature.

    The stock server hands these checks to the session (dtype: the call frame; shape:
    the first op that cares; batch size: the batch scheduler); they are done up front
    here with the same status codes.
    """
    feeds = {}
    for index, alias in enumerate(sorted(inputs)):
        proto = inputs[alias]
        info = signature.inputs[alias]
        try:
            array = tf.make_ndarray(proto)
        except Exception as e:  # pylint: disable=broad-except
            raise _invalid(f"tensor parsing error: {alias}") from e
        want = tf.dtypes.as_dtype(info.dtype)
        got = tf.dtypes.as_dtype(proto.dtype)
        if got != want:
            raise _invalid(f"Expects arg[{index}] to be {want.name} but {got.name} is provided")
        if not info.tensor_shape.unknown_rank:
            dims = [d.size for d in info.tensor_shape.dim]
            if len(dims) != array.ndim or any(d not in (-1, a) for d, a in zip(dims, array.shape)):
                raise _invalid(f"input '{alias}' has shape {_shape_string(array.shape)}, which "
                               f"is incompatible with the signature's {_shape_string(dims)}")
        if array.ndim and array.shape[0] > max_batch_size:
            raise _invalid(f"Task size {array.shape[0]} is larger than maximum input batch "
                           f"size {max_batch_size}")
        feeds[alias] = tf.constant(array, dtype=want)
    return feeds


def replay_warmup(servable: ServableVersion, max_batch_size: int, iterations: int = 1) -> int:
    """Runs `assets.extra/tf_serving_warmup_requests` against a loading version.

    Like TF Serving, a record that fails fails the load, at most 1000 records are read,
    and only PredictLog records are supported here (no Classify/Regress signatures).
    """
    path = os.path.join(servable.path, WARMUP_PATH)
    if not os.path.exists(path):
        logger.info("No warmup data file found at %s", path)
        return 0
    count = 0
    for record in tf.data.TFRecordDataset(path):
        count += 1
        if count > MAX_WARMUP_RECORDS:
            raise _invalid(f"Number of warmup records exceeeds the maximum "
                           f"({MAX_WARMUP_RECORDS}) at {path}")
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        kind = log.WhichOneof("log_type")
        if kind != "predict_log":
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                               f"Unsupported log_type for warmup: {kind}")
        for _ in range(max(1, iterations)):
            servable.predict(log.predict_log.request, max_batch_size)
    return count


# --------------------------------------------------------------------------- models

class VersionPolicy:
    """ModelVersionPolicy: latest N (default 1), all, or specific versions."""

    def __init__(self, kind: str = "latest", num_versions: int = 1,
                 versions: Sequence[int] = ()):
        if kind not in ("latest", "all", "specific"):
            raise ValueError(f"Unknown version policy {kind!r}.")
        self.kind = kind
        self.num_versions = max(1, int(num_versions))
        self.versions = sorted(set(int(v) for v in versions))

    @classmethod
    def from_proto(cls, policy) -> "VersionPolicy":
        kind = policy.WhichOneof("policy_choice")
        if kind == "all":
            return cls("all")
        if kind == "specific":
            return cls("specific", versions=policy.specific.versions)
        if kind == "latest":
            return cls("latest", num_versions=policy.latest.num_versions or 1)
        return cls()

    def select(self, on_disk: Sequence[int]) -> List[int]:
        on_disk = sorted(on_disk)
        if self.kind == "all":
            return on_disk
        if self.kind == "specific":
            return [v for v in on_disk if v in self.versions]
        return on_disk[-self.num_versions:]


class ServedModel:
    """A model name over a base path: the versions the policy wants, loaded and polled."""

    def __init__(self, name: str, base_path: str, policy: Optional[VersionPolicy] = None,
                 labels: Optional[Dict[str, int]] = None, max_batch_size: int = 64,
                 warmup_iterations: int = 1):
        self.name = name
        self.base_path = os.path.abspath(base_path)
        self.policy = policy or VersionPolicy()
        self.labels = dict(labels or {})
        self.max_batch_size = max_batch_size
        self.warmup_iterations = warmup_iterations
        # Every version ever seen stays here (END after unloading or failing), as
        # TF Serving's ServableStateMonitor keeps reporting it.
        self.versions: Dict[int, ServableVersion] = {}
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._warned_empty = False

    def versions_on_disk(self) -> List[int]:
        if not os.path.isdir(self.base_path):
            return []
        # Only all-digit names are versions; the exporter's temporary directories
        # (".tmp-export-...") are invisible until renamed.
        return sorted(int(n) for n in os.listdir(self.base_path)
                      if _VERSION_RE.match(n) and os.path.isdir(os.path.join(self.base_path, n)))

    def poll(self) -> List[ServingError]:
        """Loads wanted versions not yet loaded, then unloads unwanted ones.

        New versions load before old ones unload, so some version stays available.
        Returns the load errors of this poll.
        """
        with self._poll_lock:
            on_disk = self.versions_on_disk()
            wanted = self.policy.select(on_disk)
            if not wanted and not self._warned_empty:
                logger.warning("No versions of servable %s found under base path %s",
                               self.name, self.base_path)
                self._warned_empty = True
            errors = []
            for version in wanted:
                if version in self.versions:
                    continue  # loaded, or failed already: a failed version is not retried
                servable = ServableVersion(self.name, version,
                                           os.path.join(self.base_path, str(version)))
                with self._lock:
                    self.versions[version] = servable
                try:
                    servable.load(self.max_batch_size, self.warmup_iterations)
                except ServingError as e:
                    logger.error("Failed to load %s version %d: %s", self.name, version, e)
                    errors.append(e)
            for version, servable in list(self.versions.items()):
                if version not in wanted and servable.state == _STATE.AVAILABLE:
                    servable.unload()
            return errors

    def available(self) -> Dict[int, ServableVersion]:
        with self._lock:
            return {v: s for v, s in self.versions.items() if s.state == _STATE.AVAILABLE}


class ServableManager:
    """All served models; resolves ModelSpecs as ServerCore does."""

    def __init__(self, models: Sequence[ServedModel]):
        self.models = {m.name: m for m in models}
        self.metrics = metrics_lib.RequestMetrics()
        self._stop = threading.Event()
        self._thread = None

    def poll(self) -> List[ServingError]:
        errors = []
        for model in self.models.values():
            errors.extend(model.poll())
        return errors

    def start_polling(self, interval_s: float) -> None:
        """Polls every interval_s seconds in a daemon thread (TF Serving's
        --file_system_poll_wait_seconds; <= 0 disables it)."""
        if interval_s <= 0 or self._thread is not None:
            return

        def loop():
            while not self._stop.wait(interval_s):
                try:
                    self.poll()
                except Exception:  # pylint: disable=broad-except
                    logger.exception("Polling the model base paths failed.")
        self._thread = threading.Thread(target=loop, name="version-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check_labels(self) -> None:
        """A label must name an available version (TF Serving refuses the config otherwise)."""
        for model in self.models.values():
            for label, version in model.labels.items():
                if version not in model.available():
                    raise ServingError(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"Request to assign label to version {version} of model {model.name}, "
                        "which is not currently available for inference")

    def resolve(self, model_spec) -> ServableVersion:
        """ServerCore::ServableRequestFromModelSpec + BasicManager's handle lookup."""
        name = model_spec.name
        if not name:
            raise _invalid("ModelSpec has no name specified.")
        model = self.models.get(name)
        choice = model_spec.WhichOneof("version_choice")
        if choice == "version_label":
            label = model_spec.version_label
            if model is None or label not in model.labels:
                raise _invalid(f"Unrecognized servable version label: {label}")
            version = model.labels[label]
        elif choice == "version":
            version = model_spec.version.value
        else:
            version = None
        available = model.available() if model else {}
        if version is None:
            if available:
                return available[max(available)]
            raise ServingError(grpc.StatusCode.NOT_FOUND,
                               f"Servable not found for request: Latest({name})")
        if version in available:
            return available[version]
        raise ServingError(grpc.StatusCode.NOT_FOUND,
                           f"Servable not found for request: Specific({name}, {version})")

    # ------------------------------------------------------------------- API methods

    def predict(self, request, max_batch_size: int, as_tensor_content: bool = False,
                entrypoint: str = "GRPC") -> predict_pb2.PredictResponse:
        """Predict on the version the ModelSpec resolves to, counted in `metrics`."""
        started = time.perf_counter()
        status = "OK"
        try:
            return self.resolve(request.model_spec).predict(request, max_batch_size,
                                                            as_tensor_content)
        except ServingError as e:
            status = e.code.name
            raise
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.record(request.model_spec.name, "predict", entrypoint, status,
                                elapsed if status == "OK" else None)

    def get_model_metadata(self, request) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """get_model_metadata_impl.cc: the SignatureDefMap of the resolved version."""
        if not request.HasField("model_spec"):
            raise _invalid("Missing ModelSpec")
        if not request.metadata_field:
            raise _invalid("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise _invalid(f"Metadata field {field} is not supported")
        servable = self.resolve(request.model_spec)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
        return response

    def get_model_status(self, request) -> get_model_status_pb2.GetModelStatusResponse:
        """get_model_status_impl.cc: states of one or all versions of a model."""
        if not request.HasField("model_spec"):
            raise _invalid("Missing ModelSpec")
        spec = request.model_spec
        model = self.models.get(spec.name)
        versions = dict(model.versions) if model else {}
        choice = spec.WhichOneof("version_choice")
        if choice == "version_label":
            if model is None or spec.version_label not in model.labels:
                raise _invalid(f"Unrecognized servable version label: {spec.version_label}")
            choice, wanted = "version", model.labels[spec.version_label]
        elif choice == "version":
            wanted = spec.version.value
        response = get_model_status_pb2.GetModelStatusResponse()
        if choice == "version":
            if wanted not in versions:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Could not find version {wanted} of model {spec.name}")
            selected = [wanted]
        else:
            if not versions:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Could not find any versions of model {spec.name}")
            selected = sorted(versions)
        for version in selected:
            servable = versions[version]
            response.model_version_status.add(version=version, state=servable.state,
                                              status=_status_proto(servable.error))
        return response


def models_from_config_file(path: str, max_batch_size: int = 64,
                            warmup_iterations: int = 1) -> List[ServedModel]:
    """ServedModels of a TF Serving --model_config_file (ModelServerConfig text proto).

    Relative base paths are taken relative to the current directory (TF Serving wants
    absolute ones; this lets serving/models.config work from the repository root too).
    """
    from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
    config = model_server_config_pb2.ModelServerConfig()
    with open(path) as f:
        text_format.Parse(f.read(), config)
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError(f"{path}: only model_config_list is supported.")
    models = []
    for model_config in config.model_config_list.config:
        if model_config.model_platform not in ("", "tensorflow"):
            raise ValueError(f"{path}: model {model_config.name!r} has platform "
                             f"{model_config.model_platform!r}; only 'tensorflow' is served.")
        models.append(ServedModel(
            model_config.name, model_config.base_path,
            VersionPolicy.from_proto(model_config.model_version_policy),
            labels=dict(model_config.version_labels), max_batch_size=max_batch_size,
            warmup_iterations=warmup_iterations))
    return models
