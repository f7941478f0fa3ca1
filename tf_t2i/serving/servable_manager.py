"""The served models, their versions on disk, and TF Serving's API methods over them.

`ServedModel` is one model name over a base path: the versions its policy wants,
loaded and polled. `ServableManager` holds every served model and answers Predict,
GetModelMetadata and GetModelStatus as TF Serving's ServerCore does, counting
requests in `tf_t2i.serving.metrics`.
"""

import functools
import logging
import os
import re
import threading
import time
from typing import Dict, List, Optional, Sequence

import grpc
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import predict_pb2

from tf_t2i.serving import errors
from tf_t2i.serving import metrics as metrics_lib
from tf_t2i.serving import servable_version
from tf_t2i.serving import version_policy

logger = logging.getLogger("tf_t2i.serve")

SIGNATURE_DEF_FIELD = "signature_def"
_VERSION_RE = re.compile(r"^[0-9]+$")
_STATE = get_model_status_pb2.ModelVersionStatus.State


class ServedModel:
    """A model name over a base path: the versions the policy wants, loaded and polled."""

    def __init__(self, name: str, base_path: str,
                 policy: Optional[version_policy.VersionPolicy] = None,
                 labels: Optional[Dict[str, int]] = None, max_batch_size: int = 64,
                 warmup_iterations: int = 1):
        self.name = name
        self.base_path = os.path.abspath(base_path)
        self.policy = policy or version_policy.VersionPolicy()
        self.labels = dict(labels or {})
        self.max_batch_size = max_batch_size
        self.warmup_iterations = warmup_iterations
        # Every version ever seen stays here (END after unloading or failing), as
        # TF Serving's ServableStateMonitor keeps reporting it.
        self.versions: Dict[int, servable_version.ServableVersion] = {}
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

    def poll(self) -> List[errors.ServingError]:
        """Loads wanted versions, then unloads unwanted ones without losing availability.

        TF Serving's AvailabilityPreservingPolicy: a version the policy no longer wants
        goes on serving until enough wanted versions are available, so a new version
        that fails to load (a half-copied directory, truncated variables) leaves the old
        one serving. A failed version is tried again once its directory changes (the
        copy finished, or it was replaced); an unloaded one reloads when wanted again.
        Returns the load errors of this poll.
        """
        with self._poll_lock:
            on_disk = self.versions_on_disk()
            wanted = self.policy.select(on_disk)
            if not wanted and not self._warned_empty:
                logger.warning("No versions of servable %s found under base path %s",
                               self.name, self.base_path)
                self._warned_empty = True
            served_before = sorted(self.available())
            load_errors = []
            for version in wanted:
                error = self._load_if_needed(version)
                if error is not None:
                    load_errors.append(error)
            self._unload_unwanted(wanted)
            served = sorted(self.available())
            if served != served_before:
                logger.info("Serving %s version(s) %s.", self.name,
                            ", ".join(map(str, served)) or "none")
            return load_errors

    def _load_if_needed(self, version: int) -> Optional[errors.ServingError]:
        path = os.path.join(self.base_path, str(version))
        fingerprint = servable_version.directory_fingerprint(path)
        known = self.versions.get(version)
        if known is not None:
            if known.state != _STATE.END:
                return None  # available, or loading
            if known.error is not None and known.fingerprint == fingerprint:
                return None  # failed on these very files: wait until they change
        servable = servable_version.ServableVersion(self.name, version, path)
        servable.fingerprint = fingerprint
        with self._lock:
            self.versions[version] = servable
        try:
            servable.load(self.max_batch_size, self.warmup_iterations,
                          check_signatures=functools.partial(self._check_signatures_kept, version))
        except errors.ServingError as e:
            serving = sorted(self.available())
            logger.error("Failed to load %s version %d (%s): %s", self.name, version,
                         f"still serving version(s) {', '.join(map(str, serving))}"
                         if serving else "no version served", e)
            return e
        return None

    def _check_signatures_kept(self, version: int, signature_defs: Dict) -> None:
        """A new version must answer the requests the served one answers.

        Stock TF Serving swaps in any loadable export; a version whose signatures lost or
        retyped an input would then fail every client at once, so it is refused here and
        the served version stays. (Restart the server to change signatures on purpose.)
        """
        others = {v: s for v, s in self.available().items() if v != version}
        if not others:
            return
        newest = others[max(others)]
        problem = servable_version.signature_change(newest.signature_defs, signature_defs)
        if problem:
            raise errors.ServingError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"version {version} does not keep the signatures of version "
                f"{newest.version}: {problem}")

    def _unload_unwanted(self, wanted: List[int]) -> None:
        available = self.available()
        keep = [v for v in wanted if v in available]
        # Until as many wanted versions are available as the policy asks for, the
        # newest of the others go on serving in their place.
        for version in sorted(available, reverse=True):
            if len(keep) >= len(wanted):
                break
            if version not in keep:
                keep.append(version)
        for version, servable in available.items():
            if version not in keep:
                servable.unload()

    def available(self) -> Dict[int, servable_version.ServableVersion]:
        with self._lock:
            return {v: s for v, s in self.versions.items() if s.state == _STATE.AVAILABLE}


class ServableManager:
    """All served models; resolves ModelSpecs as ServerCore does."""

    def __init__(self, models: Sequence[ServedModel]):
        self.models = {m.name: m for m in models}
        self.metrics = metrics_lib.RequestMetrics()
        self._stop = threading.Event()
        self._thread = None

    def poll(self) -> List[errors.ServingError]:
        load_errors = []
        for model in self.models.values():
            load_errors.extend(model.poll())
        return load_errors

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
                    raise errors.ServingError(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"Request to assign label to version {version} of model {model.name}, "
                        "which is not currently available for inference")

    def resolve(self, model_spec) -> servable_version.ServableVersion:
        """ServerCore::ServableRequestFromModelSpec + BasicManager's handle lookup."""
        name = model_spec.name
        if not name:
            raise errors.invalid_argument("ModelSpec has no name specified.")
        model = self.models.get(name)
        choice = model_spec.WhichOneof("version_choice")
        if choice == "version_label":
            label = model_spec.version_label
            if model is None or label not in model.labels:
                raise errors.invalid_argument(f"Unrecognized servable version label: {label}")
            version = model.labels[label]
        elif choice == "version":
            version = model_spec.version.value
        else:
            version = None
        available = model.available() if model else {}
        if version is None:
            if available:
                return available[max(available)]
            raise errors.ServingError(grpc.StatusCode.NOT_FOUND,
                                      f"Servable not found for request: Latest({name})")
        if version in available:
            return available[version]
        raise errors.ServingError(grpc.StatusCode.NOT_FOUND,
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
        except errors.ServingError as e:
            status = e.code.name
            raise
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.record(request.model_spec.name, "predict", entrypoint, status,
                                elapsed if status == "OK" else None)

    def get_model_metadata(self, request) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """get_model_metadata_impl.cc: the SignatureDefMap of the resolved version."""
        if not request.HasField("model_spec"):
            raise errors.invalid_argument("Missing ModelSpec")
        if not request.metadata_field:
            raise errors.invalid_argument(
                "GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise errors.invalid_argument(f"Metadata field {field} is not supported")
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
            raise errors.invalid_argument("Missing ModelSpec")
        spec = request.model_spec
        model = self.models.get(spec.name)
        versions = dict(model.versions) if model else {}
        choice = spec.WhichOneof("version_choice")
        if choice == "version_label":
            if model is None or spec.version_label not in model.labels:
                raise errors.invalid_argument(
                    f"Unrecognized servable version label: {spec.version_label}")
            choice, wanted = "version", model.labels[spec.version_label]
        elif choice == "version":
            wanted = spec.version.value
        response = get_model_status_pb2.GetModelStatusResponse()
        if choice == "version":
            if wanted not in versions:
                raise errors.ServingError(grpc.StatusCode.NOT_FOUND,
                                          f"Could not find version {wanted} of model {spec.name}")
            selected = [wanted]
        else:
            if not versions:
                raise errors.ServingError(grpc.StatusCode.NOT_FOUND,
                                          f"Could not find any versions of model {spec.name}")
            selected = sorted(versions)
        for version in selected:
            servable = versions[version]
            response.model_version_status.add(version=version, state=servable.state,
                                              status=errors.status_proto(servable.error))
        return response
