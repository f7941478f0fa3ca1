"""The objectives registry, and a new generator term plugged into a real GAN step."""

import types

import keras
import numpy as np
import tensorflow as tf

from tests.training import helpers
from tf_t2i.data import shapes_negatives
from tf_t2i.data import sources
from tf_t2i.losses import damsm as damsm_losses
from tf_t2i.training import gan as gan_lib
from tf_t2i.training import objectives
from tf_t2i.training import train_lib
from tf_t2i.training.objectives import registry


class MeanBrightnessTerm(objectives.GeneratorTerm):
    """A toy term: the mean pixel of the fake, per example (what docs/architecture.md
    shows as the example of a new term)."""

    name = "g_brightness"
    weight_field = "brightness_weight"

    def __call__(self, record):
        return tf.reduce_mean(tf.cast(record.fakes[0], tf.float32), axis=[1, 2, 3])


def _tiny_gan(name, loss, terms=None, g_learning_rate=0.0, d_learning_rate=0.0,
              discriminator=None):
    """(config, components, compiled GAN) of a tiny SSA-GAN without EMA, trained by SGD
    at the given rates. The GAN has the given generator terms, or the config's when None;
    `discriminator`: overrides of the config's discriminator section."""
    cfg = helpers.tiny_gan_config(loss=dict(loss), train={"ema_decay": 0.0},
                                  discriminator=dict(discriminator or {}))
    keras.utils.set_random_seed(cfg.train.seed)
    parts = train_lib.GANComponents(cfg, helpers.vocab_size(), helpers.scratch_dir() + "/" + name)
    gan = gan_lib.TextToImageGAN(parts.generator, parts.scheme, parts.text_encoder,
                                 terms=list(parts.terms if terms is None else terms),
                                 image_encoder=parts.image_encoder)
    gan.compile(g_optimizer=keras.optimizers.SGD(g_learning_rate),
                d_optimizer=keras.optimizers.SGD(d_learning_rate))
    return cfg, parts, gan


class RegistryTest(tf.test.TestCase):

    def test_built_in_schemes_and_terms_in_loss_order(self):
        self.assertEqual(set(registry.SCHEMES), {"hinge", "bce"})
        self.assertEqual(list(registry.TERMS),
                         ["g_damsm", "g_f2r", "g_f2f", "g_recap", "g_ms"])

    def test_weights_of_zero_build_no_term(self):
        cfg = helpers.tiny_gan_config(loss={"damsm_weight": 0.0, "f2f_weight": 0.3,
                                            "mode_seeking_weight": 0.1})
        models = types.SimpleNamespace(image_encoder=None, captioner=None, projection_head=None)
        terms = objectives.build_terms(cfg.loss, models)
        self.assertEqual([(t.name, t.weight) for t in terms], [("g_f2f", 0.3), ("g_ms", 0.1)])
        self.assertEqual(terms[0].captions_needed, 2)

    def test_recaption_without_captioner_is_an_error(self):
        cfg = helpers.tiny_gan_config(loss={"recap_weight": 1.0})
        models = types.SimpleNamespace(image_encoder=None, captioner=None, projection_head=None)
        with self.assertRaisesRegex(ValueError, "needs the captioner"):
            objectives.build_terms(cfg.loss, models)

    def test_unknown_scheme_and_double_registration(self):
        with self.assertRaisesRegex(ValueError, r"Unknown adversarial scheme 'wgan'.*'bce'"):
            objectives.build_scheme("wgan", [], None)
        with self.assertRaisesRegex(ValueError, "registered twice"):
            registry.register_term(type("Again", (objectives.GeneratorTerm,),
                                        {"name": "g_damsm"}))

    def test_hinge_scheme_takes_one_discriminator(self):
        cfg = helpers.tiny_gan_config()
        with self.assertRaisesRegex(ValueError, "one discriminator, got 2"):
            objectives.build_scheme("hinge", [object(), object()], cfg.loss)


class NewTermTest(tf.test.TestCase):
    """A term the library does not know, added to a real tiny SSA-GAN step."""

    def test_new_term_is_logged_and_weighted_into_g_loss(self):
        cfg, parts, gan = _tiny_gan("new_term", {"damsm_weight": 0.0},
                                    terms=[MeanBrightnessTerm(weight=3.0)])
        batch = helpers.train_batch(cfg)
        # Recomputed outside the step; SGD(0) keeps G where it is, BatchNorm statistics
        # aside, which do not enter a training-mode forward pass.
        sentence = gan.encode_caption(tf.constant(batch["caption_ids"])).sentence
        fake, _ = parts.generator(batch["z"], sentence, training=True)
        expected = float(np.mean(fake))
        history = gan.fit(helpers.one_batch_dataset(batch), steps_per_epoch=1, epochs=1,
                          verbose=0).history
        logs = {k: float(v[-1]) for k, v in history.items()}
        self.assertEqual(set(logs), {"d_loss", "d_adv", "d_ma_gp", "g_loss", "g_adv",
                                     "g_brightness"})
        self.assertAllClose(logs["g_brightness"], expected, rtol=1e-5, atol=1e-6)
        self.assertAllClose(logs["g_loss"], logs["g_adv"] + 3.0 * logs["g_brightness"],
                            rtol=1e-5, atol=1e-6)


class GeneratorMatchingTermTest(tf.test.TestCase):
    """--loss_g_match_weight in a real tiny SSA-GAN step."""

    def test_logged_weighted_and_computed_on_the_mismatched_captions(self):
        cfg, parts, gan = _tiny_gan("g_match", {"damsm_weight": 0.0, "g_match_weight": 2.0},
                                    terms=())
        self.assertEqual(parts.scheme.log_names, (["d_ma_gp"], ["g_adv", "g_match"]))
        batch = helpers.train_batch(cfg)
        # Recomputed outside the step: SGD(0) leaves G and D where they are.
        sentence = gan.encode_caption(tf.constant(batch["caption_ids"])).sentence
        mismatched = gan.encode_caption(tf.constant(batch["mismatched_ids"])).sentence
        fake, _ = parts.generator(batch["z"], sentence, training=True)
        d = parts.scheme.discriminator
        features = d(fake, training=True)
        matched, other = (np.asarray(d.logits(features, s), np.float64).reshape(-1)
                          for s in (sentence, mismatched))
        expected = float(np.mean(np.log1p(np.exp(other - matched))))
        history = gan.fit(helpers.one_batch_dataset(batch), steps_per_epoch=1, epochs=1,
                          verbose=0).history
        logs = {k: float(v[-1]) for k, v in history.items()}
        self.assertEqual(set(logs), {"d_loss", "d_adv", "d_ma_gp", "g_loss", "g_adv",
                                     "g_match"})
        self.assertAllClose(logs["g_match"], expected, rtol=1e-4, atol=1e-5)
        self.assertAllClose(logs["g_loss"], logs["g_adv"] + 2.0 * logs["g_match"],
                            rtol=1e-5, atol=1e-6)

    def test_the_term_moves_the_generator(self):
        def one_step(weight, run):
            cfg, parts, gan = _tiny_gan(f"g_match_{weight}_{run}",
                                        {"damsm_weight": 0.0, "g_match_weight": weight},
                                        terms=(), g_learning_rate=0.1)
            before = [np.array(v) for v in parts.generator.trainable_variables]
            gan.fit(helpers.one_batch_dataset(helpers.train_batch(cfg)), steps_per_epoch=1,
                    epochs=1, verbose=0)
            return [np.array(v) - b for v, b in zip(parts.generator.trainable_variables, before)]

        without, again, with_term = one_step(0.0, 0), one_step(0.0, 1), one_step(5.0, 0)
        # The control: the same step twice gives the same update, so a difference below
        # is the term's, not the run's noise.
        for a, b in zip(without, again):
            self.assertAllClose(a, b, atol=1e-7)
        differ = [not np.allclose(a, b, atol=1e-7) for a, b in zip(without, with_term)]
        self.assertTrue(any(differ), "g_match changed no generator weight's update")


class NegativeImagesTest(tf.test.TestCase):
    """--loss_negative_images_weight in a real tiny SSA-GAN step."""

    @staticmethod
    def _batch(cfg):
        batch = helpers.train_batch(cfg)
        # Stand-ins for the images with an object added: the real ones upside down.
        batch["negative_images"] = batch["real_images"][:, ::-1].copy()
        return batch

    def test_logged_weighted_and_computed_on_the_negative_images(self):
        cfg, parts, gan = _tiny_gan("negatives", {"damsm_weight": 0.0,
                                                  "negative_images_weight": 0.5}, terms=())
        self.assertEqual(parts.scheme.log_names, (["d_ma_gp", "d_negative"], ["g_adv"]))
        batch = self._batch(cfg)
        # Recomputed outside the step: SGD(0) leaves G and D where they are.
        sentence = gan.encode_caption(tf.constant(batch["caption_ids"])).sentence
        d = parts.scheme.discriminator
        logits = np.asarray(d.logits(d(tf.constant(batch["negative_images"]), training=True),
                                     sentence), np.float64).reshape(-1)
        expected = 0.5 * float(np.mean(np.maximum(0.0, 1.0 + logits)))
        history = gan.fit(helpers.one_batch_dataset(batch), steps_per_epoch=1, epochs=1,
                          verbose=0).history
        logs = {k: float(v[-1]) for k, v in history.items()}
        self.assertEqual(set(logs), {"d_loss", "d_adv", "d_ma_gp", "d_negative", "g_loss",
                                     "g_adv"})
        self.assertGreater(expected, 0.0)
        self.assertAllClose(logs["d_negative"], expected, rtol=1e-4, atol=1e-5)
        self.assertAllClose(logs["d_loss"], logs["d_adv"] + logs["d_ma_gp"]
                            + logs["d_negative"], rtol=1e-5, atol=1e-6)

    def test_the_gan_task_renders_one_per_training_image(self):
        cfg = helpers.tiny_gan_config(loss={"negative_images_weight": 0.5})
        source = sources.load_source(cfg.data, "train")
        task = train_lib.GANTask(cfg)
        negatives = task.source_options(source)["negative_images"]
        self.assertEqual(negatives.shape, source.images.shape)
        for row in (0, len(source) - 1):
            expected = shapes_negatives.render_with_extra_objects(
                int(source.image_ids[row]), image_size=cfg.data.image_size,
                seed=cfg.data.shapes_seed)
            np.testing.assert_array_equal(negatives[row], expected)
        self.assertIs(task.source_options(source)["negative_images"], negatives)  # once
        self.assertEqual(train_lib.GANTask(helpers.tiny_gan_config()).source_options(source), {})

    def test_the_term_moves_the_discriminator(self):
        def one_step(weight, run):
            cfg, parts, gan = _tiny_gan(f"negatives_{weight}_{run}",
                                        {"damsm_weight": 0.0, "negative_images_weight": weight},
                                        terms=(), d_learning_rate=0.1)
            d = parts.scheme.discriminator
            before = [np.array(v) for v in d.trainable_variables]
            gan.fit(helpers.one_batch_dataset(self._batch(cfg)), steps_per_epoch=1, epochs=1,
                    verbose=0)
            return [np.array(v) - b for v, b in zip(d.trainable_variables, before)]

        without, again, with_term = one_step(0.0, 0), one_step(0.0, 1), one_step(2.0, 0)
        for a, b in zip(without, again):  # the control: the step is repeatable
            self.assertAllClose(a, b, atol=1e-7)
        differ = [not np.allclose(a, b, atol=1e-7) for a, b in zip(without, with_term)]
        self.assertTrue(any(differ), "d_negative changed no discriminator weight's update")


class WordLogitsTest(tf.test.TestCase):
    """--disc_word_logits: D's logits add each caption's word score, in a real tiny SSA-GAN
    step."""

    @staticmethod
    def _gan(name, region_size=4, **kwargs):
        cfg, parts, gan = _tiny_gan(name, {"damsm_weight": 0.0}, terms=(),
                                    discriminator={"word_logits": True,
                                                   "word_region_size": region_size}, **kwargs)
        d = parts.scheme.discriminator
        # Trained word projections, not the zeros a new D starts from.
        rng = np.random.default_rng(3)
        d.word_head.word_out.kernel.assign(rng.normal(0, 5.0, d.word_head.word_out.kernel.shape))
        return cfg, parts, gan

    def test_every_score_of_the_d_step_reads_its_captions_words(self):
        self._check_d_step_scores("word_logits", 4)

    def test_every_score_reads_the_words_against_8x8_regions(self):
        self._check_d_step_scores("word_logits8", 8)

    def _check_d_step_scores(self, name, region_size):
        cfg, parts, gan = self._gan(name, region_size)
        batch = helpers.train_batch(cfg)
        # Recomputed outside the step: SGD(0) leaves G and D where they are.
        caption = gan.encode_caption(tf.constant(batch["caption_ids"]))
        wrong = gan.encode_caption(tf.constant(batch["mismatched_ids"]))
        fake, _ = parts.generator(batch["z"], caption.sentence, training=True)
        d = parts.scheme.discriminator
        real_features = d(tf.constant(batch["real_images"]), training=True)

        def scores(features, c, words=True):
            if not words:
                last = features[0] if region_size == 8 else features
                return np.asarray(d.head(last, c.sentence), np.float64)
            return np.asarray(d.logits(features, c.sentence, c.words, c.mask), np.float64)

        def d_adv(words=True):
            real, wrong_pair = scores(real_features, caption, words), scores(real_features,
                                                                              wrong, words)
            fake_pair = scores(d(fake, training=True), caption, words)
            return float(np.mean(np.maximum(0, 1 - real) + 0.5 * np.maximum(0, 1 + fake_pair)
                                 + 0.5 * np.maximum(0, 1 + wrong_pair)))

        expected = d_adv()
        self.assertGreater(abs(expected - d_adv(words=False)), 1e-3)
        history = gan.fit(helpers.one_batch_dataset(batch), steps_per_epoch=1, epochs=1,
                          verbose=0).history
        self.assertAllClose(float(history["d_adv"][-1]), expected, rtol=1e-4, atol=1e-5)

    def test_the_d_step_trains_the_word_head(self):
        cfg, parts, gan = self._gan("word_logits_trained", d_learning_rate=0.1)
        head = parts.scheme.discriminator.word_head
        before = [np.array(v) for v in head.trainable_variables]
        gan.fit(helpers.one_batch_dataset(helpers.train_batch(cfg)), steps_per_epoch=1,
                epochs=1, verbose=0)
        for variable, old in zip(head.trainable_variables, before):
            self.assertFalse(np.allclose(np.array(variable), old, atol=1e-7), variable.path)


class DAMSMHardNegativesTest(tf.test.TestCase):
    """--loss_damsm_hard_negatives: the DAMSM term also scores each fake against its
    image's mismatched caption, in a real tiny SSA-GAN step."""

    def test_logged_value_has_the_mismatched_caption_as_a_negative(self):
        cfg, parts, gan = _tiny_gan("damsm_hard", {"damsm_weight": 1.0,
                                                   "damsm_hard_negatives": True})
        batch = helpers.train_batch(cfg)
        # Recomputed outside the step: SGD(0) leaves G where it is.
        caption = gan.encode_caption(tf.constant(batch["caption_ids"]))
        hard = gan.encode_caption(tf.constant(batch["mismatched_ids"]))
        fake, _ = parts.generator(batch["z"], caption.sentence, training=True)
        regions, code = parts.image_encoder(fake, training=False)
        class_ids = tf.where(batch["class_id"] < 0, -2 - batch["image_id"], batch["class_id"])

        def damsm(hard_words=None, hard_sentence=None):
            words, _ = damsm_losses.damsm_word_loss(
                caption.words, caption.mask, regions, class_ids, cfg.loss.gamma1,
                cfg.loss.gamma2, cfg.loss.gamma3, hard_negative=hard_words)
            return words + damsm_losses.damsm_sentence_loss(
                caption.sentence, code, class_ids, cfg.loss.gamma3, hard_negative=hard_sentence)

        expected = damsm((hard.words, hard.mask), hard.sentence)
        self.assertAllGreater(expected - damsm(), 0.0)
        history = gan.fit(helpers.one_batch_dataset(batch), steps_per_epoch=1, epochs=1,
                          verbose=0).history
        self.assertAllClose(float(history["g_damsm"][-1]), float(np.mean(expected)),
                            rtol=1e-4, atol=1e-5)

    def test_needs_shapes_hard_negatives(self):
        cfg = helpers.tiny_gan_config(loss={"damsm_hard_negatives": True})
        with self.assertRaisesRegex(ValueError, "needs data.shapes_hard_negatives > 0"):
            cfg.validate()
        cfg.replace(data={"shapes_hard_negatives": 1.0}).validate()


if __name__ == "__main__":
    tf.test.main()
