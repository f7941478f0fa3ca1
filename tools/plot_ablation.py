"""Draws the shapes ablation from its committed results: bars with error bars, curves.

  python tools/plot_ablation.py [--results=results/shapes_ablation]
      [--output=docs/shapes_ablation.png]

Top row: one panel per metric, a bar per ablation row at the mean over its seeds, an
error bar of one sample standard deviation (none with one seed) and a dot per seed.
Bottom row: attribute accuracy during training (the in-training evaluation on 1,000
captions, then the final one on 2,000) against steps and against training wall time,
one line per run, coloured by row; then the baseline against the best CL row (highest
mean attribute accuracy), mean +- std over seeds at each evaluated step, for attribute
accuracy, shape accuracy, R-precision and shapes-FID. `--extra=LABEL=PATH` adds a
results JSON of another run (`tools/shapes_quality.py`'s layout, e.g. a longer baseline)
as a dashed black line to the step panels (not the minutes panel: its wall time may come
from other machine sharing). Reads the results JSON files that `tf_t2i.ablate` writes
(no runs or checkpoints needed); needs matplotlib (dev extra).
"""

import argparse
import json
import os
import statistics
import sys
from typing import Dict, List, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tf_t2i.eval import report_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

ROW_ORDER = ("shapes_ssagan", "shapes_ssagan_cl_f2f", "shapes_ssagan_cl_r2f_f2f",
             "shapes_ssagan_cl_r2f_f2f_recap")
LABELS = {"shapes_ssagan": "baseline", "shapes_ssagan_cl_f2f": "+F2F",
          "shapes_ssagan_cl_r2f_f2f": "+R2F+F2F", "shapes_ssagan_cl_r2f_f2f_recap": "+R2F+F2F\n+recap"}
COLORS = {"shapes_ssagan": "tab:gray", "shapes_ssagan_cl_f2f": "tab:blue",
          "shapes_ssagan_cl_r2f_f2f": "tab:orange", "shapes_ssagan_cl_r2f_f2f_recap": "tab:green"}
# (metric, panel title, higher is better)
PANELS = (("attribute_accuracy", "attribute accuracy", True), ("shape", "shape accuracy", True),
          ("r_precision", "R-precision", True), ("shapes_fid", "shapes-FID", False),
          ("diversity", "diversity over z", True), ("f2f_consistency", "F2F agreement", True))


def read_rows(results_dir: str) -> List[report_lib.ReportRow]:
    """The ablation rows found in `results_dir` (its top level only), in ROW_ORDER."""
    paths = [os.path.join(results_dir, n) for n in sorted(os.listdir(results_dir))
             if n.endswith(".json")]
    rows = report_lib.build_report(paths).rows
    return sorted((r for r in rows if r.row in ROW_ORDER), key=lambda r: ROW_ORDER.index(r.row))


def read_curves(results_dir: str) -> Dict[str, List[dict]]:
    """{run file name: [{"row", "step", "train_seconds", "attribute_accuracy"}, ...]}."""
    curves = {}
    for name in sorted(os.listdir(results_dir)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(results_dir, name)) as f:
            result = json.load(f)
        if result.get("row") in ROW_ORDER and result.get("curve"):
            curves[name] = curve_points(result, result["row"])
    return curves


def curve_points(result: dict, row: str) -> List[dict]:
    """One point per step: the last written (the final 2,000-caption evaluation replaces
    the in-training one of the same step)."""
    by_step = {p["step"]: dict(p, row=row) for p in result["curve"]
               if "attribute_accuracy" in p}
    return [by_step[s] for s in sorted(by_step)]


def read_extra(specs: Sequence[str]) -> List[Tuple[str, List[dict]]]:
    """[(label, curve)] of the --extra=LABEL=PATH results files."""
    extra = []
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep or not os.path.isfile(path):
            sys.exit(f"error: --extra={spec}: expected LABEL=PATH of a results JSON file.")
        with open(path) as f:
            result = json.load(f)
        if not result.get("curve"):
            sys.exit(f"error: --extra={spec}: {path} has no learning curve.")
        extra.append((label, curve_points(result, "extra")))
    return extra


def mean_curve(curves: Sequence[List[dict]], metric: str):
    """(steps, means, stds) over the runs at the steps every run has."""
    steps = sorted(set.intersection(*({p["step"] for p in c if metric in p} for c in curves)))
    values = [[next(p[metric] for p in c if p["step"] == s) for c in curves] for s in steps]
    means = [statistics.fmean(v) for v in values]
    stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
    return steps, means, stds


def best_cl_row(rows) -> str:
    """The CL row with the highest mean attribute accuracy."""
    cl = [r for r in rows if r.row != ROW_ORDER[0] and "attribute_accuracy" in r.metrics]
    return max(cl, key=lambda r: r.metrics["attribute_accuracy"].mean).row if cl else None


def plot(rows, curves, output: str, extra=()) -> str:
    fig, axes = plt.subplots(2, len(PANELS), figsize=(3.0 * len(PANELS), 7.0))
    for ax, (metric, title, higher) in zip(axes[0], PANELS):
        for x, row in enumerate(rows):
            stat = row.metrics.get(metric)
            if stat is None:
                continue
            ax.bar(x, stat.mean, color=COLORS[row.row], alpha=0.6,
                   yerr=stat.std if stat.std is not None else None, capsize=4)
            values = [r.metrics[metric] for r in row.results if metric in r.metrics]
            ax.plot([x] * len(values), values, "k.", markersize=5)
        ax.set_xticks(range(len(rows)), [f"{LABELS[r.row]}\n(n={r.n})" for r in rows],
                      fontsize=7)
        ax.set_title(f"{title} ({'higher' if higher else 'lower'} is better)", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax, key, xlabel in ((axes[1][0], "step", "step"),
                            (axes[1][1], "train_seconds", "training minutes")):
        for points in curves.values():
            xs = [p[key] / (60.0 if key == "train_seconds" else 1.0) for p in points
                  if p.get(key) is not None]
            ys = [p["attribute_accuracy"] for p in points if p.get(key) is not None]
            ax.plot(xs, ys, "-o", color=COLORS[points[0]["row"]], markersize=3, alpha=0.8,
                    label=LABELS[points[0]["row"]].replace("\n", ""))
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("attribute accuracy", fontsize=8)
        ax.tick_params(labelsize=7)
    for label, points in extra:
        axes[1][0].plot([p["step"] for p in points], [p["attribute_accuracy"] for p in points],
                        "--", color="black", linewidth=1, label=label)
    handles, labels = axes[1][0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    axes[1][0].legend(unique.values(), unique.keys(), fontsize=6)
    best = best_cl_row(rows)
    compared = [ROW_ORDER[0]] + ([best] if best else [])
    by_row = {row: [c for c in curves.values() if c[0]["row"] == row] for row in compared}
    for ax, (metric, title) in zip(axes[1][2:], (("attribute_accuracy", "attribute accuracy"),
                                                 ("shape", "shape accuracy"),
                                                 ("r_precision", "R-precision"),
                                                 ("shapes_fid", "shapes-FID"))):
        drawn = False
        for row in compared:
            if not by_row[row] or not any(metric in p for c in by_row[row] for p in c):
                continue
            drawn = True
            steps, means, stds = mean_curve(by_row[row], metric)
            label = f"{LABELS[row].replace(chr(10), '')} (n={len(by_row[row])})"
            ax.plot(steps, means, "-o", color=COLORS[row], markersize=3, label=label)
            ax.fill_between(steps, [m - d for m, d in zip(means, stds)],
                            [m + d for m, d in zip(means, stds)], color=COLORS[row], alpha=0.2)
        for label, points in extra:
            if any(metric in p for p in points):
                drawn = True
                ax.plot([p["step"] for p in points if metric in p],
                        [p[metric] for p in points if metric in p], "--", color="black",
                        linewidth=1, label=label)
        if metric == "shapes_fid" and drawn:
            ax.set_yscale("log")
        ax.set_title(f"{title}: baseline vs best CL row, mean +- std", fontsize=7)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.suptitle("Shapes ablation: mean +- std over seeds (dots: seeds); curves: every run",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default=os.path.join(ROOT, "results", "shapes_ablation"))
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "shapes_ablation.png"))
    parser.add_argument("--extra", action="append", default=[], metavar="LABEL=PATH",
                        help="Another run's results JSON, drawn dashed on the step panels.")
    args = parser.parse_args()
    rows = read_rows(args.results)
    if not rows:
        sys.exit(f"error: no ablation results in {args.results}")
    print(f"Wrote {plot(rows, read_curves(args.results), args.output, read_extra(args.extra))} "
          f"({', '.join(f'{r.row} n={r.n}' for r in rows)})")


if __name__ == "__main__":
    main()
