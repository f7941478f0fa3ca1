"""What the binaries print: one stream of lines a user can act on.

TensorFlow writes a start-up block to the process's stderr while it is imported (oneDNN,
CUDA stubs, CPU features; twice, once per shared library) before its logging is
initialised, so neither TF_CPP_MIN_LOG_LEVEL nor Python can silence it.
`import_tensorflow_quietly` imports TensorFlow with file descriptor 2 held back and
replays only lines that are not that block; each binary calls it where its heavy imports
begin, after its flags are checked, so that a bad flag still fails at once. `setup`
(called by `flags.parse_flags_or_fail`) sets Python (absl) logging to WARNING and drops
warnings nobody can act on. `--verbosity=0` (absl's flag; 1 for more) shows everything.
"""

import logging
import os
import re
import sys
import tempfile
import warnings

# Lines TensorFlow writes while it starts: absl's pre-initialisation notice, then C++
# INFO / WARNING lines (`I0000 00:00:... file.cc:N] ...`) and the CPU-feature note.
_STARTUP_NOISE = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called"),
    re.compile(r"^[IW]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] "),
    re.compile(r"^To enable the following instructions: "),
)
# Python warnings and log records that describe TensorFlow's or Keras' internals, not
# anything the user of a tf_t2i binary could change.
_IGNORED_WARNINGS = (
    r"`shuffle=True` was passed, but will be ignored",  # our datasets are shuffled
)
_IGNORED_LOG_PREFIXES = (
    "Using custom data configuration",  # TFDS: the shapes dataset's size/seed config
)


def is_startup_noise(line: str) -> bool:
    return any(p.search(line) for p in _STARTUP_NOISE)


_VERBOSE = False


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow, replaying to stderr only what is not its start-up block."""
    if "tensorflow" in sys.modules or _VERBOSE:
        return
    # Later C++ messages (after logging starts) obey this: errors that matter surface
    # as Python exceptions; the rest ("oneDNN supports DT_BOOL only ...") is noise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode("utf-8", "replace").splitlines():
                if not is_startup_noise(line):
                    sys.stderr.write(line + "\n")
            sys.stderr.flush()


class _DropPrefixes(logging.Filter):
    def filter(self, record):
        message = record.getMessage()
        return not message.startswith(_IGNORED_LOG_PREFIXES)


def setup(verbose: bool) -> None:
    """A binary's console, once its flags are parsed (`verbose`: --verbosity was given).
    Cheap: imports nothing heavy."""
    global _VERBOSE
    _VERBOSE = verbose
    if verbose:
        return
    from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
    absl_logging.set_verbosity(absl_logging.WARNING)
    absl_logging.get_absl_logger().addFilter(_DropPrefixes())
    # TensorFlow's Python logger ("tensorflow") says the same things at INFO / WARNING.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    for message in _IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
