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
import sys
import time

from tf_t2i.eval.study import (TARGETS, curve, final_row, last_checkpoint_step, machine,
                               read_rows, run, summarize)
from tf_t2i.io import files

CURVE_METRICS = "attribute_accuracy,r_precision,shapes_fid"
FINAL_METRICS = "attribute_accuracy,r_precision,shapes_fid,diversity"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="The GAN flagfile.")
    parser.add_argument("--name", required=True, help="Run and results name.")
    parser.add_argument("--damsm_config", default="configs/shapes_damsm.cfg")
    parser.add_argument("--train_steps", type=int, default=None,
                        help="Overrides the config's run length.")
    parser.add_argument("--max_minutes", type=float, default=None,
                        help="Time budget of the GAN training (--train_max_seconds, "
                             "which the learning-rate decay follows); with it the run goes "
                             "on until the budget, not the config's steps (unless "
                             "--train_steps is also given).")
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
