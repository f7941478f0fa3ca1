"""DAMSM pretraining variants against their real-image R-precision and training time.

  python tools/damsm_sweep.py --runs=runs/damsm_sweep \
      --results=results/shapes_quality/knobs6/damsm_sweep.json \
      --variant="E=--text_dropout=0.1 --train_batch_size=32 --train_steps=1900" \
      --step_seconds=32:0.30 --step_seconds=48:0.56 --plot=docs/shapes_damsm_budget.png

Each --variant NAME=FLAGS trains `python -m tf_t2i.pretrain --flagfile=<--config>
FLAGS` into <runs>/NAME unless that run already wrote its r_precision.json (so a sweep
spreads over sittings and machines, and runs trained by hand are collected too). The
results JSON lists each variant's settings (read back from its config.json), steps,
training seconds and real-image R-precision. Runs that share the machine are slower
than runs alone, so the minutes a variant would take alone are its steps times
--step_seconds BATCH:SECONDS, the steady step time measured alone for that batch size;
the plot draws R-precision against those minutes with the --budget_minutes line.
With --timed_alone every run was trained alone on the machine, and its own training
seconds are its minutes alone (--step_seconds is then not needed).
"""

import argparse
import json
import os
import shlex
import sys

from tf_t2i.eval.study import machine, run
from tf_t2i.io import files


def parse_variant(text):
    """'NAME=--a=1 --b=2' -> ('NAME', ['--a=1', '--b=2'])."""
    name, sep, flags = text.partition("=")
    if not sep or not name or "/" in name:
        raise ValueError(f"--variant={text!r} must be NAME=FLAGS, NAME a folder name.")
    return name, shlex.split(flags)


def parse_step_seconds(values):
    """['32:0.30', '48:0.56'] -> {32: 0.30, 48: 0.56}."""
    table = {}
    for value in values:
        batch, _, seconds = value.partition(":")
        try:
            table[int(batch)] = float(seconds)
        except ValueError:  # also "32" alone: float("") fails
            raise ValueError(f"--step_seconds={value!r} must be BATCH:SECONDS.") from None
    return table


def collect(runs_dir, variants, step_seconds, timed_alone=False):
    """One row per variant whose run finished, in the order given."""
    rows = []
    for name, flags in variants:
        run_dir = os.path.join(runs_dir, name)
        result_path = os.path.join(run_dir, "r_precision.json")
        if not os.path.exists(result_path):
            continue
        with open(result_path) as f:
            result = json.load(f)
        with open(os.path.join(run_dir, "config.json")) as f:
            config = json.load(f)
        batch = config["train"]["batch_size"]
        per_step = step_seconds.get(batch)
        if timed_alone and result.get("train_seconds") is not None:
            minutes_alone = round(result["train_seconds"] / 60, 1)
        else:
            minutes_alone = None if per_step is None else round(per_step * result["step"] / 60, 1)
        rows.append({
            "name": name, "flags": " ".join(flags), "batch_size": batch,
            "steps": result["step"], "text_dropout": config["text"]["dropout"],
            "learning_rate": config["train"]["damsm_learning_rate"],
            "lr_decay": config["train"]["damsm_lr_decay"],
            "mixed_precision": config["runtime"]["mixed_precision"],
            "train_seconds": result.get("train_seconds"),
            "minutes_alone": minutes_alone,
            "r_precision_real_images": result["r_precision"],
            "r_precision_fold_std": round(result["r_precision_std"], 4)})
    return rows


def plot(rows, output, budget_minutes):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    markers = {}
    for row in rows:
        if row["minutes_alone"] is None:
            continue
        marker = markers.setdefault(row["batch_size"], "osv^D<>p"[len(markers) % 8])
        label = (f"{row['name']}: batch {row['batch_size']}, {row['steps']} steps, dropout "
                 f"{row['text_dropout']:g}, lr {row['learning_rate']:g}, decay "
                 f"{row['lr_decay']:g}")
        ax.scatter(row["minutes_alone"], row["r_precision_real_images"], marker=marker, s=50,
                   label=label)
        ax.annotate(row["name"], (row["minutes_alone"], row["r_precision_real_images"]),
                    fontsize=8, xytext=(5, 3), textcoords="offset points")
    ax.axvline(budget_minutes, color="grey", ls="--", lw=1)
    ax.text(budget_minutes, ax.get_ylim()[1], f" {budget_minutes:g}-minute budget",
            fontsize=7, color="grey", va="top")
    ax.set_xlabel("DAMSM training minutes alone on the machine (steps x measured s/step)")
    ax.set_ylabel("real-image R-precision (test)")
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, loc="lower right")
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/shapes_damsm.cfg",
                        help="The DAMSM flagfile every variant starts from.")
    parser.add_argument("--variant", action="append", default=[], help="NAME=FLAGS.")
    parser.add_argument("--runs", default="runs/damsm_sweep")
    parser.add_argument("--results", required=True, help="The results JSON to write.")
    parser.add_argument("--step_seconds", action="append", default=[],
                        help="BATCH:SECONDS, a step's time alone on the machine.")
    parser.add_argument("--timed_alone", action="store_true",
                        help="Each run trained alone: its training seconds are its minutes.")
    parser.add_argument("--budget_minutes", type=float, default=10.0)
    parser.add_argument("--plot", default="", help="Also draw the figure here.")
    parser.add_argument("--no_train", action="store_true",
                        help="Only collect the runs that exist.")
    args = parser.parse_args()
    try:
        variants = [parse_variant(text) for text in args.variant]
        step_seconds = parse_step_seconds(args.step_seconds)
    except ValueError as e:
        sys.exit(f"error: {e}")
    if not variants:
        sys.exit("error: give at least one --variant=NAME=FLAGS.")
    if not os.path.exists(args.config):
        sys.exit(f"error: {args.config} does not exist (run from the repository root).")
    os.makedirs(args.runs, exist_ok=True)
    for name, flags in variants:
        run_dir = os.path.join(args.runs, name)
        if args.no_train or os.path.exists(os.path.join(run_dir, "r_precision.json")):
            continue
        run([sys.executable, "-m", "tf_t2i.pretrain", f"--flagfile={args.config}",
             f"--model_dir={run_dir}", *flags], run_dir + ".log")
    rows = collect(args.runs, variants, step_seconds, args.timed_alone)
    files.atomic_write_json(args.results, {
        "what": "DAMSM pretraining variants: real-image R-precision on the test split "
                "against steps, batch size and training time",
        "config": args.config, "step_seconds_alone": {str(k): v for k, v in
                                                      sorted(step_seconds.items())},
        "timed_alone": args.timed_alone,
        "budget_minutes": args.budget_minutes, "machine": machine(), "runs": rows},
        indent=1)
    if args.plot:
        plot(rows, args.plot, args.budget_minutes)
    for row in rows:
        print(f"{row['name']:>12}  batch {row['batch_size']:>3}  {row['steps']:>5} steps  "
              f"{row['minutes_alone'] if row['minutes_alone'] is not None else '?':>5} min alone"
              f"  R-precision {row['r_precision_real_images']:.3f}")
    print(f"Wrote {args.results}")


if __name__ == "__main__":
    main()
