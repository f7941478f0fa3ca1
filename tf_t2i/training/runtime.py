"""Distribution strategy, precision policy and cross-replica helpers."""

import json
import os
import shutil
import tempfile
from typing import Callable, List, NamedTuple, Optional

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


class WorkerRole(NamedTuple):
    """This process's place in a (multi-worker) cluster.

    Attributes:
      index: this worker's number among `count` (the chief is 0).
      count: the number of worker processes (1 without a cluster).
      is_chief: whether this process writes the run's directory.
    """
    index: int = 0
    count: int = 1
    is_chief: bool = True


def worker_role(strategy: tf.distribute.Strategy) -> WorkerRole:
    """Who this process is in `strategy`'s cluster: a lone process is its own chief.

    As TF_CONFIG and Keras' multi-worker guide define it: the chief is the task of type
    "chief" when the cluster has one, else worker 0.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not spec or resolver.task_type is None:
        return WorkerRole()
    chiefs = len(spec.get("chief", []))
    count = chiefs + len(spec.get("worker", []))
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    if task_type == "chief":
        return WorkerRole(0, count, True)
    index = chiefs + task_id
    return WorkerRole(index, count, index == 0)


class WorkerLostError(RuntimeError):
    """A worker of a multi-worker run stopped (killed, preempted) during training."""


def scratch_dir(role: WorkerRole) -> str:
    """A temporary directory for what a non-chief worker must write but nobody reads
    (its checkpoints, its TensorBoard logs): Keras' multi-worker pattern, since every
    worker takes part in saving a checkpoint of distributed variables."""
    return tempfile.mkdtemp(prefix=f"tf_t2i_worker{role.index}_")


def remove_scratch_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def distribute_input(strategy: tf.distribute.Strategy,
                     dataset_fn: Callable[[Optional[tf.distribute.InputContext]],
                                          tf.data.Dataset]):
    """The training stream as `fit()` takes it on `strategy`.

    Over several replicas each input pipeline (one per worker) builds only its own
    replicas' share of every global batch (`distribute_datasets_from_function`), so the
    global batch and the data order do not depend on how many workers read them.
    """
    if strategy.num_replicas_in_sync <= 1:
        return dataset_fn(None)
    return strategy.distribute_datasets_from_function(dataset_fn)


# CPU features with which oneDNN computes bfloat16 natively: Intel AMX and AVX512-BF16
# (Sapphire Rapids, Cooper Lake, AMD Zen 4), Arm's BF16 extension (Graviton3, Neoverse V1).
# Without them TensorFlow emulates bfloat16: on a 2-core AVX2 AMD EPYC the shapes GAN step
# ran 11-13x slower than in float32 (benchmarks/precision.py).
NATIVE_BFLOAT16_CPU_FEATURES = frozenset({"amx_bf16", "avx512_bf16", "bf16"})


def cpu_features(cpuinfo: str = "/proc/cpuinfo") -> frozenset:
    """The CPU's feature flags (x86 "flags", Arm "Features"); empty where unreadable."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def gpu_compute_capabilities() -> List[tuple]:
    """(major, minor) of each visible GPU; (0, 0) where TensorFlow does not say."""
    return [tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability",
                                                                     (0, 0)))
            for gpu in tf.config.list_physical_devices("GPU")]


def native_bfloat16(features: frozenset, gpus: List[tuple]) -> bool:
    """Whether the devices that run the step compute bfloat16 natively: every GPU from
    Ampere on (compute capability 8.0), else the CPU's features."""
    if gpus:
        return all(tuple(cc) >= (8, 0) for cc in gpus)
    return bool(features & NATIVE_BFLOAT16_CPU_FEATURES)


def _hardware(features: Optional[frozenset], gpus: Optional[List[tuple]]):
    """(features, gpus), each detected on this machine where not given."""
    return (cpu_features() if features is None else features,
            gpu_compute_capabilities() if gpus is None else gpus)


def resolve_precision(requested: str, features: Optional[frozenset] = None,
                      gpus: Optional[List[tuple]] = None) -> str:
    """The policy a run computes in: `auto` is mixed_bfloat16 where the hardware has it
    natively and none (float32) elsewhere; other values are kept."""
    if requested != "auto":
        return requested
    return "mixed_bfloat16" if native_bfloat16(*_hardware(features, gpus)) else "none"


def emulated_bfloat16_warning(requested: str, features: Optional[frozenset] = None,
                              gpus: Optional[List[tuple]] = None) -> Optional[str]:
    """One line for a run asking for bfloat16 on hardware that only emulates it."""
    if requested != "mixed_bfloat16":
        return None
    features, gpus = _hardware(features, gpus)
    if native_bfloat16(features, gpus):
        return None
    where = "these GPUs (before compute capability 8.0)" if gpus else (
        "this CPU (no amx_bf16, avx512_bf16 or bf16 feature)")
    return (f"--mixed_precision=mixed_bfloat16 is emulated on {where}, several times slower "
            "than float32; --mixed_precision=auto uses bfloat16 only where it is native.")


def resolve_jit_compile(requested, task: str, policy: str,
                        gpus: Optional[List[tuple]] = None, lazy_ma_gp: bool = False) -> bool:
    """Whether the train step is XLA-compiled. `auto` picks XLA only where it was measured
    faster: the GAN step computing in float32 (`policy`, resolved) on a CPU; on a 2-core
    AVX2 EPYC the demo's GAN trained 1.2x faster with it, compile included (677 s against
    811 s; benchmarks/gan_step.py --compare=xla times the step). Not for DAMSM pretraining
    (its step ran 2x slower with XLA on that CPU), nor for bfloat16 on a CPU (oneDNN's
    native bfloat16 kernels are the speed-up there; unmeasured with XLA), nor on GPUs
    (benchmarks/gpu_check.py measures XLA there), nor with a lazy MA-GP (`lazy_ma_gp`: its
    tf.cond made the demo's XLA step 3.4x slower there, while without XLA it saved 11%;
    benchmarks/gan_step.py --compare=lazy_ma_gp)."""
    if requested != "auto":
        return bool(requested)
    gpus = gpu_compute_capabilities() if gpus is None else gpus
    return task == "gan" and policy == "none" and not gpus and not lazy_ma_gp


def use_xla(cfg: config_lib.ExperimentConfig) -> bool:
    """What `compile(jit_compile=...)` gets for this config's train step."""
    return resolve_jit_compile(cfg.runtime.jit_compile, cfg.train.task,
                               resolve_precision(cfg.runtime.mixed_precision),
                               lazy_ma_gp=cfg.loss.ma_gp_interval > 1)


def resolved(cfg: config_lib.ExperimentConfig) -> config_lib.ExperimentConfig:
    """`cfg` with --mixed_precision=auto and --jit_compile=auto replaced by what this
    machine gets (logged)."""
    requested = cfg.runtime.mixed_precision
    if requested in ("auto", "mixed_bfloat16"):
        features, gpus = _hardware(None, None)
        warning = emulated_bfloat16_warning(requested, features, gpus)
        if warning:
            log_info(f"Warning: {warning}")
        if requested == "auto":
            policy = resolve_precision(requested, features, gpus)
            log_info(f"--mixed_precision=auto: {policy} ("
                     f"{'native' if policy != 'none' else 'no native'} bfloat16 here).")
            cfg = cfg.replace(runtime={"mixed_precision": policy})
    if cfg.runtime.jit_compile == "auto":
        policy, gpus = cfg.runtime.mixed_precision, gpu_compute_capabilities()
        lazy = cfg.loss.ma_gp_interval > 1
        xla = resolve_jit_compile("auto", cfg.train.task, policy, gpus, lazy)
        log_info(f"--jit_compile=auto: {str(xla).lower()} (the {cfg.train.task} step in "
                 f"{'float32' if policy == 'none' else policy} on "
                 f"{'GPUs' if gpus else 'a CPU'}{', lazy MA-GP' if lazy else ''}).")
        cfg = cfg.replace(runtime={"jit_compile": xla})
    return cfg


def set_precision(runtime: config_lib.RuntimeConfig) -> None:
    policy = resolve_precision(runtime.mixed_precision)
    keras.mixed_precision.set_global_policy("float32" if policy == "none" else policy)


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
    start = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * n_local
    after = (ctx.num_replicas_in_sync - 1) * n_local - start

    def placed(t):  # this replica's rows at their place in the global batch, zeros elsewhere
        return tf.pad(t, [[start, after]] + [[0, 0]] * (len(t.shape) - 1))

    # A sum of zero-padded slices, not `all_gather`: MultiWorkerMirroredStrategy's
    # all_gather fails inside a replica function ("destinations can not be empty"). The
    # sum is exact (every element is one value plus zeros), and its gradient, the summed
    # upstream gradients, sends each replica the gradient of its own rows. One reduce per
    # tensor: the multi-worker one packs what it is given into one tensor of one dtype.
    gathered = tf.nest.map_structure(
        lambda t: ctx.all_reduce(tf.distribute.ReduceOp.SUM, placed(t)), tensors)
    return gathered, lambda x: x[start:start + n_local]


def fit_logs(logs):
    """A train/test step's logged values, in the form `fit()` can reduce over replicas.

    Keras reduces a step's outputs under MultiWorkerMirroredStrategy with a mean over
    axis 0, which fails on scalars: there each value gets a leading axis of 1 (the mean
    over it and the replicas is then the replicas' mean, as elsewhere).
    """
    strategy = tf.distribute.get_strategy()
    if (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode()):  # pylint: disable=protected-access
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}
    return logs


def _scale(grad, factor):
    if isinstance(grad, tf.IndexedSlices):  # embedding gradients
        return tf.IndexedSlices(grad.values * factor, grad.indices, grad.dense_shape)
    return grad * factor


def log_info(message: str) -> None:
    """A progress line for the user: stdout only (not again through logging)."""
    print(message, flush=True)
