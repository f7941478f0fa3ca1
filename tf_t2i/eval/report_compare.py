"""Rows of the report against a baseline row: `python -m tf_t2i.report ... --baseline=ROW`.

For each other row and each metric both have: the difference of the means, whether it is
larger than the two rows' standard deviations added (their mean ± std intervals do not
overlap: "beyond the seeds' spread"), and Welch's two-sided t-test p-value over the
seeds. Like `report_lib`, no TensorFlow, numpy or scipy: Student's t distribution comes
from the regularized incomplete beta function written here.
"""

import dataclasses
import json
import math
import statistics
from typing import Dict, List, Optional, Sequence, Tuple


from tf_t2i.eval.report_lib import (FORMATS, ReportInputError, ReportRow, aligned_table,
                                    columns_of)

@dataclasses.dataclass
class Difference:
    """One metric of one row against the baseline row, over their seeds."""
    delta: float                      # row mean - baseline mean
    spread: Optional[float]           # row std + baseline std; None below two seeds each
    p_value: Optional[float]          # Welch's two-sided t-test; None below two seeds each

    @property
    def beyond_spread(self) -> bool:
        """The mean ± std intervals of the two rows do not overlap."""
        return self.spread is not None and abs(self.delta) > self.spread


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction
    (modified Lentz), enough for Student's t distribution without scipy."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):          # the fraction converges fast on this side
        return 1.0 - _incomplete_beta(b, a, 1.0 - x)
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * fraction / a


def welch_p_value(a: Sequence[float], b: Sequence[float]) -> Optional[float]:
    """Two-sided p-value of Welch's t-test (unequal variances) of two samples; None when
    either has fewer than two values, 1.0 when both are constant and equal."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    delta = statistics.fmean(a) - statistics.fmean(b)
    if va + vb == 0.0:
        return 1.0 if delta == 0.0 else 0.0
    t = delta / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return _incomplete_beta(dof / 2.0, 0.5, dof / (dof + t * t))


def compare_to(rows: Sequence[ReportRow], baseline: str
               ) -> List[Tuple[ReportRow, Dict[str, Difference]]]:
    """Every other row's metrics against `baseline`'s, metric by metric."""
    by_name = {row.row: row for row in rows}
    if baseline not in by_name:
        raise ReportInputError(f"--baseline={baseline}: no such row; the rows are "
                               f"{', '.join(by_name) or 'none'}.")
    base = by_name[baseline]
    out = []
    for row in rows:
        if row is base:
            continue
        differences = {}
        for key, stat in row.metrics.items():
            base_stat = base.metrics.get(key)
            if stat is None or base_stat is None:
                continue
            values = [r.metrics[key] for r in row.results if key in r.metrics]
            base_values = [r.metrics[key] for r in base.results if key in r.metrics]
            spread = (stat.std + base_stat.std
                      if stat.std is not None and base_stat.std is not None else None)
            differences[key] = Difference(stat.mean - base_stat.mean, spread,
                                          welch_p_value(values, base_values))
        out.append((row, differences))
    return out


COMPARISON_LEGEND = ("`*`: the difference is larger than the two rows' standard deviations "
                     "added (their mean ± std intervals do not overlap); p: Welch's "
                     "two-sided t-test over the seeds.")


def _difference_cell(diff: Optional[Difference], scale: float, decimals: int) -> str:
    if diff is None:
        return "-"
    text = f"{diff.delta * scale:+.{decimals}f}" + ("*" if diff.beyond_spread else "")
    if diff.p_value is not None:
        text += " (p < 0.01)" if diff.p_value < 0.005 else f" (p {diff.p_value:.2f})"
    return text


def format_comparison(rows: Sequence[ReportRow], baseline: str, fmt: str = "text") -> str:
    """A metric per line, a column per row: its difference from `baseline`."""
    compared = compare_to(rows, baseline)
    if fmt == "json":
        return json.dumps({"baseline": baseline, "rows": [
            {"row": row.row, "n": row.n,
             "differences": {k: {**dataclasses.asdict(d), "beyond_spread": d.beyond_spread}
                             for k, d in diffs.items()}}
            for row, diffs in compared]}, indent=1)
    headers = [f"metric: row - {baseline}", *(row.row for row, _ in compared)]
    body = [[header] + [_difference_cell(diffs.get(key), scale, decimals)
                        for _, diffs in compared]
            for key, header, scale, decimals in columns_of([row for row, _ in compared])
            if any(key in diffs for _, diffs in compared)]
    if fmt == "markdown":
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines + ["", COMPARISON_LEGEND])
    if fmt != "text":
        raise ValueError(f"Unknown format {fmt!r}; choose from {list(FORMATS)}.")
    return "\n".join([aligned_table([headers, *body]), COMPARISON_LEGEND.replace("`", "")])
