"""FusedBatchNormalization computes what keras.layers.BatchNormalization computes."""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests import strategies
from tf_t2i.models import layers as t2i_layers


def _pair(affine, dtype="float32"):
    """A fused layer and Keras's, built alike, with the same non-trivial weights."""
    kwargs = dict(momentum=0.9, epsilon=1e-5, center=affine, scale=affine,
                  synchronized=True, dtype=dtype)
    fused = t2i_layers.FusedBatchNormalization(**kwargs)
    plain = keras.layers.BatchNormalization(**kwargs)
    for layer in (fused, plain):
        layer.build((None, 8, 8, 6))
        layer.moving_mean.assign(np.linspace(-1.0, 1.0, 6))
        layer.moving_variance.assign(np.linspace(0.5, 3.0, 6))
        if affine:
            layer.gamma.assign(np.linspace(0.5, 2.0, 6))
            layer.beta.assign(np.linspace(-1.0, 1.0, 6))
    return fused, plain


def _forward_backward(layer, x, weights, training=True):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(tf.cast(y, "float32") * weights)
    grads = tape.gradient(loss, [x] + layer.trainable_weights)
    return y, grads


class FusedBatchNormTest(parameterized.TestCase, tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.x = tf.random.normal([4, 8, 8, 6], 2.0, 3.0, seed=1)
        self.w = tf.random.normal([4, 8, 8, 6], seed=2)

    @parameterized.parameters((False,), (True,))
    def test_training_step_matches_keras_in_float32(self, affine):
        fused, plain = _pair(affine)
        y_f, g_f = _forward_backward(fused, self.x, self.w)
        y_p, g_p = _forward_backward(plain, self.x, self.w)
        self.assertAllClose(y_f, y_p, atol=1e-5)
        self.assertLen(g_f, 3 if affine else 1)
        for a, b in zip(g_f, g_p):
            self.assertAllClose(a, b, atol=1e-4)
        # The moving statistics take the batch's mean and its biased variance.
        self.assertAllClose(fused.moving_mean, plain.moving_mean, atol=1e-6)
        self.assertAllClose(fused.moving_variance, plain.moving_variance, atol=1e-5)
        biased = np.var(self.x.numpy().reshape(-1, 6), axis=0)
        self.assertAllClose(fused.moving_variance,
                            0.9 * np.linspace(0.5, 3.0, 6) + 0.1 * biased, atol=1e-5)

    def test_bfloat16_keeps_the_compute_dtype_and_float32_statistics(self):
        fused, plain = _pair(True, "mixed_bfloat16")
        y_f, g_f = _forward_backward(fused, self.x, self.w)
        y_p, g_p = _forward_backward(plain, self.x, self.w)
        self.assertEqual(y_f.dtype, tf.bfloat16)
        self.assertEqual(fused.moving_mean.dtype, tf.float32)
        self.assertAllClose(tf.cast(y_f, "float32"), tf.cast(y_p, "float32"), atol=0.05)
        for a, b in zip(g_f[1:], g_p[1:]):
            self.assertAllClose(a, b, rtol=0.02, atol=0.05)
        self.assertAllClose(fused.moving_variance, plain.moving_variance, rtol=1e-3)

    def test_inference_and_frozen_layers_use_the_moving_statistics(self):
        fused, plain = _pair(True)
        self.assertAllClose(fused(self.x, training=False), plain(self.x, training=False))
        fused.trainable = False
        before = fused.moving_mean.numpy()
        expected = ((self.x - np.linspace(-1.0, 1.0, 6)) / np.sqrt(np.linspace(0.5, 3.0, 6) + 1e-5)
                    * np.linspace(0.5, 2.0, 6) + np.linspace(-1.0, 1.0, 6))
        self.assertAllClose(fused(self.x, training=True), expected, atol=1e-4)
        self.assertAllEqual(fused.moving_mean, before)

    def test_second_order_gradient_matches_keras(self):
        # A gradient penalty differentiates the gradient: the fused op's gradient must be
        # differentiable too.
        results = []
        for layer in _pair(True):
            with tf.GradientTape() as outer:
                with tf.GradientTape() as inner:
                    inner.watch(self.x)
                    loss = tf.reduce_sum(tf.square(layer(self.x, training=True)) * self.w)
                grad = inner.gradient(loss, self.x)
                penalty = tf.reduce_sum(tf.square(grad))
            results.append(outer.gradient(penalty, layer.gamma))
        self.assertAllClose(results[0], results[1], rtol=1e-3, atol=1e-3)

    def test_two_replicas_keep_synchronised_statistics(self):
        # The fused op cannot all-reduce: under two replicas the layer takes Keras's
        # synchronised path, so each replica normalises by the global batch's statistics.
        strategy = strategies.two_cpu_replicas()
        with strategy.scope():
            fused = t2i_layers.FusedBatchNormalization(center=False, scale=False,
                                                       synchronized=True)
            fused.build((None, 8, 8, 6))
        halves = [self.x[:2], self.x[2:]]
        per_replica = strategy.experimental_distribute_values_from_function(
            lambda ctx: halves[ctx.replica_id_in_sync_group])
        out = strategy.run(tf.function(lambda x: fused(x, training=True)), (per_replica,))
        joined = tf.concat(strategy.experimental_local_results(out), axis=0)
        flat = self.x.numpy().reshape(-1, 6)
        expected = (self.x - flat.mean(0)) / np.sqrt(flat.var(0) + 1e-3)
        self.assertAllClose(joined, expected, atol=1e-4)

    def test_graphs_use_the_fused_op_except_under_xla(self):
        layer = _pair(False)[0]
        for jit_compile, fused in ((False, True), (True, False)):
            step = tf.function(lambda x: layer(x, training=True), jit_compile=jit_compile)
            ops = {op.type for op in step.get_concrete_function(self.x).graph.get_operations()}
            self.assertEqual("FusedBatchNormV3" in ops, fused, f"jit_compile={jit_compile}")
        self.assertAllClose(step(self.x), tf.function(lambda x: layer(x, training=True))(self.x),
                            atol=1e-5)

    def test_checkpoint_of_keras_layer_loads_and_config_round_trips(self):
        fused, plain = _pair(True)
        plain.moving_mean.assign(np.arange(6.0))
        with tempfile.TemporaryDirectory() as tmp:
            path = tf.train.Checkpoint(layer=plain).write(os.path.join(tmp, "ckpt"))
            tf.train.Checkpoint(layer=fused).read(path).assert_consumed()
        self.assertAllEqual(fused.moving_mean, np.arange(6.0))
        again = keras.layers.deserialize(keras.layers.serialize(fused))
        self.assertIsInstance(again, t2i_layers.FusedBatchNormalization)
        self.assertEqual(again.get_config()["momentum"], 0.9)


if __name__ == "__main__":
    tf.test.main()
