"""TF Serving's REST API (g3doc/api_rest.md) over a ServableManager.

  GET  /v1/models/<name>[/versions/<n>|/labels/<l>]             -> GetModelStatus as JSON
  GET  /v1/models/<name>[/versions/<n>|/labels/<l>]/metadata    -> GetModelMetadata as JSON
  POST /v1/models/<name>[/versions/<n>|/labels/<l>]:predict     -> Predict
  GET  <metrics path>  (with a monitoring config)                -> Prometheus metrics

Predict takes the row format (`{"instances": [...]}` -> `{"predictions": [...]}`) or
the columnar one (`{"inputs": ...}` -> `{"outputs": ...}`). Binary strings travel as
`{"b64": "..."}` both ways: in inputs wherever a string is expected, and in outputs
whose alias ends in `_bytes` (so `png_bytes` comes back base64 encoded). Errors are
`{"error": "<message>"}` with TF Serving's HTTP status for the gRPC code.
"""

import base64
import http.server
import json
import logging
import re
from typing import Dict, Optional, Tuple

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import predict_pb2

from tf_t2i.serving import errors
from tf_t2i.serving import servable_manager
from tf_t2i.serving import servable_version

logger = logging.getLogger("tf_t2i.serve")

_PATH_RE = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?"
                      r"(?:(/metadata)|:(classify|regress|predict))?/?$", re.IGNORECASE)
BYTES_SUFFIX = "_bytes"
B64_KEY = "b64"
# http_server.cc ToHTTPStatusCode.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200, grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500, grpc.StatusCode.UNAUTHENTICATED: 401,
}
# Largest accepted request body: a full batch of long captions fits many times over.
MAX_BODY_BYTES = 64 * 1024 * 1024
# Short name: most of the JSON decoding checks below raise it.
_invalid = errors.invalid_argument


def _decode_value(value, dtype: tf.DType):
    """One JSON leaf -> a Python value of the tensor's dtype."""
    if isinstance(value, dict):
        if set(value) != {B64_KEY} or not isinstance(value[B64_KEY], str):
            raise _invalid(f"JSON Value: {json.dumps(value)} Base64 encoded data must be "
                           f"represented as a JSON object with a single key '{B64_KEY}'")
        try:
            data = base64.b64decode(value[B64_KEY], validate=True)
        except ValueError as e:
            raise _invalid("Unable to base64 decode") from e
        if dtype != tf.string:
            raise _invalid(f"JSON Value: {json.dumps(value)} b64 data is only valid for "
                           f"DT_STRING tensors, not {dtype.name}")
        return data
    if dtype == tf.string:
        if not isinstance(value, str):
            raise _invalid(f"JSON Value: {json.dumps(value)} Is not of expected type: string")
        return value.encode("utf-8")
    if dtype == tf.bool:
        if not isinstance(value, bool):
            raise _invalid(f"JSON Value: {json.dumps(value)} Is not of expected type: bool")
        return value
    if dtype.is_integer:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(f"JSON Value: {json.dumps(value)} Is not of expected type: "
                           f"{dtype.name}")
        if not dtype.min <= value <= dtype.max:
            raise _invalid(f"JSON Value: {value} out of range for {dtype.name}")
        return value
    if dtype.is_floating:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _invalid(f"JSON Value: {json.dumps(value)} Is not of expected type: "
                           f"{dtype.name}")
        return float(value)
    raise _invalid(f"Unsupported input dtype for the REST API: {dtype.name}")


def _to_array(value, dtype: tf.DType, alias: str) -> np.ndarray:
    def convert(v):
        return [convert(x) for x in v] if isinstance(v, list) else _decode_value(v, dtype)
    converted = convert(value)
    try:
        if dtype == tf.string:
            array = np.array(converted, dtype=object)
        else:
            array = np.array(converted, dtype=dtype.as_numpy_dtype)
    except ValueError as e:
        raise _invalid(f"Input '{alias}' is not a regular (rectangular) tensor: {e}") from e
    if array.dtype == object and dtype != tf.string:
        raise _invalid(f"Input '{alias}' is not a regular (rectangular) tensor")
    return array


def request_from_json(body: Dict, signature, model_spec) -> Tuple[predict_pb2.PredictRequest, str]:
    """A REST predict body -> (PredictRequest, "row" | "columnar"), as json_tensor.cc does."""
    if not isinstance(body, dict):
        raise _invalid("JSON Value: Is not object")
    has_instances, has_inputs = "instances" in body, "inputs" in body
    if has_instances and has_inputs:
        raise _invalid("Not formatted correctly expecting only one of 'inputs' or "
                       "'instances' keys exclusively")
    if not (has_instances or has_inputs):
        raise _invalid("Missing 'inputs' or 'instances' key")
    aliases = sorted(signature.inputs)
    dtypes = {a: tf.as_dtype(signature.inputs[a].dtype) for a in aliases}
    columns = {}
    if has_instances:
        instances = body["instances"]
        if not isinstance(instances, list):
            raise _invalid("Expecting 'instances' to be an list/array")
        if len(aliases) == 1 and not (instances and isinstance(instances[0], dict)
                                      and B64_KEY not in instances[0]):
            columns[aliases[0]] = instances
        else:
            for alias in aliases:
                columns[alias] = []
            for i, instance in enumerate(instances):
                if not isinstance(instance, dict):
                    raise _invalid(f"Expecting object but got list at item {i} of input list")
                missing = [a for a in aliases if a not in instance]
                if missing:
                    raise _invalid(f"Missing named input: {missing[0]} in 'instances' "
                                   f"object {i}")
                extra = sorted(set(instance) - set(aliases))
                if extra:
                    raise _invalid(f"JSON object: does not have named input: {extra[0]}")
                for alias in aliases:
                    columns[alias].append(instance[alias])
        layout = "row"
    else:
        inputs = body["inputs"]
        if isinstance(inputs, dict) and B64_KEY not in inputs:
            columns = dict(inputs)
        elif len(aliases) == 1:
            columns = {aliases[0]: inputs}
        else:
            raise _invalid("Expecting 'inputs' to be an object with one entry per named input")
        layout = "columnar"
    request = predict_pb2.PredictRequest()
    request.model_spec.CopyFrom(model_spec)
    for alias, value in columns.items():
        dtype = dtypes.get(alias, tf.string)
        request.inputs[alias].CopyFrom(
            tf.make_tensor_proto(_to_array(value, dtype, alias), dtype=dtype))
    return request, layout


def _json_leaf(value, is_bytes: bool):
    if isinstance(value, bytes):
        if is_bytes:
            return {B64_KEY: base64.b64encode(value).decode("ascii")}
        return value.decode("utf-8", errors="replace")
    return value


def _json_tensor(array: np.ndarray, is_bytes: bool):
    if array.dtype == object:
        def convert(v):
            return [convert(x) for x in v] if isinstance(v, list) else _json_leaf(v, is_bytes)
        return convert(array.tolist())
    return array.tolist()


def response_to_json(response: predict_pb2.PredictResponse, layout: str) -> Dict:
    """PredictResponse -> {"predictions": rows} or {"outputs": columns}."""
    arrays = {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}
    if not arrays:
        raise _invalid("Cannot convert empty tensor map to JSON")
    columns = {alias: _json_tensor(a, alias.endswith(BYTES_SUFFIX)) for alias, a in arrays.items()}
    if layout == "columnar":
        if len(columns) == 1:
            return {"outputs": next(iter(columns.values()))}
        return {"outputs": columns}
    sizes = {alias: (a.shape[0] if a.ndim else None) for alias, a in arrays.items()}
    if None in sizes.values() or len(set(sizes.values())) > 1:
        raise _invalid("Tensor name: outputs do not share the batch dimension; use the "
                       "columnar 'inputs' format")
    if len(columns) == 1:
        return {"predictions": next(iter(columns.values()))}
    n = next(iter(sizes.values()))
    return {"predictions": [{alias: columns[alias][i] for alias in columns} for i in range(n)]}


def _model_spec(name, version, label):
    spec = predict_pb2.PredictRequest().model_spec
    spec.name = name
    if version is not None:
        spec.version.value = int(version)
    elif label is not None:
        spec.version_label = label
    return spec


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes one HTTP request; `server` carries the manager and the batch limit."""

    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quieter than stderr per request
        logger.debug("rest: " + fmt, *args)

    def _send(self, status: int, payload: Dict):
        data = json.dumps(payload, indent=None).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _send_text(self, text: str):
        data = text.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, error: errors.ServingError):
        # The request body may be unread (refused before reading): do not reuse the
        # connection, or its rest would be parsed as the next request.
        self.close_connection = True
        self._send(HTTP_STATUS.get(error.code, 500), {"error": error.message})

    def _route(self, method: str):
        path = self.path.split("?", 1)[0]
        if method == "GET" and self.server.metrics_path and path == self.server.metrics_path:
            return self.server.manager.metrics.prometheus_text()
        match = _PATH_RE.match(path)
        if not match:
            raise _invalid(f"Malformed request: {method} {self.path}")
        name, version, label, metadata, verb = match.groups()
        spec = _model_spec(name, version, label)
        if method == "GET" and verb is None:
            return self._get(spec, bool(metadata))
        if method == "POST" and verb and not metadata:
            if verb.lower() != "predict":
                raise errors.ServingError(grpc.StatusCode.UNIMPLEMENTED,
                                          f"{verb} is not supported: predict signatures only.")
            return self._predict(spec)
        raise _invalid(f"Malformed request: {method} {self.path}")

    def _get(self, spec, metadata: bool):
        manager = self.server.manager
        if metadata:
            request = get_model_metadata_pb2.GetModelMetadataRequest(
                metadata_field=[servable_manager.SIGNATURE_DEF_FIELD])
            request.model_spec.CopyFrom(spec)
            response = manager.get_model_metadata(request)
        else:
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.CopyFrom(spec)
            response = manager.get_model_status(request)
        return json_format.MessageToDict(response, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)

    def _predict(self, spec):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as e:
            raise _invalid("Bad Content-Length header") from e
        if length < 0 or length > MAX_BODY_BYTES:
            raise _invalid(f"Request body size {length} is not within [0, {MAX_BODY_BYTES}]")
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise _invalid(f"JSON Parse error: {e}") from e
        if body is None:
            raise _invalid("JSON Parse error: The document is empty")
        signature_name = body.get("signature_name", "") if isinstance(body, dict) else ""
        if not isinstance(signature_name, str):
            raise _invalid("'signature_name' must be a string")
        spec.signature_name = signature_name
        manager = self.server.manager
        signature = manager.resolve(spec).signature_defs.get(
            signature_name or servable_version.DEFAULT_SIGNATURE)
        if signature is None:
            raise _invalid(f'Serving signature name: "{signature_name}" not found in '
                           "signature def")
        request, layout = request_from_json(body, signature, spec)
        response = manager.predict(request, self.server.max_batch_size, entrypoint="REST")
        return response_to_json(response, layout)

    def _handle(self, method: str):
        try:
            result = self._route(method)
            if isinstance(result, str):
                self._send_text(result)
            else:
                self._send(200, result)
        except errors.ServingError as e:
            self._error(e)
        except Exception as e:  # pylint: disable=broad-except
            logger.exception("REST request failed")
            self._error(errors.ServingError(grpc.StatusCode.INTERNAL,
                                            f"{type(e).__name__}: {e}"))

    def do_GET(self):  # pylint: disable=invalid-name
        self._handle("GET")

    def do_POST(self):  # pylint: disable=invalid-name
        self._handle("POST")


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False


def make_http_server(manager: servable_manager.ServableManager, host: str, port: int,
                     max_batch_size: int,
                     metrics_path: Optional[str] = None) -> http.server.ThreadingHTTPServer:
    """A bound (not yet serving) HTTP server; call serve_forever() in a thread.

    Args:
      metrics_path: where to answer with Prometheus metrics; None for no metrics.
    """
    server = _HTTPServer((host, port), _Handler)
    server.manager = manager
    server.max_batch_size = max_batch_size
    server.metrics_path = metrics_path
    return server
