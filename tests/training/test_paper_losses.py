"""The paper's generator terms (F2R, F2F, re-captioning) inside the GAN train step.

The tests that trace full train steps with every term (a minute or more each on 2
cores) are marked slow: `make test-slow`.
"""

import functools
import math
import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf

from tests import strategies
from tests.training import helpers
from tf_t2i.models import captioner as captioner_model
from tf_t2i.models import interface
from tf_t2i.training import captioner_lib
from tf_t2i.training import train_lib

ALL_TERMS = ("d_loss", "d_adv", "d_ma_gp", "g_loss", "g_adv", "g_damsm", "g_f2r", "g_f2f",
             "g_recap")


@functools.lru_cache(maxsize=None)
def captioner_run() -> str:
    """A 2-step captioner pretraining run on tiny, shared by the tests of this file."""
    model_dir = os.path.join(helpers.scratch_dir(), "captioner")
    cfg = helpers.tiny_config(train={"task": "captioner", "steps": 2},
                              runtime={"damsm_dir": helpers.damsm_run()})
    captioner_lib.run_captioner_pretraining(cfg, model_dir, verbose=0)
    return model_dir


def all_terms_config(**sections):
    return helpers.tiny_gan_config(
        loss={"f2r_weight": 0.2, "f2f_weight": 0.2, "recap_weight": 1.0,
              "damsm_weight": 0.05},
        runtime={"captioner_dir": captioner_run(), "damsm_dir": helpers.damsm_run()},
        **sections)


def build(cfg, strategy=None):
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        parts = train_lib.GANComponents(cfg, helpers.vocab_size(),
                                        tempfile.mkdtemp(dir=helpers.scratch_dir()))
        train_lib.restore_encoders(parts.text_encoder, parts.image_encoder,
                                   cfg.runtime.damsm_dir)
        parts.gan.init_ema()
    return parts


class PaperLossesTest(tf.test.TestCase):

    @pytest.mark.slow
    def test_every_term_is_logged_and_finite(self):
        cfg = all_terms_config()
        parts = build(cfg)
        batch = helpers.train_batch(cfg)
        history = parts.gan.fit(helpers.one_batch_dataset(batch), steps_per_epoch=2,
                                epochs=1, verbose=0).history
        self.assertCountEqual(history, ALL_TERMS)
        for name, values in history.items():
            self.assertTrue(math.isfinite(values[-1]), f"{name} = {values[-1]}")

    @pytest.mark.slow
    def test_two_replicas_log_finite_terms(self):
        cfg = all_terms_config()
        strategy = strategies.two_cpu_replicas()
        parts = build(cfg, strategy)
        history = parts.gan.fit(helpers.one_batch_dataset(helpers.train_batch(cfg)),
                                steps_per_epoch=1, epochs=1, verbose=0).history
        self.assertCountEqual(history, ALL_TERMS)
        for name, values in history.items():
            self.assertTrue(math.isfinite(values[-1]), f"{name} = {values[-1]}")

    @pytest.mark.slow  # test_objectives checks a weight of 0 builds no term, fast
    def test_weight_zero_removes_the_term(self):
        cfg = helpers.tiny_gan_config(loss={"f2r_weight": 0.2, "f2f_weight": 0.0,
                                            "recap_weight": 0.0})
        parts = build(cfg)
        self.assertIsNone(parts.captioner)  # no captioner is even loaded
        history = parts.gan.fit(helpers.one_batch_dataset(helpers.train_batch(cfg)),
                                steps_per_epoch=1, epochs=1, verbose=0).history
        self.assertIn("g_f2r", history)
        self.assertNotIn("g_f2f", history)
        self.assertNotIn("g_recap", history)

    def test_f2f_compares_fakes_of_two_captions_with_the_same_noise(self):
        cfg = helpers.tiny_gan_config(loss={"f2f_weight": 0.2})
        parts = build(cfg)
        gan = parts.gan
        batch = {k: tf.constant(v) for k, v in helpers.train_batch(cfg).items()}
        # Independent recomputation of the F2F value from the models (before any update).
        _, s1 = parts.text_encoder(batch["caption_ids"], training=False)
        _, s2 = parts.text_encoder(batch["caption_ids_2"], training=False)
        fake1, _ = parts.generator(batch["z"], s1, training=True)
        fake2, _ = parts.generator(batch["z"], s2, training=True)
        _, c1 = parts.image_encoder(fake1, training=False)
        _, c2 = parts.image_encoder(fake2, training=False)
        a = tf.math.l2_normalize(c1, 1).numpy()
        b = tf.math.l2_normalize(c2, 1).numpy()
        z = np.concatenate([a, b])
        sim = z @ z.T / cfg.loss.contrastive_temperature
        n = len(a)
        losses = []
        for k in range(2 * n):
            logits = np.delete(sim[k], k)
            positive = sim[k, (k + n) % (2 * n)]
            losses.append(np.log(np.exp(logits).sum()) - positive)
        expected = np.mean(losses)
        np.testing.assert_allclose(np.mean(gan.term("g_f2f").contrastive(c1, c2).numpy()), expected,
                                   rtol=1e-5)

    @pytest.mark.slow
    def test_gradients_reach_generator_not_frozen_models(self):
        cfg = all_terms_config()
        parts = build(cfg)
        gan = parts.gan
        batch = {k: tf.constant(v) for k, v in helpers.train_batch(cfg).items()}
        sentence = gan.encode_caption(batch["caption_ids"]).sentence
        _, real_code = parts.image_encoder(batch["real_images"], training=False)
        frozen = {"text_encoder": parts.text_encoder, "image_encoder": parts.image_encoder,
                  "captioner": parts.captioner}
        for model in frozen.values():
            self.assertEmpty(model.trainable_variables)
        frozen_vars = [v for m in frozen.values() for v in m.weights]
        terms = {
            "g_f2r": lambda fake: gan.term("g_f2r").contrastive(
                parts.image_encoder(fake, training=False)[1], real_code),
            "g_recap": lambda fake: gan.term("g_recap").loss(fake, batch["caption_ids"]),
        }
        for name, term in terms.items():
            with tf.GradientTape() as tape:
                fake, _ = parts.generator(batch["z"], sentence, training=True)
                loss = tf.reduce_mean(term(fake))
            g_grads = tape.gradient(loss, parts.generator.trainable_variables)
            norm = sum(float(tf.norm(g)) for g in g_grads if g is not None)
            self.assertGreater(norm, 0.0, f"{name} does not reach the generator")
        # Frozen models are constants of the step: a whole train step leaves them as they are.
        before = [w.numpy().copy() for w in frozen_vars]
        parts.gan.fit(helpers.one_batch_dataset(helpers.train_batch(cfg)),
                      steps_per_epoch=1, epochs=1, verbose=0)
        for w, old in zip(frozen_vars, before):
            np.testing.assert_array_equal(w.numpy(), old, err_msg=w.path)

    @pytest.mark.slow
    def test_mode_seeking_term_compares_two_noise_vectors_of_one_caption(self):
        cfg = helpers.tiny_gan_config(loss={"mode_seeking_weight": 0.5})
        parts = build(cfg)
        batch = {k: tf.constant(v) for k, v in helpers.train_batch(cfg).items()}
        z_2 = interface.second_noise(batch["z"])
        # A pure function of each example's own z, and another draw than z.
        np.testing.assert_array_equal(z_2[1:].numpy(),
                                      interface.second_noise(batch["z"][1:]).numpy())
        self.assertGreater(float(tf.reduce_min(tf.reduce_sum(tf.abs(z_2 - batch["z"]), 1))),
                           1.0)
        # Independent recomputation before the update: 1 / (mean|I1 - I2| / mean|z1 - z2|).
        _, sentence = parts.text_encoder(batch["caption_ids"], training=False)
        fake_1, _ = parts.generator(batch["z"], sentence, training=True)
        fake_2, _ = parts.generator(z_2, sentence, training=True)
        ratio = (np.abs(fake_1 - fake_2).mean(axis=(1, 2, 3))
                 / np.abs(batch["z"].numpy() - z_2.numpy()).mean(axis=1))
        history = parts.gan.fit(helpers.one_batch_dataset(helpers.train_batch(cfg)),
                                steps_per_epoch=1, epochs=1, verbose=0).history
        np.testing.assert_allclose(history["g_ms"][0], np.mean(1.0 / (ratio + 1e-5)),
                                   rtol=1e-4)
        np.testing.assert_allclose(
            history["g_loss"][0],
            history["g_adv"][0] + 0.05 * history["g_damsm"][0] + 0.5 * history["g_ms"][0],
            rtol=1e-5)

    @pytest.mark.slow
    def test_mode_seeking_on_the_first_captions_compares_a_new_pair_of_each(self):
        cfg = helpers.tiny_gan_config(loss={"mode_seeking_weight": 0.5,
                                            "mode_seeking_examples": 2})
        parts = build(cfg)
        batch = {k: tf.constant(v) for k, v in helpers.train_batch(cfg).items()}
        self.assertGreater(int(batch["z"].shape[0]), 2)
        # Independent recomputation before the update: one pass over the first two
        # captions twice, from two noise vectors derived from their z.
        z_a = interface.second_noise(batch["z"][:2])
        z_b = interface.second_noise(z_a)
        _, sentence = parts.text_encoder(batch["caption_ids"][:2], training=False)
        fakes, _ = parts.generator(tf.concat([z_a, z_b], 0), tf.concat([sentence] * 2, 0),
                                   training=True)
        ratio = (np.abs(np.asarray(fakes[:2]) - np.asarray(fakes[2:])).mean(axis=(1, 2, 3))
                 / np.abs(z_a.numpy() - z_b.numpy()).mean(axis=1))
        history = parts.gan.fit(helpers.one_batch_dataset(helpers.train_batch(cfg)),
                                steps_per_epoch=1, epochs=1, verbose=0).history
        np.testing.assert_allclose(history["g_ms"][0], np.mean(1.0 / (ratio + 1e-5)),
                                   rtol=1e-4)

    def test_recaption_loss_is_teacher_forced_cross_entropy(self):
        cap = captioner_model.Captioner(vocab_size=6, max_length=3, embed_dim=8, num_heads=2,
                                        intermediate_dim=8, small_cnn_width=8)
        ids = tf.constant([[2, 3, 0]])
        targets = captioner_model.append_eos(ids, cap.eos_id)
        np.testing.assert_array_equal(targets.numpy(), [[2, 3, 7, 0]])
        np.testing.assert_array_equal(captioner_model.shift_right(ids, cap.bos_id).numpy(),
                                      [[6, 2, 3, 0]])
        logits = tf.math.log(tf.constant([[[.1, .1, .5, .1, .1, .05, .0, .05],
                                            [.2, .2, .1, .4, .05, .05, 0., 0.],
                                            [.1, .1, .1, .1, .1, .1, .1, .3],
                                            [.5, .5, 0., 0., 0., 0., 0., 0.]]]) + 1e-12)
        # Tokens 2, 3, EOS=7 with probabilities .5, .4, .3 (padding ignored):
        expected = -(np.log(.5) + np.log(.4) + np.log(.3)) / 3
        np.testing.assert_allclose(
            captioner_model.caption_cross_entropy(logits, targets).numpy(), [expected],
            rtol=1e-5)
