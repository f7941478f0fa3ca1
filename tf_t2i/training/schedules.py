"""Learning-rate schedules of GAN training.

`LinearDecayTail` is pix2pix's schedule (Isola et al. 2017; CycleGAN, Zhu et al. 2017):
constant, then a linear fall to zero at the last step. On a fixed budget a schedule that
ends at zero beats a constant rate (Li, Yumer and Ramanan, "Budgeted Training", ICLR
2020); for a GAN the small late steps let the generator settle on details the high early
rate keeps overshooting.
"""

from typing import Optional

import keras
import tensorflow as tf


class LinearDecayTail(keras.optimizers.schedules.LearningRateSchedule):
    """`initial` until `decay_start * total_steps`, then linearly down to 0 at `total_steps`.

    The rate is a function of the run's GAN step, not of the optimizer's own update
    count: the discriminator's optimizer may update several times a step (MA-GP as a
    second step, one update per AttnGAN stage), so both optimizers read `step`, the
    variable that counts GAN steps (the generator optimizer's `iterations`). A resumed
    run therefore continues the schedule where it stopped.

    With a time budget (`--train_max_seconds`) the run may end before `total_steps`: then
    `progress` (a variable the training loop sets to the fraction of the budget spent,
    `loop.RunClock`) drives the schedule too, and the run's progress is whichever of
    step / total_steps and progress is further, so the rates reach 0 when the budget does
    on any machine.

    Args:
      initial: the learning rate before the decay.
      total_steps: the run's last step (the rate reaches 0 there).
      decay_start: fraction of the run where the decay begins; 1.0 = constant.
      step: the GAN step variable; None reads the optimizer's own `iterations`.
      progress: float32 variable in [0, 1], the fraction of the time budget spent; None
        when the run has no budget.
    """

    def __init__(self, initial: float, total_steps: int, decay_start: float,
                 step: Optional[tf.Variable] = None, progress: Optional[tf.Variable] = None):
        if not 0.0 <= decay_start <= 1.0:
            raise ValueError(f"decay_start must be in [0, 1], got {decay_start}.")
        self.initial = float(initial)
        self.total_steps = int(total_steps)
        self.decay_start = float(decay_start)
        self.step = step
        self.progress = progress

    def factor(self, step) -> tf.Tensor:
        """The multiplier of `initial` at `step` (1 before the decay, 0 at the end)."""
        done = tf.cast(step, tf.float32) / float(self.total_steps)
        if self.progress is not None:
            done = tf.maximum(done, tf.cast(self.progress, tf.float32))
        length = max(1.0 - self.decay_start, 1e-6)
        return tf.clip_by_value(1.0 - (done - self.decay_start) / length, 0.0, 1.0)

    def __call__(self, iterations):
        step = iterations if self.step is None else self.step
        return self.initial * self.factor(step)

    def get_config(self):
        return {"initial": self.initial, "total_steps": self.total_steps,
                "decay_start": self.decay_start}


def gan_learning_rate(train_cfg, rate: float, step: Optional[tf.Variable] = None,
                      progress: Optional[tf.Variable] = None):
    """An optimizer's rate for this run: the float `rate` when constant (the reference;
    checkpoints keep their `learning_rate` variable), else a `LinearDecayTail` on `step`
    (None: the optimizer's own updates, right for the generator's) and, with a time
    budget, on `progress`."""
    if train_cfg.lr_decay_start >= 1.0:
        return rate
    return LinearDecayTail(rate, train_cfg.steps, train_cfg.lr_decay_start, step,
                           progress if train_cfg.max_seconds > 0 else None)


class FallingWeight:
    """A loss weight that follows the rates' tail: `initial` until the decay starts, then
    linearly to `final` at the run's end (the same progress as `LinearDecayTail`, so a
    time budget ends both together). Called in the step, it returns a float32 scalar.

    Why for the DAMSM term on shapes (docs/shapes_quality.md, rounds 16, 18, 30, 31): a
    heavy term teaches shape early, and a light one gives the better shapes-FID and
    spread over the noise, which the late, small steps settle; one constant weight has to
    trade the two.
    """

    def __init__(self, initial: float, final: float, tail: LinearDecayTail):
        self.initial, self.final, self.tail = float(initial), float(final), tail

    def __call__(self) -> tf.Tensor:
        return self.final + (self.initial - self.final) * self.tail.factor(self.tail.step)


def damsm_weight(train_cfg, loss_cfg, step: tf.Variable, progress: Optional[tf.Variable] = None):
    """The DAMSM term's weight: the float `damsm_weight` when constant, else a
    `FallingWeight` on the GAN `step` (and, with a time budget, `progress`)."""
    # The rates' own tail (a factor from 1 to 0), so the weight and the rates cannot drift
    # apart; a constant rate (lr_decay_start 1, refused by the config) keeps it constant.
    tail = gan_learning_rate(train_cfg, 1.0, step, progress)
    if loss_cfg.damsm_weight_final < 0 or not isinstance(tail, LinearDecayTail):
        return loss_cfg.damsm_weight
    return FallingWeight(loss_cfg.damsm_weight, loss_cfg.damsm_weight_final, tail)


def time_progress_variable() -> tf.Variable:
    """The fraction of the time budget spent, set by the loop and read by the schedules;
    not checkpointed (a resumed run recomputes it from its clock record)."""
    return tf.Variable(0.0, trainable=False, dtype=tf.float32, name="time_budget_progress")
