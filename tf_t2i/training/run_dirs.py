"""The runs a training command reads (--damsm_dir, --captioner_dir), checked from their
files alone.

No TensorFlow here: `tf_t2i.train` runs these checks, and `resume.check_can_continue` on
its --model_dir, before TensorFlow starts, so a wrong directory costs the user a
fraction of a second and one line, not TensorFlow's start-up first. The libraries call
the same functions, so a run started from Python is checked alike.
"""

import json
import os

from tf_t2i import config as config_lib
from tf_t2i.io import checkpoint_state

# tokenizer.VOCAB_FILENAME, whose module imports TensorFlow (a test ties the two).
VOCAB_FILENAME = "vocab.txt"
# What convert_lib writes into a directory it converts encoders into.
CONVERSION_MANIFEST = "conversion.json"


class DAMSMRunError(ValueError):
    """The --damsm_dir run is missing, unfinished or incompatible."""


def adopt_damsm_config(cfg: config_lib.ExperimentConfig) -> config_lib.ExperimentConfig:
    """Takes the encoder sections and caption length from the DAMSM run's config.json."""
    damsm_dir = cfg.runtime.damsm_dir
    if not damsm_dir or not os.path.isdir(damsm_dir):
        raise DAMSMRunError(f"--damsm_dir={damsm_dir!r} is not a directory; pass the model_dir "
                            "of `python -m tf_t2i.pretrain`.")
    try:
        damsm_cfg = config_lib.load_config(damsm_dir)
    except FileNotFoundError as e:
        raise DAMSMRunError(str(e)) from e
    if not os.path.exists(os.path.join(damsm_dir, VOCAB_FILENAME)):
        raise DAMSMRunError(f"{damsm_dir} has no {VOCAB_FILENAME}: not a finished DAMSM "
                            "pretraining run.")
    latest = checkpoint_state.latest_run_checkpoint(damsm_dir)
    if latest is None:
        raise DAMSMRunError(f"{damsm_dir} has no checkpoint: run the pretraining first.")
    _check_damsm_finished(damsm_dir, damsm_cfg, latest)
    if damsm_cfg.data.dataset != cfg.data.dataset:
        raise DAMSMRunError(f"The DAMSM run was trained on {damsm_cfg.data.dataset!r} but this "
                            f"run uses {cfg.data.dataset!r}.")
    return cfg.replace(text=damsm_cfg.text, image_encoder=damsm_cfg.image_encoder,
                       data={"max_caption_length": damsm_cfg.data.max_caption_length})


def _check_damsm_finished(damsm_dir: str, damsm_cfg: config_lib.ExperimentConfig,
                          latest: str) -> None:
    """A DAMSM run is usable once pretraining ended, or conversion gave both encoders."""
    if damsm_cfg.train.task != "damsm":
        raise DAMSMRunError(f"{damsm_dir} is a {damsm_cfg.train.task} run, not a DAMSM "
                            "pretraining run (`python -m tf_t2i.pretrain`).")
    manifest_path = os.path.join(damsm_dir, CONVERSION_MANIFEST)
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
        if not manifest.get("complete"):
            raise DAMSMRunError(
                f"{damsm_dir} holds only the converted {', '.join(sorted(manifest['kinds']))}: "
                "convert the other DAMSM encoder into it too (`python -m tf_t2i.convert`).")
        return
    step = int(latest.rsplit("-", 1)[1])
    if step < damsm_cfg.train.steps:
        raise DAMSMRunError(f"{damsm_dir} stopped at step {step} of {damsm_cfg.train.steps}: "
                            "finish the pretraining first (rerun its command; it resumes).")


def check_captioner_dir(directory: str) -> str:
    """The latest checkpoint of a captioner run; FileNotFoundError or ConfigError naming
    what is missing."""
    path = checkpoint_state.latest_run_checkpoint(directory)
    if path is None:
        raise FileNotFoundError(f"--captioner_dir={directory!r} has no checkpoint: run "
                                "`python -m tf_t2i.pretrain --train_task=captioner` first.")
    task = config_lib.load_config(directory).train.task
    if task != "captioner":
        raise config_lib.ConfigError(f"--captioner_dir={directory!r} is a {task} run, not a "
                                     "captioner run.")
    return path
