"""Vocabulary building, in-graph tokenization and the caption bank."""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from tf_t2i.data import tokenizer as tokenizer_lib


class TokenizerTest(tf.test.TestCase):

    def test_split_words_follows_regexp_w_plus(self):
        self.assertEqual(tokenizer_lib.split_words("A Red-circle, on the LEFT!  it's 2x"),
                         ["a", "red", "circle", "on", "the", "left", "it", "s", "2x"])

    def test_vocabulary_order_and_ids(self):
        tok = tokenizer_lib.CaptionTokenizer.build(["b a", "a c", "a b"], max_length=4)
        # counts: a=3, b=2, c=1 -> ids 2, 3, 4 (0 = padding, 1 = OOV)
        self.assertEqual(tok.vocabulary, ["a", "b", "c"])
        self.assertEqual(tok.vocab_size, 5)
        ids = tok.encode(["C, a  B!", "zebra a"]).numpy()
        np.testing.assert_array_equal(ids, [[4, 2, 3, 0], [1, 2, 0, 0]])

    def test_graph_and_python_tokenization_agree(self):
        captions = ["The  small RED circle, at the left.", "two: a tiny_star & 3 squares!"]
        tok = tokenizer_lib.CaptionTokenizer.build(captions, max_length=20)
        graph = tok.tokenize(captions).to_list()
        table = {w: i + 2 for i, w in enumerate(tok.vocabulary)}
        python = [[table[w] for w in tokenizer_lib.split_words(c)] for c in captions]
        self.assertEqual(graph, python)

    def test_encode_truncates_to_prefix(self):
        tok = tokenizer_lib.CaptionTokenizer(["a", "b", "c", "d"], max_length=2)
        np.testing.assert_array_equal(tok.encode(["d c b a"]).numpy(), [[5, 4]])

    def test_min_count_maps_rare_words_to_oov(self):
        tok = tokenizer_lib.CaptionTokenizer.build(["a a b"], min_count=2)
        self.assertEqual(tok.vocabulary, ["a"])

    def test_save_load_round_trip(self):
        d = self.create_tempdir().full_path
        tok = tokenizer_lib.CaptionTokenizer.build(["red circle", "blue square"])
        tok.save(d)
        again = tokenizer_lib.CaptionTokenizer.load(d)
        self.assertEqual(again.vocabulary, tok.vocabulary)

    def test_load_missing_vocab_names_the_file(self):
        with self.assertRaisesRegex(FileNotFoundError, "vocab.txt"):
            tokenizer_lib.CaptionTokenizer.load(self.create_tempdir().full_path)

    def test_decode(self):
        tok = tokenizer_lib.CaptionTokenizer(["red", "circle"])
        self.assertEqual(tok.decode([[2, 1, 3, 0]]), ["red [UNK] circle"])

    def test_caption_bank_and_empty_caption_error(self):
        tok = tokenizer_lib.CaptionTokenizer(["red", "circle", "a"])
        ids, lengths = tokenizer_lib.encode_caption_bank(tok, [["a red circle", "circle"]])
        np.testing.assert_array_equal(ids, [[[4, 2, 3], [3, 0, 0]]])
        np.testing.assert_array_equal(lengths, [[3, 1]])
        with self.assertRaisesRegex(tokenizer_lib.EmptyCaptionError, "caption 1 of image 0"):
            tokenizer_lib.encode_caption_bank(tok, [["a red circle", " ,. "]])


class ImportCostTest(tf.test.TestCase):

    def test_tokenizer_does_not_import_tensorflow_datasets(self):
        # A fresh interpreter: this process has imported TFDS through other tests.
        code = ("import sys, tf_t2i.data.tokenizer; "
                "print('tensorflow_datasets' in sys.modules)")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True,
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(out.stdout.strip().splitlines()[-1], "False")
