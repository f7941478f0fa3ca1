"""The training loop's callbacks count steps on the host and check for NaN when due."""

import os

import keras
import numpy as np
import tensorflow as tf

from tf_t2i.training import loop


def _model_and_data():
    model = keras.Sequential([keras.Input([2]), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    x = np.ones([4, 2], np.float32)
    return model, tf.data.Dataset.from_tensors((x, x[:, :1])).repeat()


class _Recorder(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step, self.seen = step, []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append((self.step(), int(self.model.optimizer.iterations.numpy())))


class HostStepTest(tf.test.TestCase):

    def test_counts_like_the_variable_and_reads_it_once_per_fit(self):
        model, data = _model_and_data()
        reads = []

        def read():
            reads.append(1)
            return int(model.optimizer.iterations.numpy())

        step = loop.HostStep(read)
        recorder = _Recorder(step)
        model.fit(data, steps_per_epoch=3, epochs=2, verbose=0, callbacks=[step, recorder])
        model.fit(data, steps_per_epoch=2, epochs=1, verbose=0, callbacks=[step, recorder])
        self.assertEqual([host for host, _ in recorder.seen], [v for _, v in recorder.seen])
        self.assertEqual(recorder.seen[-1], (8, 8))
        self.assertLen(reads, 2)  # once per fit(), not once per step


class NonFiniteGuardTest(tf.test.TestCase):

    def _guard_at(self, every, nan_from):
        """Steps 1..6 with d_loss NaN from `nan_from` on: (message, last step run)."""
        guard = loop.NonFiniteGuard(lambda: self.step, every=every)
        model = keras.Sequential()
        model.stop_training = False
        guard.set_model(model)
        for self.step in range(1, 7):
            value = float("nan") if self.step >= nan_from else 1.0
            guard.on_train_batch_end(self.step - 1, {"d_loss": value})
            if model.stop_training:
                break
        guard.on_train_end()
        return guard.message, self.step

    def test_checks_on_due_steps_and_at_the_end(self):
        message, stopped = self._guard_at(every=3, nan_from=4)
        self.assertEqual(stopped, 6)  # first due step with the NaN
        self.assertIn("'d_loss' is nan at step 6", message)
        message, stopped = self._guard_at(every=1, nan_from=4)
        self.assertEqual(stopped, 4)
        # Never due within the run: the end of training still catches it.
        message, _ = self._guard_at(every=100, nan_from=5)
        self.assertIn("'d_loss' is nan at step 6", message)

    def test_finite_logs_pass(self):
        message, stopped = self._guard_at(every=2, nan_from=99)
        self.assertIsNone(message)
        self.assertEqual(stopped, 6)


class ProgressLogTest(tf.test.TestCase):

    def test_a_line_every_n_steps_and_at_the_end_with_rate_and_eta(self):
        # A resumed sitting: steps 3..7 of 7, 2 s a step, a line every 2 steps.
        lines = []
        progress = loop.ProgressLog(lambda: self.step, total_steps=7, every=2,
                                    clock=lambda: self.now, write=lambda s, **_: lines.append(s))
        self.step, self.now = 3, 100.0
        progress.on_train_begin()
        for self.step in range(4, 8):
            self.now += 2.0
            progress.on_train_batch_end(0, {"g_loss": 1.23456, "d_loss": 2, "note": "x"})
        self.assertEqual(lines, [
            "step 4/7  2.00 s/step  ETA 0:06  d_loss 2.000  g_loss 1.235",
            "step 6/7  2.00 s/step  ETA 0:02  d_loss 2.000  g_loss 1.235",
            "step 7/7  2.00 s/step  ETA 0:00  d_loss 2.000  g_loss 1.235"])

    def test_a_time_budget_caps_the_eta(self):
        lines = []
        progress = loop.ProgressLog(lambda: 10, total_steps=10**6, every=1,
                                    clock=lambda: self.now, write=lambda s, **_: lines.append(s),
                                    seconds_left=lambda: 75.0)
        self.now = 0.0
        progress.on_train_begin()
        self.now = 20.0
        progress.on_train_batch_end(0, {})
        self.assertEqual(lines, ["step      10/1000000  20.00 s/step  ETA 1:15  "])

    def test_durations(self):
        self.assertEqual(loop._duration(59.6), "1:00")  # pylint: disable=protected-access
        self.assertEqual(loop._duration(3725), "1:02:05")  # pylint: disable=protected-access


if __name__ == "__main__":
    tf.test.main()


class RunClockTest(tf.test.TestCase):

    def test_stops_past_the_budget_and_publishes_progress(self):
        now = [0.0]
        progress = tf.Variable(0.0)
        clock = loop.RunClock(offset=40.0, max_seconds=100.0, progress=progress,
                              clock=lambda: now[0])
        model, _ = _model_and_data()
        clock.set_model(model)
        clock.on_train_begin()
        self.assertAllClose(progress, 0.4)
        # Three steps of 20 / 19 / 21 s with 100 s of callbacks (evaluations) between them,
        # which do not count: 40 + 60 s reach the budget at the third step.
        for began, ended, stops in ((0.0, 20.0, False), (120.0, 139.0, False),
                                    (239.0, 260.0, True)):
            model.stop_training = False
            now[0] = began
            clock.on_train_batch_begin(0)
            now[0] = ended
            clock.on_train_batch_end(0)
            self.assertEqual(model.stop_training, stops, ended)
        self.assertAllClose(clock.seconds(), 100.0)
        self.assertAllClose(progress, 1.0)

    def test_record_keeps_the_last_saves_and_a_bad_file_reads_as_none(self):
        directory = self.create_tempdir().full_path
        now = [0.0]
        clock = loop.RunClock(clock=lambda: now[0])
        clock.on_train_begin()
        for step in range(1, 23):
            clock.on_train_batch_begin(0)
            now[0] += 2.0
            clock.on_train_batch_end(0)
            clock.record(directory, step)
        entries = loop.read_clock(directory)
        self.assertLen(entries, 20)
        self.assertEqual(entries["22"], 44.0)
        self.assertNotIn("2", entries)
        with open(os.path.join(directory, loop.CLOCK_FILENAME), "w") as f:
            f.write("{not json")
        self.assertEqual(loop.read_clock(directory), {})
        self.assertEqual(loop.read_clock(os.path.join(directory, "missing")), {})
