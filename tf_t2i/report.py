r"""Prints one table of finished runs' metrics, with the paper's numbers beside its rows.

  python -m tf_t2i.report runs/ablation/shapes_ssagan_s0 results/ablation/*.json
  python -m tf_t2i.report results/shapes_quality --format=markdown
  python -m tf_t2i.report results/shapes_ablation --baseline=shapes_ssagan

Each argument is a run directory (its `metrics.jsonl`, or a DAMSM run's
`r_precision.json`), a results JSON file (`tools/shapes_quality.py`, `tf_t2i.ablate`) or
a directory of those; `tf_t2i/eval/report_lib.py` says exactly what is read. Results of
one config (seeds) share a line: mean ± standard deviation and their number n. The
cub_* and coco_* rows get the paper's IS / FID / R-precision (arXiv:2312.10854, Tables 1
and 2) in the last columns. A path that cannot be read stops the command with one line
(exit status 2); a JSON file without metrics inside a directory is skipped with a note
on stderr.

`--baseline=ROW` adds a second table: each other row's difference from ROW, metric by
metric, marked where it is larger than the two rows' spread over seeds (their mean ± std
intervals do not overlap), with Welch's two-sided t-test p-value over the seeds.
"""

import json
import sys

from tf_t2i import flags as t2i_flags
from tf_t2i.eval import report_compare, report_lib


def main(argv=None):
    parser = t2i_flags.OneLineArgumentParser(prog="python -m tf_t2i.report",
                                             description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", help="Run directories, results JSON files or "
                        "directories of them.")
    parser.add_argument("--format", choices=report_lib.FORMATS, default="text",
                        help="text: an aligned table; markdown: a table for docs; json: the "
                             "numbers, unrounded.")
    parser.add_argument("--baseline", metavar="ROW",
                        help="Also print every other row's difference from this row, "
                             "per metric, with whether it exceeds the seeds' spread.")
    args = parser.parse_args(argv)
    paths = args.paths
    if not paths:
        t2i_flags.fail("Name one or more run directories or results JSON files "
                       "(python -m tf_t2i.report PATH...).")
    try:
        report = report_lib.build_report(paths)
        comparison = (report_compare.format_comparison(report.rows, args.baseline, args.format)
                      if args.baseline else None)
    except report_lib.ReportInputError as e:
        t2i_flags.fail(str(e))
    for note in report.skipped:
        print(f"skipped {note}", file=sys.stderr)
    rows = sorted(report.rows, key=lambda row: row.row != args.baseline)   # baseline first
    table = report_lib.format_report(rows, args.format)
    if comparison is None:
        print(table)
    elif args.format == "json":
        print(json.dumps({"rows": json.loads(table), "comparison": json.loads(comparison)},
                         indent=1))
    else:
        print(table + "\n\n" + comparison)


if __name__ == "__main__":
    main()
