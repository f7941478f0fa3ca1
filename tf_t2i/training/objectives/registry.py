"""Adversarial schemes and generator terms by name.

    @registry.register_term
    class MyTerm(base.GeneratorTerm):
        name, weight_field = "g_mine", "mine_weight"

The built-in modules are imported by `objectives/__init__.py`, which is what fills these
tables; importing `tf_t2i.training.objectives` is enough to see every one.
"""

from typing import Dict, List, Type

from tf_t2i.training.objectives import base

SCHEMES: Dict[str, Type[base.AdversarialScheme]] = {}
TERMS: Dict[str, Type[base.GeneratorTerm]] = {}


def register_scheme(cls):
    if cls.name in SCHEMES:
        raise ValueError(f"Adversarial scheme {cls.name!r} is registered twice.")
    SCHEMES[cls.name] = cls
    return cls


def register_term(cls):
    if cls.name in TERMS:
        raise ValueError(f"Generator term {cls.name!r} is registered twice.")
    TERMS[cls.name] = cls
    return cls


def build_scheme(name: str, discriminators, loss_cfg) -> base.AdversarialScheme:
    """The scheme registered as `name`, around these discriminators."""
    if name not in SCHEMES:
        raise ValueError(f"Unknown adversarial scheme {name!r}; known: {sorted(SCHEMES)}.")
    return SCHEMES[name].from_config(discriminators, loss_cfg)


def build_terms(loss_cfg, models) -> List[base.GeneratorTerm]:
    """Every registered term whose weight in `loss_cfg` is > 0, in registration order."""
    return [cls.from_config(loss_cfg, models) for cls in TERMS.values()
            if getattr(loss_cfg, cls.weight_field) > 0]
