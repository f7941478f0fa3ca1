"""Caption vocabulary and in-graph tokenization.

Tokenization follows AttnGAN's preprocessing (`RegexpTokenizer(r'\\w+')` on lower-cased,
ASCII-only text): every maximal run of `[a-z0-9_]` is a token. The same rule runs in
Python (to build the vocabulary) and in the graph (`keras.layers.TextVectorization` with
core TF string ops only, so an exported SavedModel needs no tensorflow-text).

Ids: 0 is padding, 1 is the out-of-vocabulary id, words start at 2 ordered by frequency
(ties alphabetically), so a vocabulary built twice from the same captions is identical.
"""

import collections
import os
from typing import Iterable, List, Sequence

import numpy as np
import tensorflow as tf
import keras

from tf_t2i.data import words
from tf_t2i.io import files

PAD_ID = 0
OOV_ID = 1
PAD_TOKEN = ""
OOV_TOKEN = "[UNK]"
VOCAB_FILENAME = "vocab.txt"

_NON_WORD = words.NON_WORD
EmptyCaptionError = words.EmptyCaptionError
split_words = words.split_words


def _standardize(captions):
    # ASCII lower-casing then every non-word run becomes one space, as split_words does.
    return tf.strings.regex_replace(tf.strings.lower(captions), _NON_WORD, " ")


class CaptionTokenizer:
    """Maps caption strings to token ids with a fixed vocabulary.

    Args:
      vocabulary: the words, most frequent first (without the padding and OOV entries).
      max_length: T, the caption length the models see.

    Example:
      >>> tok = CaptionTokenizer.build(["a red circle", "a blue square"], max_length=4)
      >>> tok.encode(["a red star"]).numpy()   # 'star' is out of vocabulary
      array([[2, 5, 1, 0]])
    """

    def __init__(self, vocabulary: Sequence[str], max_length: int = 18):
        vocabulary = list(vocabulary)
        if not vocabulary:
            raise ValueError("The vocabulary is empty: no caption had any word token.")
        bad = [w for w in vocabulary if not w or split_words(w) != [w]]
        if bad:
            raise ValueError(f"Vocabulary entries must be single standardised words, got {bad[:5]}.")
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("The vocabulary has duplicate words.")
        self.vocabulary = vocabulary
        self.max_length = int(max_length)
        self._layer = keras.layers.TextVectorization(
            standardize=_standardize, split="whitespace", output_mode="int",
            vocabulary=vocabulary, ragged=True, name="caption_vectorizer")

    @classmethod
    def build(cls, captions: Iterable[str], max_length: int = 18,
              min_count: int = 1) -> "CaptionTokenizer":
        """Builds the vocabulary from (training) captions."""
        counts = collections.Counter()
        for caption in captions:
            counts.update(split_words(caption))
        words = sorted((w for w, c in counts.items() if c >= min_count),
                       key=lambda w: (-counts[w], w))
        return cls(words, max_length=max_length)

    @property
    def vocab_size(self) -> int:
        """Size of the id space, padding and OOV included (the embedding's input_dim)."""
        return len(self.vocabulary) + 2

    @property
    def layer(self) -> keras.layers.TextVectorization:
        """The in-graph vectorizer (track it when exporting: it owns the lookup table)."""
        return self._layer

    def tokenize(self, captions) -> tf.RaggedTensor:
        """string [B] -> ragged int64 [B, None], no truncation."""
        captions = tf.convert_to_tensor(captions, tf.string)
        return self._layer(captions)

    def encode(self, captions, max_length: int = None) -> tf.Tensor:
        """string [B] -> int64 [B, T]: the first T tokens, zero padded (deterministic; the
        training pipeline instead keeps T random positions of long captions)."""
        t = max_length or self.max_length
        return self.tokenize(captions)[:, :t].to_tensor(default_value=PAD_ID, shape=[None, t])

    def words(self, captions, max_length: int = None) -> tf.Tensor:
        """string [B] -> string [B, T]: the tokens `encode` turns into ids, as text (out of
        vocabulary ones included), "" padded; position t of both is the same word."""
        t = max_length or self.max_length
        captions = tf.convert_to_tensor(captions, tf.string)
        # The vectorizer's own steps (standardize, then whitespace split), so that a
        # word here always sits where its id does.
        tokens = tf.strings.split(_standardize(captions))
        return tokens[:, :t].to_tensor(default_value=PAD_TOKEN, shape=[None, t])

    def decode(self, ids) -> List[str]:
        """int [B, T] -> captions with padding dropped and OOV shown as [UNK]."""
        table = [PAD_TOKEN, OOV_TOKEN] + self.vocabulary
        out = []
        for row in np.asarray(ids):
            out.append(" ".join(table[i] for i in row if i != PAD_ID))
        return out

    def save(self, directory: str) -> str:
        """Writes `vocab.txt` (one word a line, most frequent first) atomically."""
        return files.atomic_write_text(os.path.join(directory, VOCAB_FILENAME),
                                       "\n".join(self.vocabulary) + "\n")

    @classmethod
    def load(cls, directory: str, max_length: int = 18) -> "CaptionTokenizer":
        path = os.path.join(directory, VOCAB_FILENAME)
        if not os.path.exists(path):
            raise FileNotFoundError(f"No {VOCAB_FILENAME} in {directory!r}: expected the model_dir "
                                    "of a DAMSM pretraining run (python -m tf_t2i.pretrain).")
        with open(path) as f:
            words = [line.rstrip("\n") for line in f if line.rstrip("\n")]
        return cls(words, max_length=max_length)


def encode_caption_bank(tokenizer: CaptionTokenizer, captions_per_image: Sequence[Sequence[str]],
                        source_name: str = "dataset"):
    """Tokenizes every caption of every image into a dense bank.

    Args:
      tokenizer: the vocabulary.
      captions_per_image: N lists of C captions.
      source_name: used in error messages.

    Returns:
      (ids int32 [N, C, L], lengths int32 [N, C]) with L the longest caption's length.

    Raises:
      EmptyCaptionError: naming the image and caption index of a caption without words.
    """
    table = {w: i + 2 for i, w in enumerate(tokenizer.vocabulary)}
    n = len(captions_per_image)
    c = max(len(caps) for caps in captions_per_image) if n else 0
    tokenized = []
    for i, caps in enumerate(captions_per_image):
        if len(caps) != c:
            raise ValueError(f"{source_name}: image {i} has {len(caps)} captions, expected {c}.")
        row = []
        for j, caption in enumerate(caps):
            words = split_words(caption)
            if not words:
                raise EmptyCaptionError(f"{source_name}: caption {j} of image {i} is empty "
                                        f"({caption!r}); every caption needs at least one word.")
            row.append([table.get(w, OOV_ID) for w in words])
        tokenized.append(row)
    max_len = max((len(t) for row in tokenized for t in row), default=1)
    ids = np.zeros((n, c, max_len), np.int32)
    lengths = np.zeros((n, c), np.int32)
    for i, row in enumerate(tokenized):
        for j, t in enumerate(row):
            ids[i, j, :len(t)] = t
            lengths[i, j] = len(t)
    return ids, lengths
