"""Plots learning curves from the metrics.jsonl of one or more GAN runs.

  python tools/plot_training.py --run=runs/ssagan_30min --output=docs/shapes_training.png
  python tools/plot_training.py --run=main=runs/a --run=other=runs/b --output=curves.png
  python tools/plot_training.py --run=runs/a --ablation=base=runs/b --ablation=gates=runs/c
  python tools/plot_training.py --run=results/shapes_quality/ssagan_30min.json

The first run is drawn in detail (attribute accuracy per attribute and all-named against
steps, with the issue's targets as dashed lines); every run appears in the R-precision
and shapes-FID panels (against steps) and in the last panel, overall attribute accuracy
against training wall time
(`train_seconds`, written by the in-training evaluation). Reads the rows that
`tf_t2i.train --eval_every` and `tf_t2i.evaluate` append; needs matplotlib (dev extra).
"""

import argparse
import json
import os
import re
from typing import Dict, List, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

ATTRIBUTES = ("color", "shape", "size", "position")


def read_curve(results_json: str) -> List[Dict]:
    """The rows of a results JSON's learning curve (tools/shapes_quality.py, tf_t2i.ablate),
    so that figures can be redrawn from committed results without the runs."""
    with open(results_json) as f:
        points = json.load(f).get("curve") or []
    rows = []
    for point in points:
        for base in ("attribute_accuracy", "r_precision", "shapes_fid"):
            if base not in point:
                continue
            row = {"base": base, "metric": base, "value": point[base], "step": point["step"],
                   "train_seconds": point.get("train_seconds")}
            if base == "attribute_accuracy":
                row["per_attribute"] = {k: point[k] for k in ATTRIBUTES + ("all_named",)
                                        if k in point}
            rows.append(row)
    return sorted(rows, key=lambda r: (r["base"], r["step"]))


def read_rows(model_dir: str) -> List[Dict]:
    """The run's metric rows, the last row per (metric base name, step).

    A final evaluation replaces the in-training row of its step but keeps its training
    seconds (tf_t2i.evaluate does not know them). A results JSON instead of a model_dir
    gives its learning curve (`read_curve`)."""
    if model_dir.endswith(".json"):
        return read_curve(model_dir)
    path = os.path.join(model_dir, "metrics.jsonl")
    if not os.path.exists(path):
        raise SystemExit(f"error: {path} does not exist (train with --eval_every).")
    rows = {}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            base = re.sub(r"(\d+k?|\d+x\d+)$", "", row["metric"])
            key = (base, row.get("step"))
            seconds = row.get("train_seconds", rows.get(key, {}).get("train_seconds"))
            rows[key] = {**row, "base": base, "train_seconds": seconds}
    return sorted(rows.values(), key=lambda r: (r["base"], r.get("step") or 0))


def read_runs(specs: List[str]) -> Dict[str, List[Dict]]:
    """NAME=model_dir (or model_dir, named by its folder) -> the run's rows, in order."""
    runs = {}
    for spec in specs:
        name, _, path = spec.rpartition("=")
        runs[name or os.path.basename(os.path.normpath(path))] = read_rows(path)
    return runs


def series(rows: List[Dict], base: str, key=None):
    """(steps, values, train seconds) of one metric; `key` picks a per-attribute value."""
    picked = [r for r in rows if r["base"] == base and r.get("step") is not None]
    values = [r["value"] if key is None else r["per_attribute"][key] for r in picked]
    return ([r["step"] for r in picked], values,
            [r.get("train_seconds") for r in picked])


def plot(runs: Dict[str, List[Dict]], output: str, targets: Dict[str, float],
         ablation: Optional[Dict[str, List[Dict]]] = None) -> None:
    name, rows = next(iter(runs.items()))
    panels = 5 if ablation else 4
    fig, axes = plt.subplots(1, panels, figsize=(4.75 * panels, 4.2))
    ax = axes[0]
    steps, overall, _ = series(rows, "attribute_accuracy")
    ax.plot(steps, overall, "k-o", lw=2, ms=3, label="overall")
    for attribute in ATTRIBUTES + ("all_named",):
        ax.plot(*series(rows, "attribute_accuracy", attribute)[:2], "-", lw=1,
                label=attribute.replace("_", " "))
    ax.axhline(targets["overall"], color="k", ls="--", lw=0.8)
    ax.axhline(targets["attribute"], color="gray", ls=":", lw=0.8)
    ax.axhline(targets["all_named"], color="tab:purple", ls=":", lw=0.8)
    ax.set(title=f"attribute accuracy ({name})", xlabel="step", ylim=(0, 1))
    ax.legend(fontsize=7, loc="lower right")
    for ax, base, title in ((axes[1], "r_precision", "R-precision"),
                            (axes[2], "shapes_fid", "shapes-FID")):
        drawn = False
        for run_name, run_rows in runs.items():  # every run, so they can be compared
            steps, values, _ = series(run_rows, base)
            if values:
                ax.plot(steps, values, "-o", ms=3, label=run_name)
                drawn = True
        ax.set(title=title, xlabel="step")
        if base == "shapes_fid" and drawn:
            ax.set_yscale("log")
        if base in targets:
            ax.axhline(targets[base], color="k", ls="--", lw=0.8)
        if drawn and len(runs) > 1:
            ax.legend(fontsize=7)
    ax = axes[3]
    for run_name, run_rows in runs.items():
        _, values, seconds = series(run_rows, "attribute_accuracy")
        pairs = [(s / 60.0, v) for s, v in zip(seconds, values) if s is not None]
        if pairs:
            ax.plot(*zip(*pairs), "-o", ms=3, label=run_name)
    ax.axhline(targets["overall"], color="k", ls="--", lw=0.8)
    ax.set(title="overall attribute accuracy", xlabel="training wall time (min)",
           ylim=(0, 1))
    ax.legend(fontsize=7, loc="lower right")
    if ablation:
        ax = axes[4]
        for run_name, run_rows in ablation.items():
            ax.plot(*series(run_rows, "attribute_accuracy")[:2], "-o", ms=3, label=run_name)
        ax.axhline(targets["overall"], color="k", ls="--", lw=0.8)
        ax.set(title="short runs, one knob each", xlabel="step", ylim=(0, 1))
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(output, dpi=110)
    print(f"Wrote {output}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True,
                        help="A run's model_dir or results JSON, or NAME=path; repeat for "
                             "several.")
    parser.add_argument("--ablation", action="append", default=[],
                        help="NAME=model_dir of a short run drawn in an extra panel, "
                             "overall attribute accuracy against steps; repeat.")
    parser.add_argument("--output", default="docs/shapes_training.png")
    parser.add_argument("--r_precision_target", type=float, default=None,
                        help="Dashed line on the R-precision panel (e.g. 0.8 x real).")
    parser.add_argument("--shapes_fid_target", type=float, default=None,
                        help="Dashed line on the shapes-FID panel (e.g. 3 x real-vs-real).")
    args = parser.parse_args()
    runs = read_runs(args.run)
    targets = {"overall": 0.85, "attribute": 0.75, "all_named": 0.6}
    if args.r_precision_target:
        targets["r_precision"] = args.r_precision_target
    if args.shapes_fid_target:
        targets["shapes_fid"] = args.shapes_fid_target
    plot(runs, args.output, targets, read_runs(args.ablation))


if __name__ == "__main__":
    main()
