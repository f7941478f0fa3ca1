"""Trains a shapes GAN with learning curves, evaluates it, and writes its results JSON.

  python tools/shapes_quality.py --config=configs/shapes_ssagan_30min.cfg --name=ssagan_30min
  python tools/shapes_quality.py --config=configs/shapes_attngan.cfg --name=attngan_30min \
      --max_minutes=30

One run of the shapes quality study (README, "Shapes: what the models learn"):

1. DAMSM pretraining with --damsm_config into <runs>/damsm (skipped once finished;
   shared by every run of the study);
2. GAN training with --config into <runs>/<name>, evaluated every --eval_every steps on
   1,000 test captions (attribute accuracy, R-precision, shapes-FID), resumable;
3. the final evaluation of the EMA generator on --num_images test captions, plus the
   diversity over noise;
4. <results>/<name>.json: the settings, the machine, the wall times, the final metrics
   with their real-image references and targets, and the learning curve.

A run whose JSON exists is skipped, so the study can be spread over several sittings and
machines (commit the JSON files, never the runs). Every step runs the project's own
binaries, so what this measures is what a user gets.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time

from tf_t2i.io import files

CURVE_METRICS = "attribute_accuracy,r_precision,shapes_fid"
FINAL_METRICS = "attribute_accuracy,r_precision,shapes_fid,diversity"
# The shapes quality targets (README): overall >= 0.85, each attribute >= 0.75, every
# named attribute right >= 0.6, R-precision >= 0.8 x real, shapes-FID <= 3 x real vs
# real, diversity >= 0.5 x real.
TARGETS = {"attribute_accuracy": 0.85, "per_attribute": 0.75, "all_named": 0.6,
           "r_precision_of_real": 0.8, "shapes_fid_of_real_vs_real": 3.0,
           "diversity_of_real": 0.5}


def run(command, log_path):
    """Runs a binary of the project, its output appended to `log_path`; exits on failure."""
    print("+ " + " ".join(command), flush=True)
    started = time.time()
    with open(log_path, "a") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    if code:
        sys.exit(f"error: {' '.join(command[:3])} failed with exit code {code}; see {log_path}")
    return time.time() - started


def read_rows(model_dir):
    path = os.path.join(model_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:
        pass
    threads = {k: os.environ[k] for k in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
               if k in os.environ}
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            **({"tf_threads": threads} if threads else {})}


def last_checkpoint_step(model_dir):
    """The step of the run's latest checkpoint (ckpt-<step>.index)."""
    names = os.listdir(os.path.join(model_dir, "checkpoints"))
    steps = [int(m.group(1)) for m in map(re.compile(r"ckpt-(\d+)\.index$").match, names) if m]
    if not steps:
        sys.exit(f"error: no checkpoint in {model_dir}/checkpoints")
    return max(steps)


def final_row(rows, prefix, step):
    """The last row of a metric (name prefix) at `step` with the final sample count."""
    picked = [r for r in rows if r["metric"].startswith(prefix) and r.get("step") == step]
    return picked[-1] if picked else None


def summarize(rows, step, num_images, damsm_r_precision):
    """Final metrics, their references and whether each target is met."""
    label = f"{num_images // 1000}k" if num_images % 1000 == 0 else str(num_images)
    accuracy = final_row(rows, f"attribute_accuracy{label}", step)
    r_precision = final_row(rows, f"r_precision{label}", step)
    shapes_fid = final_row(rows, f"shapes_fid{label}", step)
    diversity = final_row(rows, "diversity", step)
    per = accuracy["per_attribute"]
    out = {
        "attribute_accuracy": accuracy["value"],
        "per_attribute": {k: per[k] for k in ("color", "shape", "size", "position")},
        "color_shape": per["color_shape"], "all_named": per["all_named"],
        "breakdown": accuracy.get("breakdown"),
        "attribute_accuracy_real_images": accuracy["real_images"],
        "r_precision": r_precision["value"], "r_precision_real_images": damsm_r_precision,
        "shapes_fid": shapes_fid["value"], "shapes_fid_real_vs_real": shapes_fid["real_vs_real"],
        "diversity": diversity["value"], "diversity_details": {
            k: diversity[k] for k in ("generated_distance", "real_distance", "captions",
                                      "samples_per_caption", "background_spread",
                                      "open_attributes")},
    }
    out["targets_met"] = {
        "attribute_accuracy": out["attribute_accuracy"] >= TARGETS["attribute_accuracy"],
        "per_attribute": min(out["per_attribute"].values()) >= TARGETS["per_attribute"],
        "all_named": out["all_named"] >= TARGETS["all_named"],
        "r_precision": out["r_precision"] >= TARGETS["r_precision_of_real"] * damsm_r_precision,
        "shapes_fid": out["shapes_fid"] <= (TARGETS["shapes_fid_of_real_vs_real"]
                                            * out["shapes_fid_real_vs_real"]),
        "diversity": out["diversity"] >= TARGETS["diversity_of_real"],
    }
    return out


def curve(rows):
    """The in-training evaluations: step, training seconds and the values."""
    points = {}
    for row in rows:
        if row.get("train_seconds") is None:
            continue
        point = points.setdefault(row["step"], {"step": row["step"],
                                                "train_seconds": row["train_seconds"]})
        base = re.sub(r"(\d+k?|\d+x\d+)$", "", row["metric"])
        point[base] = row["value"]
        if base == "attribute_accuracy":
            point.update(row["per_attribute"])
    return [points[k] for k in sorted(points)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="The GAN flagfile.")
    parser.add_argument("--name", required=True, help="Run and results name.")
    parser.add_argument("--damsm_config", default="configs/shapes_damsm.cfg")
    parser.add_argument("--train_steps", type=int, default=None,
                        help="Overrides the config's run length.")
    parser.add_argument("--max_minutes", type=float, default=None,
                        help="Wall-time budget of the GAN training (--train_max_seconds); "
                             "with it the run goes on until the budget, not the config's "
                             "steps (unless --train_steps is also given).")
    parser.add_argument("--eval_every", type=int, default=250)
    parser.add_argument("--num_images", type=int, default=2000)
    parser.add_argument("--runs", default="runs/shapes_quality")
    parser.add_argument("--results", default="results/shapes_quality")
    parser.add_argument("--force", action="store_true", help="Rewrite an existing JSON.")
    parser.add_argument("flags", nargs="*", help="Extra flags for tf_t2i.train (after --).")
    args = parser.parse_args()
    out_path = os.path.join(args.results, f"{args.name}.json")
    if os.path.exists(out_path) and not args.force:
        print(f"{out_path} exists: {args.name} is finished; skipping.")
        return
    for path in (args.config, args.damsm_config):
        if not os.path.exists(path):
            sys.exit(f"error: {path} does not exist (run from the repository root).")
    os.makedirs(args.runs, exist_ok=True)
    py = sys.executable
    damsm_dir = os.path.join(args.runs, "damsm")
    if not os.path.exists(os.path.join(damsm_dir, "r_precision.json")):
        run([py, "-m", "tf_t2i.pretrain", f"--flagfile={args.damsm_config}",
             f"--model_dir={damsm_dir}"], damsm_dir + ".log")
    with open(os.path.join(damsm_dir, "r_precision.json")) as f:
        damsm = json.load(f)

    model_dir = os.path.join(args.runs, args.name)
    train = [py, "-m", "tf_t2i.train", f"--flagfile={args.config}", f"--damsm_dir={damsm_dir}",
             f"--model_dir={model_dir}", f"--eval_every={args.eval_every}",
             f"--eval_metrics={CURVE_METRICS}", "--eval_num_images=1000", *args.flags]
    if args.max_minutes:
        train += [f"--train_max_seconds={args.max_minutes * 60:g}",
                  f"--train_steps={args.train_steps or 10**6}"]
    elif args.train_steps:
        train.append(f"--train_steps={args.train_steps}")
    wall = run(train, model_dir + ".log")
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    steps = last_checkpoint_step(model_dir)
    rows = read_rows(model_dir)
    if final_row(rows, "diversity", steps) is None:
        run([py, "-m", "tf_t2i.evaluate", f"--model_dir={model_dir}",
             f"--metrics={FINAL_METRICS}", f"--num_images={args.num_images}"],
            model_dir + ".log")
        rows = read_rows(model_dir)
    points = curve(rows)
    result = {
        "name": args.name, "config": args.config, "extra_flags": args.flags,
        "max_minutes": args.max_minutes,
        "steps": steps, "batch_size": config["train"]["batch_size"],
        "mixed_precision": config["runtime"]["mixed_precision"],
        # Training wall time to the last step (evaluations excluded): the in-training
        # evaluation runs at the step the run ends on too.
        "gan_train_seconds": next((p["train_seconds"] for p in points if p["step"] == steps),
                                  None),
        "gan_command_seconds_last_sitting": round(wall, 1),
        "damsm": {"config": args.damsm_config, "steps": damsm["step"],
                  "train_seconds": damsm["train_seconds"],
                  "r_precision_real_images": damsm["r_precision"]},
        "machine": machine(), "num_images": args.num_images,
        "final": summarize(rows, steps, args.num_images, damsm["r_precision"]),
        "targets": TARGETS, "curve": points,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    files.atomic_write_json(out_path, result, indent=1)
    print(json.dumps(result["final"], indent=1))
    print(f"Wrote {out_path}")


if __name__ == "__main__":
    main()
