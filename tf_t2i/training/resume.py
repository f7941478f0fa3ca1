"""Whether a command may continue an existing run: its settings against the run's config.json.

A run's checkpoints only fit models built with the settings they were trained with, and
a resumed run is only the same experiment if its data, seed and batch stay the same. So
before anything is written into an existing model_dir, the command's settings are
compared with the run's: bookkeeping (steps, budgets, logging, runtime but a switch to
float16), learning rates and loss weights may change; everything else must match, or the
command stops with one line naming what differs and the run is left as it was.
"""

import os
from typing import Any, List, Tuple

from tf_t2i import config as config_lib

# Settings a resumed run may change: (section, field), or (section, None) for all of it.
CHANGEABLE = {
    ("", "name"),
    ("data", "data_dir"), ("data", "manual_dir"), ("data", "shuffle_buffer"),
    ("data", "cache"), ("data", "skip_corrupt_images"),
    ("captioner", "learning_rate"),
    ("generator", "truncation_psi"),
    ("loss", None),
    ("train", None),
    ("runtime", None),
}
# ... except these, which shape the checkpoint or the data stream.
FIXED = {
    ("loss", "contrastive_projection_dim"),
    ("train", "task"), ("train", "seed"), ("train", "batch_size"), ("train", "ema_decay"),
}
# ... and these values, which a run trained otherwise cannot take up: {setting: (value,
# why)}. A float16 run checkpoints its loss scales (training/loss_scaling.py); it may go on
# in float32 or bfloat16, leaving them in its checkpoints, but not the other way round.
FIXED_TARGETS = {
    ("runtime", "mixed_precision"): ("mixed_float16",
                                     "its checkpoints hold no float16 loss scale"),
}


class RunMismatchError(config_lib.ConfigError):
    """A command's settings cannot continue the run in its model_dir."""


def differences(saved: config_lib.ExperimentConfig,
                wanted: config_lib.ExperimentConfig) -> List[Tuple[str, str, Any, Any]]:
    """(section, field, saved value, wanted value) of every setting that differs."""
    old, new = saved.to_dict(), wanted.to_dict()
    found = []
    for key in sorted(set(old) | set(new)):
        if isinstance(old.get(key), dict) or isinstance(new.get(key), dict):
            a, b = old.get(key) or {}, new.get(key) or {}
            found += [(key, f, a.get(f), b.get(f)) for f in sorted(set(a) | set(b))
                      if a.get(f) != b.get(f)]
        elif old.get(key) != new.get(key):
            found.append(("", key, old.get(key), new.get(key)))
    return found


def changeable(section: str, field: str, new: Any = None) -> bool:
    """Whether a resumed run may change this setting (to `new`)."""
    if (section, field) in FIXED:
        return False
    refused = FIXED_TARGETS.get((section, field))
    if refused is not None and new == refused[0]:
        return False
    return (section, field) in CHANGEABLE or (section, None) in CHANGEABLE


def _flag(section: str, field: str) -> str:
    """The flag that sets a setting; the one top-level field, `name`, is
    --experiment_name."""
    return "--" + (config_lib.flag_name(section, field) if section else f"experiment_{field}")


def check_can_continue(model_dir: str, cfg: config_lib.ExperimentConfig) -> List[str]:
    """Raises RunMismatchError unless `cfg` can continue the run in `model_dir`.

    Reads only. Returns the changed settings the run continues with ("--train_steps:
    1000 -> 2000"), empty for a new run or unchanged settings.
    """
    path = os.path.join(model_dir, config_lib.CONFIG_FILENAME)
    if not os.path.exists(path):
        return []
    try:
        saved = config_lib.load_config(model_dir)
    except (ValueError, TypeError) as e:
        raise RunMismatchError(f"{path} cannot be read ({e}); it is not continued. Use a "
                               "new --model_dir.") from e
    diffs = differences(saved, cfg)
    fixed = [d for d in diffs if not changeable(d[0], d[1], d[3])]
    if fixed:
        section, field, old, new = fixed[0]
        more = ""
        if len(fixed) > 1:
            names = [_flag(s, f) for s, f, _, _ in fixed[1:]]
            more = f" (and {len(names)} more: {', '.join(names)})"
        why = f" ({FIXED_TARGETS[section, field][1]})" if (section, field) in FIXED_TARGETS \
            else ""
        raise RunMismatchError(
            f"{model_dir} was trained with {_flag(section, field)}={old}; this command asks "
            f"for {_flag(section, field)}={new}{why}{more}. Nothing was changed: use a new "
            "--model_dir, or the run's own settings.")
    return [f"{_flag(s, f)}: {old} -> {new}" for s, f, old, new in diffs]
