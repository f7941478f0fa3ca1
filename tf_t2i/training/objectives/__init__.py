"""The parts of a GAN's objective: adversarial schemes and generator terms, by name.

Importing this package registers the built-in ones; a new scheme or term is one module
that registers its class, and one import line here.
"""

from tf_t2i.training.objectives import registry
from tf_t2i.training.objectives.base import (AdversarialScheme, EncodedCaption,
                                             GeneratorTerm, StepRecord)

# Registration order is the order of the terms in the G loss and in the logs.
from tf_t2i.training.objectives import hinge_ma_gp  # noqa: F401  (scheme "hinge")
from tf_t2i.training.objectives import attngan_bce  # noqa: F401  (scheme "bce")
from tf_t2i.training.objectives import damsm_term  # noqa: F401  (g_damsm)
from tf_t2i.training.objectives import contrastive_terms  # noqa: F401  (g_f2r, g_f2f)
from tf_t2i.training.objectives import recaption_term  # noqa: F401  (g_recap)
from tf_t2i.training.objectives import mode_seeking_term  # noqa: F401  (g_ms)

build_scheme = registry.build_scheme
build_terms = registry.build_terms
