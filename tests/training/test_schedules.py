"""The GAN learning-rate schedule and the DAMSM weight that falls with it: hand-computed
values, and both optimizers and the weight following the GAN step in a real run (D
updates twice a step under MA-GP)."""

import os
from unittest import mock

import keras
import numpy as np
import tensorflow as tf

from tests.training import helpers
from tf_t2i import config as config_lib
from tf_t2i.training import loop
from tf_t2i.training import schedules
from tf_t2i.training import train_lib


class LinearDecayTailTest(tf.test.TestCase):

    def test_values_by_hand(self):
        # 1e-3 constant to step 5 (= 0.5 * 10), then 1e-3 * (1 - (s - 5) / 5) to 0 at 10.
        schedule = schedules.LinearDecayTail(1e-3, total_steps=10, decay_start=0.5)
        expected = {0: 1e-3, 5: 1e-3, 6: 8e-4, 8: 4e-4, 9: 2e-4, 10: 0.0, 12: 0.0}
        for step, rate in expected.items():
            self.assertAllClose(schedule(tf.constant(step, tf.int64)), rate, atol=1e-9,
                                msg=f"step {step}")

    def test_decay_from_the_start_and_constant(self):
        from_zero = schedules.LinearDecayTail(2.0, total_steps=4, decay_start=0.0)
        self.assertAllClose([from_zero(s) for s in range(5)], [2.0, 1.5, 1.0, 0.5, 0.0])
        constant = schedules.LinearDecayTail(2.0, total_steps=4, decay_start=1.0)
        self.assertAllClose([constant(s) for s in range(5)], [2.0] * 5)

    def test_reads_the_given_step_not_the_optimizer_count(self):
        step = tf.Variable(6, dtype=tf.int64)
        schedule = schedules.LinearDecayTail(1e-3, total_steps=10, decay_start=0.5, step=step)
        self.assertAllClose(schedule(tf.constant(0, tf.int64)), 8e-4)
        step.assign(10)
        self.assertAllClose(schedule(tf.constant(0, tf.int64)), 0.0)

    def test_time_progress_decays_the_rate_when_it_runs_ahead_of_the_steps(self):
        # A run of 10**6 steps with a time budget: the steps are nowhere, the time decides.
        progress = tf.Variable(0.0)
        schedule = schedules.LinearDecayTail(1e-3, total_steps=10**6, decay_start=0.5,
                                             progress=progress)
        for spent, rate in ((0.0, 1e-3), (0.5, 1e-3), (0.6, 8e-4), (0.9, 2e-4), (1.0, 0.0)):
            progress.assign(spent)
            self.assertAllClose(schedule(tf.constant(10, tf.int64)), rate, atol=1e-9,
                                msg=f"progress {spent}")
        # Steps ahead of the time: the steps decide (step 9 of 10 -> 0.2).
        progress.assign(0.1)
        steps_first = schedules.LinearDecayTail(1e-3, 10, 0.5, progress=progress)
        self.assertAllClose(steps_first(tf.constant(9, tf.int64)), 2e-4)

    def test_progress_is_read_only_with_a_budget(self):
        progress = tf.Variable(1.0)
        train = config_lib.TrainConfig(lr_decay_start=0.5, steps=10)
        self.assertIsNone(schedules.gan_learning_rate(train, 1e-3, progress=progress).progress)
        budgeted = train.__class__(**{**train.__dict__, "max_seconds": 60.0})
        self.assertIs(schedules.gan_learning_rate(budgeted, 1e-3, progress=progress).progress,
                      progress)

    def test_bad_start_is_refused(self):
        with self.assertRaisesRegex(ValueError, "decay_start"):
            schedules.LinearDecayTail(1e-3, 10, 1.5)
        with self.assertRaisesRegex(config_lib.ConfigError, "lr_decay_start"):
            config_lib.TrainConfig(lr_decay_start=-0.1).validate()

    def test_constant_config_keeps_float_rates(self):
        cfg = helpers.tiny_gan_config()
        self.assertEqual(cfg.train.lr_decay_start, 1.0)
        self.assertEqual(schedules.gan_learning_rate(cfg.train, 1e-3), 1e-3)


FALLING = config_lib.LossConfig(damsm_weight=1.5, damsm_weight_final=0.0)


class FallingWeightTest(tf.test.TestCase):

    def test_values_by_hand(self):
        # 1.5 to step 5 (= 0.5 * 10), then 1.5 - 1.0 * (s - 5) / 5 to 0.5 at step 10.
        step = tf.Variable(0, dtype=tf.int64)
        weight = schedules.FallingWeight(1.5, 0.5, schedules.LinearDecayTail(1.0, 10, 0.5, step))
        for at, expected in {0: 1.5, 5: 1.5, 6: 1.3, 8: 0.9, 10: 0.5, 12: 0.5}.items():
            step.assign(at)
            self.assertAllClose(weight(), expected, atol=1e-6, msg=f"step {at}")

    def test_constant_unless_a_final_weight_is_set(self):
        train = config_lib.TrainConfig(lr_decay_start=0.5, steps=10)
        loss = config_lib.LossConfig(damsm_weight=1.5)
        step, progress = tf.Variable(0, dtype=tf.int64), tf.Variable(0.9)
        self.assertEqual(schedules.damsm_weight(train, loss, step, progress), 1.5)
        falling = schedules.damsm_weight(train, FALLING, step, progress)
        self.assertIsNone(falling.tail.progress)  # no budget: the steps alone
        self.assertAllClose(falling(), 1.5)
        budgeted = config_lib.TrainConfig(lr_decay_start=0.5, steps=10, max_seconds=60.0)
        timed = schedules.damsm_weight(budgeted, FALLING, step, progress)
        self.assertAllClose(timed(), 0.3)  # 90% of the budget: 1.5 * (1 - 0.4 / 0.5)

    def test_bad_settings_are_refused(self):
        with self.assertRaisesRegex(config_lib.ConfigError, "damsm_weight_final needs "
                                    "loss.damsm_weight > 0"):
            config_lib.LossConfig(damsm_weight=0.0, damsm_weight_final=0.5).validate()
        cfg = helpers.tiny_gan_config(loss={"damsm_weight_final": 0.5})
        with self.assertRaisesRegex(config_lib.ConfigError, "lr_decay_start < 1"):
            cfg.validate()


class _RecordRates(keras.callbacks.Callback):
    """Each step's (G rate, D rate, D updates so far) as the step begins, and its
    (g_loss, g_adv, g_damsm) as it ends (one step per epoch: the step's own values)."""

    def __init__(self):
        super().__init__()
        self.rows, self.losses = [], []

    def on_train_batch_begin(self, batch, logs=None):
        gan = self.model
        self.rows.append((float(gan.g_optimizer.learning_rate.numpy()),
                          float(gan.d_optimizer.learning_rate.numpy()),
                          int(gan.d_optimizer.iterations.numpy())))

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append([float(logs[k]) for k in ("g_loss", "g_adv", "g_damsm")])


class ScheduledRunTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cfg = helpers.tiny_gan_config(
            train={"steps": 4, "sample_every": 1000, "lr_decay_start": 0.5},
            loss={"damsm_weight": 1.0, "damsm_weight_final": 0.2})
        cls.record = _RecordRates()
        train_lib.run_training(cls.cfg, helpers.scratch_dir() + "/gan_lr_decay", verbose=0,
                               extra_callbacks=[cls.record])

    def test_both_optimizers_follow_the_gan_step(self):
        g, d = self.cfg.train.g_learning_rate, self.cfg.train.d_learning_rate
        record = self.record
        # Steps 0-3 of 4, decay from step 2: factors 1, 1, 1, 0.5. D's optimizer has made
        # 2 updates per step (MA-GP) and still reads the GAN step.
        factors = np.array([1.0, 1.0, 1.0, 0.5])
        rows = np.array(record.rows)
        self.assertAllClose(rows[:, 0], g * factors, rtol=1e-6)
        self.assertAllClose(rows[:, 1], d * factors, rtol=1e-6)
        self.assertAllEqual(rows[:, 2], [0, 2, 4, 6])

    def test_each_step_weighs_the_damsm_term_by_its_own_step(self):
        # The DAMSM weight falls from 1 to 0.2 with the rates: 1, 1, 1, 0.6.
        g_loss, g_adv, g_damsm = np.array(self.record.losses).T
        self.assertAllClose(g_loss, g_adv + np.array([1.0, 1.0, 1.0, 0.6]) * g_damsm,
                            rtol=1e-5, atol=1e-5)
        # Guard: the last step's DAMSM value is large enough that weight 1 would show.
        self.assertGreater(0.4 * g_damsm[-1], 1e-3)


class _FakeTime(keras.callbacks.Callback):
    """A clock that advances `tick` seconds as each step begins, whoever reads it."""

    def __init__(self, tick):
        super().__init__()
        self.now, self.tick = 0.0, tick

    def __call__(self):
        return self.now

    def on_train_batch_begin(self, batch, logs=None):
        self.now += self.tick


class BudgetedRunTest(tf.test.TestCase):

    def test_the_rates_fall_with_the_time_and_a_resumed_sitting_goes_on_from_its_record(self):
        # 10**6 steps, a 100 s budget, the decay over its second half, 10 s a step.
        cfg = helpers.tiny_gan_config(train={"steps": 10**6, "sample_every": 1000,
                                             "lr_decay_start": 0.5, "max_seconds": 100.0,
                                             "checkpoint_every": 3})
        model_dir = helpers.scratch_dir() + "/gan_time_budget"
        g = cfg.train.g_learning_rate
        time_, record = _FakeTime(10.0), _RecordRates()
        with mock.patch.object(loop, "monotonic", time_):
            train_lib.run_training(cfg, model_dir, verbose=0, extra_callbacks=[time_, record])
        # Step k begins with 10 (k - 1) s spent: progress 0, 0.1, ..., 0.9; the budget ends
        # the run after step 10 (the rate falls from progress 0.5 to 0 at 1).
        self.assertAllClose(np.array(record.rows)[:, 0] / g,
                            [1.0] * 6 + [0.8, 0.6, 0.4, 0.2], atol=1e-6)
        ckpt_dir = os.path.join(model_dir, "checkpoints")
        self.assertEqual(os.path.basename(tf.train.latest_checkpoint(ckpt_dir)), "ckpt-10")
        self.assertEqual(loop.read_clock(ckpt_dir),
                         {"3": 30.0, "6": 60.0, "9": 90.0, "10": 100.0})
        # A second sitting with 130 s: it starts with the 100 s recorded at step 10.
        time_, again = _FakeTime(10.0), _RecordRates()
        with mock.patch.object(loop, "monotonic", time_):
            train_lib.run_training(cfg.replace(train={"max_seconds": 130.0}), model_dir,
                                   verbose=0, extra_callbacks=[time_, again])
        spent = np.array([100.0, 110.0, 120.0]) / 130.0
        self.assertAllClose(np.array(again.rows)[:, 0] / g, 1.0 - (spent - 0.5) / 0.5,
                            atol=1e-6)
        self.assertEqual(os.path.basename(tf.train.latest_checkpoint(ckpt_dir)), "ckpt-13")
