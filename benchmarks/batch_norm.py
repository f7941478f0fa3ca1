"""Times the fused batch norm of `tf_t2i.models.layers` against Keras's, side by side.

  python benchmarks/batch_norm.py [--mixed_precision=mixed_bfloat16] [--steps=8]

Two tables from one run. Op level: forward + backward of one training-mode batch norm (no
affine, as in SSA-GAN's SSCBN) on the generator's largest activations, Keras's
`BatchNormalization` against `FusedBatchNormalization` (one `FusedBatchNormV3` op each way).
Step level: the GAN step of configs/shapes_ssagan_30min.cfg (by default its widths, ngf 4 /
ndf 8 / mask 32; the twenty-fourth round measured 8 / 16 / 100: `--ngf=8 --ndf=16
--mask_channels=100`; word attention up to 32 px, joint MA-GP every 4th step, DAMSM weight
1.5; random weights and one fixed batch, as benchmarks/gan_step.py builds it), its batch
norms Keras's or fused, alternated three times so that drift of the machine hits both.
"""

import argparse
import os
import time
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

import gan_step  # pylint: disable=g-import-not-at-top
from tf_t2i.models import layers as t2i_layers  # pylint: disable=g-import-not-at-top

SHAPES = ((24, 64, 64, 64), (24, 64, 64, 32), (24, 32, 32, 64), (24, 16, 16, 64))
_FUSED_FACTORY = t2i_layers.torch_batch_norm


def keras_batch_norm(affine=True, dtype=None, name=None):
    """The factory as it was: Keras's own layer, same constants."""
    return keras.layers.BatchNormalization(
        momentum=t2i_layers.TORCH_BN_MOMENTUM, epsilon=t2i_layers.TORCH_BN_EPSILON,
        center=affine, scale=affine, synchronized=True, dtype=dtype, name=name)


def time_op(make_layer, shape, steps):
    layer = make_layer(affine=False)
    x = tf.cast(tf.random.normal(shape, seed=0), layer.compute_dtype)
    layer.build(shape)

    @tf.function
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(tf.cast(layer(x, training=True), "float32")))
        return tape.gradient(loss, x)

    for _ in range(3):
        forward_backward(x).numpy()
    start = time.perf_counter()
    for _ in range(steps):
        grad = forward_backward(x)
    grad.numpy()
    return (time.perf_counter() - start) / steps


def time_step(factory, args):
    cfg = gan_step.thirty_minute_cfg(args)
    with mock.patch.object(t2i_layers, "torch_batch_norm", factory):
        return gan_step.time_variant(cfg, args)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mixed_precision", default="mixed_bfloat16",
                        choices=["none", "mixed_bfloat16"])
    parser.add_argument("--steps", type=int, default=8,
                        help="A multiple of 4: the config's MA-GP runs every 4th step.")
    gan_step.add_thirty_minute_flags(parser)
    parser.add_argument("--skip_step", action="store_true", help="Only the op-level table.")
    args = parser.parse_args()
    args.batch, args.size = 24, 64
    if args.mixed_precision != "none":
        keras.mixed_precision.set_global_policy(args.mixed_precision)
    print(f"Batch norm, {args.mixed_precision}, {os.cpu_count()} CPUs")
    for shape in SHAPES:
        ops = {name: time_op(factory, shape, 10 * args.steps) for name, factory in
               (("keras", keras_batch_norm), ("fused", _FUSED_FACTORY))}
        print(f"  {str(list(shape)):18s} forward+backward: Keras {ops['keras'] * 1e3:.2f} ms, "
              f"fused {ops['fused'] * 1e3:.2f} ms, x{ops['fused'] / ops['keras']:.3f}")
    if args.skip_step:
        return
    steps = {"keras": [], "fused": []}
    for _ in range(3):
        steps["keras"].append(time_step(keras_batch_norm, args))
        steps["fused"].append(time_step(_FUSED_FACTORY, args))
    keras_mean = np.mean(steps["keras"])
    for name, times in steps.items():
        print(f"  GAN step (30-minute config), {name:5s} batch norm: {np.mean(times):.4f} s "
              f"(runs {np.round(times, 4)}), x{np.mean(times) / keras_mean:.3f}")


if __name__ == "__main__":
    main()
