"""Tests for tf_t2i.models.interface's maps: `map_layout` and `generate_with_maps`, for
SSA-GAN and every AttnGAN-family generator, against the generators' own outputs."""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tf_t2i.models import attngan_generator
from tf_t2i.models import interface
from tf_t2i.models import ssagan_generator
from tf_t2i.models import style_attngan_generator

Z_DIM, TEXT_DIM, WORDS = 8, 16, 5
# Example 0 has two padding positions, example 1 none.
WORD_MASK = [[True, True, True, False, False], [True] * WORDS]


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    z = tf.constant(rng.standard_normal((2, Z_DIM)), tf.float32)
    sentence = tf.constant(rng.standard_normal((2, TEXT_DIM)), tf.float32)
    words = tf.constant(rng.standard_normal((2, WORDS, TEXT_DIM)), tf.float32)
    return z, sentence, words, tf.constant(WORD_MASK)


def _word_generator(name, image_size):
    if name == "attngan":
        generator = attngan_generator.AttnGANGenerator(
            ngf=4, z_dim=Z_DIM, condition_dim=8, sentence_dim=TEXT_DIM, num_residual=1,
            image_size=image_size)
    else:
        cls = {"style1": style_attngan_generator.Style1AttnGANGenerator,
               "style2": style_attngan_generator.Style2AttnGANGenerator}[name]
        generator = cls(ngf=4, z_dim=Z_DIM, condition_dim=8, w_dim=8, sentence_dim=TEXT_DIM,
                        image_size=image_size, mapping_layers=2)
    interface.build_generator(generator, Z_DIM, TEXT_DIM, WORDS)
    return generator


class SSAGANMapsTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.generator = ssagan_generator.SSAGANGenerator(
            ngf=4, z_dim=Z_DIM, sentence_dim=TEXT_DIM, image_size=64, mask_channels=8)
        interface.build_generator(self.generator, Z_DIM, TEXT_DIM, WORDS)

    def test_layout_is_one_mask_per_block(self):
        layout = interface.map_layout(self.generator, WORDS)
        self.assertEqual(layout.labels, ("mask, block 0 (4x4)", "mask, block 1 (8x8)",
                                         "mask, block 2 (16x16)", "mask, block 3 (32x32)",
                                         "mask, block 4 (64x64)"))
        self.assertEqual(layout.word_positions, (-1,) * 5)
        self.assertEqual(layout.resolutions, (4, 8, 16, 32, 64))

    def test_maps_are_the_masks_resized_and_images_unchanged(self):
        z, sentence, _, _ = _inputs()
        generated, maps, layout = interface.generate_with_maps(self.generator, z, sentence)
        images, masks = self.generator(z, sentence, training=False)
        self.assertAllEqual(generated.final, images)
        self.assertAllEqual(generated.final, interface.generate(self.generator, z, sentence).final)
        self.assertEqual(maps.shape, (2, layout.num_maps, 64, 64))
        for k, mask in enumerate(masks):
            expected = tf.image.resize(mask, [64, 64], method="bilinear")[..., 0]
            self.assertAllClose(maps[:, k], expected, atol=1e-6)
        self.assertAllEqual(maps[:, 4], masks[4][..., 0])  # already at 64 px: as predicted
        self.assertAllInRange(maps, 0.0, 1.0)


class WordAttentionMapsTest(parameterized.TestCase, tf.test.TestCase):

    @parameterized.parameters("attngan", "style1", "style2")
    def test_maps_are_the_normalised_attention_per_word(self, name):
        generator = _word_generator(name, image_size=128)
        z, sentence, words, mask = _inputs()
        generated, maps, layout = interface.generate_with_maps(generator, z, sentence, words,
                                                               mask)
        self.assertEqual(layout.labels, ("stage 2 (64x64)",) * WORDS)
        self.assertEqual(layout.word_positions, tuple(range(WORDS)))
        out = generator(z, sentence, words, mask, training=False,
                        noise_seed=interface.noise_seeds_from(z))
        self.assertAllEqual(generated.final, out["images"][-1])
        self.assertAllEqual(generated.final,
                            interface.generate(generator, z, sentence, words, mask).final)
        # Independently: zero the padding words, resize, divide each map by its maximum.
        (attention,) = out["attention"]  # [B, 64, 64, T]
        attention = attention.numpy() * np.asarray(WORD_MASK, np.float32)[:, None, None, :]
        resized = tf.image.resize(attention, [128, 128], method="bilinear").numpy()
        resized = resized.transpose(0, 3, 1, 2)  # [B, T, 128, 128]
        peak = resized.max(axis=(2, 3), keepdims=True)
        expected = np.divide(resized, peak, out=np.zeros_like(resized), where=peak > 0)
        self.assertEqual(maps.shape, (2, WORDS, 128, 128))
        self.assertAllClose(maps, expected, atol=1e-5)
        self.assertAllClose(np.max(maps, axis=(2, 3)), np.asarray(WORD_MASK, np.float32))

    def test_three_stages_order_maps_stage_major(self):
        generator = _word_generator("attngan", image_size=256)
        layout = interface.map_layout(generator, WORDS)
        self.assertEqual(layout.labels,
                         ("stage 2 (64x64)",) * WORDS + ("stage 3 (128x128)",) * WORDS)
        self.assertEqual(layout.word_positions, tuple(range(WORDS)) * 2)
        _, maps, _ = interface.generate_with_maps(generator, *_inputs())
        self.assertEqual(maps.shape, (2, 2 * WORDS, 256, 256))

    def test_one_stage_has_no_word_attention(self):
        generator = _word_generator("attngan", image_size=64)
        self.assertEqual(interface.map_layout(generator, WORDS).num_maps, 0)
        generated, maps, _ = interface.generate_with_maps(generator, *_inputs())
        self.assertEqual(maps.shape, (2, 0, 64, 64))
        self.assertEqual(generated.final.shape, (2, 64, 64, 3))


if __name__ == "__main__":
    tf.test.main()
