"""TF Serving's request errors: a gRPC status code with the stock server's message.

Every serving module raises `ServingError`; the gRPC and REST front ends turn it into
their status (gRPC code, HTTP status + JSON body). Dependencies are grpc, TensorFlow
and the tensorflow-serving-api protos only (see `tf_t2i.serving.servable_version`).
"""

from typing import Optional

import grpc
import tensorflow as tf
from tensorflow_serving.apis import status_pb2

_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request failed with a gRPC status code and TF Serving's message."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self):
        return f"{self.code.name}: {self.message}"


def invalid_argument(message: str) -> ServingError:
    """A ServingError with INVALID_ARGUMENT, the code of most malformed requests."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def from_tf_error(e: tf.errors.OpError) -> ServingError:
    """The ServingError TF Serving reports for a TensorFlow op error while running."""
    # A SavedModel function's error starts with Python-side boilerplate ("Graph
    # execution error: Detected at node ... <stack traces unavailable>"); TF Serving's
    # session error is the kernel message, so keep that part.
    message = e.message
    marker = "<stack traces unavailable>"
    if marker in message:
        message = message.split(marker, 1)[1]
    message = message.strip()
    return ServingError(_GRPC_CODES.get(e.error_code, grpc.StatusCode.UNKNOWN), message)


def status_proto(error: Optional[ServingError]) -> status_pb2.StatusProto:
    """The StatusProto of a version's load error (OK when there is none)."""
    if error is None:
        return status_pb2.StatusProto(error_code=0, error_message="")
    return status_pb2.StatusProto(error_code=error.code.value[0], error_message=error.message)
