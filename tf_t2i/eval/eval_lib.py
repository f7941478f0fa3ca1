"""Runs an evaluation of a trained run: prepare the metrics, generate once, score, log.

`evaluate` generates the draws once (`context.generate_and_collect`) and computes each
registered metric (`metric_adapters`) on them. Results are rows with the sample count
in the name (`fid30k`, `r_precision2k`), appended to `<model_dir>/metrics.jsonl` as JSON
lines and printed as a table.

Library code: `tf_t2i/evaluate.py` is the command line; `callback.EvaluationCallback`
runs the same evaluation during training.
"""

import json
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tf_t2i.eval import attributes as attributes_lib
from tf_t2i.eval import context
from tf_t2i.eval import metric_adapters  # noqa: F401  pylint: disable=unused-import

RESULTS_FILENAME = "metrics.jsonl"


# --- Running an evaluation. ----------------------------------------------------------
def available_metrics(ctx: context.EvalContext, names: Sequence[str], required: bool
                      ) -> Tuple[List[str], Dict[str, str]]:
    """Prepares each metric; returns (ready names, {skipped name: reason}).

    Raises:
      context.MetricUnavailableError: when `required` and one cannot run.
    """
    ready, skipped = [], {}
    for name in names:
        if name not in context.METRICS:
            raise ValueError(f"Unknown metric {name!r}; known: {sorted(context.METRICS)}.")
        try:
            context.METRICS[name].prepare(ctx)
            ready.append(name)
        except context.MetricUnavailableError as e:
            if required:
                raise context.MetricUnavailableError(f"{name}: {e}") from e
            skipped[name] = str(e)
    return ready, skipped


def default_metrics(dataset: str) -> List[str]:
    """Everything that applies to the dataset; those that cannot run are skipped."""
    names = ["fid", "is", "r_precision"]
    if dataset == "shapes":
        names += ["attribute_accuracy", "shapes_fid", "diversity", "f2f_consistency"]
    return names


def evaluate(ctx: context.EvalContext, names: Sequence[str], step: Optional[int] = None,
             progress: bool = True) -> List[Dict]:
    """Generates once, computes each (prepared) metric; returns one row per metric."""
    streams = sorted({s for n in names for s in context.METRICS[n].streams})
    started = time.time()
    context.generate_and_collect(ctx, streams, progress=progress)
    rows = []
    for name in names:
        t0 = time.time()
        result = context.METRICS[name].compute(ctx)
        seconds = time.time() - t0 + sum(ctx.stream_seconds.get(s, 0.0)
                                         for s in context.METRICS[name].streams)
        metric = context.METRICS[name]
        label = (f"{name}{metric.label(ctx.options)}" if metric.label
                 else context.metric_label(name, ctx.num_images))
        row = {"metric": label, "value": result.pop("value"),
               "std": result.pop("std"), "num_images": ctx.num_images,
               "step": step, "ema": ctx.use_ema, "eval_seed": ctx.options.seed,
               "seconds": round(seconds, 2),
               "generation_seconds": round(ctx.stream_seconds["generation"], 2), **result}
        rows.append(row)
    ctx.log(f"Evaluated {len(names)} metric(s) on {ctx.num_images} images in "
            f"{time.time() - started:.0f}s.")
    return rows


def append_results(model_dir: str, rows: Sequence[Dict]) -> str:
    """Appends rows to <model_dir>/metrics.jsonl (one JSON object per line)."""
    path = os.path.join(model_dir, RESULTS_FILENAME)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    with open(path, "a") as f:
        for row in rows:
            f.write(json.dumps(_plain({**row, "model_dir": model_dir, "timestamp": stamp}),
                               default=_json_default, allow_nan=False) + "\n")
    return path


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"Not JSON serializable: {type(value).__name__}")


def _plain(value):
    """NaN (an attribute no caption named) becomes null: JSON has no NaN."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    return value


def format_table(rows: Sequence[Dict]) -> str:
    """A fixed-width table: metric, value, std, seconds."""
    lines = [f"{'metric':<26}{'value':>12}{'std':>10}{'seconds':>10}"]
    for row in rows:
        std = "" if row.get("std") is None else f"{row['std']:.4f}"
        lines.append(f"{row['metric']:<26}{row['value']:>12.4f}{std:>10}{row['seconds']:>10.1f}")
        for key, value in (row.get("per_attribute") or {}).items():
            lines.append(f"  {key:<24}{value:>12.4f}")
        lines += attributes_lib.format_breakdown(row.get("breakdown") or {})
        if "real_vs_real" in row:
            lines.append(f"  {'real vs real (reference)':<24}{row['real_vs_real']:>12.4f}")
        if "real_distance" in row:
            lines.append(f"  {'real images (reference)':<24}{row['real_distance']:>12.4f}"
                         f"  (generated {row['generated_distance']:.4f})")
        if "distance_ratio" in row:
            lines.append(f"  {'pair / unrelated distance':<24}{row['distance_ratio']:>12.4f}"
                         f"  ({row['pair_distance']:.4f} / {row['unrelated_distance']:.4f})")
        if "real_images" in row and isinstance(row["real_images"], float):
            lines.append(f"  {'real images (reference)':<24}{row['real_images']:>12.4f}")
    return "\n".join(lines)


def previous_train_seconds(model_dir: str, step: int) -> float:
    """Training seconds of a resumed run: those logged at the last evaluation <= `step`.

    Time between that evaluation and the checkpoint the run resumes from is not known and
    not counted; a fresh run starts at 0.
    """
    path = os.path.join(model_dir, RESULTS_FILENAME)
    best_step, seconds = -1, 0.0
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                at = row.get("step")
                if (row.get("train_seconds") is not None and at is not None
                        and best_step < at <= step):
                    best_step, seconds = at, float(row["train_seconds"])
    return seconds
