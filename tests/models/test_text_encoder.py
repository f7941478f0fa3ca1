"""Tests for tf_t2i.models.text_encoder."""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tf_t2i.models.text_encoder import DAMSMTextEncoder

VOCAB = 23


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_lstm(inputs, kernel, recurrent_kernel, bias):
    """Plain LSTM over `inputs` [L, D]; gate order i, f, c, o (Keras).

    Returns the hidden state after every step, [L, units].
    """
    units = recurrent_kernel.shape[0]
    h = np.zeros(units, np.float64)
    c = np.zeros(units, np.float64)
    outputs = []
    for x in inputs:
        z = x @ kernel + h @ recurrent_kernel + bias
        i = _sigmoid(z[:units])
        f = _sigmoid(z[units:2 * units])
        g = np.tanh(z[2 * units:3 * units])
        o = _sigmoid(z[3 * units:])
        c = f * c + i * g
        h = o * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs) if outputs else np.zeros((0, units))


def _numpy_encoder(encoder, ids):
    """Reference DAMSM text encoder in numpy, one caption at a time.

    Reads only the valid tokens (as pack_padded_sequence does), the backward
    direction from the last valid token to the first.
    """
    embeddings = encoder.embedding.embeddings.numpy().astype(np.float64)
    forward = [w.numpy().astype(np.float64)
               for w in encoder.rnn.forward_layer.weights]
    backward = [w.numpy().astype(np.float64)
                for w in encoder.rnn.backward_layer.weights]
    units = encoder.hidden_dim // 2
    batch, steps = ids.shape
    words = np.zeros((batch, steps, 2 * units))
    sentences = np.zeros((batch, 2 * units))
    for b in range(batch):
        length = int(np.count_nonzero(ids[b]))
        if length == 0:
            continue
        x = embeddings[ids[b, :length]]
        h_forward = _numpy_lstm(x, *forward)
        h_backward = _numpy_lstm(x[::-1], *backward)[::-1]
        words[b, :length] = np.concatenate([h_forward, h_backward], axis=-1)
        sentences[b] = np.concatenate([h_forward[-1], h_backward[0]])
    return words, sentences


def _random_captions(rng, lengths, steps):
    ids = np.zeros((len(lengths), steps), np.int32)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, VOCAB, size=length)
    return ids


class DAMSMTextEncoderTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(0)
        self.rng = np.random.default_rng(0)

    def _encoder(self, **kwargs):
        kwargs.setdefault("embedding_dim", 12)
        kwargs.setdefault("hidden_dim", 10)
        return DAMSMTextEncoder(VOCAB, **kwargs)

    @parameterized.named_parameters(("even", 10), ("default_width", 256))
    def test_output_shapes_and_dtypes(self, hidden_dim):
        encoder = self._encoder(hidden_dim=hidden_dim)
        ids = _random_captions(self.rng, [3, 5], steps=6)
        words, sentence = encoder(ids)
        self.assertEqual(words.shape, (2, 6, hidden_dim))
        self.assertEqual(sentence.shape, (2, hidden_dim))
        self.assertEqual(words.dtype, tf.float32)
        self.assertEqual(sentence.dtype, tf.float32)

    def test_odd_hidden_dim_raises(self):
        with self.assertRaisesRegex(ValueError, "even"):
            self._encoder(hidden_dim=7)

    def test_matches_numpy_lstm(self):
        encoder = self._encoder()
        ids = _random_captions(self.rng, [1, 4, 7, 7, 2], steps=7)
        words, sentence = encoder(ids, training=False)
        expected_words, expected_sentence = _numpy_encoder(encoder, ids)
        self.assertAllClose(words, expected_words, atol=1e-5, rtol=0)
        self.assertAllClose(sentence, expected_sentence, atol=1e-5, rtol=0)

    def test_padded_positions_are_exactly_zero(self):
        encoder = self._encoder()
        ids = _random_captions(self.rng, [2, 5, 3], steps=6)
        words, _ = encoder(ids)
        words = words.numpy()
        padding = ids == 0
        self.assertTrue(np.all(words[padding] == 0.0))
        # Valid positions carry information.
        self.assertTrue(np.all(np.abs(words[~padding]).max(axis=-1) > 0))

    def test_extra_padding_changes_nothing(self):
        encoder = self._encoder()
        short = _random_captions(self.rng, [4, 2, 5], steps=5)
        long = np.pad(short, [(0, 0), (0, 6)])
        words_short, sentence_short = encoder(short)
        words_long, sentence_long = encoder(long)
        self.assertAllClose(words_long[:, :5], words_short, atol=1e-6, rtol=0)
        self.assertAllEqual(words_long[:, 5:], np.zeros((3, 6, 10)))
        self.assertAllClose(sentence_long, sentence_short, atol=1e-6, rtol=0)

    def test_captions_are_independent_of_the_batch(self):
        encoder = self._encoder()
        ids = _random_captions(self.rng, [6, 1, 3, 6], steps=6)
        words, sentence = encoder(ids)
        for row in range(len(ids)):
            words_row, sentence_row = encoder(ids[row:row + 1])
            self.assertAllClose(words[row:row + 1], words_row, atol=1e-6, rtol=0)
            self.assertAllClose(sentence[row:row + 1], sentence_row,
                                atol=1e-6, rtol=0)

    def test_sentence_reads_both_ends(self):
        # Forward half depends on the last token, backward half on the first.
        encoder = self._encoder()
        ids = np.array([[3, 4, 5, 0], [3, 4, 6, 0], [7, 4, 5, 0]], np.int32)
        _, sentence = encoder(ids)
        sentence = sentence.numpy()
        self.assertGreater(np.abs(sentence[0, :5] - sentence[1, :5]).max(), 1e-4)
        self.assertGreater(np.abs(sentence[0, 5:] - sentence[2, 5:]).max(), 1e-4)

    def test_empty_caption_gives_zeros_and_leaves_others_alone(self):
        encoder = self._encoder()
        ids = _random_captions(self.rng, [0, 3], steps=4)
        words, sentence = encoder(ids)
        self.assertAllEqual(words[0], np.zeros((4, 10)))
        self.assertAllEqual(sentence[0], np.zeros(10))
        words_alone, sentence_alone = encoder(ids[1:])
        self.assertAllClose(words[1:], words_alone, atol=1e-6, rtol=0)
        self.assertAllClose(sentence[1:], sentence_alone, atol=1e-6, rtol=0)

    def test_dropout_only_in_training(self):
        encoder = self._encoder(dropout=0.5)
        ids = _random_captions(self.rng, [5, 5], steps=5)
        inference_a = encoder(ids, training=False)[1]
        inference_b = encoder(ids, training=False)[1]
        training = encoder(ids, training=True)[1]
        self.assertAllEqual(inference_a, inference_b)
        self.assertGreater(np.abs(training - inference_a).max(), 1e-4)

    def test_reference_parameter_count_and_init(self):
        # attngan_counts.md: RNN_ENCODER for CUB has 2,075,320 parameters;
        # Keras keeps one LSTM bias where PyTorch has two: 2 * 512 fewer.
        encoder = DAMSMTextEncoder(vocab_size=5450)
        encoder(np.ones((1, 3), np.int32))
        self.assertEqual(encoder.count_params(), 2_075_320 - 2 * 4 * 128)
        self.assertIsInstance(encoder.embedding, keras.layers.Embedding)
        embeddings = encoder.embedding.embeddings.numpy()
        self.assertLessEqual(np.abs(embeddings).max(), 0.1)
        self.assertGreater(np.abs(embeddings).max(), 0.09)
        # PyTorch's LSTM init: U(-1/sqrt(128), 1/sqrt(128)), bias the sum of two.
        kernel, recurrent, bias = encoder.rnn.forward_layer.weights
        limit = 1 / np.sqrt(128)
        self.assertLessEqual(np.abs(kernel.numpy()).max(), limit)
        self.assertLessEqual(np.abs(recurrent.numpy()).max(), limit)
        self.assertLessEqual(np.abs(bias.numpy()).max(), 2 * limit)
        self.assertGreater(np.abs(bias.numpy()).max(), limit)

    def test_tf_function_with_dynamic_length(self):
        encoder = self._encoder()
        encode = tf.function(
            lambda ids: encoder(ids, training=False),
            input_signature=[tf.TensorSpec([None, None], tf.int32)])
        for steps in (3, 8):
            ids = _random_captions(self.rng, [steps, 1], steps=steps)
            words, sentence = encode(tf.constant(ids))
            expected_words, expected_sentence = _numpy_encoder(encoder, ids)
            self.assertAllClose(words, expected_words, atol=1e-5, rtol=0)
            self.assertAllClose(sentence, expected_sentence, atol=1e-5, rtol=0)

    @parameterized.named_parameters(("float16", "mixed_float16"),
                                    ("bfloat16", "mixed_bfloat16"))
    def test_mixed_precision_returns_float32(self, policy):
        encoder = self._encoder(dtype=policy)
        ids = _random_captions(self.rng, [2, 4], steps=4)
        words, sentence = encoder(ids, training=True)
        self.assertEqual(encoder.rnn.forward_layer.compute_dtype,
                         keras.DTypePolicy(policy).compute_dtype)
        self.assertEqual(words.dtype, tf.float32)
        self.assertEqual(sentence.dtype, tf.float32)
        self.assertAllEqual(words[0, 2:], np.zeros((2, 10)))

    def test_config_round_trip(self):
        encoder = self._encoder(embedding_dim=8, hidden_dim=6, dropout=0.25)
        config = encoder.get_config()
        for key, value in {"vocab_size": VOCAB, "embedding_dim": 8,
                           "hidden_dim": 6, "dropout": 0.25}.items():
            self.assertEqual(config[key], value)
        restored = DAMSMTextEncoder.from_config(config)
        self.assertEqual(restored.get_config(), config)

    def test_save_and_load(self):
        encoder = self._encoder()
        ids = _random_captions(self.rng, [3, 5], steps=5)
        words, sentence = encoder(ids)
        path = os.path.join(tempfile.mkdtemp(dir=self.get_temp_dir()),
                            "text_encoder.keras")
        encoder.save(path)
        restored = keras.saving.load_model(path)
        self.assertIsInstance(restored, DAMSMTextEncoder)
        restored_words, restored_sentence = restored(ids)
        self.assertAllClose(restored_words, words, atol=1e-6, rtol=0)
        self.assertAllClose(restored_sentence, sentence, atol=1e-6, rtol=0)


if __name__ == "__main__":
    tf.test.main()
