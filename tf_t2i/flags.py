"""Command-line flags mirroring `ExperimentConfig`; the only library module that reads absl flags.

Every config field gets a flag named `<prefix>_<field>`: `--data_image_size`,
`--train_batch_size`, `--gen_arch`, `--loss_f2f_weight`, ... Fields with choices become
enum flags, so an unknown value fails at parse time with absl's message listing the
allowed values. Runtime fields keep their plain names (`--damsm_dir`,
`--num_cpu_replicas`), and `--train_steps` overrides the config's length.

Flags left at their defaults leave the config's values alone, so a binary that rebuilds
a config from `<model_dir>/config.json` can still take explicit overrides.

A `--flagfile` inside a flagfile is relative to the file that names it (configs chain
their base with `--flagfile=common.cfg`), so the binaries run from any directory; one on
the command line is relative to the working directory, as usual.
"""

import argparse
import dataclasses
import os
import sys
from typing import Optional

from absl import flags

from tf_t2i import config as config_lib
from tf_t2i import console

FLAGS = flags.FLAGS

FLAG_PREFIXES = config_lib.FLAG_PREFIXES
_flag_name = config_lib.flag_name


def define_flags(with_config: bool = True, with_model_dir: bool = True) -> None:
    """Defines the common flags once (idempotent). Binaries add their own beside these.

    A binary defines only the flags it reads (a flag it accepted and ignored would mislead):
    `--dry_run` always; `--model_dir` where it reads or writes a run; the config flags
    and `--experiment_name` only where it builds a config (pretrain, train). The others
    read the run's config.json and refuse config flags as unknown.
    """
    if "dry_run" in FLAGS:
        return
    flags.DEFINE_boolean("dry_run", False, "Print what would be done and exit.")
    if with_model_dir:
        flags.DEFINE_string("model_dir", None, "Directory of the run (checkpoints, "
                            "config.json, logs and outputs).")
    if not with_config:
        return
    flags.DEFINE_string("experiment_name", None, "Experiment name.")
    for section, section_cls in config_lib.SECTION_CLASSES.items():
        defaults = section_cls()
        for f in dataclasses.fields(section_cls):
            name = _flag_name(section, f.name)
            help_text = f.metadata.get("help", f.name)
            default = getattr(defaults, f.name)
            help_text = f"{help_text} (config default: {default!r})"
            choices = f.metadata.get("choices")
            # Defaults are None so that only flags the user gave override the config.
            if choices:
                flags.DEFINE_enum(name, None, [_flag_text(c) for c in choices], help_text)
            elif f.type in (bool, "bool"):
                flags.DEFINE_boolean(name, None, help_text)
            elif f.type in (int, "int"):
                flags.DEFINE_integer(name, None, help_text)
            elif f.type in (float, "float"):
                flags.DEFINE_float(name, None, help_text)
            else:
                flags.DEFINE_string(name, None, help_text)


def _flag_text(value) -> str:
    """A config value as its flag spells it (booleans as true / false)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _typed(section_cls, field_name, raw):
    field = {f.name: f for f in dataclasses.fields(section_cls)}[field_name]
    if field.type in (int, "int"):
        return int(raw)
    for choice in field.metadata.get("choices", ()):  # e.g. jit_compile: true, false, auto
        if isinstance(choice, bool) and raw == _flag_text(choice):
            return choice
    return raw


def config_from_flags(base: Optional[config_lib.ExperimentConfig] = None,
                      validate: bool = True) -> config_lib.ExperimentConfig:
    """Builds the experiment config: `base` (or the defaults) overridden by every given flag."""
    cfg = base or config_lib.ExperimentConfig()
    updates = {}
    for section, section_cls in config_lib.SECTION_CLASSES.items():
        values = {}
        for f in dataclasses.fields(section_cls):
            value = FLAGS[_flag_name(section, f.name)].value
            if value is not None:
                values[f.name] = _typed(section_cls, f.name, value)
        if values:
            updates[section] = values
    if FLAGS.experiment_name:
        updates["name"] = FLAGS.experiment_name
    cfg = cfg.replace(**updates)
    if validate:
        cfg.validate()
    return cfg


def describe_config(cfg: config_lib.ExperimentConfig, heading: str, full: bool = False,
                    where: str = "config.json") -> str:
    """What a run prints about its config: the whole JSON when `full` (--dry_run),
    otherwise only the settings that differ from the defaults, as the flags that set
    them (the whole config is in `where`)."""
    if full:
        return f"{heading} with config:\n{cfg.to_json()}"
    defaults = config_lib.ExperimentConfig()
    lines = [f"--experiment_name={cfg.name}"] if cfg.name != defaults.name else []
    for section in config_lib.SECTIONS:
        ours, theirs = getattr(cfg, section), getattr(defaults, section)
        for f in dataclasses.fields(ours):
            value = getattr(ours, f.name)
            if value != getattr(theirs, f.name):
                shown = str(value).lower() if isinstance(value, bool) else value
                lines.append(f"--{_flag_name(section, f.name)}={shown}")
    return (f"{heading}; settings other than the defaults (all of them: {where}):\n  "
            + "\n  ".join(lines))


def resolve_config(argv, tasks, **placeholders) -> config_lib.ExperimentConfig:
    """A binary's first step: flags -> the validated config of its task, or a one-line error.

    `--train_task` (usually set by the config file) says what the run trains; a binary
    refuses a task it does not run rather than quietly training something else.

    Args:
      argv: what absl left unparsed (only the program name is allowed).
      tasks: the train.task values this binary runs; the first is its default.
      **placeholders: runtime values assumed only for validation when not given (e.g.
        a --dry_run may describe a GAN without a DAMSM run).
    """
    if len(argv) > 1:
        fail(f"Unexpected arguments: {argv[1:]}")
    task = FLAGS.train_task or tasks[0]
    if task not in tasks:
        runner = "tf_t2i.train" if task == "gan" else "tf_t2i.pretrain"
        fail(f"--train_task={task} is not trained by this binary (it trains "
             f"{' or '.join(tasks)}); run `python -m {runner}` for it.")
    try:
        cfg = config_from_flags(validate=False).replace(train={"task": task})
        missing = {k: v for k, v in placeholders.items() if not getattr(cfg.runtime, k)}
        cfg.replace(runtime=missing).validate()
        return cfg
    except config_lib.ConfigError as e:
        fail(str(e))


def run_or_fail(fn, input_errors=(), *args, **kwargs):
    """Runs fn; errors caused by the user's input become one-line messages.

    Input errors exit with status 2; a FloatingPointError (training diverged) with 1.
    """
    try:
        return fn(*args, **kwargs)
    except (FileNotFoundError, NotImplementedError, config_lib.ConfigError,
            *input_errors) as e:
        fail(str(e))
    except FloatingPointError as e:
        fail(str(e), status=1)


def require_model_dir(must_exist: bool = False) -> str:
    """Returns --model_dir, failing early with one clear line when it is unusable."""
    model_dir = FLAGS.model_dir
    if not model_dir:
        fail("--model_dir is required (the directory this run writes to or reads from).")
    model_dir = os.path.abspath(os.path.expanduser(model_dir))
    if must_exist and not os.path.isdir(model_dir):
        fail(f"--model_dir={model_dir} does not exist.")
    parent = os.path.dirname(model_dir)
    if not os.path.isdir(parent):
        fail(f"The parent of --model_dir does not exist: {parent} (create it first).")
    return model_dir


def require_gan_run(model_dir: str) -> None:
    """Fails with one line unless model_dir holds a GAN run's config.json and vocabulary:
    from the files alone, so a wrong directory is refused before TensorFlow starts."""
    for name in (config_lib.CONFIG_FILENAME, "vocab.txt"):
        if not os.path.exists(os.path.join(model_dir, name)):
            fail(f"{model_dir} has no {name}: --model_dir must be a trained GAN run "
                 "(python -m tf_t2i.train).")


def parse_flags_or_fail(argv):
    """`app.run(main, flags_parser=parse_flags_or_fail)`: a bad flag is a one-line error.

    absl's own parser prints two lines and exits 1; here, as for every other bad input,
    the binary prints `error: ...` and exits 2 before any work starts.
    """
    try:
        remaining = FLAGS(expand_flagfiles(argv))
    except flags.Error as e:
        fail(str(e))
    # Quiet console unless the user asked for absl's --verbosity (0: INFO, 1+: debug).
    console.setup(verbose=FLAGS["verbosity"].present > 0)
    return remaining


def expand_flagfiles(argv):
    """Returns argv with every `--flagfile` replaced by the flags of that file, recursively.

    absl would resolve a nested `--flagfile` from the working directory; here it is
    relative to the file that names it. The syntax is absl's: one flag per line, `#` and
    `//` start comment lines, later flags override earlier ones, `--` ends the flags.

    Args:
      argv: the program name followed by its arguments.

    Raises:
      flags.Error: a flagfile cannot be read or includes itself; the message names it.
    """
    expanded, args = [argv[0]], list(argv[1:])
    while args:
        arg = args.pop(0)
        if arg == "--":
            expanded += [arg, *args]
            break
        if arg in ("--flagfile", "-flagfile"):
            if not args:
                raise flags.IllegalFlagValueError("--flagfile with no argument")
            path = args.pop(0)
        else:
            path = _flagfile_argument(arg)
            if path is None:
                expanded.append(arg)
                continue
        expanded += _read_flagfile(os.path.abspath(os.path.expanduser(path)), ())
    return expanded


def _flagfile_argument(arg: str) -> Optional[str]:
    """The path of `--flagfile=PATH` / `-flagfile=PATH`, None for any other argument."""
    for prefix in ("--flagfile=", "-flagfile="):
        if arg.startswith(prefix):
            return arg[len(prefix):].strip()
    return None


def _read_flagfile(path: str, including: tuple) -> list:
    """The flags of the flagfile `path`, nested flagfiles expanded in place.

    Args:
      path: absolute path of the file.
      including: absolute paths of the files that led here, outermost first.
    """
    if path in including:
        raise flags.Error(f"flagfile {path} includes itself: "
                          f"{' -> '.join((*including, path))}")
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        named_in = (f" (named in {including[-1]}; a nested --flagfile is relative to the "
                    f"file that names it)" if including else "")
        raise flags.CantOpenFlagFileError(
            f"cannot read flagfile {path}: {e.strerror or e}{named_in}") from None
    result = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", "//")):
            continue
        nested = _flagfile_argument(line)
        if nested is None:
            result.append(line)
        else:
            nested = os.path.join(os.path.dirname(path), os.path.expanduser(nested))
            result += _read_flagfile(os.path.normpath(nested), (*including, path))
    return result


def fail(message: str, status: int = 2) -> None:
    """Prints a one-line error and exits (status 2: bad input, before any work starts)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse for the binaries that take no config flags (report, ablate): a bad
    argument is one `error: ...` line and exit status 2, as for every other binary."""

    def error(self, message):
        fail(message)
