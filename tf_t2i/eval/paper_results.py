"""The paper's reported results (Tables 1 and 2), as data, keyed by the config of each row.

Source: "The Right Losses for the Right Gains: improving the semantic consistency of deep
text-to-image generation with distribution-sensitive losses" (arXiv:2312.10854), Table 1
(CUB-200-2011) and Table 2 (COCO-2014). IS and FID from 30,000 images generated from
unseen test captions; R-precision (in percent) with 1 true and 99 mismatched captions,
scored with the pretrained DAMSM's global image and sentence vectors (section 4.2).

The tables' "R2F" is this code's fake-to-real term (F2R, `--loss_f2r_weight`), and "R" in
the last CUB row is re-captioning. Each row names the `configs/<config>.cfg` that
reproduces it; that file's header states the same numbers in the line `header_line`
writes (a test checks both agree).

Library code with no dependencies, so the report command reads it without TensorFlow.
"""

import re
from typing import Dict, NamedTuple, Optional

PAPER = "arXiv:2312.10854"


class PaperRow(NamedTuple):
    """One row of the paper's Table 1 or 2."""
    dataset: str               # "cub" or "coco"
    table: int                 # 1 (CUB) or 2 (COCO)
    architecture: str          # the row's label in the paper's table
    config: str                # configs/<config>.cfg reproduces the row
    inception_score: float
    fid: float
    r_precision: float         # percent


ROWS = (
    PaperRow("cub", 1, "AttnGAN", "cub_attngan", 4.36, 23.98, 58.06),
    PaperRow("cub", 1, "AttnGAN + CL", "cub_attngan_cl", 4.42, 16.34, 60.52),
    PaperRow("cub", 1, "Style1AttnGAN", "cub_style1_attngan", 4.20, 36.82, 61.25),
    PaperRow("cub", 1, "Style1AttnGAN + CL (F2F)", "cub_style1_attngan_cl_f2f",
             3.09, 41.32, 62.30),
    PaperRow("cub", 1, "Style2AttnGAN + CL (R2F)", "cub_style2_attngan_cl_r2f",
             3.59, 38.51, 64.53),
    PaperRow("cub", 1, "SSAGAN", "cub_ssagan", 4.89, 9.76, 75.67),
    PaperRow("cub", 1, "SSAGAN + CL (F2F)", "cub_ssagan_cl_f2f", 4.95, 9.62, 70.49),
    PaperRow("cub", 1, "SSAGAN + CL (R2F+F2F)", "cub_ssagan_cl_r2f_f2f", 5.18, 9.12, 72.85),
    PaperRow("cub", 1, "SSAGAN + CL (R2F+F2F+R)", "cub_ssagan_cl_r2f_f2f_recap",
             5.03, 9.16, 72.28),
    PaperRow("coco", 2, "AttnGAN", "coco_attngan", 6.08, 30.67, 83.80),
    PaperRow("coco", 2, "AttnGAN + CL", "coco_attngan_cl", 6.29, 26.89, 84.24),
    PaperRow("coco", 2, "SSAGAN", "coco_ssagan", 7.18, 19.37, 82.45),
    PaperRow("coco", 2, "SSAGAN + CL (R2F)", "coco_ssagan_cl_r2f", 7.60, 12.08, 85.20),
    PaperRow("coco", 2, "SSAGAN + CL (R2F+F2F)", "coco_ssagan_cl_r2f_f2f", 7.62, 10.89, 88.21),
)

BY_CONFIG: Dict[str, PaperRow] = {row.config: row for row in ROWS}

_DATASET_LABELS = {"cub": "CUB", "coco": "COCO"}

# "# Paper (Table 1, CUB, 'SSAGAN'): IS 4.89, FID 9.76, R-precision 75.67% (arXiv:...)."
HEADER_PATTERN = re.compile(
    r"^# Paper \(Table (?P<table>\d), (?P<dataset>\w+), '(?P<architecture>[^']+)'\): "
    r"IS (?P<inception_score>[\d.]+), FID (?P<fid>[\d.]+), "
    r"R-precision (?P<r_precision>[\d.]+)%")


def paper_row(config_name: Optional[str]) -> Optional[PaperRow]:
    """The paper's row reproduced by `configs/<config_name>.cfg`, or None."""
    return BY_CONFIG.get(config_name or "")


def header_line(row: PaperRow) -> str:
    """The comment line a config's header states the row's numbers in."""
    return (f"# Paper (Table {row.table}, {_DATASET_LABELS[row.dataset]}, "
            f"'{row.architecture}'): IS {row.inception_score:.2f}, FID {row.fid:.2f}, "
            f"R-precision {row.r_precision:.2f}% ({PAPER}).")


def parse_header_line(line: str) -> Optional[PaperRow]:
    """The row stated by a config header line `header_line` wrote, or None.

    The config field is left empty: the line does not name its file.
    """
    match = HEADER_PATTERN.match(line.strip())
    if match is None:
        return None
    return PaperRow(dataset=match["dataset"].lower(), table=int(match["table"]),
                    architecture=match["architecture"], config="",
                    inception_score=float(match["inception_score"]), fid=float(match["fid"]),
                    r_precision=float(match["r_precision"]))
