"""Where the time of one GAN step goes: a TensorFlow profile of the 30-minute config's step.

  python tools/profile_gan_step.py [--ngf=8 --ndf=16 --mask_channels=100 --ma_gp_interval=1 \
      --mixed_precision=mixed_bfloat16]

Builds the step of configs/shapes_ssagan_30min.cfg as benchmarks/gan_step.py does (by
default at the config's widths, ngf 4 / ndf 8 / mask predictors 32 wide; random weights, one
fixed batch, joint MA-GP every 4th step (`--ma_gp_interval`), word attention up to 32 px,
DAMSM weight 1.5, `--jit_compile=auto`), warms it up, times eight steps, then traces eight more with
`tf.profiler` and sums the traced ops' durations (both executor threads, per step): by op
type, and by the part of the model an op's name belongs to (generator, discriminator, their
SSCBNs, mask predictors and convolutions, the encoders, the optimizers). The shares are of
op time, which on two cores is about twice the step's wall time. Under XLA the ops are fused
kernels without model names, so profile the plain graph (bfloat16 on a CPU with native
bfloat16, where `auto` leaves XLA off).
"""

import argparse
import collections
import glob
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top

from tf_t2i.training import runtime  # pylint: disable=g-import-not-at-top
from tf_t2i.training import train_lib  # pylint: disable=g-import-not-at-top

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))
import gan_step  # pylint: disable=g-import-not-at-top,wrong-import-position

PARTS = ("generator", "discriminator", "sscbn", "mask_predictor", "conv_in", "conv_out",
         "word_context", "image_encoder", "text_encoder", "adam")
STEPS = 8  # whole cycles of a lazy MA-GP every 1st, 2nd, 4th or 8th step


def op_durations(logdir):
    """[(op name, op type, seconds)] of the traced compute threads."""
    path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    ops = []
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith(("tf_Compute", "tf_numa")):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" in name and not name.startswith("ExecutorState"):
                    scope, kind = name.rsplit(":", 1)
                    ops.append((scope, kind, event.duration_ps * 1e-12))
    return ops


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    gan_step.add_thirty_minute_flags(parser)
    parser.add_argument("--mixed_precision", default="mixed_bfloat16",
                        choices=["none", "mixed_bfloat16"])
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    args.batch, args.size, args.steps = 24, 64, STEPS
    if args.mixed_precision != "none":
        keras.mixed_precision.set_global_policy(args.mixed_precision)
    cfg = gan_step.thirty_minute_cfg(args)
    with tempfile.TemporaryDirectory() as tmp:
        parts = train_lib.GANComponents(cfg, 64, tmp)
        batch = gan_step.synthetic_batch(cfg, args.batch)
        step = tf.function(parts.gan.train_step, jit_compile=runtime.use_xla(cfg))
        for _ in range(3):
            float(step(batch)["g_loss"])
        start = time.perf_counter()
        for _ in range(STEPS):
            logs = step(batch)
        float(logs["g_loss"])
        wall = (time.perf_counter() - start) / STEPS
        logdir = os.path.join(tmp, "profile")
        tf.profiler.experimental.start(logdir)
        for _ in range(STEPS):
            logs = step(batch)
        float(logs["g_loss"])
        tf.profiler.experimental.stop()
        ops = op_durations(logdir)
    total = sum(s for _, _, s in ops) / STEPS
    print(f"ngf {args.ngf} / ndf {args.ndf} / mask {args.mask_channels}, MA-GP every "
          f"{args.ma_gp_interval}, {args.mixed_precision}, "
          f"XLA {runtime.use_xla(cfg)}: {wall:.3f} s a step; traced op time {total:.3f} s a step "
          f"({len(ops) / STEPS:.0f} ops)")
    by_kind = collections.Counter()
    for _, kind, seconds in ops:
        by_kind[kind] += seconds / STEPS
    print("By op type:")
    for kind, seconds in by_kind.most_common(args.top):
        print(f"  {kind:40s} {seconds * 1e3:8.1f} ms  {seconds / total:6.1%}")
    print("By part (an op counts in every part its name holds):")
    for part in PARTS:
        seconds = sum(s for scope, _, s in ops if part in scope) / STEPS
        print(f"  {part:40s} {seconds * 1e3:8.1f} ms  {seconds / total:6.1%}")


if __name__ == "__main__":
    main()
