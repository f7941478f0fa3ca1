"""The GAN learning-rate schedule: hand-computed values, and both optimizers following
the GAN step in a real run (D updates twice a step under MA-GP)."""

import keras
import numpy as np
import tensorflow as tf

from tests.training import helpers
from tf_t2i import config as config_lib
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

    def test_bad_start_is_refused(self):
        with self.assertRaisesRegex(ValueError, "decay_start"):
            schedules.LinearDecayTail(1e-3, 10, 1.5)
        with self.assertRaisesRegex(config_lib.ConfigError, "lr_decay_start"):
            config_lib.TrainConfig(lr_decay_start=-0.1).validate()

    def test_constant_config_keeps_float_rates(self):
        cfg = helpers.tiny_gan_config()
        self.assertEqual(cfg.train.lr_decay_start, 1.0)
        self.assertEqual(schedules.gan_learning_rate(cfg.train, 1e-3), 1e-3)


class _RecordRates(keras.callbacks.Callback):
    """Each step's (G rate, D rate, D updates so far) as the step begins."""

    def __init__(self):
        super().__init__()
        self.rows = []

    def on_train_batch_begin(self, batch, logs=None):
        gan = self.model
        self.rows.append((float(gan.g_optimizer.learning_rate.numpy()),
                          float(gan.d_optimizer.learning_rate.numpy()),
                          int(gan.d_optimizer.iterations.numpy())))


class ScheduledRunTest(tf.test.TestCase):

    def test_both_optimizers_follow_the_gan_step(self):
        cfg = helpers.tiny_gan_config(train={"steps": 4, "sample_every": 1000,
                                             "lr_decay_start": 0.5})
        g, d = cfg.train.g_learning_rate, cfg.train.d_learning_rate
        record = _RecordRates()
        train_lib.run_training(cfg, helpers.scratch_dir() + "/gan_lr_decay", verbose=0,
                               extra_callbacks=[record])
        # Steps 0-3 of 4, decay from step 2: factors 1, 1, 1, 0.5. D's optimizer has made
        # 2 updates per step (MA-GP) and still reads the GAN step.
        factors = np.array([1.0, 1.0, 1.0, 0.5])
        rows = np.array(record.rows)
        self.assertAllClose(rows[:, 0], g * factors, rtol=1e-6)
        self.assertAllClose(rows[:, 1], d * factors, rtol=1e-6)
        self.assertAllEqual(rows[:, 2], [0, 2, 4, 6])
