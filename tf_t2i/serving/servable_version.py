"""One version directory of a served model: its SavedModel, and Predict over it.

The server-independent core of `tf_t2i.serve` is TF Serving's request semantics as
pure functions from request protos to response protos, raising `ServingError` with
TF Serving's status codes and messages (copied from tensorflow_serving:
predict_util.cc, saved_model/util.cc, server_core.cc, basic_manager.cc,
get_model_status_impl.cc, get_model_metadata_impl.cc and the batching scheduler).
This module holds a version's loading and its Predict checks; `manager` holds the
models, their versions and the other API methods.

Dependencies of the serving core are TensorFlow and the tensorflow-serving-api protos
only: it must load exactly what the stock server loads, so it never imports Keras,
keras-hub, tensorflow-text or tf_t2i's model code.
"""

import logging
import os
import time
from typing import Callable, Dict, List, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import predict_pb2

from tf_t2i.serving import errors
from tf_t2i.serving import warmup

logger = logging.getLogger("tf_t2i.serve")

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHODS = ("tensorflow/serving/predict", "tensorflow/serving/classify",
                   "tensorflow/serving/regress")
SERVE_TAG = "serve"
_STATE = get_model_status_pb2.ModelVersionStatus.State

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


class ServableVersion:
    """One version directory of a model: its SavedModel, signatures and load state."""

    def __init__(self, name: str, version: int, path: str):
        self.name = name
        self.version = version
        self.path = path
        self.state = _STATE.START
        self.error: Optional[errors.ServingError] = None
        self.signature_defs: Dict = {}
        # (loaded SavedModel, its signature functions), replaced as a whole: a request
        # holds the pair, so an unload in the meantime cannot free what it runs.
        self._runtime = (None, {})
        # What the directory held when this load was tried (directory_fingerprint).
        self.fingerprint = None

    def load(self, max_batch_size: int, warmup_iterations: int = 1,
             check_signatures: Optional[Callable[[Dict], None]] = None) -> None:
        """Loads the SavedModel and replays its warmup records; raises ServingError.

        `check_signatures(signature_defs)` may refuse the version (raising ServingError)
        before anything is loaded.
        """
        self.state = _STATE.LOADING
        started = time.time()
        try:
            self.signature_defs = _read_signature_defs(self.path)
            if check_signatures is not None:
                check_signatures(self.signature_defs)
            loaded = tf.saved_model.load(self.path, tags=[SERVE_TAG])
            self._runtime = (loaded, dict(loaded.signatures))
            records = warmup.replay_warmup(self, max_batch_size, warmup_iterations)
        except errors.ServingError as e:
            self._fail(e)
            raise
        except Exception as e:  # pylint: disable=broad-except
            # Anything a bad export raises (unregistered op, corrupt variables) makes the
            # version END with the reason, as TF Serving's loader does.
            self._fail(errors.ServingError(grpc.StatusCode.UNKNOWN, f"{type(e).__name__}: {e}"))
            raise self.error from e
        self.state = _STATE.AVAILABLE
        logger.info("Loaded %s version %d from %s in %.1fs (%d warmup records).", self.name,
                    self.version, self.path, time.time() - started, records)

    def _fail(self, error: errors.ServingError) -> None:
        """Ends this version with `error` (its status reports it)."""
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
            raise errors.ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                                      f'Serving signature key "{signature_name}" not found.')
        if signature.method_name not in PREDICT_METHODS:
            raise errors.ServingError(
                grpc.StatusCode.INTERNAL,
                "Expected prediction signature method_name to be one of {"
                f"{', '.join(PREDICT_METHODS)}}}. Was: {signature.method_name}")
        inputs = _input_values(signature, request)
        aliases = _output_aliases(signature, request.output_filter)
        feeds = _checked_feeds(signature, inputs, max_batch_size)
        function = functions.get(signature_name)
        if function is None:
            raise errors.ServingError(grpc.StatusCode.UNAVAILABLE,
                                      f"Version {self.version} of model {self.name} was unloaded; "
                                      "retry to reach the current version.")
        try:
            outputs = function(**feeds)
        except tf.errors.OpError as e:
            raise errors.from_tf_error(e) from e
        except (TypeError, ValueError) as e:
            raise errors.invalid_argument(str(e)) from e
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.name
        response.model_spec.version.value = self.version
        response.model_spec.signature_name = signature_name
        for alias in aliases:
            response.outputs[alias].CopyFrom(
                tensor_to_proto(outputs[alias].numpy(), as_tensor_content))
        return response


def directory_fingerprint(path: str) -> tuple:
    """Names, sizes and modification times of every file under `path`.

    A version that failed to load is tried again only when this changes: a copy that
    was half-way finished, or a broken export replaced.
    """
    entries = []
    for root, _, files in os.walk(path, followlinks=True):
        for name in files:
            full = os.path.join(root, name)
            try:
                info = os.stat(full)
            except OSError:
                continue  # removed while listing: the next poll sees the change
            entries.append((os.path.relpath(full, path), info.st_size, info.st_mtime_ns))
    return tuple(sorted(entries))


def signature_change(old: Dict, new: Dict) -> Optional[str]:
    """What `new` signature defs drop or retype of `old`'s; None when requests still fit.

    New signatures, new inputs with defaults and new outputs are allowed: old clients
    still get answers.
    """
    # The default signature first: most clients call it, so its change is named.
    for key, signature in sorted(old.items(), key=lambda kv: (kv[0] != DEFAULT_SIGNATURE, kv[0])):
        if key not in new:
            return f'signature "{key}" is missing'
        replacement = new[key]
        for alias, info in sorted(signature.inputs.items()):
            if alias not in replacement.inputs:
                return f'signature "{key}" has no input "{alias}"'
            if replacement.inputs[alias].dtype != info.dtype:
                return (f'input "{alias}" of signature "{key}" changed dtype from '
                        f"{tf.as_dtype(info.dtype).name} to "
                        f"{tf.as_dtype(replacement.inputs[alias].dtype).name}")
        required = set(replacement.inputs) - set(signature.inputs) - set(replacement.defaults)
        if required:
            return f'signature "{key}" requires new input(s) {", ".join(sorted(required))}'
        for alias in sorted(signature.outputs):
            if alias not in replacement.outputs:
                return f'signature "{key}" has no output "{alias}"'
    return None


def _read_signature_defs(path: str) -> Dict:
    pb = os.path.join(path, "saved_model.pb")
    if not os.path.exists(pb):
        raise errors.ServingError(grpc.StatusCode.NOT_FOUND,
                                  f"Could not find SavedModel .pb or .pbtxt at supplied export "
                                  f"directory path: {path}")
    saved_model = saved_model_pb2.SavedModel()
    with open(pb, "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise errors.ServingError(grpc.StatusCode.NOT_FOUND,
                              "Could not find meta graph def matching supplied tags: "
                              f"{{ {SERVE_TAG} }}. "
                              "To inspect available tag-sets in the SavedModel, please use the "
                              "SavedModel CLI: `saved_model_cli`")


def _input_values(signature, request) -> Dict[str, tensor_pb2.TensorProto]:
    """predict_util.cc VerifyRequestInputsSize + saved_model/util.cc GetInputValues."""
    request_inputs = set(request.inputs.keys())
    signature_inputs = set(signature.inputs.keys())
    n_req, n_sig = len(request_inputs), len(signature_inputs)
    if n_req > n_sig or (n_req < n_sig and not signature.defaults):
        join = lambda keys: ",".join(sorted(keys))
        raise errors.invalid_argument(
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
            raise errors.invalid_argument(
                f"Signature input alias: {alias}(feed name: {signature.inputs[alias].name}) "
                "not found in request and no default value provided. Inputs expected to be "
                f"in the request {{{','.join(sorted(request_inputs))}}}, or default input "
                f"alias set: {','.join(sorted(signature.defaults))}")
    if request_inputs and seen != request_inputs:
        raise errors.invalid_argument(f"Inputs contains invalid name. Used request inputs: "
                                      f"{','.join(sorted(seen))}, request input: "
                                      f"{','.join(sorted(request_inputs))}")
    return values


def _output_aliases(signature, output_filter) -> List[str]:
    """predict_util.cc PreProcessPrediction: the outputs to return."""
    aliases = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise errors.invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to "
                f"be in the set {{{','.join(sorted(signature.outputs))}}}.")
        if alias in aliases:
            raise errors.invalid_argument(f"duplicate output tensor alias: {alias}")
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
            raise errors.invalid_argument(f"tensor parsing error: {alias}") from e
        want = tf.dtypes.as_dtype(info.dtype)
        got = tf.dtypes.as_dtype(proto.dtype)
        if got != want:
            raise errors.invalid_argument(
                f"Expects arg[{index}] to be {want.name} but {got.name} is provided")
        if not info.tensor_shape.unknown_rank:
            dims = [d.size for d in info.tensor_shape.dim]
            if len(dims) != array.ndim or any(d not in (-1, a) for d, a in zip(dims, array.shape)):
                raise errors.invalid_argument(
                    f"input '{alias}' has shape {_shape_string(array.shape)}, which is "
                    f"incompatible with the signature's {_shape_string(dims)}")
        if array.ndim and array.shape[0] > max_batch_size:
            raise errors.invalid_argument(f"Task size {array.shape[0]} is larger than maximum "
                                          f"input batch size {max_batch_size}")
        feeds[alias] = tf.constant(array, dtype=want)
    return feeds
