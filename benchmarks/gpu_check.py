"""The prepared GPU check: the CUB SSA-GAN's speed and memory on this machine, in one table.

  python benchmarks/gpu_check.py [--output=results/gpu_check.json] [--budget_s=540]
  make gpu-check

Built for a GPU lent for a 15-minute window: nothing is downloaded (random weights, the
synthetic batches of benchmarks/gan_step.py), and a global time budget (default 9 min,
TensorFlow's import included) turns the rows it cannot reach into "skipped (time
budget)" instead of overrunning. It prints the device (name, memory, TF/CUDA versions),
then times, with configs/cub_ssagan.cfg's settings (256 px, ngf = ndf = 64, MA-GP as a
second D step, DAMSM term on the Inception image encoder):

* the GAN step at the config's batch (24) in fp32, mixed_bfloat16, mixed_float16 and fp32
  with `runtime.jit_compile` (XLA), each set through the config as `tf_t2i.train` sets it;
* for each of these, the largest batch that fits: doubling from 24 until a
  ResourceExhaustedError, the row being the last batch that ran (the search stops at
  --max_batch or after --search_s seconds, and says so);
* EMA generator inference (text encoder + generator) at batch 64;
* the fp32 step under `tf.distribute.MirroredStrategy` over two GPUs, 24 images per GPU,
  when two are visible: its images/s against one GPU's is the scaling (2.0 is perfect).

A row is the median of --steps timed steps after --warmup steps (the first traces or
compiles), each ended by reading its loss on the host; its peak memory is per GPU
(`tf.config.experimental.get_memory_info`); its ratio is its images/s over the fp32 row
of its kind (largest-batch rows: over fp32's largest batch). A failing row shows its
error in one line and the others go on. The JSON is rewritten after every row.

Without a GPU it says "no GPU" and runs the same rows at configs/tiny.cfg's widths (64 px,
batch 2, one warm-up and two timed steps, search capped at 4) within a two-minute budget
on 2 cores, the 2-device row over two logical CPU devices, into
results/gpu_check_cpu.json (`make bench` on a CPU leaves the GPU numbers alone). Rows
run in the order fp32, inference, 2 devices, bfloat16, XLA, float16: the distinct code
paths first, XLA (slow to compile) and float16 (emulated on a CPU) last.
"""

import argparse
import contextlib
import gc
import os
import statistics
import subprocess
import tempfile
import time
import warnings
from typing import NamedTuple, Optional

STARTED = time.monotonic()  # the budget counts TensorFlow's import
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

import gan_step  # pylint: disable=g-import-not-at-top  (benchmarks/, this script's directory)
from tf_t2i import config as config_lib  # pylint: disable=g-import-not-at-top
from tf_t2i import flags as t2i_flags  # pylint: disable=g-import-not-at-top
from tf_t2i.io import files  # pylint: disable=g-import-not-at-top
from tf_t2i.models import factory  # pylint: disable=g-import-not-at-top
from tf_t2i.models import interface  # pylint: disable=g-import-not-at-top
from tf_t2i.models import trained_run  # pylint: disable=g-import-not-at-top
from tf_t2i.training import runtime  # pylint: disable=g-import-not-at-top
from tf_t2i.training import train_lib  # pylint: disable=g-import-not-at-top

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CUB_CONFIG = os.path.join(ROOT, "configs", "cub_ssagan.cfg")
# The step's cost does not depend on the vocabulary (a frozen embedding lookup).
VOCAB_SIZE = 64

# Row settings: runtime config fields, as --mixed_precision / --jit_compile set them.
PRECISIONS = {
    "fp32": {"mixed_precision": "none", "jit_compile": False},
    "mixed_bfloat16": {"mixed_precision": "mixed_bfloat16", "jit_compile": False},
    "mixed_float16": {"mixed_precision": "mixed_float16", "jit_compile": False},
    "fp32+xla": {"mixed_precision": "none", "jit_compile": True},
}

# configs/tiny.cfg's sizes: the CPU fallback runs every row's code in seconds.
CPU_SIZES = {
    "data": {"image_size": 64, "max_caption_length": 12},
    "text": {"embedding_dim": 16, "hidden_dim": 16},
    "image_encoder": {"backbone": "small_cnn", "small_cnn_width": 8},
    "generator": {"ngf": 8, "z_dim": 16},
    "discriminator": {"ndf": 8},
    "train": {"batch_size": 2},
}

GPU_DEFAULTS = dict(budget_s=540, inference_batch=64, max_batch=1536, warmup=2, steps=5,
                    search_s=45, row_s=60, output=os.path.join(ROOT, "results/gpu_check.json"))
CPU_DEFAULTS = dict(budget_s=120, inference_batch=4, max_batch=4, warmup=1, steps=2,
                    search_s=8, row_s=5, output=os.path.join(ROOT, "results/gpu_check_cpu.json"))
SKIPPED = "skipped (time budget)"


class Timing(NamedTuple):
    batch: int                    # global batch (all replicas)
    seconds_per_step: float       # median of the timed steps
    first_step: float             # the first step, tracing/compiling included
    peak_bytes: Optional[int]     # peak memory of a GPU, None without one


# --- Rows and the table ----------------------------------------------------------------

def row_names():
    """The table's rows in order: (name, baseline name) (ratio = images/s over baseline's)."""
    return ([(f"step {p}", "step fp32") for p in PRECISIONS]
            + [(f"largest batch {p}", "largest batch fp32") for p in PRECISIONS]
            + [("inference fp32", "inference fp32"), ("2 devices fp32", "step fp32")])


def add_ratios(rows):
    """Fills each row's `ratio_to_fp32` (images/s over its baseline row's), None when
    either has no figure."""
    by_name = {r["name"]: r for r in rows}
    for row in rows:
        base = by_name.get(row["baseline"], {}).get("images_per_second")
        ips = row.get("images_per_second")
        row["ratio_to_fp32"] = _significant(ips / base) if ips and base else None
    return rows


def _significant(value: float) -> float:
    return float(f"{value:.4g}")


def one_line(error: BaseException) -> str:
    """The error in one line: for a TensorFlow op error, its message without the stack."""
    text = str(error)
    if isinstance(error, tf.errors.OpError):
        noise = ("Graph execution error", "Detected at node", "[[", "Hint:", "[Op:")
        lines = [l.strip() for l in text.splitlines()
                 if l.strip() and not l.startswith(" ") and not l.strip().startswith(noise)]
        text = lines[0] if lines else text
    text = f"{type(error).__name__}: {' '.join(text.split())}"
    return text if len(text) <= 200 else text[:197] + "..."


def is_out_of_memory(error: BaseException) -> bool:
    return (isinstance(error, tf.errors.ResourceExhaustedError)
            or "out of memory" in str(error).lower() or "RESOURCE_EXHAUSTED" in str(error))


class Table:
    """The rows, written to `path` (JSON) after every change."""

    def __init__(self, path, header):
        self.path, self.header = path, header
        self.rows = [dict(name=n, baseline=b, status="pending", batch=None,
                          seconds_per_step=None, images_per_second=None, peak_memory_gib=None,
                          ratio_to_fp32=None, note=None, error=None) for n, b in row_names()]

    def record(self, name, timing: Optional[Timing] = None, error=None, note=None,
               skipped=None):
        """One row's figures, or its one-line `error`, or why it was `skipped`."""
        row = next(r for r in self.rows if r["name"] == name)
        if timing is not None:
            gib = None if timing.peak_bytes is None else round(timing.peak_bytes / 2**30, 2)
            row.update(status="ok", error=None, batch=timing.batch,
                       seconds_per_step=_significant(timing.seconds_per_step),
                       images_per_second=_significant(timing.batch / timing.seconds_per_step),
                       peak_memory_gib=gib)
        elif skipped:
            row.update(status="skipped", error=skipped)
        else:
            row.update(status="error", error=error)
        row["note"] = note
        add_ratios(self.rows)
        self.write()
        print(f"  [{time.monotonic() - STARTED:5.0f}s] {name}: {row['error'] or 'ok'}",
              flush=True)

    def write(self):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        files.atomic_write_json(self.path, {**self.header, "rows": self.rows,
                                            "elapsed_s": round(time.monotonic() - STARTED, 1)},
                                indent=2)

    def format(self) -> str:
        lines = [f"{'row':28s} {'batch':>5s} {'s/step':>9s} {'img/s':>8s} {'x fp32':>7s} "
                 f"{'peak GiB':>9s}  note"]
        for r in self.rows:
            batch = "" if r["batch"] is None else str(r["batch"])
            if r["status"] != "ok":
                lines.append(f"{r['name']:28s} {batch:>5s}  {r.get('error') or r['status']}")
                continue
            ratio = "" if r["ratio_to_fp32"] is None else f"{r['ratio_to_fp32']:.2f}"
            peak = "n/a" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.2f}"
            lines.append(f"{r['name']:28s} {batch:>5s} {r['seconds_per_step']:9.4f} "
                         f"{r['images_per_second']:8.1f} {ratio:>7s} {peak:>9s}  "
                         f"{r['note'] or ''}".rstrip())
        return "\n".join(lines)


# --- Timing ----------------------------------------------------------------------------

class _StepTimer(keras.callbacks.Callback):
    """Each step's seconds, ended by reading its loss on the host; stops the fit once
    `steps` steps after `warmup` are timed, or after `max_seconds` with at least one."""

    def __init__(self, warmup, steps, max_seconds):
        super().__init__()
        self.warmup, self.steps, self.max_seconds = warmup, steps, max_seconds
        self.seconds, self._begin = [], None
        self._started = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        self._begin = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        float(logs["g_loss"])  # waits for the step
        self.seconds.append(time.perf_counter() - self._begin)
        timed = len(self.seconds) - self.warmup
        if timed >= self.steps or (timed >= 1 and
                                   time.perf_counter() - self._started > self.max_seconds):
            self.model.stop_training = True


def _reset_peaks(devices):
    for device in devices:
        tf.config.experimental.reset_memory_stats(device)


def _timing(batch, seconds, warmup, devices) -> Timing:
    peaks = [tf.config.experimental.get_memory_info(d)["peak"] for d in devices]
    return Timing(batch, statistics.median(seconds[warmup:]), seconds[0],
                  max(peaks) if peaks else None)


class GANBench:
    """One precision setting's GAN (random weights), built once, timed at any batch.

    The input cycles through (at most) 64 synthetic examples, batched with the batch
    dimension left unknown, so that one trace serves every batch size of the search (XLA
    still compiles each shape) and no batch is held as one big constant.

    Args:
      cfg: the run's config; its runtime section sets the dtype policy and XLA.
      strategy: built and run under this strategy (global batches split over replicas).
      devices: the GPUs whose peak memory the timings report ([] on a CPU).
    """

    def __init__(self, cfg, strategy, devices):
        self.cfg, self.strategy, self.devices = cfg, strategy, devices
        self._dir = tempfile.TemporaryDirectory()
        self.parts = None
        runtime.set_precision(cfg.runtime)
        keras.utils.set_random_seed(cfg.train.seed)
        try:
            with strategy.scope():
                self.parts = train_lib.GANComponents(cfg, VOCAB_SIZE, self._dir.name)
        except Exception:
            self.close()
            raise

    def time(self, batch, warmup, steps, max_seconds) -> Timing:
        per_replica = batch // self.strategy.num_replicas_in_sync
        examples = gan_step.synthetic_batch(self.cfg, min(per_replica, 64), VOCAB_SIZE)
        stream = runtime.distribute_input(self.strategy, lambda ctx: (
            tf.data.Dataset.from_tensor_slices(examples).repeat().batch(per_replica)
            .prefetch(2)))
        timer = _StepTimer(warmup, steps, max_seconds)
        _reset_peaks(self.devices)
        self.parts.gan.fit(stream, steps_per_epoch=warmup + steps, epochs=1, verbose=0,
                           callbacks=[timer])
        return _timing(batch, timer.seconds, warmup, self.devices)

    def close(self):
        """Frees the models and restores the float32 policy."""
        self.parts = None
        self._dir.cleanup()
        keras.backend.clear_session()
        gc.collect()
        keras.mixed_precision.set_global_policy("float32")


def time_inference(cfg, batch, args, devices) -> Timing:
    """Captions to images with the EMA generator (what sampling and serving run)."""
    text_encoder = factory.build_text_encoder(cfg, VOCAB_SIZE)
    text_encoder(tf.zeros([1, cfg.data.max_caption_length], tf.int32), training=False)
    generator = trained_run.build_ema_generator(cfg)
    generate = tf.function(lambda ids, z: interface.generate_from_captions(
        generator, text_encoder, ids, z, training=False))
    examples = gan_step.synthetic_batch(cfg, batch, VOCAB_SIZE)
    seconds = []
    _reset_peaks(devices)
    started = time.perf_counter()
    for _ in range(args.warmup + args.steps):
        begin = time.perf_counter()
        images = generate(examples["caption_ids"], examples["z"])
        float(images[0, 0, 0, 0])  # waits for the batch
        seconds.append(time.perf_counter() - begin)
        if len(seconds) > args.warmup and time.perf_counter() - started > args.row_s:
            break
    return _timing(batch, seconds, args.warmup, devices)


# --- The check -------------------------------------------------------------------------

TRIAL_WARMUP, TRIAL_STEPS = 1, 2  # per batch size tried (XLA compiles each anew)


def search_largest_batch(bench, first: Timing, args, deadline):
    """Doubles the batch from `first`'s until out of memory; returns (last that ran, note).

    A trial starts only if its estimated time (XLA's compilation as in `first`, then the
    steps at twice the last step's time) fits both the search's and the script's budget.
    """
    last, batch = first, first.batch * 2
    search_ends = time.monotonic() + args.search_s
    while batch <= args.max_batch:
        compile_cost = first.first_step if bench.cfg.runtime.jit_compile else 0.0
        estimate = compile_cost + 2 * last.seconds_per_step * (TRIAL_WARMUP + TRIAL_STEPS)
        if time.monotonic() + estimate > min(search_ends, deadline):
            return last, f"search stopped before {batch} (time)"
        try:
            last = bench.time(batch, TRIAL_WARMUP, TRIAL_STEPS, args.row_s)
        except Exception as e:  # pylint: disable=broad-except
            if is_out_of_memory(e):
                return last, f"out of memory at {batch}"
            return last, f"at {batch}: {one_line(e)}"
        batch *= 2
    return last, f"search capped at {args.max_batch}"


class Check:
    """Runs the rows into `table`, each only if the budget holds its estimated cost."""

    def __init__(self, cfg, args, table, gpus, mirrored):
        self.cfg, self.args, self.table, self.mirrored = cfg, args, table, mirrored
        self.devices = ["GPU:0"] if gpus else []
        self.deadline = STARTED + args.budget_s  # the budget counts from the import
        # Then the fp32 row's time; x3 for XLA, 2 devices and (emulated on a CPU) float16.
        self.row_cost = 0.05 * args.budget_s

    def run(self):
        """The distinct code paths first; XLA and float16, the costliest on a CPU, last."""
        self.precision("fp32")
        self.inference()
        self.two_devices()
        for name in ("mixed_bfloat16", "fp32+xla", "mixed_float16"):
            self.precision(name)

    def _affordable(self, *rows, factor=1.0) -> bool:
        if time.monotonic() + factor * self.row_cost <= self.deadline:
            return True
        for row in rows:
            self.table.record(row, skipped=SKIPPED)
        return False

    def precision(self, name):
        """The step row and the largest-batch row of one precision setting."""
        step_row, largest_row = f"step {name}", f"largest batch {name}"
        settings = PRECISIONS[name]
        slow = settings["jit_compile"] or (name == "mixed_float16" and not self.devices)
        if not self._affordable(step_row, largest_row, factor=3.0 if slow else 1.0):
            return
        args, cfg = self.args, self.cfg.replace(runtime=settings)
        first, started = None, time.monotonic()
        try:
            with contextlib.closing(GANBench(cfg, tf.distribute.get_strategy(),
                                             self.devices)) as bench:
                first = bench.time(cfg.train.batch_size, args.warmup, args.steps, args.row_s)
                self.table.record(step_row, first)
                if name == "fp32":
                    self.row_cost = time.monotonic() - started
                largest, note = search_largest_batch(bench, first, args, self.deadline)
                self.table.record(largest_row, largest, note=note)
        except Exception as e:  # pylint: disable=broad-except
            self.table.record(step_row if first is None else largest_row, error=one_line(e))
            if first is None:
                self.table.record(largest_row, error="no step row to search from")

    def inference(self):
        if not self._affordable("inference fp32", factor=0.5):
            return
        try:
            self.table.record("inference fp32", time_inference(
                self.cfg, self.args.inference_batch, self.args, self.devices))
        except Exception as e:  # pylint: disable=broad-except
            self.table.record("inference fp32", error=one_line(e))
        keras.backend.clear_session()
        gc.collect()

    def two_devices(self):
        """The fp32 step mirrored over two devices, the config's batch on each."""
        row = "2 devices fp32"
        if self.mirrored is None:
            self.table.record(row, skipped=f"skipped ({len(self.devices)} GPU visible)")
            return
        if not self._affordable(row, factor=3.0):
            return
        per_device = self.cfg.train.batch_size
        try:
            with contextlib.closing(GANBench(self.cfg, self.mirrored, ["GPU:0", "GPU:1"]
                                             if self.devices else [])) as bench:
                timing = bench.time(2 * per_device, self.args.warmup, self.args.steps,
                                    self.args.row_s)
            self.table.record(row, timing, note=f"{per_device} per device; x fp32 = scaling")
        except Exception as e:  # pylint: disable=broad-except
            self.table.record(row, error=one_line(e))


# --- Device and config -----------------------------------------------------------------

def describe_machine(gpus) -> dict:
    """Versions, and each GPU's name, compute capability, memory and driver."""
    build = tf.sysconfig.get_build_info()
    info = {"tensorflow": tf.__version__, "keras": keras.__version__,
            "cuda_build": build.get("cuda_version"), "cudnn_build": build.get("cudnn_version"),
            "cpus": os.cpu_count(), "gpus": []}
    smi, visible = [], os.environ.get("CUDA_VISIBLE_DEVICES")
    try:  # total memory and driver: TensorFlow reports neither
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
             "--format=csv,noheader,nounits", *([f"--id={visible}"] if visible else [])],
            capture_output=True, text=True, timeout=20, check=True).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        pass
    for i, gpu in enumerate(gpus):
        details = tf.config.experimental.get_device_details(gpu)
        entry = {"name": details.get("device_name", gpu.name),
                 "compute_capability": details.get("compute_capability")}
        if i < len(smi):
            _, memory, driver = [s.strip() for s in smi[i].split(",")]
            entry.update(memory_gib=round(float(memory) / 1024, 1), driver=driver)
        info["gpus"].append(entry)
    return info


def print_machine(info):
    if not info["gpus"]:
        print("no GPU: CPU fallback at tiny sizes (configs/tiny.cfg widths), the 2-device "
              "row over two logical CPU devices")
    for i, gpu in enumerate(info["gpus"]):
        print(f"GPU {i}: {gpu['name']}, {gpu.get('memory_gib', '?')} GiB, compute capability "
              f"{gpu['compute_capability']}, driver {gpu.get('driver', '?')}")
    print(f"TensorFlow {info['tensorflow']} (built for CUDA {info['cuda_build']}, cuDNN "
          f"{info['cudnn_build']}), Keras {info['keras']}, {info['cpus']} CPUs")


def load_config(path, gpus):
    """The config `tf_t2i.train` builds from the flagfile (CPU_SIZES without a GPU)."""
    t2i_flags.define_flags()
    try:
        t2i_flags.FLAGS(t2i_flags.expand_flagfiles(["gpu_check", f"--flagfile={path}"]))
    except t2i_flags.flags.Error as e:
        t2i_flags.fail(str(e))
    cfg = t2i_flags.config_from_flags(validate=False).replace(
        runtime={"damsm_dir": "unused", "captioner_dir": "unused"})
    return cfg if gpus else cfg.replace(**CPU_SIZES)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=CUB_CONFIG, help="GAN flagfile.")
    parser.add_argument("--output", help="JSON of the table (default results/gpu_check.json;"
                        " results/gpu_check_cpu.json without a GPU).")
    for name, kind, text in (
            ("budget_s", float, "Seconds for the whole script, import included."),
            ("inference_batch", int, "Batch of the inference row."),
            ("max_batch", int, "Largest batch the search tries."),
            ("warmup", int, "Untimed steps before the timed ones."),
            ("steps", int, "Timed steps (median) per row."),
            ("search_s", float, "Seconds per largest-batch search."),
            ("row_s", float, "Stop timing a row after this (keeping >= 1 timed step).")):
        parser.add_argument(f"--{name}", type=kind, help=f"{text} Defaults: "
                            f"{GPU_DEFAULTS[name]} (GPU), {CPU_DEFAULTS[name]} (no GPU).")
    return parser.parse_args()


def main():
    gpus = tf.config.list_physical_devices("GPU")
    given = {k: v for k, v in vars(parse_args()).items() if v is not None}
    args = argparse.Namespace(**{**(GPU_DEFAULTS if gpus else CPU_DEFAULTS), **given})
    mirrored = None
    if len(gpus) >= 2:
        mirrored = tf.distribute.MirroredStrategy(["GPU:0", "GPU:1"])
    elif not gpus:  # two logical CPUs, before anything initialises the devices
        mirrored = runtime.make_strategy(config_lib.RuntimeConfig(num_cpu_replicas=2))
    warnings.filterwarnings("ignore", message=".*Inception-v3 backbone is randomly")
    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed")
    tf.get_logger().setLevel("ERROR")  # tf.function's retracing notes: every row traces

    cfg = load_config(args.config, gpus)
    info = describe_machine(gpus)
    print_machine(info)
    print(f"{os.path.relpath(args.config, ROOT)}: {cfg.data.image_size} px, ngf "
          f"{cfg.generator.ngf}, ndf {cfg.discriminator.ndf}, batch {cfg.train.batch_size}, "
          f"{cfg.image_encoder.backbone} image encoder; budget {args.budget_s:.0f}s")
    header = {"machine": info, "config": os.path.relpath(args.config, ROOT),
              "cpu_fallback": not gpus,
              "settings": {k: v for k, v in vars(args).items() if k not in ("config", "output")},
              "sizes": {"image_size": cfg.data.image_size, "ngf": cfg.generator.ngf,
                        "ndf": cfg.discriminator.ndf, "batch": cfg.train.batch_size}}
    table = Table(args.output, header)
    Check(cfg, args, table, gpus, mirrored).run()
    print(table.format())
    print(f"{time.monotonic() - STARTED:.0f}s in all; written to {args.output}")


if __name__ == "__main__":
    main()
