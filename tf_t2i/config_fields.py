"""The pieces every config section is made of: the field declaration, the value lists its
choices come from, and the checks the sections' `validate` methods share.

Stdlib only, as `tf_t2i.config`, which builds the sections from these and re-exports the
names.
"""

import dataclasses


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and what is expected."""


def config_field(default, help_text, choices=None, applies_to=None):
    """A config field; `applies_to` names the generator architectures it is read by (None:
    all), so that setting it for another architecture is an error, not a silent no-op."""
    metadata = {"help": help_text}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if applies_to is not None:
        metadata["applies_to"] = tuple(applies_to)
    return dataclasses.field(default=default, metadata=metadata)


DATASETS = ("shapes", "cub", "coco")
IMAGE_SIZES = (64, 128, 256)
IMAGE_BACKBONES = ("small_cnn", "inception_v3", "torchvision_inception_v3")
GEN_ARCHS = ("ssagan", "attngan", "style1_attngan", "style2_attngan")
# Who reads an architecture-specific field (see `config_field(applies_to=...)`).
SSAGAN = ("ssagan",)
ATTNGAN_FAMILY = ("attngan", "style1_attngan", "style2_attngan")
STYLE_VARIANTS = ("style1_attngan", "style2_attngan")
MA_GP_MODES = ("separate_step", "joint")
MIXED_PRECISION = ("none", "auto", "mixed_bfloat16", "mixed_float16")
TASKS = ("damsm", "captioner", "gan")


def check_choices(section):
    for f in dataclasses.fields(section):
        choices = f.metadata.get("choices")
        if choices and getattr(section, f.name) not in choices:
            raise ConfigError(f"{type(section).__name__}.{f.name}={getattr(section, f.name)!r} is "
                              f"not one of {list(choices)}.")


def check_positive(section, *names):
    for name in names:
        if getattr(section, name) <= 0:
            raise ConfigError(f"{type(section).__name__}.{name} must be > 0, "
                              f"got {getattr(section, name)}.")
