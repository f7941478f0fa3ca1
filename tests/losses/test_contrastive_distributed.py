"""NT-Xent under MirroredStrategy over two logical CPU devices.

tests/conftest.py splits the CPU into two logical devices before TensorFlow
initialises; run outside pytest, the tests skip when fewer than two exist.
"""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests import strategies
from tf_t2i.losses import contrastive


_GLOBAL_BATCH = 6
_DIM = 5


class DistributedNTXentTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        cpus = tf.config.list_logical_devices('CPU')
        if len(cpus) < 2:
            self.skipTest('needs two logical CPU devices (tests/conftest.py makes '
                          'them under pytest).')
        self.strategy = strategies.two_cpu_replicas()
        rng = np.random.default_rng(7)
        self.a = rng.normal(size=[_GLOBAL_BATCH, _DIM]).astype(np.float32)
        self.b = rng.normal(size=[_GLOBAL_BATCH, _DIM]).astype(np.float32)

    def _single_replica(self, temperature):
        a = tf.Variable(self.a)
        b = tf.Variable(self.b)
        with tf.GradientTape() as tape:
            loss = contrastive.nt_xent_loss(a, b, temperature)
        return loss, tape.gradient(loss, [a, b])

    def _two_replicas(self, temperature):
        strategy = self.strategy
        with strategy.scope():
            a = tf.Variable(self.a)
            b = tf.Variable(self.b)

        @tf.function
        def step():

            def replica_fn():
                ctx = tf.distribute.get_replica_context()
                n_local = _GLOBAL_BATCH // ctx.num_replicas_in_sync
                start = ctx.replica_id_in_sync_group * n_local
                with tf.GradientTape() as tape:
                    per_example = contrastive.nt_xent_per_example(
                        a[start:start + n_local], b[start:start + n_local], temperature)
                    loss = tf.nn.compute_average_loss(
                        per_example, global_batch_size=_GLOBAL_BATCH)
                grad_a, grad_b = tape.gradient(loss, [a, b])
                return loss, grad_a, grad_b, per_example

            results = strategy.run(replica_fn)
            loss, grad_a, grad_b = [
                strategy.reduce(tf.distribute.ReduceOp.SUM, r, axis=None)
                for r in results[:3]
            ]
            per_example = strategy.gather(results[3], axis=0)
            return loss, [grad_a, grad_b], per_example

        return step()

    @parameterized.parameters(0.5, 0.1)
    def test_value_and_gradients_match_single_replica(self, temperature):
        self.assertEqual(self.strategy.num_replicas_in_sync, 2)
        loss_1, grads_1 = self._single_replica(temperature)
        loss_2, grads_2, per_example_2 = self._two_replicas(temperature)
        self.assertAllClose(loss_2, loss_1, atol=1e-6, rtol=0)
        self.assertAllClose(
            per_example_2,
            contrastive.nt_xent_per_example(self.a, self.b, temperature),
            atol=1e-6, rtol=0)
        for g2, g1 in zip(grads_2, grads_1):
            self.assertAllClose(g2, g1, atol=1e-6, rtol=1e-5)

    def test_local_only_loss_would_differ(self):
        # Guards the test above: contrasting each half only against itself gives
        # another value, so agreement there shows the negatives were gathered.
        half = _GLOBAL_BATCH // 2
        local_only = 0.5 * (
            contrastive.nt_xent_loss(self.a[:half], self.b[:half]) +
            contrastive.nt_xent_loss(self.a[half:], self.b[half:]))
        loss_1, _ = self._single_replica(0.5)
        self.assertGreater(abs(float(local_only) - float(loss_1)), 1e-2)


if __name__ == '__main__':
    tf.test.main()
