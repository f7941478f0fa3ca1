"""Tests for tf_t2i.models.word_match and the SSA-GAN discriminator that reads words.

Expectations come from a numpy re-implementation of the word-region score.
"""

import keras
import numpy as np
import tensorflow as tf

from tf_t2i.models import interface
from tf_t2i.models import ssagan_discriminator
from tf_t2i.models import word_match


def _np_word_match(layer, features, words, mask):
    """The layer's logits [B] in numpy (float64), from its weights."""
    q = words @ layer.query.kernel.numpy()
    k = features.reshape(features.shape[0], -1, features.shape[-1]) @ layer.key.kernel.numpy()
    v = (features.reshape(features.shape[0], -1, features.shape[-1])
         @ layer.value.kernel.numpy() + layer.value.bias.numpy())
    u = words @ layer.word_out.kernel.numpy()
    d = layer.channels
    logits = np.einsum("btd,brd->btr", q, k) / np.sqrt(d)
    attention = np.exp(logits - logits.max(-1, keepdims=True))
    attention /= attention.sum(-1, keepdims=True)
    scores = np.einsum("btr,brd->btd", attention, v)
    scores = (scores * u).sum(-1) / np.sqrt(d)
    return (scores * mask).sum(-1) / np.maximum(mask.sum(-1), 1)


def _randomised(layer):
    """Gives the zero-initialised word projection random weights, as after training."""
    rng = np.random.default_rng(1)
    layer.word_out.kernel.assign(rng.normal(0, 0.5, layer.word_out.kernel.shape))
    return layer


class WordRegionMatchTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        self.features = rng.normal(size=(3, 4, 4, 8)).astype(np.float32)
        self.words = rng.normal(size=(3, 5, 6)).astype(np.float32)
        self.mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)

    def test_a_new_layer_scores_zero(self):
        layer = word_match.WordRegionMatch(8, 6, 4)
        logits, attention = layer(self.features, self.words, self.mask)
        self.assertAllEqual(logits, np.zeros(3))
        # Each word's attention is a distribution over the 16 regions.
        self.assertEqual(attention.shape, (3, 5, 16))
        self.assertAllClose(np.sum(attention, -1), np.ones((3, 5)), atol=1e-6)

    def test_logits_match_numpy(self):
        layer = word_match.WordRegionMatch(8, 6, 4)
        layer.build()
        _randomised(layer)
        logits, _ = layer(self.features, self.words, self.mask)
        expected = _np_word_match(layer, self.features.astype(np.float64),
                                  self.words.astype(np.float64), self.mask)
        self.assertAllClose(logits, expected, rtol=1e-4, atol=1e-5)
        self.assertGreater(np.abs(expected).min(), 1e-3)

    def test_padding_words_change_nothing(self):
        layer = _randomised(_built(word_match.WordRegionMatch(8, 6, 4)))
        logits, _ = layer(self.features, self.words, self.mask)
        other_padding = np.where(self.mask[..., None], self.words, 7.0).astype(np.float32)
        again, _ = layer(self.features, other_padding, self.mask)
        self.assertAllClose(logits, again, atol=1e-6)

    def test_no_real_word_scores_zero(self):
        layer = _randomised(_built(word_match.WordRegionMatch(8, 6, 4)))
        logits, _ = layer(self.features, self.words, np.zeros((3, 5), bool))
        self.assertAllEqual(logits, np.zeros(3))


def _built(layer):
    layer.build()
    return layer


class DiscriminatorWithWordsTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        self.images = rng.uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
        self.sentence = rng.normal(size=(2, 32)).astype(np.float32)
        self.words = rng.normal(size=(2, 4, 32)).astype(np.float32)
        self.mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)

    def _discriminator(self):
        d = ssagan_discriminator.SSAGANDiscriminator(ndf=4, sentence_dim=32, image_size=64,
                                                     word_logits=True)
        interface.build_discriminator(d, 64, 32)
        return d

    def test_logit_is_the_sentence_head_plus_the_word_score(self):
        d = self._discriminator()
        features = d(self.images)
        head = d.head(features, self.sentence)
        # New: the word score is 0, so D starts as the reference's.
        self.assertAllClose(d.logits(features, self.sentence, self.words, self.mask), head)
        _randomised(d.word_head)
        words, _ = d.word_head(features, self.words, self.mask)
        self.assertGreater(np.abs(words).min(), 1e-4)
        self.assertAllClose(d.logits(features, self.sentence, self.words, self.mask),
                            head + words, atol=1e-6)
        self.assertAllClose(d.score(self.images, self.sentence, words=self.words,
                                    word_mask=self.mask), head + words, atol=1e-6)

    def test_words_are_required(self):
        d = self._discriminator()
        with self.assertRaisesRegex(ValueError, "reads the words"):
            d.logits(d(self.images), self.sentence)

    def test_word_head_adds_weights_and_survives_serialisation(self):
        plain = ssagan_discriminator.SSAGANDiscriminator(ndf=4, sentence_dim=32,
                                                         image_size=64)
        plain.build()
        d = self._discriminator()
        # q (32 -> 64), k and v (64 -> 64, v with bias) and u (32 -> 64), d = 16 ndf = 64.
        extra = 32 * 64 + 64 * 64 + 64 * 64 + 64 + 32 * 64
        self.assertEqual(d.count_params(), plain.count_params() + extra)
        clone = ssagan_discriminator.SSAGANDiscriminator.from_config(d.get_config())
        interface.build_discriminator(clone, 64, 32)
        self.assertTrue(clone.word_logits)
        self.assertEqual(clone.count_params(), d.count_params())

    def test_words_can_attend_over_the_8x8_regions_of_the_block_before(self):
        d = ssagan_discriminator.SSAGANDiscriminator(ndf=4, sentence_dim=32, image_size=64,
                                                     word_logits=True, word_region_size=8)
        interface.build_discriminator(d, 64, 32)
        _randomised(d.word_head)
        features, regions = d(self.images)
        self.assertEqual(features.shape, (2, 4, 4, 64))
        # The output of the block before the last, by hand.
        x = d.image_conv(self.images)
        for block in d.blocks[:-1]:
            x = block(x)
        self.assertEqual(regions.shape, (2, 8, 8, 32))
        self.assertAllClose(regions, x, atol=1e-6)
        self.assertAllClose(d.blocks[-1](x), features, atol=1e-6)
        expected = (d.head(features, self.sentence)
                    + _np_word_match(d.word_head, regions.numpy().astype(np.float64),
                                     self.words.astype(np.float64), self.mask))
        logits = d.logits((features, regions), self.sentence, self.words, self.mask)
        self.assertAllClose(logits, expected, rtol=1e-4, atol=1e-5)
        # k and v read 8 * ndf = 32 channels instead of 64.
        at_4x4 = self._discriminator()
        self.assertEqual(at_4x4.count_params() - d.count_params(), 2 * (64 - 32) * 64)
        clone = ssagan_discriminator.SSAGANDiscriminator.from_config(d.get_config())
        interface.build_discriminator(clone, 64, 32)
        self.assertEqual(clone.word_region_size, 8)
        self.assertEqual(clone.count_params(), d.count_params())

    def test_region_size_must_be_4_or_8(self):
        with self.assertRaisesRegex(ValueError, "word_region_size must be 4 or 8, got 16"):
            ssagan_discriminator.SSAGANDiscriminator(ndf=4, image_size=64, word_logits=True,
                                                     word_region_size=16)


if __name__ == "__main__":
    tf.test.main()
