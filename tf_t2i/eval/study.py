"""What the shapes studies share: running the project's binaries, reading a run's
evaluations, and summarising them into a results JSON (tools/shapes_quality.py, the
ablation driver tf_t2i/ablate.py).

Nothing here imports TensorFlow: the work is done by the binaries it runs, so what a
study measures is what a user gets.
"""

import json
import os
import platform
import re
import subprocess
import sys
import time
from typing import Dict, List, Optional

# The shapes quality targets (README): overall >= 0.85, each attribute >= 0.75, every
# named attribute right >= 0.6, R-precision >= 0.8 x real, shapes-FID <= 3 x real vs
# real, diversity >= 0.5 x real.
TARGETS = {"attribute_accuracy": 0.85, "per_attribute": 0.75, "all_named": 0.6,
           "r_precision_of_real": 0.8, "shapes_fid_of_real_vs_real": 3.0,
           "diversity_of_real": 0.5}


def run(command: List[str], log_path: str) -> float:
    """Runs a binary of the project, its output appended to `log_path`; exits on failure.

    Returns the wall seconds it took."""
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
