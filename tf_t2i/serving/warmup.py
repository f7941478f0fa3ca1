"""Replays a SavedModel's `assets.extra/tf_serving_warmup_requests` while it loads.

As TF Serving's saved_model_warmup_util.cc: a record that fails fails the load, at
most 1000 records are read, and only PredictLog records are supported here (the
exports have no Classify/Regress signatures).
"""

import logging
import os

import grpc
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tf_t2i.serving import errors

logger = logging.getLogger("tf_t2i.serve")

WARMUP_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # saved_model_warmup_util.cc kMaxNumRecords


def replay_warmup(servable, max_batch_size: int, iterations: int = 1) -> int:
    """Runs the warmup records of a loading version through its `predict`.

    Args:
        servable: a `ServableVersion` (anything with `path` and
            `predict(request, max_batch_size)`).
        max_batch_size: the largest batch a request may carry.
        iterations: how many times each record runs (at least once).

    Returns:
        The number of records replayed (0 when the version has no warmup file).

    Raises:
        ServingError: a record is not a PredictLog, there are too many records, or a
            request fails.
    """
    path = os.path.join(servable.path, WARMUP_PATH)
    if not os.path.exists(path):
        logger.info("No warmup data file found at %s", path)
        return 0
    count = 0
    for record in tf.data.TFRecordDataset(path):
        count += 1
        if count > MAX_WARMUP_RECORDS:
            raise errors.invalid_argument(f"Number of warmup records exceeeds the maximum "
                                          f"({MAX_WARMUP_RECORDS}) at {path}")
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        kind = log.WhichOneof("log_type")
        if kind != "predict_log":
            raise errors.ServingError(grpc.StatusCode.UNIMPLEMENTED,
                                      f"Unsupported log_type for warmup: {kind}")
        for _ in range(max(1, iterations)):
            servable.predict(log.predict_log.request, max_batch_size)
    return count
