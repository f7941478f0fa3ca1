"""Client for a served text-to-image model: TF Serving's gRPC API, or its REST API.

Works against `tf_t2i.serve` and a real `tensorflow_model_server` alike.

Example:
    with GrpcClient("localhost:8500", model="t2i") as client:
        images = client.generate(["a red circle"], seeds=[7])     # uint8 [1, H, W, 3]
        pngs = client.generate_png(["a red circle"], seeds=[7])   # [b"\\x89PNG..."]
"""

import base64
import json
import time
import urllib.error
import urllib.request
from typing import Dict, List, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

SERVING_DEFAULT = "serving_default"
GENERATE_UNSEEDED = "generate_unseeded"
IMAGES = "images"
PNG_BYTES = "png_bytes"
# A batch of 64 images of 256 px as int_val is ~50 MB; gRPC's default limit is 4 MB.
DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024 * 1024


class ServingError(RuntimeError):
    """The server answered with an error status.

    Attributes:
      code: the gRPC status code name ("INVALID_ARGUMENT", "NOT_FOUND", ...); for REST
        the HTTP status as "HTTP 400".
      message: the server's message.
    """

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _inputs(captions: Sequence, seeds: Optional[Sequence[int]]):
    captions = [c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in captions]
    if seeds is None:
        return GENERATE_UNSEEDED, {"captions": np.array(captions, dtype=object)}
    seeds = np.asarray(seeds, np.int64).reshape(-1)
    if len(seeds) != len(captions):
        raise ValueError(f"{len(captions)} captions but {len(seeds)} seeds: give one seed "
                         "per caption.")
    return SERVING_DEFAULT, {"captions": np.array(captions, dtype=object), "seeds": seeds}


class _Client:
    """What both transports share: generate / generate_png on top of `predict`."""

    def predict(self, inputs: Dict[str, np.ndarray], signature_name: str = SERVING_DEFAULT,
                output_filter: Sequence[str] = ()) -> Dict[str, np.ndarray]:
        raise NotImplementedError

    def generate(self, captions: Sequence, seeds: Optional[Sequence[int]] = None) -> np.ndarray:
        """uint8 [B, H, W, 3] images for the captions (seeds=None: seeds from the captions)."""
        signature, inputs = _inputs(captions, seeds)
        return self.predict(inputs, signature, output_filter=[IMAGES])[IMAGES]

    def generate_png(self, captions: Sequence,
                     seeds: Optional[Sequence[int]] = None) -> List[bytes]:
        """PNG files (bytes), one per caption; only the PNGs travel back."""
        signature, inputs = _inputs(captions, seeds)
        return list(self.predict(inputs, signature, output_filter=[PNG_BYTES])[PNG_BYTES])

    def wait_until_available(self, timeout_s: float = 60.0, interval_s: float = 0.25) -> None:
        """Polls the model status until a version is AVAILABLE.

        Raises:
          TimeoutError: with the last error or state seen.
        """
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while True:
            try:
                states = self.status()
                if "AVAILABLE" in states.values():
                    return
                last = f"states {states}"
            except (ServingError, OSError) as e:
                last = str(e)
            if time.monotonic() > deadline:
                raise TimeoutError(f"Model not available after {timeout_s:.0f}s: {last}")
            time.sleep(interval_s)

    def status(self) -> Dict[int, str]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class GrpcClient(_Client):
    """TF Serving's PredictionService/ModelService over gRPC.

    Args:
      server: "host:port" of the gRPC endpoint.
      model: the model name.
      version: a specific version (default: the latest available).
      version_label: or a version label ("stable"); not both.
      timeout_s: deadline of each call.
      max_message_bytes: the gRPC receive limit (responses carry whole images).
    """

    def __init__(self, server: str = "localhost:8500", model: str = "t2i",
                 version: Optional[int] = None, version_label: Optional[str] = None,
                 timeout_s: float = 60.0, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        if version is not None and version_label:
            raise ValueError("Give a version or a version label, not both.")
        self.server = server
        self.model = model
        self.version = version
        self.version_label = version_label
        self.timeout_s = timeout_s
        self._channel = grpc.insecure_channel(server, options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes)])
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def _spec(self, target, signature_name: str = ""):
        target.name = self.model
        if self.version is not None:
            target.version.value = int(self.version)
        elif self.version_label:
            target.version_label = self.version_label
        if signature_name:
            target.signature_name = signature_name

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout_s)
        except grpc.RpcError as e:
            raise ServingError(e.code().name, e.details()) from e

    def predict(self, inputs, signature_name=SERVING_DEFAULT, output_filter=()):
        """Raw Predict: {alias: array} in, {alias: array} out (decoded with tf.make_ndarray)."""
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, signature_name)
        for alias, value in inputs.items():
            value = np.asarray(value)
            dtype = tf.string if value.dtype == object else None
            request.inputs[alias].CopyFrom(tf.make_tensor_proto(value, dtype=dtype))
        request.output_filter.extend(output_filter)
        response = self._call(self._predict.Predict, request)
        return {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}

    def status(self) -> Dict[int, str]:
        """{version: state name} from GetModelStatus."""
        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec)
        response = self._call(self._models.GetModelStatus, request)
        names = get_model_status_pb2.ModelVersionStatus.State.Name
        return {s.version: names(s.state) for s in response.model_version_status}

    def signature_defs(self) -> Dict:
        """{signature name: SignatureDef} from GetModelMetadata."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec)
        response = self._call(self._predict.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return dict(signature_map.signature_def)

    def close(self):
        self._channel.close()


class RestClient(_Client):
    """TF Serving's REST API (columnar format; b64 for binary strings).

    Args:
      server: "host:port" or "http://host:port" of the REST endpoint.
      model, version, version_label, timeout_s: as GrpcClient.
    """

    def __init__(self, server: str = "localhost:8501", model: str = "t2i",
                 version: Optional[int] = None, version_label: Optional[str] = None,
                 timeout_s: float = 60.0):
        if version is not None and version_label:
            raise ValueError("Give a version or a version label, not both.")
        self.base = server if "://" in server else f"http://{server}"
        self.model = model
        self.version = version
        self.version_label = version_label
        self.timeout_s = timeout_s

    def _url(self, suffix: str = "") -> str:
        url = f"{self.base}/v1/models/{self.model}"
        if self.version is not None:
            url += f"/versions/{int(self.version)}"
        elif self.version_label:
            url += f"/labels/{self.version_label}"
        return url + suffix

    def _request(self, url: str, body: Optional[Dict] = None) -> Dict:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read().decode("utf-8")).get("error", str(e))
            except ValueError:
                message = str(e)
            raise ServingError(f"HTTP {e.code}", message) from e

    def predict(self, inputs, signature_name=SERVING_DEFAULT, output_filter=()):
        """Columnar Predict. Strings go as b64 (captions may be any bytes); all outputs
        come back (REST has no output_filter) and `_bytes` ones are base64-decoded."""
        columns = {}
        for alias, value in inputs.items():
            value = np.asarray(value)
            if value.dtype == object:
                columns[alias] = [{"b64": base64.b64encode(v).decode("ascii")}
                                  for v in value.tolist()]
            else:
                columns[alias] = value.tolist()
        body = {"signature_name": signature_name, "inputs": columns}
        outputs = self._request(self._url(":predict"), body)["outputs"]
        if not isinstance(outputs, dict):
            outputs = {output_filter[0] if output_filter else "output": outputs}
        result = {}
        for alias, value in outputs.items():
            if output_filter and alias not in output_filter:
                continue
            if alias.endswith("_bytes"):
                result[alias] = np.array([base64.b64decode(v["b64"]) for v in value], dtype=object)
            elif alias == IMAGES:
                result[alias] = np.asarray(value, np.uint8)
            else:
                result[alias] = np.asarray(value)
        return result

    def status(self) -> Dict[int, str]:
        try:
            response = self._request(self._url())
        except urllib.error.URLError as e:
            raise OSError(str(e)) from e
        return {int(s["version"]): s["state"] for s in response.get("model_version_status", [])}


def make_client(server: str, model: str = "t2i", rest: bool = False, **kwargs) -> _Client:
    """A GrpcClient, or a RestClient when rest=True."""
    return RestClient(server, model, **kwargs) if rest else GrpcClient(server, model, **kwargs)


def generate_images(captions: Sequence, seeds: Optional[Sequence[int]] = None,
                    server: str = "localhost:8500", model: str = "t2i",
                    rest: bool = False, **kwargs) -> np.ndarray:
    """One call from Python: uint8 [B, H, W, 3] images for the captions from a server."""
    with make_client(server, model, rest=rest, **kwargs) as client:
        return client.generate(captions, seeds)
