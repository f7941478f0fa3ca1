"""The AttnGAN family (AttnGAN, Style1AttnGAN, Style2AttnGAN) on the shared training path.

One `fit()` step per architecture on tiny configs (the shared tiny DAMSM run): every
logged term finite, G and every stage's D moved, the BCE scheme's bookkeeping right;
a 2-replica step equal to a 1-replica step for the StyleGAN2 variant (per-example noise
seeds, synchronised statistics); export and a gRPC round trip for a style model.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import strategies
from tests.serving import helpers as serving_helpers
from tests.training import helpers
from tf_t2i import images as images_lib
from tf_t2i.models import interface
from tf_t2i.models import trained_run
from tf_t2i.training.objectives import attngan_bce
from tf_t2i.training import train_lib

# Small widths; attngan at 128 px so that a refinement stage (word attention, a second
# discriminator) takes part.
ARCH_OVERRIDES = {
    "attngan": dict(generator={"arch": "attngan", "ngf": 4, "residual_blocks": 1},
                    discriminator={"ndf": 4}, data={"image_size": 128},
                    loss={"damsm_weight": 5.0, "kl_weight": 1.0}),
    "style1_attngan": dict(generator={"arch": "style1_attngan", "ngf": 4},
                           discriminator={"ndf": 4},
                           loss={"damsm_weight": 5.0, "kl_weight": 1.0, "f2f_weight": 0.2}),
    "style2_attngan": dict(generator={"arch": "style2_attngan", "ngf": 4},
                           discriminator={"ndf": 4},
                           loss={"damsm_weight": 5.0, "kl_weight": 1.0, "f2r_weight": 0.2,
                                 "r1_gamma": 10.0, "r1_interval": 1}),
}


def _config(arch, **extra):
    overrides = {k: dict(v) for k, v in ARCH_OVERRIDES[arch].items()}
    for section, values in extra.items():
        overrides.setdefault(section, {}).update(values)
    return helpers.tiny_gan_config(**overrides)


def _weights(parts):
    models = {"generator": parts.generator, "ema_generator": parts.ema_generator}
    models.update({d.name: d for d in parts.discriminators})
    return {name: [np.array(w) for w in m.get_weights()] for name, m in models.items()}


def _one_step(parts, batch):
    history = parts.gan.fit(helpers.one_batch_dataset(batch), steps_per_epoch=1, epochs=1,
                            verbose=0).history
    return {k: float(v[-1]) for k, v in history.items()}


class OneStepTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.results = {}
        for arch in ARCH_OVERRIDES:
            cfg = _config(arch)
            keras.utils.set_random_seed(cfg.train.seed)
            parts = train_lib.GANComponents(cfg, helpers.vocab_size(),
                                            f"{helpers.scratch_dir()}/family_{arch}")
            parts.gan.init_ema()
            before = _weights(parts)
            logs = _one_step(parts, helpers.train_batch(cfg))
            cls.results[arch] = (cfg, parts, before, _weights(parts), logs)

    def test_every_term_is_logged_and_finite(self):
        expected = {
            "attngan": {"d_loss", "d_adv", "g_loss", "g_adv", "g_kl", "g_damsm"},
            "style1_attngan": {"d_loss", "d_adv", "g_loss", "g_adv", "g_kl", "g_damsm",
                               "g_f2f"},
            "style2_attngan": {"d_loss", "d_adv", "d_r1", "g_loss", "g_adv", "g_kl",
                               "g_damsm", "g_f2r"},
        }
        for arch, (_, _, _, _, logs) in self.results.items():
            self.assertEqual(set(logs), expected[arch], msg=arch)
            for name, value in logs.items():
                self.assertTrue(np.isfinite(value), msg=f"{arch} {name} = {value}")
            self.assertGreater(logs["d_adv"], 0.0, msg=arch)

    def test_one_discriminator_per_stage(self):
        cfg, parts, _, _, _ = self.results["attngan"]
        self.assertLen(parts.discriminators, 2)  # 64 and 128 px
        self.assertEqual([d.image_size for d in parts.discriminators], [64, 128])
        self.assertEqual(cfg.data.image_size, 128)
        self.assertLen(self.results["style1_attngan"][1].discriminators, 1)

    def test_generator_and_every_discriminator_change(self):
        for arch, (_, parts, before, after, _) in self.results.items():
            for name in before:
                moved = helpers.max_abs_diff(before[name], after[name])
                self.assertGreater(moved, 0.0, msg=f"{arch}: {name} did not change")

    def test_d_loss_is_adversarial_plus_r1(self):
        logs = self.results["style2_attngan"][4]
        self.assertAllClose(logs["d_loss"], logs["d_adv"] + logs["d_r1"], rtol=1e-5)
        self.assertGreater(logs["d_r1"], 0.0)

    def test_g_loss_adds_the_weighted_terms(self):
        cfg, _, _, _, logs = self.results["style2_attngan"]
        loss = cfg.loss
        expected = (logs["g_adv"] + loss.kl_weight * logs["g_kl"]
                    + loss.damsm_weight * logs["g_damsm"] + loss.f2r_weight * logs["g_f2r"])
        self.assertAllClose(logs["g_loss"], expected, rtol=1e-5)

    def test_one_update_each_for_g_and_d(self):
        for arch, (_, parts, _, _, _) in self.results.items():
            self.assertEqual(int(parts.gan.d_optimizer.iterations.numpy()), 1, msg=arch)
            self.assertEqual(int(parts.gan.g_optimizer.iterations.numpy()), 1, msg=arch)

    def test_parameter_counts_list_every_discriminator(self):
        counts = self.results["attngan"][1].parameter_counts()
        self.assertIn("discriminator64", counts)
        self.assertIn("discriminator128", counts)
        self.assertGreater(counts["generator"], 0)

    def test_image_depends_only_on_its_own_z_and_caption(self):
        # The noise drawn inside the generator is seeded from each example's z, so an
        # example's image does not depend on the batch it is in.
        cfg, parts, _, _, _ = self.results["style2_attngan"]
        batch = helpers.train_batch(cfg)
        gan = parts.gan
        full = gan({"caption_ids": batch["caption_ids"], "z": batch["z"]}, training=False)
        half = gan({"caption_ids": batch["caption_ids"][2:], "z": batch["z"][2:]},
                   training=False)
        self.assertAllClose(half, full[2:], atol=1e-5)
        again = gan({"caption_ids": batch["caption_ids"], "z": batch["z"]}, training=False)
        self.assertAllClose(again, full)


class LazyR1Test(tf.test.TestCase):

    def test_r1_only_on_every_interval_th_step_and_scaled(self):
        cfg = _config("style2_attngan", loss={"r1_interval": 2, "f2r_weight": 0.0,
                                              "damsm_weight": 0.0})
        parts = train_lib.GANComponents(cfg, helpers.vocab_size(),
                                        f"{helpers.scratch_dir()}/family_lazy_r1")
        batch = helpers.train_batch(cfg)
        scheme = parts.gan.scheme
        reals = attngan_bce.resize_to_stages(tf.constant(batch["real_images"]), [64])
        sentence = parts.gan.encode_caption(batch["caption_ids"]).sentence
        direct = scheme.r1(reals, sentence)
        # Step 0 is due: the interval times the penalty; step 1 is not: zeros.
        self.assertAllClose(scheme.lazy_r1(reals, sentence, tf.constant(0, tf.int64)),
                            2.0 * direct, rtol=1e-5)
        self.assertAllEqual(scheme.lazy_r1(reals, sentence, tf.constant(1, tf.int64)),
                            np.zeros([len(direct)]))
        self.assertGreater(float(tf.reduce_min(direct)), 0.0)


@pytest.mark.slow
class TwoReplicasStyle2Test(tf.test.TestCase):
    """A Style2AttnGAN step on 2 replicas equals the step on 1 (SGD, every term on).

    What this exercises: per-example noise seeds (conditioning augmentation, per-pixel
    noise, style mixing), the global-batch reduction of every term, the F2R and DAMSM
    negatives gathered from both replicas, R1, the W-average update and the EMA.
    """

    def test_same_weights_and_logs(self):
        cfg = _config("style2_attngan", generator={"mixing_prob": 0.9})
        batch = helpers.train_batch(cfg)
        keras.utils.set_random_seed(cfg.train.seed)

        def build(strategy, name, source=None):
            with strategy.scope():
                parts = train_lib.GANComponents(cfg, helpers.vocab_size(),
                                                f"{helpers.scratch_dir()}/{name}")
                if source is not None:
                    models = lambda p: [p.generator, p.ema_generator, p.text_encoder,
                                        p.image_encoder, *p.discriminators]
                    for mine, theirs in zip(models(parts), models(source)):
                        mine.set_weights(theirs.get_weights())
                # Minibatch-stddev groups are formed within each replica's batch, as
                # StyleGAN2 forms them per GPU, so they differ with the split; group size 1
                # (no statistic across examples) leaves everything else to compare.
                for disc in parts.discriminators:
                    disc.mbstd_group_size = 1
                parts.gan.init_ema()
                parts.gan.compile(g_optimizer=keras.optimizers.SGD(0.1),
                                  d_optimizer=keras.optimizers.SGD(0.1))
            return parts

        one = build(tf.distribute.get_strategy(), "style2_one")
        two = build(strategies.two_cpu_replicas(), "style2_two", source=one)
        initial = _weights(one)
        logs_1, logs_2 = _one_step(one, batch), _one_step(two, batch)
        after_1, after_2 = _weights(one), _weights(two)
        for name in initial:
            moved = helpers.max_abs_diff(after_1[name], initial[name])
            diff = helpers.max_abs_diff(after_1[name], after_2[name])
            print(f"style2 {name}: max |1 - 2 replicas| = {diff:.3g}, moved {moved:.3g}")
            self.assertGreater(moved, 1e-4, msg=name)
            self.assertLess(diff, 1e-5 * moved + 1e-6, msg=name)  # seen: ~1e-6 relative
        for name, value in logs_1.items():
            self.assertAllClose(logs_2[name], value, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow
class StyleExportTest(tf.test.TestCase):
    """A Style1AttnGAN run exports, loads in a server and answers over gRPC."""

    def test_grpc_round_trip(self):
        cfg = _config("style1_attngan", train={"steps": 1})
        model_dir = os.path.join(helpers.scratch_dir(), "style_export_run")
        train_lib.run_training(cfg, model_dir, verbose=0)
        base = os.path.join(helpers.scratch_dir(), "style_export", "t2i")
        result = serving_helpers.run_binary("tf_t2i.export", f"--model_dir={model_dir}",
                                            f"--export_base={base}", timeout_s=600)
        self.assertEqual(result.returncode, 0, msg=result.stdout[-2000:] + result.stderr[-2000:])
        server = serving_helpers.ServerProcess(f"--model_base={base}")
        try:
            port = server.wait_ready()
            from tf_t2i.serving import client as client_lib  # pylint: disable=g-import-not-at-top
            client = client_lib.GrpcClient(f"127.0.0.1:{port}", serving_helpers.MODEL_NAME)
            images = client.generate(["a red circle", "a blue square"], seeds=[3, 4])
            again = client.generate(["a red circle"], seeds=[3])
        finally:
            server.stop()
        self.assertEqual(images.shape, (2, 64, 64, 3))
        self.assertEqual(images.dtype, np.uint8)
        # Determined by (caption, seed), whatever else is in the request: equal up to the
        # float rounding of batched kernels (at most 1 level, in a few pixels).
        self.assertLessEqual(int(np.max(np.abs(again[0].astype(int) - images[0]))), 1)
        self.assertGreater(int(np.max(np.abs(images[0].astype(int) - images[1]))), 10)
        # And equal to the in-memory EMA generator.
        run = trained_run.load_run(model_dir)
        tok, parts = run.tokenizer, run
        ids = tf.cast(tok.encode(["a red circle"]), tf.int32)
        from tf_t2i.serving import export_lib  # pylint: disable=g-import-not-at-top
        z = export_lib.noise_from_seeds(tf.constant([3], tf.int64), cfg.generator.z_dim)
        words, sentence = parts.text_encoder(ids, training=False)
        expected = interface.generate_images(parts.ema_generator, z, sentence, words,
                                             tf.not_equal(ids, 0))
        expected = images_lib.to_uint8(expected).numpy()
        self.assertLessEqual(int(np.max(np.abs(expected[0].astype(int) - images[0]))), 1)
