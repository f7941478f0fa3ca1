"""One table of finished runs' metrics, beside the paper's numbers where a row has them.

What `read_path` accepts (`python -m tf_t2i.report PATH...`):

* a run directory with `metrics.jsonl` (the rows `eval_lib.append_results` writes, from
  `tf_t2i.evaluate` and the in-training evaluations): its row is `config.json`'s `name`
  (the configs set `--experiment_name=<file name>`), or the directory's name without
  one. Of the lines it takes the last step; of each metric at that step the line with
  the most images (a final evaluation over the in-training one), the last of equals.
  The metric's name loses its sample count (`fid30k` -> `fid`, `diversity50x16` ->
  `diversity`) and `attribute_accuracy` brings its `per_attribute` values along.
  The wall time is the lines' `train_seconds` at that step (training only).
* a DAMSM run directory with `r_precision.json` (real-image R-precision).
* a results JSON file: one JSON object holding its metrics in `metrics` or `final` (a
  dict of metric name -> number, or -> {"value": number}; `per_attribute` a dict of
  numbers; other dicts and the real-image references `*_real_images`, `*_real_vs_real`
  are left out), its row in `row`, else `config` (a `configs/<row>.cfg` path), else
  `name`, else the file's name; `steps` (or `step`), `train_seconds` (or
  `gan_train_seconds`) and `seed` when present. `tools/shapes_quality.py` and
  `tf_t2i/ablate.py` write this layout.
* a directory of those: every `*.json` in it but `config.json` and every run directory
  directly under it. A JSON file in it without metrics is skipped and named in
  `Report.skipped`; named on the command line, it is an error.

Results of one row (several seeds) become one line: the mean and the sample standard
deviation (n - 1) of each metric over the results that have it, with `[k]` after a cell
that only k of the row's n results have. R-precision is printed in percent, as the
paper's; the paper's IS / FID / R-precision (`paper_results`) fill the last columns of
the cub_* and coco_* rows, "-" elsewhere.

No TensorFlow and no numpy: the report is a quick command.
"""

import dataclasses
import glob
import json
import os
import re
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

from tf_t2i.eval import paper_results

METRICS_FILENAME = "metrics.jsonl"       # eval_lib.RESULTS_FILENAME
DAMSM_RESULTS_FILENAME = "r_precision.json"
FORMATS = ("text", "markdown", "json")

# Known metrics in column order: (name, header, scale, decimals). Any other metric found
# gets a column after these, headed by its name.
COLUMNS = (
    ("attribute_accuracy", "attr acc", 1.0, 3),
    ("color", "color", 1.0, 3),
    ("shape", "shape", 1.0, 3),
    ("size", "size", 1.0, 3),
    ("position", "position", 1.0, 3),
    ("color_shape", "color+shape", 1.0, 3),
    ("all_named", "all named", 1.0, 3),
    ("r_precision", "R-prec %", 100.0, 2),
    ("shapes_fid", "shapes-FID", 1.0, 1),
    ("fid", "FID", 1.0, 2),
    ("is", "IS", 1.0, 2),
    ("diversity", "diversity", 1.0, 3),
    ("f2f_consistency", "F2F agree", 1.0, 3),
)
PAPER_HEADERS = ("paper IS", "paper FID", "paper R-prec %")
_REFERENCE_SUFFIXES = ("_real_images", "_real_vs_real")
_SAMPLE_COUNT = re.compile(r"(\d+x\d+|\d+k?)$")


class ReportInputError(ValueError):
    """A path that cannot be read as results; the message names it."""


@dataclasses.dataclass
class Result:
    """One run's final metrics."""
    row: str                          # the config it came from (the paper match key)
    source: str                       # the file or directory read
    metrics: Dict[str, float]
    steps: Optional[int] = None
    train_seconds: Optional[float] = None
    seed: Optional[int] = None


@dataclasses.dataclass
class Stat:
    """Mean and sample standard deviation over the `count` results that have a value."""
    mean: float
    std: Optional[float]              # None below two values
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Optional["Stat"]:
        if not values:
            return None
        std = statistics.stdev(values) if len(values) > 1 else None
        return cls(statistics.fmean(values), std, len(values))


@dataclasses.dataclass
class ReportRow:
    """One line of the report: every result of one row, summarized."""
    row: str
    results: List[Result]
    metrics: Dict[str, Stat]
    train_seconds: Optional[Stat]
    paper: Optional[paper_results.PaperRow]

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def steps(self) -> List[int]:
        return sorted({r.steps for r in self.results if r.steps is not None})


@dataclasses.dataclass
class Report:
    rows: List[ReportRow]
    skipped: List[str]                # "path: reason" of files a directory scan passed over


def metric_base(label: str) -> str:
    """`fid30k` -> `fid`, `shapes_fid2000` -> `shapes_fid`, `diversity50x16` -> `diversity`."""
    return _SAMPLE_COUNT.sub("", label) or label


# --- Reading. ------------------------------------------------------------------------
def _load_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise ReportInputError(f"{path}: cannot read it ({e.strerror or e}).") from None
    except ValueError as e:
        raise ReportInputError(f"{path}: not valid JSON ({e}).") from None


def _run_name(model_dir: str) -> str:
    config_path = os.path.join(model_dir, "config.json")
    if os.path.exists(config_path):
        name = _load_json(config_path).get("name")
        if isinstance(name, str) and name:
            return name
    return os.path.basename(os.path.normpath(model_dir))


def _number(value) -> Optional[float]:
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _metrics_of(values: Dict) -> Dict[str, float]:
    """Numeric metrics of a results dict (see the module docstring)."""
    out = {}
    for key, value in values.items():
        if key.endswith(_REFERENCE_SUFFIXES):
            continue
        if key == "per_attribute" and isinstance(value, dict):
            out.update({k: v for k, v in ((k, _number(v)) for k, v in value.items())
                        if v is not None})
            continue
        number = _number(value)
        if number is not None:
            out[metric_base(key)] = number
    return out


def read_model_dir(model_dir: str) -> Result:
    """The final metrics of a run directory (metrics.jsonl, or a DAMSM r_precision.json)."""
    jsonl = os.path.join(model_dir, METRICS_FILENAME)
    if not os.path.exists(jsonl):
        damsm = os.path.join(model_dir, DAMSM_RESULTS_FILENAME)
        if not os.path.exists(damsm):
            raise ReportInputError(f"{model_dir}: neither {METRICS_FILENAME} nor "
                                   f"{DAMSM_RESULTS_FILENAME} in it.")
        values = _load_json(damsm)
        r_precision = _number(values.get("r_precision")) if isinstance(values, dict) else None
        if r_precision is None:
            raise ReportInputError(f"{damsm}: no 'r_precision' number in it.")
        return Result(_run_name(model_dir), damsm, {"r_precision": r_precision},
                      values.get("step"), values.get("train_seconds"))
    lines = []
    with open(jsonl) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                lines.append(json.loads(line))
            except ValueError as e:
                raise ReportInputError(f"{jsonl}:{number}: not valid JSON ({e}).") from None
    lines = [line for line in lines if isinstance(line, dict) and "metric" in line]
    if not lines:
        raise ReportInputError(f"{jsonl}: no metric lines in it.")
    steps = [line["step"] for line in lines if line.get("step") is not None]
    last = max(steps) if steps else None
    at_last = [line for line in lines if line.get("step") == last]
    picked = {}
    for line in at_last:   # later lines win ties: a re-evaluation replaces the first
        base = metric_base(line["metric"])
        if line.get("num_images", 0) >= picked.get(base, {}).get("num_images", 0):
            picked[base] = line
    metrics = {}
    for base, line in picked.items():
        if _number(line.get("value")) is not None:
            metrics[base] = float(line["value"])
        metrics.update(_metrics_of({"per_attribute": line.get("per_attribute") or {}}))
    seconds = [line["train_seconds"] for line in at_last
               if line.get("train_seconds") is not None]
    return Result(_run_name(model_dir), jsonl, metrics, last,
                  max(seconds) if seconds else None)


def read_result_file(path: str) -> Result:
    """The metrics of a results JSON (the shapes_quality / ablation layout, leniently)."""
    values = _load_json(path)
    if not isinstance(values, dict):
        raise ReportInputError(f"{path}: not a JSON object.")
    found = next((values[k] for k in ("metrics", "final") if isinstance(values.get(k), dict)),
                 None)
    if found is None:
        raise ReportInputError(f"{path}: no 'metrics' or 'final' dict of metrics in it.")
    metrics = _metrics_of(found)
    if not metrics:
        raise ReportInputError(f"{path}: its metrics dict has no numbers.")
    row = values.get("row")
    if not row and values.get("config"):
        row = os.path.splitext(os.path.basename(str(values["config"])))[0]
    row = row or values.get("name") or os.path.splitext(os.path.basename(path))[0]
    steps = values.get("steps", values.get("step"))
    seconds = values.get("train_seconds", values.get("gan_train_seconds"))
    return Result(str(row), path, metrics, steps, seconds, values.get("seed"))


def _is_run_dir(path: str) -> bool:
    return any(os.path.exists(os.path.join(path, name))
               for name in (METRICS_FILENAME, DAMSM_RESULTS_FILENAME))


def read_path(path: str) -> Tuple[List[Result], List[str]]:
    """Results of a run directory, a results JSON or a directory of those; (results, skipped).

    Raises:
      ReportInputError: the path is missing or unreadable, or holds no results.
    """
    if os.path.isfile(path):
        return [read_result_file(path)], []
    if not os.path.isdir(path):
        raise ReportInputError(f"{path}: no such file or directory.")
    if _is_run_dir(path):
        return [read_model_dir(path)], []
    results, skipped = [], []
    for json_path in sorted(glob.glob(os.path.join(path, "*.json"))):
        if os.path.basename(json_path) == "config.json":
            continue
        try:
            results.append(read_result_file(json_path))
        except ReportInputError as e:
            skipped.append(str(e))
    for sub in sorted(os.listdir(path)):
        if os.path.isdir(os.path.join(path, sub)) and _is_run_dir(os.path.join(path, sub)):
            results.append(read_model_dir(os.path.join(path, sub)))
    if not results:
        raise ReportInputError(f"{path}: no {METRICS_FILENAME}, {DAMSM_RESULTS_FILENAME}, "
                               f"results JSON or run directory in it.")
    return results, skipped


# --- Summarizing. --------------------------------------------------------------------
def summarize(results: Sequence[Result]) -> List[ReportRow]:
    """One row per row name, in the order first seen."""
    by_row: Dict[str, List[Result]] = {}
    for result in results:
        by_row.setdefault(result.row, []).append(result)
    rows = []
    for name, group in by_row.items():
        names = dict.fromkeys(k for r in group for k in r.metrics)
        metrics = {k: Stat.of([r.metrics[k] for r in group if k in r.metrics]) for k in names}
        seconds = Stat.of([r.train_seconds for r in group if r.train_seconds is not None])
        rows.append(ReportRow(name, group, metrics, seconds, paper_results.paper_row(name)))
    return rows


def build_report(paths: Sequence[str]) -> Report:
    """Reads every path and summarizes the results by row."""
    results, skipped = [], []
    for path in paths:
        found, passed_over = read_path(path)
        results += found
        skipped += passed_over
    return Report(summarize(results), skipped)


# --- Formatting. ---------------------------------------------------------------------
def columns_of(rows: Sequence[ReportRow]) -> List[Tuple[str, str, float, int]]:
    present = dict.fromkeys(k for row in rows for k in row.metrics)
    known = [c for c in COLUMNS if c[0] in present]
    known_names = {c[0] for c in COLUMNS}
    return known + [(k, k, 1.0, 4) for k in present if k not in known_names]


def _cell(stat: Optional[Stat], n: int, scale: float, decimals: int) -> str:
    if stat is None:
        return "-"
    text = f"{stat.mean * scale:.{decimals}f}"
    if stat.std is not None:
        text += f" ± {stat.std * scale:.{decimals}f}"
    if stat.count != n:
        text += f" [{stat.count}]"
    return text


def _steps_cell(steps: List[int]) -> str:
    if not steps:
        return "-"
    return str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"


def table_cells(rows: Sequence[ReportRow]) -> Tuple[List[str], List[List[str]]]:
    """(headers, one list of cell strings per row) of the report's table."""
    columns = columns_of(rows)
    headers = ["row", "n", "steps", "train min", *(c[1] for c in columns), *PAPER_HEADERS]
    body = []
    for row in rows:
        cells = [row.row, str(row.n), _steps_cell(row.steps),
                 _cell(row.train_seconds, row.n, 1 / 60, 1)]
        cells += [_cell(row.metrics.get(key), row.n, scale, decimals)
                  for key, _, scale, decimals in columns]
        paper = row.paper
        cells += ([f"{paper.inception_score:.2f}", f"{paper.fid:.2f}",
                   f"{paper.r_precision:.2f}"] if paper else ["-"] * len(PAPER_HEADERS))
        body.append(cells)
    return headers, body


def aligned_table(lines: Sequence[Sequence[str]]) -> str:
    """Header, a rule, then the body: the first column left, the others right-aligned."""
    headers, *body = lines
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, body)])


def format_text(rows: Sequence[ReportRow]) -> str:
    """An aligned table: the row name left, every other column right-aligned."""
    headers, body = table_cells(rows)
    return aligned_table([headers, *body])


def format_markdown(rows: Sequence[ReportRow]) -> str:
    """A GitHub markdown table (numbers right-aligned)."""
    headers, body = table_cells(rows)
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def _stat_json(stat: Optional[Stat]) -> Optional[Dict]:
    return None if stat is None else dataclasses.asdict(stat)


def format_json(rows: Sequence[ReportRow]) -> str:
    """The rows as JSON: raw values (R-precision a fraction; the paper's in percent)."""
    out = []
    for row in rows:
        paper = row.paper
        out.append({
            "row": row.row, "n": row.n, "sources": [r.source for r in row.results],
            "seeds": [r.seed for r in row.results], "steps": row.steps,
            "train_seconds": _stat_json(row.train_seconds),
            "metrics": {k: _stat_json(v) for k, v in row.metrics.items()},
            "paper": None if paper is None else {
                "table": paper.table, "architecture": paper.architecture,
                "inception_score": paper.inception_score, "fid": paper.fid,
                "r_precision_percent": paper.r_precision},
        })
    return json.dumps(out, indent=1)


def format_report(rows: Sequence[ReportRow], fmt: str = "text") -> str:
    """The rows in one of `FORMATS`."""
    formatters = {"text": format_text, "markdown": format_markdown, "json": format_json}
    if fmt not in formatters:
        raise ValueError(f"Unknown format {fmt!r}; choose from {list(FORMATS)}.")
    return formatters[fmt](rows)

