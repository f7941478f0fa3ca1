"""Distribution strategy, precision policy and cross-replica helpers."""

import json
import os
from typing import List, Optional

import keras
import tensorflow as tf

from tf_t2i import config as config_lib


def make_strategy(runtime: config_lib.RuntimeConfig) -> tf.distribute.Strategy:
    """Picks the strategy for this machine.

    * `num_cpu_replicas` = N > 0: MirroredStrategy over N logical CPU devices (exercises
      mirroring on a CPU-only machine; must run before TensorFlow touches any device).
    * else several GPUs: MirroredStrategy over all of them; a TF_CONFIG naming several
      workers: MultiWorkerMirroredStrategy.
    * else the default strategy (one device).
    """
    if runtime.num_cpu_replicas > 0:
        cpus = tf.config.list_physical_devices("CPU")
        # Listing *logical* devices would initialise the runtime, after which they can no
        # longer be split: configure first, and only on failure look at what exists.
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * runtime.num_cpu_replicas)
        except RuntimeError as e:
            if len(tf.config.list_logical_devices("CPU")) < runtime.num_cpu_replicas:
                raise RuntimeError("num_cpu_replicas must be set before TensorFlow "
                                   f"initialises its devices: {e}") from e
        logical = tf.config.list_logical_devices("CPU")
        devices = [d.name for d in logical[:runtime.num_cpu_replicas]]
        return tf.distribute.MirroredStrategy(devices)
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    if len(tf_config.get("cluster", {}).get("worker", [])) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def set_precision(runtime: config_lib.RuntimeConfig) -> None:
    policy = "float32" if runtime.mixed_precision == "none" else runtime.mixed_precision
    keras.mixed_precision.set_global_policy(policy)


def num_replicas() -> int:
    ctx = tf.distribute.get_replica_context()
    return ctx.num_replicas_in_sync if ctx is not None else 1


def clip_by_global_norm_across_replicas(grads: List[Optional[tf.Tensor]],
                                        clip_norm: float) -> List[Optional[tf.Tensor]]:
    """Clips the replica-summed gradient by its global norm, as one device would.

    Keras clips (`global_clipnorm`) each replica's gradient before summing them, which is
    not the single-device rule. Here the gradients are all-reduced first, clipped, and
    divided by the replica count, so that Keras' own summation gives back the clipped
    total.
    """
    ctx = tf.distribute.get_replica_context()
    present = [g for g in grads if g is not None]
    replicas = ctx.num_replicas_in_sync if ctx is not None else 1
    if replicas > 1:
        present = ctx.all_reduce(tf.distribute.ReduceOp.SUM, present)
    clipped, _ = tf.clip_by_global_norm(present, clip_norm)
    clipped = [_scale(g, 1.0 / replicas) for g in clipped]
    it = iter(clipped)
    return [None if g is None else next(it) for g in grads]


def gather_batch(tensors):
    """All-gathers batch-major tensors across replicas (gradients flow back to owners).

    Returns:
      (gathered tensors, local_slice): `local_slice(x)` picks this replica's rows of a
      gathered per-example tensor. Outside a multi-replica context nothing is gathered.
    """
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync <= 1:
        return tensors, lambda x: x
    n_local = tf.shape(tf.nest.flatten(tensors)[0])[0]
    gathered = tf.nest.map_structure(lambda t: ctx.all_gather(t, axis=0), tensors)
    start = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * n_local
    return gathered, lambda x: x[start:start + n_local]


def _scale(grad, factor):
    if isinstance(grad, tf.IndexedSlices):  # embedding gradients
        return tf.IndexedSlices(grad.values * factor, grad.indices, grad.dense_shape)
    return grad * factor


def log_info(message: str) -> None:
    """A progress line for the user: stdout only (not again through logging)."""
    print(message, flush=True)
