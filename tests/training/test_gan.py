"""TextToImageGAN: MA-GP against closed-form gradients, and one train step on tiny.cfg.

The train-step tests build the real models of configs/tiny.cfg on the shared tiny DAMSM
run (tests/training/helpers.py) and check each effect of one `fit()` step against values
computed here, outside the library's step.
"""

import functools
import keras
import numpy as np
import tensorflow as tf

from tests.training import helpers
from tf_t2i.models import factory
from tf_t2i.models import interface
from tf_t2i.training.objectives import base as objectives
from tf_t2i.training.objectives import hinge_ma_gp
from tf_t2i.training import train_lib

LOG_KEYS = {"d_loss", "d_adv", "d_ma_gp", "g_loss", "g_adv"}


class _LinearD:
    """D(x, s) = sum(w_x * x) + sum(w_s * s) per example: dD/dx = w_x, dD/ds = w_s."""

    def __init__(self, w_x, w_s):
        self.w_x = tf.constant(w_x, tf.float32)
        self.w_s = tf.constant(w_s, tf.float32)

    def __call__(self, images, training=None):
        return images  # the "features" are the images themselves

    def logits(self, features, sentence):
        return (tf.reduce_sum(self.w_x * features, axis=[1, 2, 3])
                + tf.reduce_sum(self.w_s * sentence, axis=1))


class _QuadraticD(_LinearD):
    """D(x, s) = sum(w_x * x^2) + sum(w_s * s^2): dD/dx = 2 w_x x, dD/ds = 2 w_s s."""

    def logits(self, features, sentence):
        return (tf.reduce_sum(self.w_x * tf.square(features), axis=[1, 2, 3])
                + tf.reduce_sum(self.w_s * tf.square(sentence), axis=1))


def _scheme_around(discriminator, **kwargs):
    return hinge_ma_gp.HingeMAGP([discriminator], **kwargs)


class MAGPClosedFormTest(tf.test.TestCase):

    def test_linear_discriminator(self):
        # Images [2, 2, 2, 1]; w_x = [[1, 2], [0, -1]]: ||w_x||^2 = 1 + 4 + 0 + 1 = 6.
        # Sentences [2, 2]; w_s = [1, -1]: ||w_s||^2 = 2. Squared norm 8 for each example.
        w_x = np.array([[1.0, 2.0], [0.0, -1.0]]).reshape([2, 2, 1])
        w_s = np.array([1.0, -1.0])
        real = tf.constant(np.random.default_rng(0).normal(size=[2, 2, 2, 1]), tf.float32)
        sentence = tf.constant([[0.3, -2.0], [5.0, 1.0]], tf.float32)
        d = _LinearD(w_x, w_s)
        # k = 2, p = 6 (SSA-GAN): 2 * 8^(6/2) = 2 * 512 = 1024.
        self.assertAllClose(_scheme_around(d).ma_gp(real, sentence), [1024.0, 1024.0],
                            rtol=1e-6, atol=0)
        # k = 0.5, p = 2: 0.5 * 8 = 4.
        self.assertAllClose(
            _scheme_around(d, ma_gp_weight=0.5, ma_gp_power=2.0).ma_gp(real, sentence),
            [4.0, 4.0], rtol=1e-6, atol=0)
        # p = 3: 1 * 8^1.5 = 22.627417 (the norm itself, cubed).
        self.assertAllClose(
            _scheme_around(d, ma_gp_weight=1.0, ma_gp_power=3.0).ma_gp(real, sentence),
            [22.627417, 22.627417], rtol=1e-6, atol=0)

    def test_quadratic_discriminator_per_example(self):
        # One pixel, two channels: w_x = [1, 0.5]; sentence dim 1: w_s = [0.25].
        # Example 0: x = [1, 2],  s = [2]:  dD/dx = 2 w_x x = [2, 2],  dD/ds = 2 w_s s = [1].
        #            squared norm 4 + 4 + 1 = 9;  k=2, p=6: 2 * 9^3 = 1458.
        # Example 1: x = [0, -1], s = [-4]: dD/dx = [0, -1],  dD/ds = [-2].
        #            squared norm 0 + 1 + 4 = 5;  k=2, p=6: 2 * 5^3 = 250.
        d = _QuadraticD(np.array([1.0, 0.5]).reshape([1, 1, 2]), np.array([0.25]))
        real = tf.constant([[[[1.0, 2.0]]], [[[0.0, -1.0]]]])
        sentence = tf.constant([[2.0], [-4.0]])
        self.assertAllClose(_scheme_around(d).ma_gp(real, sentence), [1458.0, 250.0],
                            rtol=1e-6, atol=0)
        # k = 1, p = 2: the squared norms themselves, 9 and 5.
        self.assertAllClose(
            _scheme_around(d, ma_gp_weight=1.0, ma_gp_power=2.0).ma_gp(real, sentence),
            [9.0, 5.0], rtol=1e-6, atol=0)


class JointDStepTest(tf.test.TestCase):
    """The joint D step differentiates its own real logits for MA-GP (one D pass over the
    real images, as DF-GAN v2): its update must equal that of hinge + MA-GP written with
    a second, separate D pass, as SSA-GAN's separate MA-GP step computes it."""

    def test_one_pass_update_equals_two_pass_loss(self):
        self._check_update(interval=1, step=0, factor=1.0)

    def test_lazy_penalty_is_interval_times_on_its_steps_only(self):
        # Every third step, three times the penalty (step 6); none on step 7, whose update
        # is the hinge loss's alone. In a tf.function, as training runs it (tf.cond).
        self._check_update(interval=3, step=6, factor=3.0, compiled=True)
        self._check_update(interval=3, step=7, factor=0.0, compiled=True)

    def _check_update(self, interval, step, factor, compiled=False):
        cfg = helpers.tiny_gan_config()
        size, dim, batch = cfg.data.image_size, cfg.text.hidden_dim, 3
        keras.utils.set_random_seed(0)
        d = factory.build_discriminators(cfg)[-1]
        interface.build_discriminator(d, size, dim)
        for var in d.trainable_variables:  # open the zero gates: every weight is reached
            if var.path.endswith("gamma"):
                var.assign(tf.fill(var.shape, 0.5))
        rng = np.random.default_rng(0)
        image = lambda: tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)), tf.float32)
        real, fake = image(), image()
        sentence, wrong = (tf.constant(rng.normal(size=(batch, dim)), tf.float32)
                           for _ in range(2))
        caption = lambda s: objectives.EncodedCaption(None, None, s, None)
        # k = 1000, p = 2: this D's input gradients are small (||.||^2 ~ 2e-3), and at
        # SSA-GAN's k = 2, p = 6 the penalty (~1e-8) would not show in the update.
        scheme = _scheme_around(d, ma_gp_mode="joint", ma_gp_weight=1000.0, ma_gp_power=2.0,
                                ma_gp_interval=interval)

        with tf.GradientTape() as tape:
            hinge = (tf.nn.relu(1.0 - d.logits(d(real, training=True), sentence))
                     + 0.5 * tf.nn.relu(1.0 + d.logits(d(fake, training=True), sentence))
                     + 0.5 * tf.nn.relu(1.0 + d.logits(d(real, training=True), wrong)))
            with tf.GradientTape(watch_accessed_variables=False) as inner:
                inner.watch([real, sentence])
                scores = tf.reduce_sum(d.logits(d(real, training=True), sentence))
            image_grads, sentence_grads = inner.gradient(scores, [real, sentence])
            flat = tf.concat([tf.reshape(image_grads, [batch, -1]), sentence_grads], axis=1)
            penalty = factor * 1000.0 * tf.reduce_sum(tf.square(flat), axis=1)
            loss = tf.reduce_mean(hinge + penalty)
        grads = tape.gradient(loss, d.trainable_variables)
        before = [v.numpy() for v in d.trainable_variables]

        record = objectives.StepRecord({"real_images": real}, [caption(sentence)],
                                       caption(wrong), [interface.Generated([fake])],
                                       tf.constant(step), generator=None)
        d_step = functools.partial(scheme.discriminator_step, record, keras.optimizers.SGD(1.0),
                                   tf.reduce_mean)
        values = tf.function(d_step)() if compiled else d_step()
        self.assertAllClose(values["d_adv"], hinge, rtol=1e-5, atol=1e-6)
        self.assertAllClose(values["d_ma_gp"], penalty, rtol=1e-5, atol=1e-6)
        moved = 0
        for var, old, grad in zip(d.trainable_variables, before, grads):
            self.assertAllClose(old - var.numpy(), grad, rtol=1e-4, atol=1e-6, msg=var.path)
            moved += int(np.any(grad.numpy() != 0))
        self.assertEqual(moved, len(grads))  # every weight had a gradient to compare
        if factor:  # the penalty is in the update
            self.assertGreater(float(tf.reduce_min(penalty)), 0.1)


def _numpy_hinge(real, fake, mismatched):
    relu = lambda x: np.maximum(x, 0.0)
    return relu(1.0 - real) + 0.5 * (relu(1.0 + fake) + relu(1.0 + mismatched))


class TrainStepTest(tf.test.TestCase):
    """One step with the defaults (MA-GP as a separate D step, DAMSM on) and EMA 0.5."""

    EMA_DECAY = 0.5  # large enough that the EMA update is far from "unchanged"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cfg = helpers.tiny_gan_config(train={"ema_decay": cls.EMA_DECAY})
        assert cfg.loss.ma_gp_mode == "separate_step" and cfg.loss.damsm_weight > 0
        keras.utils.set_random_seed(cfg.train.seed)
        parts = train_lib.GANComponents(cfg, helpers.vocab_size(),
                                        helpers.scratch_dir() + "/step_test")
        parts.gan.init_ema()
        batch = helpers.train_batch(cfg)
        d, g = parts.discriminator, parts.generator

        cls.before = helpers.weights(parts)
        cls.trainable_before = {
            "generator": [v.numpy() for v in g.trainable_variables],
            "discriminator": [v.numpy() for v in d.trainable_variables]}
        # The step's inputs, recomputed outside it. G in training mode updates its
        # BatchNorm statistics, so its weights are put back afterwards.
        _, sentence = parts.text_encoder(batch["caption_ids"], training=False)
        _, mismatched = parts.text_encoder(batch["mismatched_ids"], training=False)
        fake, _ = g(batch["z"], sentence, training=True)
        g.set_weights(cls.before["generator"])
        real = batch["real_images"]
        cls.logits_before = {
            "real": d.logits(d(real), sentence).numpy(),
            "fake": d.logits(d(fake), sentence).numpy(),
            "mismatched": d.logits(d(real), mismatched).numpy()}

        history = parts.gan.fit(helpers.one_batch_dataset(batch), steps_per_epoch=1,
                                epochs=1, verbose=0).history
        cls.logs = {k: float(v[-1]) for k, v in history.items()}
        cls.after = helpers.weights(parts)
        cls.fake_logits_after = d.logits(d(fake), sentence).numpy()
        cls.parts = parts

    def test_logs_every_term_finite(self):
        self.assertEqual(set(self.logs), LOG_KEYS | {"g_damsm"})
        for name, value in self.logs.items():
            self.assertTrue(np.isfinite(value), f"{name} = {value}")
        self.assertGreater(self.logs["g_damsm"], 0.0)

    def test_d_adv_is_the_hinge_loss_of_the_batch_before_the_update(self):
        logits = self.logits_before
        expected = _numpy_hinge(logits["real"], logits["fake"], logits["mismatched"]).mean()
        self.assertAllClose(self.logs["d_adv"], expected, rtol=0, atol=1e-6)
        # Guard: the three logit sets differ enough that a wrong pairing would show.
        self.assertGreater(abs(expected - _numpy_hinge(logits["real"], logits["fake"],
                                                       logits["fake"]).mean()), 1e-4)

    def test_g_adv_uses_the_updated_discriminator(self):
        # Same fakes (G has not moved when they are made), D after both of its updates.
        self.assertAllClose(self.logs["g_adv"], -self.fake_logits_after.mean(),
                            rtol=0, atol=1e-6)
        self.assertGreater(abs(self.logs["g_adv"] + self.logits_before["fake"].mean()), 1e-4)

    def test_g_loss_adds_the_weighted_damsm_term(self):
        w = self.parts.gan.term("g_damsm").weight
        self.assertAllClose(self.logs["g_loss"], self.logs["g_adv"] + w * self.logs["g_damsm"],
                            rtol=1e-6, atol=1e-6)

    def test_g_and_d_weights_change(self):
        # All of D moves: its residual branches are gated by a zero-initialised gamma
        # that the hinge update moves, so the MA-GP update reaches them (see the joint
        # variant below, where one update leaves them in place).
        d_vars = self.parts.discriminator.trainable_variables
        for var, old in zip(d_vars, self.trainable_before["discriminator"]):
            self.assertNotAllClose(var.numpy(), old, atol=0, rtol=0, msg=var.path)
        changed = {var.path for var, old in zip(self.parts.generator.trainable_variables,
                                                self.trainable_before["generator"])
                   if np.any(var.numpy() != old)}
        # The residual branches of the G blocks are gated by a gamma that starts at zero
        # (DF-GAN / SSA-GAN), so at step 1 only the gates and the ungated path move.
        expected = {"generator/fc/kernel", "generator/image_conv/kernel",
                    "generator/image_batch_norm/gamma"}
        expected |= {f"generator/{b.name}/gamma" for b in self.parts.generator.blocks}
        self.assertContainsSubset(expected, changed)

    def test_one_g_update_two_d_updates(self):
        self.assertEqual(int(self.parts.g_optimizer.iterations), 1)
        self.assertEqual(int(self.parts.gan.step), 1)
        self.assertEqual(int(self.parts.d_optimizer.iterations), 2)  # hinge, then MA-GP

    def test_ema_is_decay_times_init_plus_rest_times_new_weights(self):
        g = self.parts.generator
        ema = self.parts.ema_generator
        self.assertNotAllClose(ema.trainable_variables[0], g.trainable_variables[0])
        init = self.trainable_before["generator"]
        # gan.update_ema warms the decay up as tf.train.ExponentialMovingAverage with
        # num_updates = t (G updates so far, this one included): min(decay, (1+t)/(10+t)).
        t = 1
        decay = min(self.EMA_DECAY, (1.0 + t) / (10.0 + t))  # = 2/11
        for e, w, w0 in zip(ema.trainable_variables, g.trainable_variables, init):
            self.assertAllClose(e.numpy(), decay * w0 + (1.0 - decay) * w.numpy(),
                                rtol=1e-6, atol=1e-7, msg=e.path)


class TrainStepVariantsTest(tf.test.TestCase):
    """One step with MA-GP joint, no DAMSM term and no EMA copy."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cfg = helpers.tiny_gan_config(loss={"ma_gp_mode": "joint", "damsm_weight": 0.0},
                                      train={"ema_decay": 0.0})
        keras.utils.set_random_seed(cfg.train.seed)
        parts = train_lib.GANComponents(cfg, helpers.vocab_size(),
                                        helpers.scratch_dir() + "/variant_test")
        parts.gan.init_ema()
        cls.d_before = [v.numpy() for v in parts.discriminator.trainable_variables]
        history = parts.gan.fit(helpers.one_batch_dataset(helpers.train_batch(cfg)),
                                steps_per_epoch=1, epochs=1, verbose=0).history
        cls.logs = {k: float(v[-1]) for k, v in history.items()}
        cls.parts = parts

    def test_joint_ma_gp_updates_d_once(self):
        self.assertEqual(int(self.parts.d_optimizer.iterations), 1)
        self.assertEqual(int(self.parts.g_optimizer.iterations), 1)
        # After a single update the residual branches of D, gated by a gamma that starts
        # at zero, have had no gradient yet; everything else has moved. (With the
        # separate MA-GP step every D weight moves: TrainStepTest.)
        for var, old in zip(self.parts.discriminator.trainable_variables, self.d_before):
            gated = var.path.endswith(("conv_down/kernel", "conv_same/kernel"))
            self.assertEqual(np.any(var.numpy() != old), not gated, msg=var.path)
        self.assertGreater(self.logs["d_ma_gp"], 0.0)
        self.assertAllClose(self.logs["d_loss"], self.logs["d_adv"] + self.logs["d_ma_gp"],
                            rtol=1e-6, atol=1e-7)

    def test_no_damsm_term(self):
        self.assertEqual(set(self.logs), LOG_KEYS)
        self.assertIsNone(self.parts.gan.image_encoder)
        self.assertEqual(self.logs["g_loss"], self.logs["g_adv"])
        for name, value in self.logs.items():
            self.assertTrue(np.isfinite(value), f"{name} = {value}")

    def test_no_ema_copy(self):
        self.assertIsNone(self.parts.ema_generator)
        self.assertIsNone(self.parts.gan.ema_generator)
        self.assertNotIn("ema_generator", self.parts.checkpoint.checkpoint._trackable_children())
        self.assertIs(self.parts.gan.sampling_generator(), self.parts.generator)
        with self.assertRaisesRegex(ValueError, "no EMA generator"):
            self.parts.gan.sampling_generator(use_ema=True)


class WordAttentionStepTest(tf.test.TestCase):
    """Two steps of SSA-GAN with word attention (--gen_word_attention_max_size) and open G gates."""
    # tiny.cfg's 64 px are the largest block's: every block attends.

    def test_the_word_path_trains(self):
        cfg = helpers.tiny_gan_config(
            generator={"word_attention_max_size": 64, "residual_gate_init": 1.0},
            train={"ema_decay": 0.0})
        keras.utils.set_random_seed(cfg.train.seed)
        parts = train_lib.GANComponents(cfg, helpers.vocab_size(),
                                        helpers.scratch_dir() + "/word_attention_test")
        word_vars = [v for v in parts.generator.trainable_variables if "word" in v.path]
        # Per block: the attention's query, key, value (kernel and bias) and the two
        # SSCBNs' per-pixel gamma and beta layers (kernel and bias).
        self.assertLen(word_vars, len(parts.generator.blocks) * (4 + 8))
        before = [v.numpy() for v in word_vars]
        history = parts.gan.fit(helpers.one_batch_dataset(helpers.train_batch(cfg)),
                                steps_per_epoch=2, epochs=1, verbose=0).history
        self.assertTrue(np.isfinite(history["g_loss"][-1]))
        # Step 1 moves the zero-initialised per-pixel affines; through them, step 2
        # reaches the attention's projections.
        for var, old in zip(word_vars, before):
            self.assertTrue(np.any(var.numpy() != old), msg=var.path)


if __name__ == "__main__":
    tf.test.main()
