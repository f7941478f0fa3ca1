"""Tests for tf_t2i.models.ssagan_generator.

Expectations come from numpy re-implementations of the reference operations
(convolution, batch norm, bilinear align_corners resize), hand-computed values,
or parameter counts of the PyTorch reference (wtliao/text2image, model.py).
"""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests.models import helpers
from tf_t2i import config as config_lib
from tf_t2i.models import factory
from tf_t2i.models import params
from tf_t2i.models import ssagan_generator

BATCH = helpers.BATCH


def _initial_features(generator, z):
    """fc(z) read as torch's (C, 4, 4), then NHWC: [B, 4, 4, 8 * ngf]."""
    fc = z @ generator.fc.kernel.numpy() + generator.fc.bias.numpy()
    return fc.reshape(BATCH, 8 * generator.ngf, 4, 4).transpose(0, 2, 3, 1)


class SSCBNTest(tf.test.TestCase):

    def test_matches_formula(self):
        keras.utils.set_random_seed(2)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((BATCH, 4, 4, 8)).astype(np.float32)
        sentence = rng.standard_normal((BATCH, 16)).astype(np.float32)
        mask = rng.uniform(size=(BATCH, 4, 4, 1)).astype(np.float32)
        layer = ssagan_generator.SSCBN(8, sentence_dim=16)
        layer.build(x.shape)
        # The output layers start at zero; give them values to test with.
        for dense in (layer.gamma_out, layer.beta_out):
            dense.kernel.assign(rng.standard_normal((256, 8)) * 0.1)
            dense.bias.assign(rng.standard_normal((8,)) * 0.1)
        out = layer(x, sentence, mask, training=True)

        def mlp(hidden, final):
            h = np.maximum(sentence @ hidden.kernel.numpy()
                           + hidden.bias.numpy(), 0.0)
            return h @ final.kernel.numpy() + final.bias.numpy()

        gamma = mlp(layer.gamma_hidden, layer.gamma_out)[:, None, None, :]
        beta = mlp(layer.beta_hidden, layer.beta_out)[:, None, None, :]
        expected = (helpers.np_batch_norm_train(x) * (1 + mask * gamma)
                    + mask * beta)
        self.assertAllClose(out, expected, atol=1e-4)
        self.assertEqual(params.count_weights(layer.trainable_weights),
                         2 * (16 * 256 + 256 + 256 * 8 + 8))


class SSAGANGeneratorTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(0)

    def test_parameter_count_at_256_matches_reference(self):
        generator = ssagan_generator.SSAGANGenerator(ngf=64, image_size=256)
        generator.build()
        # Counted on the PyTorch NetG(ngf=64, nz=100).
        self.assertEqual(params.count_weights(generator.trainable_weights), 29_494_273)

    @parameterized.parameters((64, 5, 4), (128, 6, 2), (256, 7, 1))
    def test_block_list_truncates_with_image_size(self, image_size, num_blocks,
                                                  head_multiplier):
        generator = ssagan_generator.SSAGANGenerator(ngf=4, image_size=image_size)
        self.assertLen(generator.blocks, num_blocks)
        self.assertEqual(generator.image_channels, 4 * head_multiplier)
        # Only the last block has no mask predictor: nothing follows it.
        self.assertEqual(
            [block.mask_predictor is not None for block in generator.blocks],
            [True] * (num_blocks - 1) + [False])

    def test_rejects_unsupported_image_size(self):
        with self.assertRaisesRegex(ValueError, "image_size"):
            ssagan_generator.SSAGANGenerator(image_size=96)

    @parameterized.parameters(True, False)
    def test_output_shapes_and_ranges(self, training):
        generator = ssagan_generator.SSAGANGenerator(ngf=8, image_size=64)
        z, sentence = helpers.noise_and_sentence()
        images, masks = generator(z, sentence, training=training)
        self.assertEqual(images.shape, (BATCH, 64, 64, 3))
        self.assertEqual(images.dtype, tf.float32)
        self.assertAllInRange(images, -1.0, 1.0)
        self.assertEqual([m.shape for m in masks],
                         [(BATCH, s, s, 1) for s in (4, 8, 16, 32, 64)])
        for mask in masks:
            self.assertAllInRange(mask, 0.0, 1.0)

    def test_list_input_equals_two_arguments(self):
        generator = ssagan_generator.SSAGANGenerator(ngf=8, image_size=64)
        z, sentence = helpers.noise_and_sentence()
        images_a, _ = generator(z, sentence, training=False)
        images_b, _ = generator([z, sentence], training=False)
        self.assertAllEqual(images_a, images_b)

    def test_output_at_init_is_the_shortcut_path(self):
        # With every residual gamma at 0 only fc, the shortcuts and the output
        # head act: x0 = fc(z) read as (C, H, W), four identity blocks with
        # nearest upsampling, then block4's 1x1 conv (8ngf -> 4ngf).
        generator = ssagan_generator.SSAGANGenerator(ngf=8, image_size=64)
        z, sentence = helpers.noise_and_sentence()
        images, _ = generator(z, sentence, training=True)

        x = _initial_features(generator, z)
        x = np.repeat(np.repeat(x, 16, axis=1), 16, axis=2)  # 4 -> 64 px.
        shortcut = generator.blocks[4].shortcut_conv
        x = helpers.np_conv_same(x, shortcut.kernel.numpy(), shortcut.bias.numpy())
        h = helpers.np_leaky_relu(helpers.np_batch_norm_train(x))
        h = helpers.np_conv_same(h, generator.image_conv.kernel.numpy(),
                                 generator.image_conv.bias.numpy())
        self.assertAllClose(images, np.tanh(h), atol=1e-4)

    def test_mask_flow(self):
        # masks[0] comes from the fc output; masks[k] is the sigmoid of block
        # k-1's logits resized with align_corners. At init each block passes
        # its input through, so block0's output is the fc output itself.
        generator = ssagan_generator.SSAGANGenerator(ngf=8, image_size=64)
        z, sentence = helpers.noise_and_sentence()
        _, masks = generator(z, sentence, training=False)
        x0 = _initial_features(generator, z)
        logits0 = generator.initial_mask_predictor(x0, training=False).numpy()
        self.assertAllClose(masks[0], helpers.np_sigmoid(logits0), atol=1e-5)
        logits1 = generator.blocks[0].mask_predictor(
            x0, training=False).numpy()
        self.assertAllClose(
            masks[1], helpers.np_sigmoid(helpers.np_resize_align_corners(logits1, 8, 8)),
            atol=1e-5)

    def test_sentence_has_no_effect_at_init(self):
        generator = ssagan_generator.SSAGANGenerator(ngf=8, image_size=64)
        z, sentence_a = helpers.noise_and_sentence(0)
        _, sentence_b = helpers.noise_and_sentence(1)
        images_a, _ = generator(z, sentence_a, training=True)
        images_b, _ = generator(z, sentence_b, training=True)
        self.assertAllEqual(images_a, images_b)
        # Open the residual paths: the zero-initialised SSCBN output layers
        # still keep the sentence out.
        for block in generator.blocks:
            block.gamma.assign(1.0)
        images_a, _ = generator(z, sentence_a, training=True)
        images_b, _ = generator(z, sentence_b, training=True)
        self.assertAllEqual(images_a, images_b)
        self._perturb_sscbn(generator.blocks)
        images_a, _ = generator(z, sentence_a, training=True)
        images_b, _ = generator(z, sentence_b, training=True)
        self.assertGreater(np.abs(images_a - images_b).max(), 1e-3)

    def test_residual_gate_init(self):
        # A gate starting at 1 opens every residual branch from the first step:
        # the output is no longer the shortcut path and every gamma reads 1.
        z, sentence = helpers.noise_and_sentence()
        closed = ssagan_generator.SSAGANGenerator(ngf=8, image_size=64)
        opened = ssagan_generator.SSAGANGenerator(ngf=8, image_size=64,
                                                  residual_gate_init=1.0)
        closed.build()
        opened.build()
        opened.set_weights([np.ones_like(w) if w.shape == () else w
                            for w in closed.get_weights()])
        fresh = ssagan_generator.SSAGANGenerator(ngf=8, image_size=64, residual_gate_init=1.0)
        fresh.build()
        self.assertEqual([float(b.gamma.numpy()) for b in fresh.blocks], [1.0] * 5)
        self.assertEqual(opened.get_config()["residual_gate_init"], 1.0)
        for block in closed.blocks:
            block.gamma.assign(1.0)
        self.assertAllClose(opened(z, sentence, training=True)[0],
                            closed(z, sentence, training=True)[0])

    def test_noise_in_affine_gives_z_a_path_into_every_block(self):
        # With fc's weights at zero, z reaches the image only through the SSCBNs.
        generator = ssagan_generator.SSAGANGenerator(ngf=8, image_size=64,
                                                     noise_in_affine=True)
        plain = ssagan_generator.SSAGANGenerator(ngf=8, image_size=64)
        z_a, sentence = helpers.noise_and_sentence(0)
        z_b, _ = helpers.noise_and_sentence(1)
        for g in (generator, plain):
            g.build()
            g.fc.kernel.assign(np.zeros(g.fc.kernel.shape))
            for block in g.blocks:
                block.gamma.assign(1.0)
        # Each of the 4 hidden layers (gamma, beta; in, out) of the 5 blocks reads
        # z_dim more inputs.
        self.assertEqual(params.count_trainable_parameters(generator)
                         - params.count_trainable_parameters(plain), 5 * 4 * 100 * 256)
        self.assertTrue(generator.get_config()["noise_in_affine"])
        # At init the SSCBN output layers are zero: z still has no way in.
        self.assertAllEqual(generator(z_a, sentence, training=True)[0],
                            generator(z_b, sentence, training=True)[0])
        for g in (generator, plain):
            self._perturb_sscbn(g.blocks)
        self.assertGreater(np.abs(generator(z_a, sentence, training=True)[0]
                                  - generator(z_b, sentence, training=True)[0]).max(), 1e-3)
        self.assertAllEqual(plain(z_a, sentence, training=True)[0],
                            plain(z_b, sentence, training=True)[0])

    def test_sentence_in_fc_lays_out_the_initial_map(self):
        # The plain generator ignores the sentence at init (the SSCBN output
        # layers start at zero); with the sentence in fc it already shapes the
        # 4x4 map, and with fc's sentence rows at zero the two are the same.
        z, sentence_a = helpers.noise_and_sentence(0)
        _, sentence_b = helpers.noise_and_sentence(1)
        plain = ssagan_generator.SSAGANGenerator(ngf=8, image_size=64)
        generator = ssagan_generator.SSAGANGenerator(ngf=8, image_size=64,
                                                     sentence_in_fc=True)
        plain.build()
        generator.build()
        self.assertEqual(params.count_trainable_parameters(generator)
                         - params.count_trainable_parameters(plain), 256 * 8 * 8 * 16)
        self.assertTrue(generator.get_config()["sentence_in_fc"])
        fc = generator.fc.kernel.numpy()
        self.assertGreater(np.abs(fc[100:]).max(), 0.0)  # initialised like the z rows
        images_a = generator(z, sentence_a, training=True)[0]
        images_b = generator(z, sentence_b, training=True)[0]
        self.assertGreater(np.abs(images_a - images_b).max(), 1e-3)
        # fc([z, s]) = z @ K_z + s @ K_s + b: zero K_s and copy the rest from plain.
        weights = plain.get_weights()
        fc_index = next(i for i, w in enumerate(plain.weights) if w is plain.fc.kernel)
        weights[fc_index] = np.concatenate([weights[fc_index], np.zeros_like(fc[100:])])
        generator.set_weights(weights)
        self.assertAllClose(generator(z, sentence_a, training=True)[0],
                            plain(z, sentence_b, training=True)[0])

    def test_mask_channels_from_the_config(self):
        # --gen_mask_channels reaches every mask predictor through the factory; each
        # predictor holds 9 C h + h (conv3x3) + 2 h (BN) + h + 1 (conv1x1) weights.
        cfg = config_lib.ExperimentConfig().replace(
            data={"image_size": 64}, generator={"ngf": 4, "mask_channels": 16})
        narrow = factory.build_generator(cfg)
        reference = factory.build_generator(cfg.replace(generator={"mask_channels": 100}))
        narrow.build()
        reference.build()
        predictors = [narrow.initial_mask_predictor] + [
            block.mask_predictor for block in narrow.blocks if block.mask_predictor]
        self.assertLen(predictors, 5)
        self.assertEqual({p.hidden_channels for p in predictors}, {16})
        in_channels = [p.in_channels for p in predictors]
        self.assertEqual(in_channels, [32] * 5)  # 8 ngf up to 32 px at 64 px
        self.assertEqual(params.count_trainable_parameters(reference)
                         - params.count_trainable_parameters(narrow),
                         sum((9 * c + 4) * (100 - 16) for c in in_channels))
        self.assertEqual(narrow.get_config()["mask_channels"], 16)
        images, masks = narrow(*helpers.noise_and_sentence(0), training=True)
        self.assertEqual(images.shape, (BATCH, 64, 64, 3))
        self.assertLen(masks, 5)

    def test_low_res_ngf_widens_the_small_blocks_only(self):
        # --gen_low_res_ngf 8 --gen_low_res_max_size 16 on ngf 4 at 64 px: fc and the
        # 4-16 px blocks at 8 x 8 = 64 channels, the 32 px block narrows to 8 x 4 = 32,
        # the 64 px block keeps 4 x 4 = 16 (the reference's multipliers throughout).
        self.assertEqual(ssagan_generator.block_channels(4, 5),
                         (32, [(32, 32)] * 4 + [(32, 16)]))
        self.assertEqual(ssagan_generator.block_channels(4, 5, 8, 16),
                         (64, [(64, 64)] * 3 + [(64, 32), (32, 16)]))
        self.assertEqual(ssagan_generator.block_channels(4, 5, 8, 64),
                         ssagan_generator.block_channels(8, 5))
        cfg = config_lib.ExperimentConfig().replace(
            data={"image_size": 64}, generator={"ngf": 4, "low_res_ngf": 8,
                                                "low_res_max_size": 16})
        wide = factory.build_generator(cfg)
        wide.build()
        self.assertEqual(wide.fc.kernel.shape, (100, 64 * 16))
        self.assertEqual([(b.in_channels, b.out_channels) for b in wide.blocks],
                         [(64, 64)] * 3 + [(64, 32), (32, 16)])
        self.assertEqual(wide.initial_mask_predictor.in_channels, 64)
        self.assertEqual(wide.image_channels, 16)
        self.assertEqual(wide.blocks[3].conv_in.kernel.shape[-2:], (64, 32))
        z, sentence = helpers.noise_and_sentence(0)
        images, masks = wide(z, sentence, training=True)
        self.assertEqual(images.shape, (BATCH, 64, 64, 3))
        clone = ssagan_generator.SSAGANGenerator.from_config(wide.get_config())
        clone.build()
        clone.set_weights(wide.get_weights())
        self.assertAllClose(clone(z, sentence, training=False)[0],
                            wide(z, sentence, training=False)[0])
        with self.assertRaisesRegex(config_lib.ConfigError, "low_res_max_size"):
            cfg.replace(generator={"low_res_max_size": 2}).validate()
        with self.assertRaisesRegex(config_lib.ConfigError, "low_res_ngf"):
            cfg.replace(generator={"low_res_ngf": -1}).validate()

    def test_word_attention_reads_the_real_words(self):
        # At init the per-pixel affines start at zero, so the image ignores the words;
        # once they are non-zero the words change it, and padding words still do not.
        z, sentence, words_a, mask, _ = helpers.text_inputs(0)
        words_b = helpers.text_inputs(1)[2]
        plain = ssagan_generator.SSAGANGenerator(ngf=8, image_size=64)
        # Open residual gates: the zero-initialised word layers alone keep the words out.
        generator = ssagan_generator.SSAGANGenerator(
            ngf=8, image_size=64, word_attention_max_size=64, residual_gate_init=1.0)
        plain.build()
        generator.build()
        # Per block of widths (i, o): query i*i, key 256*i, value 256*i + i; the SSCBNs'
        # per-pixel gamma and beta layers 2 * (i*i + i) and 2 * (i*o + o).
        extra = sum(i * i + 2 * 256 * i + i + 2 * (i * i + i) + 2 * (i * o + o)
                    for i, o in ((64, 64),) * 4 + ((64, 32),))
        self.assertEqual(params.count_trainable_parameters(generator)
                         - params.count_trainable_parameters(plain), extra)
        self.assertEqual(generator.get_config()["word_attention_max_size"], 64)
        with self.assertRaisesRegex(ValueError, "attends over words"):
            generator(z, sentence, training=False)
        images_a = generator(z, sentence, words_a, mask, training=False)[0]
        images_b = generator(z, sentence, words_b, mask, training=False)[0]
        self.assertAllClose(images_a, images_b, atol=0, rtol=0)
        rng = np.random.default_rng(3)
        for block in generator.blocks:
            for sscbn in (block.sscbn_in, block.sscbn_out):
                for dense in (sscbn.gamma_word, sscbn.beta_word):
                    dense.kernel.assign(rng.standard_normal(dense.kernel.shape) * 0.1)
        images_a = generator(z, sentence, words_a, mask, training=False)[0]
        images_b = generator(z, sentence, words_b, mask, training=False)[0]
        self.assertGreater(np.abs(images_a - images_b).max(), 1e-3)
        padded = words_a.copy()
        padded[0, 3:] = words_b[0, 3:]  # sample 0's padding positions only
        self.assertAllClose(generator(z, sentence, padded, mask, training=False)[0],
                            images_a, atol=1e-6, rtol=0)

    def test_word_attention_up_to_a_resolution(self):
        generator = ssagan_generator.SSAGANGenerator(ngf=8, image_size=64,
                                                     word_attention_max_size=16)
        # Blocks at 4, 8, 16 px attend; those at 32 and 64 px read the sentence alone.
        self.assertEqual([b.word_context is not None for b in generator.blocks],
                         [True, True, True, False, False])
        self.assertEqual([b.sscbn_out.context_dim for b in generator.blocks],
                         [64, 64, 64, 0, 0])
        z, sentence, words, mask, _ = helpers.text_inputs(0)
        images, _ = generator(z, sentence, words, mask, training=False)
        self.assertEqual(images.shape, (BATCH, 64, 64, 3))

    def test_word_attention_coords_add_two_query_rows_per_block(self):
        # --gen_word_attention_coords reaches every attending block through the factory.
        cfg = config_lib.ExperimentConfig().replace(
            data={"image_size": 64}, generator={"ngf": 8, "word_attention_max_size": 16})
        plain = factory.build_generator(cfg)
        coords = factory.build_generator(cfg.replace(generator={"word_attention_coords": True}))
        plain.build()
        coords.build()
        # Three attending blocks, each query of width 64 reading (x, y) as well.
        self.assertEqual(params.count_trainable_parameters(coords)
                         - params.count_trainable_parameters(plain), 3 * 2 * 64)
        clone = ssagan_generator.SSAGANGenerator.from_config(coords.get_config())
        clone.build()
        clone.set_weights(coords.get_weights())
        z, sentence, words, mask, _ = helpers.text_inputs(0)
        self.assertAllClose(clone(z, sentence, words, mask, training=False)[0],
                            coords(z, sentence, words, mask, training=False)[0])

    def _perturb_sscbn(self, blocks):
        rng = np.random.default_rng(5)
        for block in blocks:
            for sscbn in (block.sscbn_in, block.sscbn_out):
                for dense in (sscbn.gamma_out, sscbn.beta_out):
                    dense.kernel.assign(
                        rng.standard_normal(dense.kernel.shape) * 0.1)

    @parameterized.parameters(0, 2)
    def test_block_is_gated_by_previous_mask(self, k):
        # Only block k's residual is open and conditioned. Forcing the mask
        # that should gate it to 0 removes the sentence; forcing it to 1 keeps
        # it.
        generator = ssagan_generator.SSAGANGenerator(ngf=8, image_size=64)
        z, sentence_a = helpers.noise_and_sentence(0)
        _, sentence_b = helpers.noise_and_sentence(1)
        generator.build()
        generator.blocks[k].gamma.assign(1.0)
        self._perturb_sscbn(generator.blocks)
        source = (generator.initial_mask_predictor if k == 0
                  else generator.blocks[k - 1].mask_predictor)
        for logit, expect_equal in ((-1e4, True), (1e4, False)):
            source.conv_logits.bias.assign([logit])
            images_a, masks = generator(z, sentence_a, training=True)
            images_b, _ = generator(z, sentence_b, training=True)
            self.assertAllEqual(masks[k], np.full(masks[k].shape, logit > 0))
            if expect_equal:
                self.assertAllEqual(images_a, images_b)
            else:
                self.assertGreater(np.abs(images_a - images_b).max(), 1e-3)

    def test_training_and_inference_batch_norm(self):
        generator = ssagan_generator.SSAGANGenerator(ngf=8, image_size=64)
        z, sentence = helpers.noise_and_sentence()
        generator(z, sentence, training=False)
        moving_mean = generator.image_batch_norm.moving_mean
        self.assertAllEqual(moving_mean, np.zeros(moving_mean.shape))
        images_train, _ = generator(z, sentence, training=True)
        # Momentum 0.9: the moving mean moved a tenth of the way to the batch
        # mean, which is not zero after the 1x1 shortcut conv.
        self.assertGreater(np.abs(moving_mean.numpy()).max(), 0.0)
        images_infer, _ = generator(z, sentence, training=False)
        images_infer_again, _ = generator(z, sentence, training=False)
        self.assertAllEqual(images_infer, images_infer_again)
        self.assertGreater(np.abs(images_train - images_infer).max(), 1e-3)

    def test_config_round_trip(self):
        generator = ssagan_generator.SSAGANGenerator(
            ngf=8, z_dim=32, sentence_dim=64, image_size=64, mask_channels=10)
        config = generator.get_config()
        self.assertContainsSubset(helpers.init_arg_names(ssagan_generator.SSAGANGenerator),
                                  config)
        clone = ssagan_generator.SSAGANGenerator.from_config(config)
        generator.build()
        clone.build()
        self.assertEqual([w.shape for w in clone.weights],
                         [w.shape for w in generator.weights])
        clone.set_weights(generator.get_weights())
        rng = np.random.default_rng(0)
        z = rng.standard_normal((BATCH, 32)).astype(np.float32)
        sentence = rng.standard_normal((BATCH, 64)).astype(np.float32)
        self.assertAllClose(generator(z, sentence, training=False)[0],
                            clone(z, sentence, training=False)[0])

    def test_graph_mode_matches_eager(self):
        generator = ssagan_generator.SSAGANGenerator(ngf=4, image_size=64)
        z, sentence = helpers.noise_and_sentence()
        eager, _ = generator(z, sentence, training=False)
        graph_fn = tf.function(
            lambda z, s: generator(z, s, training=False)[0])
        self.assertAllClose(graph_fn(z, sentence), eager, atol=1e-5)

    def test_mixed_precision_policy(self):
        generator = ssagan_generator.SSAGANGenerator(
            ngf=4, image_size=64, dtype="mixed_bfloat16")
        z, sentence = helpers.noise_and_sentence()
        images, masks = generator(z, sentence, training=True)
        self.assertEqual(images.dtype, tf.float32)
        self.assertEqual(masks[-1].dtype, tf.float32)
        self.assertEqual(generator.blocks[0].conv_in.compute_dtype, "bfloat16")
        self.assertEqual(generator.blocks[0].gamma.dtype, "float32")


if __name__ == "__main__":
    tf.test.main()
