"""A train step on 2 replicas equals the same step on 1 replica (same global batch).

MirroredStrategy runs over the two logical CPU devices that tests/conftest.py creates.
Both sets of components start from identical weights and take one `fit()` step on one
global batch of the tiny GAN stream, with MA-GP (its separate D step) and the DAMSM term
on, so the cross-replica pieces are all exercised: per-example losses reduced with the
global batch size, gradients summed over replicas by Keras, the DAMSM negatives gathered
from both replicas, the generator's synchronised BatchNorm, and the EMA update.

The fast test uses SGD: its update is the gradient itself, so a gradient off by a factor
(say, losses averaged over the local instead of the global batch) shows in the weights.
Adam's first steps are nearly sign(gradient) and would hide such a factor; the Adam
step of the real config is checked too, in a slow test.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import strategies
from tests.training import helpers
from tf_t2i.training import train_lib

ALL_MODELS = ("generator", "discriminator", "text_encoder", "image_encoder", "ema_generator")
# SGD steps: the two results may differ by this fraction of the largest weight change
# of the step. Float32 rounding differs between one global sum and two partial sums
# all-reduced, and the synchronised BatchNorm's E[x^2] - E[x]^2 amplifies it; seen:
# ~4e-5. Any real difference in the gradient (a factor 2 from the wrong batch size,
# local-only DAMSM negatives, per-replica BatchNorm statistics) gives ~1.
SGD_STEP_TOLERANCE = 2e-4


def _build(cfg, strategy, name, source=None, sgd_learning_rate=None):
    with strategy.scope():
        parts = train_lib.GANComponents(cfg, helpers.vocab_size(),
                                        f"{helpers.scratch_dir()}/{name}")
        if source is not None:
            for model in ALL_MODELS:
                getattr(parts, model).set_weights(getattr(source, model).get_weights())
        parts.gan.init_ema()
        if sgd_learning_rate:
            parts.gan.compile(g_optimizer=keras.optimizers.SGD(sgd_learning_rate),
                              d_optimizer=keras.optimizers.SGD(sgd_learning_rate))
    return parts


def _one_step(parts, batch):
    history = parts.gan.fit(helpers.one_batch_dataset(batch), steps_per_epoch=1, epochs=1,
                            verbose=0).history
    return {k: float(v[-1]) for k, v in history.items()}


class _ReplicaComparison:
    """Runs the 1-replica and the 2-replica step once per class; subclasses give cfg."""

    CFG_OVERRIDES = {}
    SGD_LEARNING_RATE = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cfg = helpers.tiny_gan_config(**cls.CFG_OVERRIDES)
        batch = helpers.train_batch(cfg)
        mirrored = strategies.two_cpu_replicas()
        tag = cls.__name__
        # Initial weights independent of what ran before in this process.
        keras.utils.set_random_seed(cfg.train.seed)
        one = _build(cfg, tf.distribute.get_strategy(), f"{tag}_1",
                     sgd_learning_rate=cls.SGD_LEARNING_RATE)
        two = _build(cfg, mirrored, f"{tag}_2", source=one,
                     sgd_learning_rate=cls.SGD_LEARNING_RATE)
        cls.initial = helpers.weights(one)
        cls.logs_1 = _one_step(one, batch)
        cls.logs_2 = _one_step(two, batch)
        cls.after_1 = helpers.weights(one)
        cls.after_2 = helpers.weights(two)
        cls.cfg, cls.one, cls.two = cfg, one, two

    def test_runs_on_two_replicas(self):
        self.assertEqual(self.two.gan.distribute_strategy.num_replicas_in_sync, 2)
        self.assertEqual(self.one.gan.distribute_strategy.num_replicas_in_sync, 1)
        for parts in (self.one, self.two):
            self.assertEqual(int(parts.gan.d_optimizer.iterations.numpy()), 2)  # hinge, MA-GP
            self.assertEqual(int(parts.gan.g_optimizer.iterations.numpy()), 1)

    def test_same_weights_after_the_step(self):
        for name in helpers.MODELS:
            diff = helpers.max_abs_diff(self.after_1[name], self.after_2[name])
            moved = helpers.max_abs_diff(self.after_1[name], self.initial[name])
            print(f"{type(self).__name__}: {name}: max |1 replica - 2 replicas| = {diff:.3g}"
                  f" (largest change in the step {moved:.3g}, ratio {diff / moved:.2g})")
            # The step must move the weights, or the comparison would prove nothing.
            self.assertGreater(moved, 1e-2, msg=name)
            # get_weights() includes the BatchNorm moving statistics.
            for w1, w2 in zip(self.after_1[name], self.after_2[name]):
                self.assertAllClose(w2, w1, rtol=0, atol=SGD_STEP_TOLERANCE * moved, msg=name)

    def test_same_logged_terms(self):
        self.assertEqual(set(self.logs_2), set(self.logs_1))
        self.assertIn("g_damsm", self.logs_1)
        for name, value in self.logs_1.items():
            self.assertAllClose(self.logs_2[name], value, rtol=1e-5, atol=1e-6, msg=name)


class TwoReplicasSGDTest(_ReplicaComparison, tf.test.TestCase):
    # DAMSM weight 1 and MA-GP with p = 2, so that both terms move the weights by much
    # more than the tolerance (with p = 6 the penalty is ~1e-7 at initialisation). The
    # EMA copy moves by 1 - min(decay, 2/11) of G's change at step 1 (decay warm-up).
    CFG_OVERRIDES = dict(loss={"damsm_weight": 1.0, "ma_gp_power": 2.0},
                         train={"ema_decay": 0.5})
    SGD_LEARNING_RATE = 1.0


@pytest.mark.slow
class TwoReplicasAdamTest(_ReplicaComparison, tf.test.TestCase):
    # The tiny config as it trains: Adam, DAMSM 0.05, MA-GP k=2 p=6, EMA 0.999.
    CFG_OVERRIDES = {}

    def test_same_weights_after_the_step(self):
        # Adam moves each weight by about lr at step 1 (1e-4 for G): too little to demand
        # "moved >> tolerance" as the SGD test does, so only the results are compared.
        #
        # Exception: the generator's shortcut-conv biases. At initialisation every G
        # block is its shortcut (the residual branch is gated by gamma = 0), so these
        # per-channel constants reach image_batch_norm through linear ops only and the
        # BatchNorm subtracts them again: their gradient is zero in exact arithmetic
        # and ~1e-8 of rounding in float32, below Adam's epsilon (1e-7), where Adam's
        # step is lr * g / (|g| + eps), i.e. proportional to the rounding. Those are only
        # checked to stay within one Adam step.
        lr = self.cfg.train.g_learning_rate
        for name in helpers.MODELS:
            paths = [w.path for w in getattr(self.one, name).weights]
            zero_grad = [name != "discriminator" and p.endswith("shortcut_conv/bias")
                         for p in paths]
            checked = [(w1, w2) for w1, w2, z in zip(self.after_1[name], self.after_2[name],
                                                     zero_grad) if not z]
            print(f"{type(self).__name__}: {name}: max |1 replica - 2 replicas| = "
                  f"{helpers.max_abs_diff(*zip(*checked)):.3g} (with the zero-gradient biases: "
                  f"{helpers.max_abs_diff(self.after_1[name], self.after_2[name]):.3g})")
            for path, z, w0, w1, w2 in zip(paths, zero_grad, self.initial[name],
                                           self.after_1[name], self.after_2[name]):
                if z:
                    self.assertAllLessEqual(np.abs(w1 - w0), 1.01 * lr)
                    self.assertAllLessEqual(np.abs(w2 - w0), 1.01 * lr)
                else:
                    # Adam divides by |g| + 1e-7 elementwise, which magnifies the rounding
                    # of small gradients; seen up to 1e-5 (a tenth of one Adam step).
                    self.assertAllClose(w2, w1, rtol=1e-5, atol=3e-5, msg=path)


if __name__ == "__main__":
    tf.test.main()
