"""Times SSA-GAN training steps on this machine, variants side by side in one run.

  python benchmarks/gan_step.py [--ngf=32 --ndf=32 --batch=24 --size=64 --steps=5]

Random weights (no DAMSM run needed): builds the models exactly as `tf_t2i.train` does,
feeds one fixed batch, and reports seconds per step and images per second for MA-GP as
a separate D step (the reference) and joint (added to the hinge D loss), and the ratio.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from tf_t2i import config as config_lib  # pylint: disable=g-import-not-at-top
from tf_t2i.training import train_lib  # pylint: disable=g-import-not-at-top


def make_cfg(args, mode):
    return config_lib.ExperimentConfig().replace(
        data={"image_size": args.size},
        generator={"ngf": args.ngf}, discriminator={"ndf": args.ndf},
        train={"batch_size": args.batch, "task": "gan"},
        loss={"ma_gp_mode": mode, "damsm_weight": 0.05, "gamma1": 5.0},
        runtime={"damsm_dir": "unused"})


def time_variant(cfg, args):
    vocab = 64
    with tempfile.TemporaryDirectory() as tmp:
        parts = train_lib.GANComponents(cfg, vocab, tmp)
        rng = np.random.default_rng(0)
        b, t = args.batch, cfg.data.max_caption_length
        batch = {
            "real_images": tf.constant(rng.uniform(-1, 1, (b, args.size, args.size, 3)),
                                       tf.float32),
            "caption_ids": tf.constant(rng.integers(2, vocab, (b, t)), tf.int32),
            "mismatched_ids": tf.constant(rng.integers(2, vocab, (b, t)), tf.int32),
            "z": tf.constant(rng.normal(size=(b, cfg.generator.z_dim)), tf.float32),
            "class_id": tf.fill([b], tf.constant(-1, tf.int64)),
            "image_id": tf.range(b, dtype=tf.int64),
        }
        ds = tf.data.Dataset.from_tensors(batch).repeat()
        parts.gan.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)   # trace + warm up
        start = time.perf_counter()
        parts.gan.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0)
        return (time.perf_counter() - start) / args.steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ngf", type=int, default=32)
    parser.add_argument("--ndf", type=int, default=32)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--mixed_precision", default="none",
                        choices=["none", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--modes", default="separate_step,joint")
    args = parser.parse_args()
    if args.mixed_precision != "none":
        keras.mixed_precision.set_global_policy(args.mixed_precision)
    print(f"SSA-GAN step, {args.size}px, ngf={args.ngf}, ndf={args.ndf}, batch {args.batch}, "
          f"{args.mixed_precision}, {os.cpu_count()} CPUs")
    results = {}
    for mode in args.modes.split(","):
        seconds = time_variant(make_cfg(args, mode), args)
        results[mode] = seconds
        print(f"  MA-GP {mode:13s}: {seconds:.4f} s/step, {args.batch / seconds:.1f} images/s")
    if len(results) == 2:
        print(f"  ratio joint / separate_step: "
              f"{results['joint'] / results['separate_step']:.2f}")


if __name__ == "__main__":
    main()
