"""Dynamic loss scaling for float16 training, made for the GAN's custom steps.

In float16 the backward pass of a small loss underflows to zero. Each optimizer's loss is
therefore scaled before the backward pass and its gradients unscaled after it, with the
scale as Keras' `LossScaleOptimizer` keeps it: 2**15 at first, halved and the update
skipped whenever a gradient is not finite, doubled after `growth_interval` finite
updates in a row.

Keras' `LossScaleOptimizer` itself does not fit these steps:
* a skipped update leaves `iterations` as it was, and the G optimizer's `iterations` is
  the run's step, which `loop.HostStep` counts one per batch (Keras 2's
  LossScaleOptimizer advanced it on a skipped update, as `DynamicLossScale.apply` does);
* under MirroredStrategy (Keras 3.15) it decides from the first replica's gradients
  only, so an overflow on another replica reaches the weights through the all-reduce
  (tests/training/test_precision.py has the case);
* the MA-GP and R1 penalties take a gradient inside the loss: that inner backward pass
  needs the scale too (`gradient()` serves both), as PyTorch's AMP recipe for gradient
  penalties does.

float32 and bfloat16 (whose exponent range is float32's) use `NONE`: plain gradients,
nothing scaled, nothing skipped, nothing checkpointed.
"""

from typing import List, Optional, Sequence, Tuple

import keras
import tensorflow as tf

INITIAL_SCALE = 2.0 ** 15  # keras.optimizers.LossScaleOptimizer's defaults
GROWTH_INTERVAL = 2000


def _present(grads: Sequence[Optional[tf.Tensor]], variables: Sequence) -> Tuple[List, List]:
    """The (gradient, variable) pairs that have a gradient, as two lists (the reference
    D owns shortcut convolutions it never uses)."""
    pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
    return [g for g, _ in pairs], [v for _, v in pairs]


class LossScale:
    """No loss scaling (float32, bfloat16): plain gradients, every update applied."""

    def gradient(self, tape: tf.GradientTape, target: tf.Tensor, sources):
        """d target / d sources, as `tape.gradient`."""
        return tape.gradient(target, sources)

    def apply(self, optimizer: keras.optimizers.Optimizer, grads, variables) -> None:
        """Applies the gradients that exist."""
        grads, variables = _present(grads, variables)
        optimizer.apply(grads, variables)

    def minimize(self, optimizer: keras.optimizers.Optimizer, tape: tf.GradientTape,
                 loss: tf.Tensor, variables) -> None:
        """One update of `variables` on `loss`, recorded by `tape`."""
        self.apply(optimizer, self.gradient(tape, loss, variables), variables)


NONE = LossScale()


class DynamicLossScale(tf.Module, LossScale):
    """A dynamic loss scale: its state is two variables, checkpointed with the run.

    Create it inside the strategy scope. Every replica computes the same decision (the
    finiteness of the gradients is all-reduced), so the state stays equal on all of them.

    Args:
      initial_scale: the scale before the first update.
      growth_interval: finite updates in a row after which the scale doubles.
      name: the module's name.
    """

    def __init__(self, initial_scale: float = INITIAL_SCALE,
                 growth_interval: int = GROWTH_INTERVAL, name: str = "loss_scale"):
        super().__init__(name=name)
        self.growth_interval = growth_interval
        # ONLY_FIRST_REPLICA: an assignment in replica context takes the first replica's
        # value, which every replica computed alike.
        variable = lambda value, dtype, var_name: tf.Variable(
            value, dtype=dtype, trainable=False, name=var_name,
            synchronization=tf.VariableSynchronization.ON_WRITE,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.scale = variable(initial_scale, tf.float32, "scale")
        self.finite_steps = variable(0, tf.int64, "finite_steps")

    def gradient(self, tape, target, sources):
        """d target / d sources through a backward pass that carries the gradient of
        `target` times the scale (so float16 intermediates keep their small values),
        divided by the scale again: the result is unscaled, a non-finite value included."""
        scale = tf.convert_to_tensor(self.scale)
        grads = tape.gradient(target, sources,
                              output_gradients=tf.ones_like(target) * tf.cast(scale, target.dtype))
        return tf.nest.map_structure(
            lambda g: None if g is None else _divide(g, tf.cast(scale, g.dtype)), grads)

    def apply(self, optimizer, grads, variables) -> None:
        """Applies (unscaled) gradients if every replica's are finite; otherwise leaves
        the variables and the optimizer's slots as they are, halves the scale, and still
        counts the update in `optimizer.iterations` (the run's step for G)."""
        grads, variables = _present(grads, variables)
        finite = _finite_on_every_replica(grads)
        if tf.__internal__.distribute.strategy_supports_no_merge_call():
            self._apply_or_skip(finite, lambda: optimizer.apply(grads, variables), optimizer)
            return

        # The optimizer's update makes a merge_call, which a tf.cond in replica context
        # cannot hold: the decision is taken in cross-replica context, as Keras'
        # LossScaleOptimizer does.
        def merge_fn(strategy, finite, grads):
            finite = strategy.experimental_local_results(finite)[0]
            self._apply_or_skip(finite, lambda: strategy.extended.call_for_each_replica(
                optimizer.apply, args=(grads, variables)), optimizer)

        tf.distribute.get_replica_context().merge_call(merge_fn, args=(finite, grads))

    def _apply_or_skip(self, finite, apply_fn, optimizer) -> None:
        def update():
            apply_fn()  # whatever it returns: tf.cond's two branches must return alike

        def skip():
            optimizer.iterations.assign_add(1)

        tf.cond(finite, update, skip)
        grow = tf.logical_and(finite, self.finite_steps + 1 >= self.growth_interval)
        self.scale.assign(tf.where(finite, tf.where(grow, 2.0, 1.0), 0.5) * self.scale)
        counting = tf.logical_and(finite, tf.logical_not(grow))
        self.finite_steps.assign(tf.where(counting, self.finite_steps + 1,
                                          tf.zeros_like(self.finite_steps)))


def _divide(grad, scale):
    if isinstance(grad, tf.IndexedSlices):  # embedding gradients
        return tf.IndexedSlices(grad.values / scale, grad.indices, grad.dense_shape)
    return grad / scale


def _finite_on_every_replica(grads) -> tf.Tensor:
    """Whether every gradient of every replica is finite (the same bool on all of them)."""
    values = [g.values if isinstance(g, tf.IndexedSlices) else g for g in grads]
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in values])
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return finite
    non_finite = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                                tf.cast(tf.logical_not(finite), tf.float32))
    return tf.equal(non_finite, 0.0)


def for_models(models, name: str) -> LossScale:
    """A new DynamicLossScale named `name` if any of `models` computes in float16
    (Keras' mixed_float16 policy), else NONE."""
    if any(m.compute_dtype == "float16" for m in models):
        return DynamicLossScale(name=name)
    return NONE
