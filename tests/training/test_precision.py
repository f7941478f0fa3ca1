"""Mixed precision: float16 loss scaling (training/loss_scaling.py) and bfloat16 steps.

The dynamic loss scale is checked on a one-layer model first (scaling against float16
underflow, apply / skip / grow, the all-replica decision), then in the GAN: its state
in the checkpoint, and float16 steps of both adversarial schemes with a forced overflow.
bfloat16 GAN steps are compared with float32 steps from the same weights.

Float16 convolutions are slow on a CPU (~10 s per tiny GAN step against ~0.2 s in
float32), so the float16 GAN steps are slow tests.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import strategies
from tests.training import helpers
from tests.training import test_attngan_family
from tf_t2i.io import checkpoint_keys
from tf_t2i.io import checkpoints
from tf_t2i.training import loop
from tf_t2i.training import loss_scaling
from tf_t2i.training import train_lib
from tf_t2i.training.objectives import base

INF = float("inf")


class _PolicyTestCase(tf.test.TestCase):
    """Restores the process-wide dtype policy, which every later test relies on."""

    def tearDown(self):
        keras.mixed_precision.set_global_policy("float32")
        super().tearDown()

    @classmethod
    def tearDownClass(cls):
        keras.mixed_precision.set_global_policy("float32")
        super().tearDownClass()


def _dense(units=2, inputs=3):
    layer = keras.layers.Dense(units)
    layer.build([None, inputs])
    return layer


class LossScaleTest(_PolicyTestCase):

    def test_scaled_backward_pass_keeps_float16_gradients_that_would_underflow(self):
        keras.mixed_precision.set_global_policy("mixed_float16")
        layer = _dense()
        x = tf.ones([2, 3])

        def kernel_gradient(loss_scale):
            with tf.GradientTape() as tape:
                # d loss / d output = 1e-8 per element: below float16's smallest
                # subnormal (6e-8), so the float16 backward pass rounds it to zero.
                loss = 1e-8 * tf.reduce_sum(tf.cast(layer(x), tf.float32))
            return loss_scale.gradient(tape, loss, [layer.kernel])[0]

        self.assertAllEqual(kernel_gradient(loss_scaling.NONE), np.zeros([3, 2]))
        # d loss / d kernel[i, j] = 1e-8 * (sum of x[:, i] over the batch) = 2e-8; scaled
        # by 2**15 it is carried in float16 (to 3 significant digits), then unscaled.
        scaled = kernel_gradient(loss_scaling.DynamicLossScale())
        self.assertEqual(scaled.dtype, tf.float32)
        self.assertAllClose(scaled, np.full([3, 2], 2e-8), rtol=1e-3, atol=0)

    def test_apply_skip_and_grow(self):
        layer = _dense()
        optimizer = keras.optimizers.Adam(0.1)
        optimizer.build(layer.trainable_variables)
        scale = loss_scaling.DynamicLossScale(initial_scale=8.0, growth_interval=2)
        variables = layer.trainable_variables

        @tf.function
        def apply(kernel_value, bias_value):
            scale.apply(optimizer, [tf.fill([3, 2], kernel_value), tf.fill([2], bias_value)],
                        variables)

        def weights_and_slots():
            return [v.numpy() for v in variables + optimizer.variables
                    if v is not optimizer.iterations]

        def counters():
            return float(scale.scale), int(scale.finite_steps), int(optimizer.iterations)

        initial = layer.kernel.numpy()
        apply(1.0, 1.0)
        self.assertNotAllClose(layer.kernel, initial)
        self.assertEqual(counters(), (8.0, 1, 1))
        apply(1.0, 1.0)  # the second finite update in a row doubles the scale
        self.assertEqual(counters(), (16.0, 0, 2))
        before = weights_and_slots()
        apply(1.0, INF)  # one non-finite gradient skips the whole update
        apply(float("nan"), 1.0)
        for expected, value in zip(before, weights_and_slots()):
            self.assertAllEqual(value, expected)
        # Weights and Adam's slots unchanged, both updates counted in `iterations` (G's
        # optimizer's is the run's step), the scale halved on each.
        self.assertEqual(counters(), (4.0, 0, 4))
        apply(1.0, 1.0)
        self.assertNotAllClose(layer.kernel, before[0])
        self.assertEqual(counters(), (4.0, 1, 5))

    def test_one_replica_overflowing_skips_the_update_on_every_replica(self):
        strategy = strategies.two_cpu_replicas()
        with strategy.scope():
            layer = _dense()
            optimizer = keras.optimizers.SGD(1.0)
            optimizer.build(layer.trainable_variables)
            scale = loss_scaling.DynamicLossScale(initial_scale=4.0)
        variables = layer.trainable_variables

        @tf.function
        def step(values):
            def replica_fn(value):
                scale.apply(optimizer, [tf.fill([3, 2], value), tf.fill([2], value)],
                            variables)
            strategy.run(replica_fn, args=(values,))

        def per_replica(*values):
            return strategy.experimental_distribute_values_from_function(
                lambda ctx: tf.constant(values[ctx.replica_id_in_sync_group]))

        initial = layer.kernel.numpy()
        step(per_replica(1.0, INF))
        for copy in strategy.experimental_local_results(layer.kernel):
            self.assertAllEqual(copy, initial)
        for copy in strategy.experimental_local_results(scale.scale):
            self.assertEqual(float(copy), 2.0)
        self.assertEqual(int(optimizer.iterations.numpy()), 1)
        step(per_replica(1.0, 2.0))  # finite everywhere: SGD takes the replicas' sum
        for copy in strategy.experimental_local_results(layer.kernel):
            self.assertAllClose(copy, initial - 3.0)
        self.assertEqual(int(optimizer.iterations.numpy()), 2)


def _components(cfg, policy, name):
    """GANComponents built under `policy` (left set), in a run directory of its own."""
    vocab_size = helpers.vocab_size()  # before the policy: the first call pretrains DAMSM
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(cfg.train.seed)
    parts = train_lib.GANComponents(cfg, vocab_size, os.path.join(helpers.scratch_dir(), name))
    parts.gan.init_ema()
    return parts


def _loss_scale_keys(keys):
    return {k for k in keys if k.split("/")[0] in ("g_loss_scale", "d_loss_scale")}


class LossScaleCheckpointTest(_PolicyTestCase):

    def test_state_is_restored_and_other_precisions_keep_their_layout(self):
        cfg = helpers.tiny_gan_config()
        float16 = _components(cfg, "mixed_float16", "checkpoint_float16")
        scales = float16.gan.dynamic_loss_scales
        self.assertEqual(set(scales), {"g_loss_scale", "d_loss_scale"})
        scales["g_loss_scale"].scale.assign(1024.0)
        scales["g_loss_scale"].finite_steps.assign(7)
        scales["d_loss_scale"].scale.assign(0.5)
        path = float16.checkpoint.save(3)
        keys = checkpoint_keys.saved_keys(path)
        self.assertEqual(_loss_scale_keys(keys), {
            "g_loss_scale/scale", "g_loss_scale/finite_steps",
            "d_loss_scale/scale", "d_loss_scale/finite_steps"})

        resumed = _components(cfg, "mixed_float16", "checkpoint_float16")
        self.assertEqual(resumed.checkpoint.restore_or_initialize(), path)
        restored = resumed.gan.dynamic_loss_scales
        self.assertEqual(float(restored["g_loss_scale"].scale), 1024.0)
        self.assertEqual(int(restored["g_loss_scale"].finite_steps), 7)
        self.assertEqual(float(restored["d_loss_scale"].scale), 0.5)
        self.assertEqual(int(restored["d_loss_scale"].finite_steps), 0)

        # A float16 run may go on in float32: its scales stay in the checkpoint, unread,
        # and the float32 checkpoints hold everything else, as they always have.
        float32 = _components(cfg, "float32", "checkpoint_float16")
        self.assertEqual(float32.gan.dynamic_loss_scales, {})
        self.assertEqual(float32.checkpoint.restore_or_initialize(), path)
        float32_keys = checkpoint_keys.saved_keys(float32.checkpoint.save(4))
        self.assertEqual(float32_keys, keys - _loss_scale_keys(keys))
        # The other way round the scales are missing (so resume.py refuses the switch).
        switched = _components(cfg, "mixed_float16", "checkpoint_float16")
        with self.assertRaisesRegex(checkpoints.CheckpointMismatchError, "does not match"):
            switched.checkpoint.restore_or_initialize()


# The AttnGAN-family scheme with its gradient penalty on every step; without the DAMSM and
# F2R terms, whose gradient at G's noise strengths (~1e6 in this tiny untrained model, in
# float32 as well) fits in float16 only at a scale of about 1/128.
BCE_FLOAT16 = dict(loss={"r1_interval": 1, "damsm_weight": 0.0, "f2r_weight": 0.0})


def _trained_weights(gan):
    return {"G": [v.numpy() for v in gan.generator_variables],
            "D": [v.numpy() for v in gan.discriminator_variables]}


@pytest.mark.slow
class Float16OverflowTest(_PolicyTestCase):
    """Two float16 steps of each scheme: the first overflows (its scales forced to 2**100),
    the second runs at a scale that fits."""

    FORCED = 2.0 ** 100
    # Both tiny models' gradients fit in float16 at this scale (seen: G of the BCE config
    # overflows at 2**14 and above).
    FITTING = 2.0 ** 8

    def _two_steps(self, cfg, name):
        batch = helpers.train_batch(cfg)
        parts = _components(cfg, "mixed_float16", name)
        gan = parts.gan
        seen = {}
        forced, fitting = self.FORCED, self.FITTING

        class Recorder(keras.callbacks.Callback):

            def on_train_batch_begin(self, batch, logs=None):
                for scale in gan.dynamic_loss_scales.values():
                    scale.scale.assign(forced if batch == 0 else fitting)
                seen[batch, "before"] = _trained_weights(gan)

            def on_train_batch_end(self, batch, logs=None):
                seen[batch, "after"] = _trained_weights(gan)
                seen[batch, "logs"] = {k: float(v) for k, v in logs.items()}
                seen[batch, "steps"] = (int(gan.step), int(gan.d_optimizer.iterations))

        host_step = loop.HostStep(lambda: int(gan.step))
        guard = loop.NonFiniteGuard(host_step, every=1)  # looks at every step's logs
        gan.fit(helpers.one_batch_dataset(batch), steps_per_epoch=2, epochs=1, verbose=0,
                callbacks=[host_step, guard, Recorder()])
        self.assertIsNone(guard.message)
        self.assertEqual(host_step(), 2)  # the host's count is the step variable
        return seen

    def _check(self, seen, d_updates):
        # Step 1 overflowed: no weight moved, the scales halved once per update, the step
        # and D's updates were counted, and every logged value is finite (the penalty,
        # NaN from its overflowed inner gradient, is left out of the mean).
        for model in ("G", "D"):
            for before, after in zip(seen[0, "before"][model], seen[0, "after"][model]):
                self.assertAllEqual(after, before)
        self.assertEqual(seen[0, "logs"]["g_loss_scale"], self.FORCED / 2)
        self.assertEqual(seen[0, "logs"]["d_loss_scale"], self.FORCED / 2 ** d_updates)
        self.assertEqual(seen[0, "steps"], (1, d_updates))
        # Step 2 trained: G and D moved, the scales stayed, everything finite.
        for model in ("G", "D"):
            moved = helpers.max_abs_diff(seen[1, "before"][model], seen[1, "after"][model])
            self.assertGreater(moved, 0.0, msg=model)
        self.assertEqual(seen[1, "logs"]["g_loss_scale"], self.FITTING)
        self.assertEqual(seen[1, "logs"]["d_loss_scale"], self.FITTING)
        self.assertEqual(seen[1, "steps"], (2, 2 * d_updates))
        for step in (0, 1):
            for name, value in seen[step, "logs"].items():
                self.assertTrue(np.isfinite(value), msg=f"step {step + 1}: {name} = {value}")

    def test_hinge_ma_gp(self):
        cfg = helpers.tiny_gan_config()
        seen = self._two_steps(cfg, "float16_hinge")
        self._check(seen, d_updates=2)  # the hinge update, then the MA-GP update

    def test_bce_with_r1(self):
        cfg = test_attngan_family._config("style2_attngan", **BCE_FLOAT16)
        seen = self._two_steps(cfg, "float16_bce")
        self._check(seen, d_updates=1)
        self.assertGreater(seen[1, "logs"]["d_r1"], 0.0)


def _copy_weights(source, target):
    models = lambda p: [p.generator, p.ema_generator, p.text_encoder, p.image_encoder,
                        *p.discriminators, p.projection_head]
    for theirs, mine in zip(models(source), models(target)):
        if mine is not None:
            mine.set_weights(theirs.get_weights())
    target.gan.init_ema()


def _one_step(parts, batch):
    history = parts.gan.fit(helpers.one_batch_dataset(batch), steps_per_epoch=1, epochs=1,
                            verbose=0).history
    return {k: float(v[-1]) for k, v in history.items()}


# The style2 config with every term on and a projection head.
BCE_BFLOAT16 = dict(loss={"contrastive_projection_dim": 8})


@pytest.mark.slow
class BFloat16StepTest(_PolicyTestCase):
    """One bfloat16 step of each scheme against the float32 step from the same weights.

    bfloat16 keeps 8 significant bits; seen on one step (x86 CPU): |bf16 - f32| up to
    4.5 % of the value (g_damsm and g_loss of the BCE config, d_ma_gp of the hinge one)
    and 6.4e-4 on g_adv = 0.0095; allowed: about twice that.
    """

    RTOL, ATOL = 0.1, 2e-3

    def _compare(self, cfg, name):
        batch = helpers.train_batch(cfg)
        float32 = _components(cfg, "float32", f"{name}_float32")
        bfloat16 = _components(cfg, "mixed_bfloat16", f"{name}_bfloat16")
        _copy_weights(float32, bfloat16)
        self.assertEqual(bfloat16.gan.dynamic_loss_scales, {})
        expected, logs = _one_step(float32, batch), _one_step(bfloat16, batch)
        self.assertEqual(set(logs), set(expected))  # no loss scale logged
        for name, value in logs.items():
            self.assertTrue(np.isfinite(value), msg=f"{name} = {value}")
            self.assertAllClose(value, expected[name], rtol=self.RTOL, atol=self.ATOL,
                                msg=name)

    def test_hinge_ma_gp(self):
        self._compare(helpers.tiny_gan_config(), "bfloat16_hinge")

    def test_bce_with_r1_and_every_term(self):
        cfg = test_attngan_family._config("style2_attngan", **BCE_BFLOAT16)
        self._compare(cfg, "bfloat16_bce")


class BFloat16LossTermsTest(_PolicyTestCase):
    """The DAMSM and NT-Xent terms compute in float32 under mixed_bfloat16."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cfg = test_attngan_family._config("style2_attngan", **BCE_BFLOAT16)
        cls.parts = _components(cfg, "mixed_bfloat16", "bfloat16_terms")
        keras.mixed_precision.set_global_policy("float32")
        # Image codes [4, 16]: through a bfloat16 projection head (8 significant bits)
        # the NT-Xent values would move by ~1e-3 relative; in float32 by ~1e-7.
        rng = np.random.default_rng(0)
        cls.codes = [tf.constant(rng.normal(size=[4, 16]), tf.float32) for _ in range(2)]

    def test_nt_xent_through_the_projection_head(self):
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        term = self.parts.gan.term("g_f2r")
        value = term.contrastive(*self.codes)
        self.assertEqual(value.dtype, tf.float32)
        first, second = term.projection_head.layers
        projected = [self._dense_numpy(self._dense_numpy(c, first, relu=True), second)
                     for c in self.codes]
        self.assertAllClose(value, _nt_xent_numpy(*projected, term.temperature),
                            rtol=1e-5, atol=0)

    def test_damsm_term(self):
        term = self.parts.gan.term("g_damsm")
        rng = np.random.default_rng(1)
        regions = tf.constant(rng.normal(size=[4, 2, 2, 16]), tf.float32)
        words = tf.constant(rng.normal(size=[4, 5, 16]), tf.float32)
        ids = tf.constant([[3, 4, 5, 0, 0], [6, 7, 0, 0, 0], [8, 9, 10, 11, 0],
                           [12, 13, 14, 15, 16]])
        caption = base.EncodedCaption(ids, words, self.codes[1], tf.not_equal(ids, 0))
        class_ids = tf.constant([0, 1, 2, 3])
        features = (regions, self.codes[0])
        expected = term.loss(features, caption, class_ids)  # float32 policy
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        value = term.loss(features, caption, class_ids)
        self.assertEqual(value.dtype, tf.float32)
        self.assertAllEqual(value, expected)

    @staticmethod
    def _dense_numpy(x, layer, relu=False):
        kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
        y = np.asarray(x, np.float64) @ kernel + bias
        return np.maximum(y, 0.0) if relu else y


def _nt_xent_numpy(a, b, temperature):
    """Per-pair NT-Xent (SimCLR) in float64: mean of the two anchors of each pair."""
    z = np.concatenate([a, b]) / np.linalg.norm(np.concatenate([a, b]), axis=1,
                                                    keepdims=True)
    n = len(a)
    logits = z @ z.T / temperature
    np.fill_diagonal(logits, -np.inf)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    partner = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    losses = -log_softmax[np.arange(2 * n), partner]
    return 0.5 * (losses[:n] + losses[n:])
