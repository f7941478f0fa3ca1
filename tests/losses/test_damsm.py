"""Tests for tf_t2i.losses.damsm."""

import math

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tf_t2i.losses import damsm


def _np_softmax(values):
    values = np.asarray(values, np.float64)
    exps = np.exp(values - values.max())
    return exps / exps.sum()


def _np_cosine(x, y):
    return float(np.dot(x, y)) / max(
        float(np.linalg.norm(x)) * float(np.linalg.norm(y)), 1e-8)


def _np_symmetric_ce(logits, class_ids):
    """Returns (per-example sum of both directions, mean row CE, mean col CE)."""
    b = logits.shape[0]
    logits = logits.copy()
    if class_ids is not None:
        for j in range(b):
            for i in range(b):
                if i != j and class_ids[i] == class_ids[j]:
                    logits[j, i] = -np.inf
    rows, cols = [], []
    for k in range(b):
        rows.append(-math.log(_np_softmax(logits[k, :])[k]))
        cols.append(-math.log(_np_softmax(logits[:, k])[k]))
    return np.array(rows) + np.array(cols), np.mean(rows), np.mean(cols)


def _np_word_loss(words, lengths, regions, class_ids, gamma1, gamma2, gamma3):
    """Loop implementation following the AttnGAN words_loss / func_attention.

    words: [B, T, D] with caption i's real words in words[i, :lengths[i]];
    regions: [B, H, W, D]. Returns (per_example, mean row CE, mean col CE,
    own attention [B, T, H, W]).
    """
    b, t_max = words.shape[0], words.shape[1]
    h, w = regions.shape[1], regions.shape[2]
    flat = regions.reshape(b, h * w, -1).astype(np.float64)
    similarity = np.zeros([b, b])  # [image, caption]
    own_attention = np.zeros([b, t_max, h, w])
    for i in range(b):
        caption = words[i, :lengths[i]].astype(np.float64)  # [L, D]
        for j in range(b):
            # Softmax over the words for each region, then over regions.
            over_words = np.zeros([h * w, lengths[i]])
            for r in range(h * w):
                over_words[r] = _np_softmax(
                    [np.dot(flat[j, r], caption[t]) for t in range(lengths[i])])
            total = 0.0
            for t in range(lengths[i]):
                alpha = _np_softmax(gamma1 * over_words[:, t])
                context = np.zeros(flat.shape[2])
                for r in range(h * w):
                    context += alpha[r] * flat[j, r]
                total += math.exp(gamma2 * _np_cosine(caption[t], context))
                if i == j:
                    own_attention[i, t] = alpha.reshape(h, w)
            similarity[j, i] = math.log(total)
    per_example, row_mean, col_mean = _np_symmetric_ce(gamma3 * similarity,
                                                        class_ids)
    return per_example, row_mean, col_mean, own_attention


def _mask_from_lengths(lengths, t_max):
    return np.array([[t < n for t in range(t_max)] for n in lengths])


class DAMSMWordLossTest(tf.test.TestCase, parameterized.TestCase):

    def _single_region_case(self):
        # Two captions of up to two words, two images of one region each.
        # Caption 1's second word is padding and gets a value that would change
        # the result if it were used.
        words = np.array([[[1.0, 0.0], [0.0, 1.0]],
                          [[0.0, 1.0], [5.0, 5.0]]], np.float32)
        mask = np.array([[True, True], [True, False]])
        regions = np.array([[[[1.0, 0.0]]], [[[0.0, 1.0]]]], np.float32)
        return words, mask, regions

    def test_single_region_hand_computed(self):
        # With one region the attention is 1 and the context is that region.
        # R(image, caption) = log sum_t exp(5 cos):
        #   R(0,0) = log(e^5 + e^0) =: L   R(0,1) = log(e^0) = 0
        #   R(1,0) = log(e^0 + e^5) = L    R(1,1) = log(e^5) = 5
        # logits = 10 R = [[10L, 0], [10L, 50]] (rows images, columns captions).
        #   row 0, target 0: log(1 + e^(-10L));  row 1: log(1 + e^(10L - 50))
        #   col 0, target 0: log(2);             col 1: log(1 + e^-50)
        words, mask, regions = self._single_region_case()
        big_l = math.log(math.exp(5.0) + 1.0)
        expected = [
            math.log1p(math.exp(-10 * big_l)) + math.log(2.0),
            math.log1p(math.exp(10 * big_l - 50)) + math.log1p(math.exp(-50.0)),
        ]
        per_example, attention = damsm.damsm_word_loss(words, mask, regions)
        self.assertAllClose(per_example, expected, rtol=1e-5)
        # Every valid word attends fully to the single region; padding is zero.
        self.assertAllClose(attention, [[[[1.0]], [[1.0]]], [[[1.0]], [[0.0]]]])

    def test_single_region_same_class_masks_off_diagonal(self):
        # Both examples share a class: only the diagonal is left in each softmax,
        # so every cross-entropy is 0. Distinct classes change nothing.
        words, mask, regions = self._single_region_case()
        per_example, _ = damsm.damsm_word_loss(
            words, mask, regions, class_ids=tf.constant([3, 3]))
        self.assertAllClose(per_example, [0.0, 0.0])
        distinct, _ = damsm.damsm_word_loss(
            words, mask, regions, class_ids=tf.constant([1, 2]))
        unmasked, _ = damsm.damsm_word_loss(words, mask, regions)
        self.assertAllClose(distinct, unmasked)

    def test_attention_hand_computed(self):
        # One caption with words e1, e2 (and one padding word), one image with two
        # regions e1, e2: scores s[t, r] = identity. Softmax over words gives, per
        # region, p = e / (e + 1) for the matching word and 1 - p for the other.
        # Word 0 over regions: softmax(4 [p, 1 - p]) -> first entry
        # sigmoid(4 (2p - 1)) = sigmoid(4 tanh(1/2)) ~= 0.864; word 1 mirrored.
        words = np.array([[[1.0, 0.0], [0.0, 1.0], [9.0, -9.0]]], np.float32)
        mask = np.array([[1, 1, 0]])
        regions = np.array([[[[1.0, 0.0], [0.0, 1.0]]]], np.float32)
        alpha = 1.0 / (1.0 + math.exp(-4.0 * math.tanh(0.5)))
        per_example, attention = damsm.damsm_word_loss(words, mask, regions)
        self.assertEqual(attention.shape, (1, 3, 1, 2))
        self.assertAllClose(
            attention,
            [[[[alpha, 1 - alpha]], [[1 - alpha, alpha]], [[0.0, 0.0]]]])
        # A single pair: each softmax has one entry, so the loss is 0.
        self.assertAllClose(per_example, [0.0])

    @parameterized.named_parameters(
        ('no_classes', None, 4.0),
        ('classes', [0, 1, 0, 2], 4.0),
        ('gamma1_5', [0, 1, 0, 2], 5.0),
    )
    def test_random_against_numpy(self, class_ids, gamma1):
        for dim in (8, 16):  # 9 regions: |context| from the context (8), the Gram (16)
            with self.subTest(dim=dim):
                self._check_random_against_numpy(class_ids, gamma1, dim)

    def _check_random_against_numpy(self, class_ids, gamma1, dim):
        rng = np.random.default_rng(11)
        lengths = [6, 3, 1, 4]
        words = rng.normal(size=[4, 6, dim]).astype(np.float32) * 0.5
        regions = rng.normal(size=[4, 3, 3, dim]).astype(np.float32) * 0.5
        mask = _mask_from_lengths(lengths, 6)
        expected, row_mean, col_mean, expected_attention = _np_word_loss(
            words, lengths, regions, class_ids, gamma1, 5.0, 10.0)
        per_example, attention = damsm.damsm_word_loss(
            tf.constant(words), tf.constant(mask), tf.constant(regions),
            class_ids=None if class_ids is None else tf.constant(class_ids),
            gamma1=gamma1)
        self.assertEqual(per_example.shape, (4,))
        self.assertAllClose(per_example, expected, rtol=1e-4, atol=1e-4)
        # The batch mean is the reference's w_loss0 + w_loss1.
        self.assertAllClose(
            tf.reduce_mean(per_example), row_mean + col_mean, rtol=1e-4, atol=1e-4)
        self.assertAllClose(attention, expected_attention, rtol=1e-4, atol=1e-5)

    def test_padding_values_are_ignored_and_gradients_finite(self):
        rng = np.random.default_rng(12)
        lengths = [5, 2, 3]
        mask = _mask_from_lengths(lengths, 5)
        words = rng.normal(size=[3, 5, 4]).astype(np.float32)
        zero_padded = tf.Variable(words * mask[:, :, None])
        noisy_padded = words + (1 - mask[:, :, None]) * 100.0
        regions = tf.Variable(rng.normal(size=[3, 2, 2, 4]).astype(np.float32))
        with tf.GradientTape() as tape:
            loss, _ = damsm.damsm_word_loss(zero_padded, mask, regions)
            total = tf.reduce_sum(loss)
        other, _ = damsm.damsm_word_loss(noisy_padded, mask, regions)
        self.assertAllClose(loss, other, rtol=1e-5, atol=1e-5)
        grads = tape.gradient(total, [zero_padded, regions])
        for g in grads:
            self.assertTrue(np.all(np.isfinite(g.numpy())))
        self.assertGreater(np.abs(grads[1].numpy()).sum(), 0.0)
        # Padded words get no gradient.
        self.assertAllEqual(grads[0].numpy()[~mask], np.zeros([15 - 10, 4]))

    def test_gradients_against_numpy_finite_differences(self):
        # The loss scores packed valid words with segment softmaxes; its gradient must
        # be the gradient of the reference's math (central differences of the loop).
        rng = np.random.default_rng(14)
        lengths = [3, 1, 2]
        mask = _mask_from_lengths(lengths, 3)
        words = (rng.normal(size=[3, 3, 4]) * 0.7 * mask[:, :, None]).astype(np.float32)
        regions = (rng.normal(size=[3, 2, 2, 4]) * 0.7).astype(np.float32)
        word_var, region_var = tf.Variable(words), tf.Variable(regions)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(damsm.damsm_word_loss(word_var, mask, region_var)[0])
        word_grad, region_grad = tape.gradient(loss, [word_var, region_var])

        def numpy_loss(w, r):
            return np.mean(_np_word_loss(w, lengths, r, None, 4.0, 5.0, 10.0)[0])

        def central_difference(array, loss_of):
            grad = np.zeros(array.shape)
            for index in np.ndindex(*array.shape):
                step = np.zeros(array.shape)
                step[index] = 1e-4
                grad[index] = (loss_of(array + step) - loss_of(array - step)) / 2e-4
            return grad

        words64, regions64 = words.astype(np.float64), regions.astype(np.float64)
        expected_words = central_difference(words64, lambda w: numpy_loss(w, regions64))
        expected_regions = central_difference(regions64, lambda r: numpy_loss(words64, r))
        self.assertAllClose(word_grad.numpy() * mask[:, :, None],
                            expected_words * mask[:, :, None], rtol=1e-3, atol=1e-4)
        self.assertAllClose(region_grad, expected_regions, rtol=1e-3, atol=1e-4)

    def test_unknown_region_shape_gives_the_same_value(self):
        # Traced without static region dimensions, |context| comes from the context
        # vectors; with them (4 regions of 6 dimensions), from the Gram matrix.
        rng = np.random.default_rng(17)
        mask = tf.constant(_mask_from_lengths([3, 2, 4], 4))
        words = tf.constant(rng.normal(size=[3, 4, 6]).astype(np.float32))
        regions = tf.constant(rng.normal(size=[3, 2, 2, 6]).astype(np.float32))
        loose = tf.function(damsm.damsm_word_loss, input_signature=[
            tf.TensorSpec([None, None, None]), tf.TensorSpec([None, None], tf.bool),
            tf.TensorSpec([None, None, None, None])])
        static = damsm.damsm_word_loss(words, mask, regions)
        traced = loose(words, mask, regions)
        self.assertAllClose(traced[0], static[0], rtol=1e-5, atol=1e-5)
        self.assertAllClose(traced[1], static[1], rtol=1e-5, atol=1e-6)

    def test_xla_compiles_it_with_the_same_value(self):
        rng = np.random.default_rng(15)
        lengths = [4, 1, 3]
        mask = tf.constant(_mask_from_lengths(lengths, 4))
        words = tf.constant(rng.normal(size=[3, 4, 5]).astype(np.float32))
        regions = tf.constant(rng.normal(size=[3, 2, 2, 5]).astype(np.float32))
        eager = damsm.damsm_word_loss(words, mask, regions)
        compiled = tf.function(damsm.damsm_word_loss, jit_compile=True)(words, mask, regions)
        self.assertAllClose(compiled[0], eager[0], rtol=1e-5, atol=1e-5)
        self.assertAllClose(compiled[1], eager[1], rtol=1e-5, atol=1e-6)

    def test_bfloat16_matmuls_stay_close_to_float32(self):
        rng = np.random.default_rng(16)
        lengths = [5, 2, 4, 3]
        mask = tf.constant(_mask_from_lengths(lengths, 5))
        words = tf.Variable(rng.normal(size=[4, 5, 16]).astype(np.float32) * 0.3)
        regions = tf.Variable(rng.normal(size=[4, 3, 3, 16]).astype(np.float32) * 0.3)
        results = {}
        for dtype in ("float32", "bfloat16"):
            with tf.GradientTape() as tape:
                per_example, attention = damsm.damsm_word_loss(
                    words, mask, regions, matmul_dtype=dtype)
                total = tf.reduce_mean(per_example)
            results[dtype] = (per_example, attention, tape.gradient(total, regions))
            self.assertEqual(per_example.dtype, tf.float32)
            self.assertEqual(attention.dtype, tf.float32)
        (loss32, att32, grad32), (loss16, att16, grad16) = (results["float32"],
                                                            results["bfloat16"])
        # bf16 keeps 8 bits of mantissa: about 0.4% per product.
        self.assertAllClose(loss16, loss32, rtol=2e-2, atol=2e-2)
        self.assertAllClose(att16, att32, atol=2e-2)
        self.assertLess(float(tf.norm(grad16 - grad32) / tf.norm(grad32)), 0.05)
        self.assertGreater(float(tf.reduce_max(tf.abs(loss16 - loss32))), 0.0)

    def test_caption_without_words_stays_finite(self):
        # Callers never pass one, but a bad batch must not turn the loss into NaN.
        mask = tf.constant([[True, True], [False, False]])
        words = tf.ones([2, 2, 3])
        regions = tf.ones([2, 1, 2, 3])
        per_example, attention = damsm.damsm_word_loss(words, mask, regions)
        self.assertTrue(np.all(np.isfinite(per_example.numpy())))
        self.assertAllEqual(attention[1], tf.zeros([2, 1, 2]))

    def test_tf_function_and_mixed_precision(self):
        rng = np.random.default_rng(13)
        lengths = [4, 2]
        mask = tf.constant(_mask_from_lengths(lengths, 4).astype(np.int32))
        words = rng.normal(size=[2, 4, 6]).astype(np.float32) * 0.5
        regions = rng.normal(size=[2, 2, 3, 6]).astype(np.float32) * 0.5
        fn = tf.function(damsm.damsm_word_loss)
        per_example, attention = fn(
            tf.constant(words, tf.float16), mask, tf.constant(regions, tf.float16),
            tf.constant([0, 1]))
        self.assertEqual(per_example.dtype, tf.float32)
        self.assertEqual(attention.shape, (2, 4, 2, 3))
        expected, _, _, _ = _np_word_loss(
            words.astype(np.float16).astype(np.float32), lengths,
            regions.astype(np.float16).astype(np.float32), [0, 1], 4.0, 5.0, 10.0)
        self.assertAllClose(per_example, expected, rtol=1e-4, atol=1e-4)


class DAMSMSentenceLossTest(tf.test.TestCase, parameterized.TestCase):

    def test_hand_computed(self):
        # Images (1,0), (0,1); sentences (1,0), (1,1). Cosines (image, sentence):
        #   [[1, 1/sqrt2], [0, 1/sqrt2]], logits = 10 x that, c := 10/sqrt2.
        #   row 0, target 0: log(1 + e^(c - 10));  row 1: log(1 + e^(-c))
        #   col 0, target 0: log(1 + e^-10);       col 1: log(2)
        codes = tf.constant([[1.0, 0.0], [0.0, 1.0]])
        sentences = tf.constant([[1.0, 0.0], [1.0, 1.0]])
        c = 10.0 / math.sqrt(2.0)
        expected = [
            math.log1p(math.exp(c - 10.0)) + math.log1p(math.exp(-10.0)),
            math.log1p(math.exp(-c)) + math.log(2.0),
        ]
        self.assertAllClose(
            damsm.damsm_sentence_loss(sentences, codes), expected, rtol=1e-5)
        # Same class: only the diagonal remains, all cross-entropies are 0.
        self.assertAllClose(
            damsm.damsm_sentence_loss(sentences, codes, tf.constant([7, 7])),
            [0.0, 0.0])

    @parameterized.parameters((None,), ([0, 1, 0, 2, 1],))
    def test_random_against_numpy(self, class_ids):
        rng = np.random.default_rng(21)
        sentences = rng.normal(size=[5, 6]).astype(np.float32)
        codes = rng.normal(size=[5, 6]).astype(np.float32)
        logits = np.zeros([5, 5])
        for j in range(5):
            for i in range(5):
                logits[j, i] = 10.0 * _np_cosine(codes[j].astype(np.float64),
                                                 sentences[i].astype(np.float64))
        expected, row_mean, col_mean = _np_symmetric_ce(logits, class_ids)
        per_example = damsm.damsm_sentence_loss(
            tf.constant(sentences), tf.constant(codes),
            None if class_ids is None else tf.constant(class_ids))
        self.assertAllClose(per_example, expected, rtol=1e-5, atol=1e-5)
        self.assertAllClose(
            tf.reduce_mean(per_example), row_mean + col_mean, rtol=1e-5)

    def test_tf_function_mixed_precision_and_zero_vector_gradient(self):
        sentences = tf.Variable([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
        codes = tf.constant([[0.5, -1.0, 2.0], [1.0, 1.0, 1.0]], tf.bfloat16)

        @tf.function
        def loss_and_grad():
            with tf.GradientTape() as tape:
                loss = damsm.damsm_sentence_loss(
                    tf.cast(sentences, tf.bfloat16), codes)
                total = tf.reduce_sum(loss)
            return loss, tape.gradient(total, sentences)

        loss, grad = loss_and_grad()
        self.assertEqual(loss.dtype, tf.float32)
        # A zero sentence has cosine 0 with every image (the clamped norm):
        # logits = 10 [[cos(c0, s0), 0], [cos(c1, s0), 0]].
        c0 = codes[0].numpy().astype(np.float64)
        c1 = codes[1].numpy().astype(np.float64)
        s0 = np.array([1.0, 2.0, 0.0])
        logits = 10.0 * np.array([[_np_cosine(c0, s0), 0.0],
                                  [_np_cosine(c1, s0), 0.0]])
        expected, _, _ = _np_symmetric_ce(logits, None)
        self.assertAllClose(loss, expected, rtol=1e-4, atol=1e-4)
        self.assertTrue(np.all(np.isfinite(grad.numpy())))


class HardNegativeTest(tf.test.TestCase):
    """One wrong caption per image joins its image-to-caption softmax (NegCLIP)."""

    def test_sentence_hand_computed(self):
        # Images (1,0), (0,1); sentences (1,0), (0,1): logits 10 I. Hard negatives
        # (1,1) for image 0 (cosine 1/sqrt2) and (0,1) for image 1 (cosine 1, as
        # close as its own caption).
        #   row 0: log(1 + e^-10 + e^(c - 10)), c = 10/sqrt2;  col 0: log(1 + e^-10)
        #   row 1: log(1 + e^-10 + 1);                        col 1: log(1 + e^-10)
        codes = tf.constant([[1.0, 0.0], [0.0, 1.0]])
        sentences = tf.constant([[1.0, 0.0], [0.0, 1.0]])
        hard = tf.constant([[1.0, 1.0], [0.0, 1.0]])
        c = 10.0 / math.sqrt(2.0)
        e = math.exp(-10.0)
        expected = [math.log(1 + e + math.exp(c - 10.0)) + math.log1p(e),
                    math.log(2 + e) + math.log1p(e)]
        self.assertAllClose(damsm.damsm_sentence_loss(sentences, codes, hard_negative=hard),
                            expected, rtol=1e-5)

    def test_word_against_numpy_with_extra_column(self):
        # The hard negatives' R(i, i) from the loop reference, as one more column.
        rng = np.random.default_rng(5)
        b, t, h, w, d = 3, 4, 2, 2, 5
        words = rng.normal(size=[b, t, d]).astype(np.float32)
        hard_words = rng.normal(size=[b, t, d]).astype(np.float32)
        regions = rng.normal(size=[b, h, w, d]).astype(np.float32)
        lengths, hard_lengths = [4, 2, 3], [3, 4, 1]
        relevance = np.zeros([b, b])
        hard_relevance = np.zeros([b])
        for j in range(b):
            for i in range(b):
                relevance[j, i] = _np_relevance(words[i, :lengths[i]], regions[j], 4.0, 5.0)
            hard_relevance[j] = _np_relevance(hard_words[j, :hard_lengths[j]], regions[j],
                                              4.0, 5.0)
        logits = 10.0 * relevance
        rows = [-math.log(_np_softmax(np.append(logits[k], 10.0 * hard_relevance[k]))[k])
                for k in range(b)]
        cols = [-math.log(_np_softmax(logits[:, k])[k]) for k in range(b)]
        per_example, _ = damsm.damsm_word_loss(
            words, _mask_from_lengths(lengths, t), regions,
            hard_negative=(hard_words, _mask_from_lengths(hard_lengths, t)))
        self.assertAllClose(per_example, np.array(rows) + np.array(cols), rtol=1e-4,
                            atol=1e-4)

    def test_paired_relevance_is_the_diagonal(self):
        # Caption i against image i only equals the B x B relevance's diagonal, which
        # the loss without hard negatives reads (checked through the loop reference).
        rng = np.random.default_rng(8)
        words = rng.normal(size=[4, 5, 6]).astype(np.float32)
        regions = rng.normal(size=[4, 3, 3, 6]).astype(np.float32)
        lengths = [5, 1, 3, 4]
        expected = [_np_relevance(words[i, :lengths[i]], regions[i], 4.0, 5.0)
                    for i in range(4)]
        self.assertAllClose(
            damsm.paired_word_relevance(words, _mask_from_lengths(lengths, 5), regions),
            expected, rtol=1e-5, atol=1e-5)

    def test_a_hard_negative_raises_the_loss_and_its_gradient_lowers_it(self):
        rng = np.random.default_rng(2)
        sentences = rng.normal(size=[4, 8]).astype(np.float32)
        near = sentences + 0.1 * rng.normal(size=[4, 8]).astype(np.float32)
        codes = tf.Variable(rng.normal(size=[4, 8]).astype(np.float32))
        plain = damsm.damsm_sentence_loss(sentences, codes)
        with tf.GradientTape() as tape:
            with_hard = damsm.damsm_sentence_loss(sentences, codes, hard_negative=near)
            total = tf.reduce_sum(with_hard)
        # One more candidate in each row's softmax: every example's loss grows.
        self.assertAllGreater(with_hard - plain, 0.0)
        stepped = codes - 0.1 * tape.gradient(total, codes)
        self.assertLess(
            float(tf.reduce_sum(damsm.damsm_sentence_loss(sentences, stepped,
                                                          hard_negative=near))),
            float(total))


def _np_relevance(caption, image_regions, gamma1, gamma2):
    """R of one caption [L, D] against one image's regions [H, W, D] (AttnGAN)."""
    flat = image_regions.reshape(-1, image_regions.shape[-1]).astype(np.float64)
    caption = caption.astype(np.float64)
    over_words = np.stack([_np_softmax(flat[r] @ caption.T) for r in range(len(flat))])
    total = 0.0
    for t in range(len(caption)):
        alpha = _np_softmax(gamma1 * over_words[:, t])
        total += math.exp(gamma2 * _np_cosine(caption[t], alpha @ flat))
    return math.log(total)


if __name__ == '__main__':
    tf.test.main()
