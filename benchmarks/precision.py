"""Times the shapes SSA-GAN step in float32 and in mixed_bfloat16 on this machine.

  python benchmarks/precision.py [--steps=5 --rounds=1]

The step is that of configs/shapes_ssagan_30min.cfg (z in every SSCBN, the sentence in fc,
word attention up to 32 px, joint MA-GP, DAMSM weight 1.5; random weights, one fixed
batch, as benchmarks/gan_step.py builds it). The dtype policy is process-wide, so each
policy is timed in its own child process, the two alternated `--rounds` times so that
drift of the machine hits both. Prints whether this machine computes bfloat16 natively
(what `--mixed_precision=auto` reads), the seconds a step of each and their ratio.
"""

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

POLICIES = ("none", "mixed_bfloat16")


def time_policy(policy: str, steps: int) -> float:
    """Seconds a step in `policy`, in this process (the child's work)."""
    import keras  # pylint: disable=g-import-not-at-top
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gan_step  # pylint: disable=g-import-not-at-top
    if policy != "none":
        keras.mixed_precision.set_global_policy(policy)
    args = argparse.Namespace(ngf=8, ndf=16, batch=24, size=64, steps=steps)
    generator = {"ngf": 8, "noise_in_affine": True, "sentence_in_fc": True,
                 "residual_gate_init": 1.0, "word_attention_max_size": 32}
    cfg = gan_step.make_cfg(args, "joint", generator=generator, damsm_weight=1.5)
    return gan_step.time_variant(cfg, args)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--policy", choices=POLICIES, help=argparse.SUPPRESS)  # a child
    args = parser.parse_args()
    if args.policy:
        print(json.dumps({"seconds": time_policy(args.policy, args.steps)}))
        return
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tf_t2i.training import runtime  # pylint: disable=g-import-not-at-top
    features = runtime.cpu_features()
    gpus = runtime.gpu_compute_capabilities()
    native = sorted(features & runtime.NATIVE_BFLOAT16_CPU_FEATURES)
    print(f"Shapes SSA-GAN step (30-minute config), batch 24, 64 px, {os.cpu_count()} CPUs; "
          f"GPUs {gpus or 'none'}; native bfloat16 CPU features: {native or 'none'}; "
          f"--mixed_precision=auto -> {runtime.resolve_precision('auto', features, gpus)}")
    times = {policy: [] for policy in POLICIES}
    for _ in range(args.rounds):
        for policy in POLICIES:
            out = subprocess.run([sys.executable, __file__, f"--policy={policy}",
                                  f"--steps={args.steps}"], check=True, capture_output=True,
                                 text=True).stdout
            times[policy].append(json.loads(out.strip().splitlines()[-1])["seconds"])
    mean = {policy: sum(t) / len(t) for policy, t in times.items()}
    for policy, t in times.items():
        print(f"  {policy:15s}: {mean[policy]:.3f} s/step (runs {[round(x, 3) for x in t]})")
    print(f"  mixed_bfloat16 / float32: x{mean['mixed_bfloat16'] / mean['none']:.2f}")


if __name__ == "__main__":
    main()
