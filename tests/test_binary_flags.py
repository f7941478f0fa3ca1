"""Every flag a binary accepts is one it reads; flags it does not read are refused.

Table-driven over the absl binaries: the flags each defines (from `--helpxml`, by the
file that defines them) must each be read by the binary's code, and a config flag given
to a binary that does not build a config (sample, export, evaluate, serve, client,
convert) stops it with one line naming the flag, before any work.
"""

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# binary -> (defines --model_dir, defines the config flags)
BINARIES = {
    "pretrain": (True, True),
    "train": (True, True),
    "sample": (True, False),
    "export": (True, False),
    "evaluate": (True, False),
    "serve": (False, False),
    "client": (False, False),
    "convert": (False, False),
}
# How a common flag of tf_t2i/flags.py reaches the binary's code.
COMMON_READERS = {
    "dry_run": r"FLAGS\.dry_run",
    "model_dir": r"require_model_dir|FLAGS\.model_dir",
}
CONFIG_READER = r"resolve_config|config_from_flags"


def _run(binary, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", f"tf_t2i.{binary}", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def _defined_flags(binary):
    """{flag name: defining file's basename} of the binary's own and tf_t2i's flags."""
    result = _run(binary, "--helpxml")
    assert result.stdout.lstrip().startswith("<?xml"), result.stderr[-2000:]  # absl exits 1
    flags = {}
    for flag in ET.fromstring(result.stdout).iter("flag"):
        # absl names the defining file by path (the __main__ module) or module name.
        where = flag.findtext("file")
        if where == "tf_t2i.flags":
            flags[flag.findtext("name")] = "flags.py"
        elif os.path.dirname(where) == os.path.join(ROOT, "tf_t2i"):
            flags[flag.findtext("name")] = os.path.basename(where)
    return flags


def _source(binary):
    with open(os.path.join(ROOT, "tf_t2i", f"{binary}.py")) as f:
        return f.read()


@pytest.mark.parametrize("binary", sorted(BINARIES))
def test_every_flag_a_binary_defines_is_read(binary):
    flags = _defined_flags(binary)
    source = _source(binary)
    with_model_dir, with_config = BINARIES[binary]
    assert ("model_dir" in flags) == with_model_dir
    assert ("gen_arch" in flags) == with_config
    assert ("experiment_name" in flags) == with_config
    unread = []
    for name, defined_in in sorted(flags.items()):
        if defined_in == f"{binary}.py":
            pattern = rf"FLAGS\.{name}\b|FLAGS\[\"{name}\"\]"
        elif name in COMMON_READERS:
            pattern = COMMON_READERS[name]
        else:  # a config flag (or --experiment_name): read through the config
            pattern = CONFIG_READER
        if not re.search(pattern, source):
            unread.append(name)
    assert not unread, f"tf_t2i.{binary} accepts flags it never reads: {unread}"


@pytest.mark.parametrize("binary", sorted(b for b, (_, config) in BINARIES.items()
                                          if not config))
def test_config_flags_are_refused_where_no_config_is_built(binary):
    result = _run(binary, "--gen_truncation_psi=0.5", "--train_steps=3")
    assert result.returncode == 2, result.stdout[-1000:] + result.stderr[-1000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "gen_truncation_psi" in lines[0] or "train_steps" in lines[0], lines[0]
