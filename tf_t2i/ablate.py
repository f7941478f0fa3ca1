r"""Runs the paper's ablation on shapes: SSA-GAN rows x seeds, one results JSON per run.

  python -m tf_t2i.ablate                                    # the whole grid (make ablation)
  python -m tf_t2i.ablate --rows=shapes_ssagan,shapes_ssagan_cl_f2f --seeds=1 --max_runs=1
  python -m tf_t2i.ablate --dry_run                          # what is finished, what is left
  python -m tf_t2i.ablate & python -m tf_t2i.ablate          # two drivers share the grid

The rows are the paper's SSA-GAN rows on the built-in shapes dataset, each the improved
shapes baseline (configs/shapes_ssagan_30min.cfg) plus its terms: `shapes_ssagan`,
`shapes_ssagan_cl_f2f`, `shapes_ssagan_cl_r2f_f2f` (R2F is the fake-to-real F2R term),
`shapes_ssagan_cl_r2f_f2f_recap`. Every run trains the same number of steps (the paper
compares at equal epochs; wall time is recorded too; the baseline config's 30-minute
budget is lifted, `--train_max_seconds=0`, else the rows whose terms cost more a step
would train fewer steps), with the seed changing the
initialisation, the data order and the noise. All rows share one DAMSM run (so
R-precision uses the same encoders; by default configs/shapes_damsm_10min.cfg, the
DAMSM the 30-minute baseline was measured with) and the recap row one captioner, which
must first write at least --min_word_precision true colour and shape words.

Each finished run writes <out>/<row>_seed<k>.json (settings, machine, wall time, final
metrics on --num_images test captions with the EMA generator, learning curve); a run
whose JSON exists is skipped, so the grid can be finished over several sittings and on
several machines (commit the JSON files, never the runs under --runs). Each JSON records
the row's settings (its flagfile, expanded, and the DAMSM's) and their digest: a run
whose row or DAMSM config has changed since is *stale*, listed as such and run again (a
DAMSM run of other settings is moved aside and retrained first); its old JSON moves to
<out>/superseded/ when the new one is written, so no result is lost. Every step runs
the project's own binaries. `python -m tf_t2i.report <out>/*.json` tabulates them.
"""

import hashlib
import json
import os
import shutil
import sys
import time

from tf_t2i import flags as t2i_flags
from tf_t2i.io import files

# Row name (the paper's, see shared paper_results) -> its flagfile.
ROWS = {
    "shapes_ssagan": "configs/shapes_ssagan_30min.cfg",
    "shapes_ssagan_cl_f2f": "configs/shapes_ssagan_cl_f2f.cfg",
    "shapes_ssagan_cl_r2f_f2f": "configs/shapes_ssagan_cl_r2f_f2f.cfg",
    "shapes_ssagan_cl_r2f_f2f_recap": "configs/shapes_ssagan_cl_r2f_f2f_recap.cfg",
}
RECAP_ROWS = ("shapes_ssagan_cl_r2f_f2f_recap",)
CURVE_METRICS = "attribute_accuracy,r_precision,shapes_fid"
FINAL_METRICS = "attribute_accuracy,r_precision,shapes_fid,diversity,f2f_consistency"


def parse_args(argv):
    """The driver's arguments (argparse: this binary takes no config flags)."""
    parser = t2i_flags.OneLineArgumentParser(prog="python -m tf_t2i.ablate",
                                             description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=lambda s: [r for r in s.split(",") if r],
                        default=list(ROWS), help=f"Rows to run, from {list(ROWS)}.")
    parser.add_argument("--seeds", type=int, default=3,
                        help="Seeds per row: run k trains with --train_seed=k.")
    parser.add_argument("--out", default="results/shapes_ablation",
                        help="Where the results JSON files go.")
    parser.add_argument("--runs", default="runs/shapes_ablation",
                        help="Where the runs (checkpoints) go.")
    parser.add_argument("--damsm_config", default="configs/shapes_damsm_10min.cfg",
                        help="The shared DAMSM run.")
    parser.add_argument("--captioner_config", default="configs/shapes_captioner.cfg",
                        help="The captioner of the re-captioning row.")
    parser.add_argument("--min_word_precision", type=float, default=0.9,
                        help="The recap row runs only once the captioner's colour and shape "
                             "words are each at least this often true.")
    parser.add_argument("--num_images", type=int, default=2000,
                        help="Test captions of the final evaluation.")
    parser.add_argument("--eval_every", type=int, default=500,
                        help="Steps between in-training evaluations (the curve).")
    parser.add_argument("--max_runs", type=int, default=0,
                        help="Stop after this many runs in this sitting (0: all).")
    parser.add_argument("--train_steps", type=int, default=None,
                        help="Overrides every row's run length (try-outs; results of "
                             "different lengths are not comparable).")
    parser.add_argument("--dry_run", action="store_true",
                        help="List the grid, finished and left, and exit.")
    return parser.parse_args(argv)


def run_name(row: str, seed: int) -> str:
    return f"{row}_seed{seed}"


def row_settings(config: str, train_steps=None) -> dict:
    """The flags a run of this row trains with: its flagfile expanded (later flags win),
    plus the driver's overrides: no time budget (equal steps), and --train_steps."""
    settings = {}
    for arg in t2i_flags.expand_flagfiles(["ablate", f"--flagfile={config}"])[1:]:
        name, _, value = arg.lstrip("-").partition("=")
        settings[name] = value
    settings["train_max_seconds"] = "0"
    if train_steps:
        settings["train_steps"] = str(train_steps)
    return settings


def run_settings(config: str, damsm_config: str, train_steps=None) -> dict:
    """What a run of this row depends on: `row_settings`, and the shared DAMSM's flags
    under "damsm/" (its encoders condition the generator and drive its DAMSM loss)."""
    settings = row_settings(config, train_steps)
    settings.update({f"damsm/{k}": v for k, v in row_settings(damsm_config).items()})
    return settings


def settings_digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def run_status(path: str, digest: str) -> str:
    """"todo" (no JSON), "done" (same settings, or a JSON from before settings were
    recorded) or "stale" (the row changed since, or the JSON is unreadable)."""
    if not os.path.exists(path):
        return "todo"
    try:
        with open(path) as f:
            recorded = json.load(f).get("settings_digest")
    except (OSError, ValueError, AttributeError):
        return "stale"
    return "done" if recorded in (None, digest) else "stale"


def plan(rows, seeds, out, digests=None):
    """(row, seed, results path, status) for every run of the grid, seed-major; status
    as `run_status` (with `digests` {row: settings digest}; without, any JSON is done)."""
    grid = []
    for seed in range(seeds):
        for row in rows:
            path = os.path.join(out, run_name(row, seed) + ".json")
            if digests is None:
                status = "done" if os.path.exists(path) else "todo"
            else:
                status = run_status(path, digests[row])
            grid.append((row, seed, path, status))
    return grid


def supersede(path: str) -> None:
    """Moves an existing results JSON to <dir>/superseded/, stamped, never overwriting."""
    if not os.path.exists(path):
        return
    folder = os.path.join(os.path.dirname(path), "superseded")
    os.makedirs(folder, exist_ok=True)
    stem = os.path.splitext(os.path.basename(path))[0]
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(os.path.getmtime(path)))
    target, k = os.path.join(folder, f"{stem}.{stamp}.json"), 1
    while os.path.exists(target):
        target, k = os.path.join(folder, f"{stem}.{stamp}.{k}.json"), k + 1
    shutil.move(path, target)
    print(f"Moved the stale {path} to {target}.", flush=True)


def claim_model_dir(model_dir: str, settings: dict) -> None:
    """Makes `model_dir` this row's: a folder left by a run of other settings (or of
    unknown ones) is moved aside to `<model_dir>.superseded-<time>`, never resumed with
    the new settings, and never deleted; then the settings are recorded in it."""
    digest = settings_digest(settings)
    marker = os.path.join(model_dir, "ablation_settings.json")
    if os.path.isdir(model_dir):
        try:
            with open(marker) as f:
                recorded = json.load(f).get("settings_digest")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if recorded == digest:
            return  # this row's own run, resumed
        target = f"{model_dir}.superseded-{time.strftime('%Y%m%dT%H%M%S')}"
        shutil.move(model_dir, target)
        print(f"Moved {model_dir}, trained with other settings, to {target}.", flush=True)
    os.makedirs(model_dir)
    files.atomic_write_json(marker, {"settings_digest": digest, "settings": settings},
                            indent=1)


def pretrain(args, study, name, config, extra=(), depends_on=None):
    """A shared pretraining run (skipped once finished with these settings; one of other
    settings is moved aside first); returns (its folder, its results JSON). `depends_on`:
    settings of the runs it reads (the captioner's DAMSM), so that they count too."""
    model_dir = os.path.join(args.runs, name)
    result = os.path.join(model_dir, {"damsm": "r_precision.json",
                                      "captioner": "captioner_eval.json"}[name])
    settings = row_settings(config)
    settings.update(depends_on or {})
    # Blocking: a second driver waits for the first one's pretraining, then reads it.
    with files.interprocess_lock(model_dir + ".lock"):
        claim_model_dir(model_dir, settings)
        if not os.path.exists(result):
            study.run([sys.executable, "-m", "tf_t2i.pretrain", f"--flagfile={config}",
                       f"--model_dir={model_dir}", *extra], model_dir + ".log")
    with open(result) as f:
        return model_dir, json.load(f)


def captioner_reads_shapes(captioner_eval, min_word_precision: float) -> bool:
    return min(captioner_eval.get("color_word_precision", 0.0),
               captioner_eval.get("shape_word_precision", 0.0)) >= min_word_precision


def train_and_evaluate(args, study, row, seed, damsm_dir, damsm, captioner_dir, out_path):
    config = ROWS[row]
    model_dir = os.path.join(args.runs, run_name(row, seed))
    settings = run_settings(config, args.damsm_config, args.train_steps)
    claim_model_dir(model_dir, settings)
    train = [sys.executable, "-m", "tf_t2i.train", f"--flagfile={config}",
             f"--damsm_dir={damsm_dir}", f"--model_dir={model_dir}",
             f"--train_seed={seed}", f"--eval_every={args.eval_every}",
             f"--eval_metrics={CURVE_METRICS}", "--eval_num_images=1000",
             "--train_max_seconds=0"]
    if captioner_dir:
        train.append(f"--captioner_dir={captioner_dir}")
    if args.train_steps:
        train.append(f"--train_steps={args.train_steps}")
    wall = study.run(train, model_dir + ".log")
    steps = study.last_checkpoint_step(model_dir)
    rows = study.read_rows(model_dir)
    if study.final_row(rows, "f2f_consistency", steps) is None:
        study.run([sys.executable, "-m", "tf_t2i.evaluate", f"--model_dir={model_dir}",
                   f"--metrics={FINAL_METRICS}", f"--num_images={args.num_images}"],
                  model_dir + ".log")
        rows = study.read_rows(model_dir)
    points = study.curve(rows)
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    final = study.summarize(rows, steps, args.num_images, damsm["r_precision"])
    consistency = study.final_row(rows, "f2f_consistency", steps)
    if consistency is not None:
        final["f2f_consistency"] = {k: v for k, v in consistency.items()
                                    if k not in ("metric", "step", "ema", "eval_seed", "seconds")}
    result = {
        "row": row, "seed": seed, "config": config, "train_seed": cfg["train"]["seed"],
        "settings": settings, "settings_digest": settings_digest(settings),
        "steps": steps, "batch_size": cfg["train"]["batch_size"],
        "loss_weights": {k: v for k, v in cfg["loss"].items() if k.endswith("_weight")},
        "mixed_precision": cfg["runtime"]["mixed_precision"],
        "train_seconds": next((p["train_seconds"] for p in points if p["step"] == steps), None),
        "command_seconds_last_sitting": round(wall, 1),
        "damsm": {"config": args.damsm_config, "steps": damsm["step"],
                  "r_precision_real_images": damsm["r_precision"]},
        "machine": study.machine(), "num_images": args.num_images,
        "final": final, "curve": points, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    supersede(out_path)
    files.atomic_write_json(out_path, result, indent=1)
    print(f"Wrote {out_path}: attribute accuracy {final['attribute_accuracy']:.3f}, "
          f"R-precision {final['r_precision']:.3f}, shapes-FID {final['shapes_fid']:.0f}",
          flush=True)


def main(argv=None):
    args = parse_args(argv)
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        t2i_flags.fail(f"Unknown rows {unknown}; known: {list(ROWS)}.")
    if args.seeds < 1:
        t2i_flags.fail(f"--seeds must be >= 1, got {args.seeds}.")
    for path in [ROWS[r] for r in args.rows] + [args.damsm_config, args.captioner_config]:
        if not os.path.exists(path):
            t2i_flags.fail(f"{path} does not exist (run from the repository root).")
    digests = {row: settings_digest(run_settings(ROWS[row], args.damsm_config,
                                                 args.train_steps))
               for row in args.rows}
    grid = plan(args.rows, args.seeds, args.out, digests)
    left = [g for g in grid if g[3] != "done"]
    stale = sum(g[3] == "stale" for g in grid)
    print(f"Ablation: {len(grid)} runs, {len(grid) - len(left)} finished, {len(left)} to go"
          f"{f' ({stale} stale: their row changed since they ran)' if stale else ''}.",
          flush=True)
    for row, seed, path, status in grid:
        print(f"  {status:5s} {run_name(row, seed)}  -> {path}")
    if args.dry_run or not left:
        return
    # Heavy imports only once the flags are known to be valid.
    from tf_t2i.eval import study  # pylint: disable=g-import-not-at-top
    os.makedirs(args.runs, exist_ok=True)
    damsm_dir, damsm = pretrain(args, study, "damsm", args.damsm_config)
    captioner_dir = None
    if any(row in RECAP_ROWS for row, _, _, _ in left):
        captioner_dir, captioner_eval = pretrain(
            args, study, "captioner", args.captioner_config, [f"--damsm_dir={damsm_dir}"],
            depends_on={f"damsm/{k}": v for k, v in row_settings(args.damsm_config).items()})
        if not captioner_reads_shapes(captioner_eval, args.min_word_precision):
            print(f"Skipping the re-captioning row: the captioner's colour / shape words are "
                  f"true {captioner_eval.get('color_word_precision', 0):.1%} / "
                  f"{captioner_eval.get('shape_word_precision', 0):.1%} of the time, below "
                  f"{args.min_word_precision:.0%} ({captioner_dir}).", flush=True)
            left = [g for g in left if g[0] not in RECAP_ROWS]
    trained = 0
    for row, seed, path, _ in left:
        if args.max_runs and trained >= args.max_runs:
            break
        # Several drivers may work one grid at once (one per core or machine sharing
        # the runs folder): each run is claimed by a lock, and one already claimed, or
        # finished meanwhile, is left to its owner.
        try:
            with files.interprocess_lock(os.path.join(args.runs, run_name(row, seed) + ".lock"),
                                         wait=False):
                if run_status(path, digests[row]) == "done":  # finished meanwhile
                    continue
                train_and_evaluate(args, study, row, seed, damsm_dir, damsm,
                                   captioner_dir if row in RECAP_ROWS else None, path)
                trained += 1
        except files.LockHeld:
            print(f"{run_name(row, seed)} is running in another driver; next.", flush=True)


if __name__ == "__main__":
    main()
