"""The latest checkpoint of a directory, read from its `checkpoint` state file without
TensorFlow.

`tf.train.CheckpointManager` keeps a text-format `CheckpointState` proto named
`checkpoint` beside the shards; its `model_checkpoint_path` names the latest checkpoint.
`tf.train.latest_checkpoint` reads the same field, but importing TensorFlow costs a binary
seconds of start-up, and checking that a `--damsm_dir` or `--captioner_dir` holds a
checkpoint should not: bad input gets its one line before TensorFlow starts. The answer
is the same as `tf.train.latest_checkpoint`'s (tests/io/test_checkpoint_state.py compares
them).
"""

import ast
import os
import re
from typing import Optional

STATE_FILENAME = "checkpoint"
# Where a run keeps its checkpoints: <model_dir>/checkpoints.
CHECKPOINT_SUBDIR = "checkpoints"
# `model_checkpoint_path: "ckpt-12"`, the value a C-escaped string.
_LATEST_RE = re.compile(r'^\s*model_checkpoint_path\s*:\s*"((?:[^"\\]|\\.)*)"\s*$', re.M)


def latest_checkpoint(directory: str) -> Optional[str]:
    """The prefix of the directory's latest checkpoint ("<dir>/ckpt-12"), or None.

    None when the state file is missing or unreadable, names no checkpoint, or names one
    whose index file is gone, as `tf.train.latest_checkpoint` answers for a V2 checkpoint.
    """
    try:
        with open(os.path.join(directory, STATE_FILENAME), encoding="utf-8") as f:
            match = _LATEST_RE.search(f.read())
    except (OSError, UnicodeDecodeError):
        return None
    if match is None:
        return None
    try:  # the proto text format escapes as C does, which Python's literals read alike
        path = ast.literal_eval(f'"{match.group(1)}"')
    except (SyntaxError, ValueError):
        return None
    if not os.path.isabs(path):
        path = os.path.join(directory, path)
    return path if os.path.exists(path + ".index") else None


def latest_run_checkpoint(model_dir: str) -> Optional[str]:
    """The latest checkpoint of a run directory (under its CHECKPOINT_SUBDIR), or None."""
    return latest_checkpoint(os.path.join(model_dir, CHECKPOINT_SUBDIR))
