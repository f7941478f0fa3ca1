"""The mode-seeking regulariser (Mao et al. 2019, MSGAN): not one of the paper's terms;
counters a conditional generator that ignores its noise."""

from tf_t2i.losses import adversarial
from tf_t2i.models import interface
from tf_t2i.training.objectives import base
from tf_t2i.training.objectives import registry


@registry.register_term
class ModeSeekingTerm(base.GeneratorTerm):
    """The first caption again from a second noise vector (a pure function of z, so the
    pair is the same on any number of replicas), compared with the step's fake."""

    name = "g_ms"
    weight_field = "mode_seeking_weight"

    def __call__(self, record):
        z_2 = interface.second_noise(record.z)
        other = record.generate(z_2, record.captions[0]).final
        return adversarial.mode_seeking_loss(record.fakes[0], other, record.z, z_2)
