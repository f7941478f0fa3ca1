"""DAMSM text encoder: embedding, dropout and a bidirectional LSTM.

Port of `RNN_ENCODER` from AttnGAN (taoxugit/AttnGAN `code/model.py`), also
used unchanged by SSA-GAN and T2I_CL (`DAMSM.py`).
"""

import math

import keras
import tensorflow as tf


# Registered because Bidirectional rebuilds its layers from their configs.
@keras.saving.register_keras_serializable(package="tf_t2i")
class SumOfTwoUniforms(keras.initializers.Initializer):
    """PyTorch's LSTM bias initialisation folded into Keras' single bias.

    PyTorch draws `b_ih` and `b_hh` independently from U(-k, k) and adds them;
    Keras has one bias, so drawing the sum keeps the same distribution.

    Args:
        limit: bound k of each of the two uniforms.
        seed: optional int seed; the second uniform uses `seed + 1`.
    """

    def __init__(self, limit, seed=None):
        self.limit = limit
        self.seed = seed
        self._first = keras.initializers.RandomUniform(-limit, limit, seed)
        self._second = keras.initializers.RandomUniform(
            -limit, limit, None if seed is None else seed + 1)

    def __call__(self, shape, dtype=None):
        return self._first(shape, dtype) + self._second(shape, dtype)

    def get_config(self):
        return {"limit": self.limit, "seed": self.seed}


@keras.saving.register_keras_serializable(package="tf_t2i")
class DAMSMTextEncoder(keras.Model):
    """Bidirectional LSTM text encoder of DAMSM.

    Token ids go through an embedding (uniform +-0.1 initialisation, as the
    reference's `init_weights`), dropout and a one-layer bidirectional LSTM
    with `hidden_dim // 2` units per direction. The LSTM weights use PyTorch's
    default initialisation U(-1/sqrt(units), 1/sqrt(units)), so a model
    trained here starts where the reference starts.

    Padding follows `pack_padded_sequence`: id 0 is padding, and a caption's
    length is the position of its last non-zero id plus one (captions are
    right-padded; a 0 before the last real token is read as a token, as the
    reference would with the same `cap_lens`). Padding changes nothing:
    word features at padded positions are exactly 0, the forward direction's
    final state is taken at the last valid token, the backward direction
    starts at the last valid token and ends at the first, and no caption
    depends on the others in the batch. A caption made only of padding gets
    zero word features and a zero sentence embedding.

    Call arguments:
        caption_ids: int tensor `[B, T]`, 0 is padding.
        training: enables the embedding dropout.

    Returns:
        `(word_features, sentence_embedding)`: float32 `[B, T, hidden_dim]`
        and float32 `[B, hidden_dim]`, the concatenation of the forward and
        backward final hidden states. Computation follows the dtype policy;
        outputs are cast to float32.

    Args:
        vocab_size: number of token ids, padding included.
        embedding_dim: word embedding size (300 in the reference).
        hidden_dim: size of the word features and sentence embedding; each
            LSTM direction has `hidden_dim // 2` units.
        dropout: dropout rate applied to the word embeddings.
        **kwargs: passed to `keras.Model` (`name`, `dtype`, ...).

    Example:
    >>> encoder = DAMSMTextEncoder(vocab_size=20, hidden_dim=16)
    >>> words, sentence = encoder(tf.constant([[3, 5, 2, 0]]))
    >>> words.shape, sentence.shape
    (TensorShape([1, 4, 16]), TensorShape([1, 16]))
    """

    def __init__(self, vocab_size, embedding_dim=300, hidden_dim=256,
                 dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        if hidden_dim % 2:
            raise ValueError(
                f"hidden_dim must be even (two LSTM directions), got {hidden_dim}")
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.dropout_rate = dropout

        # === Layers ===
        units = hidden_dim // 2
        limit = 1.0 / math.sqrt(units)
        self.embedding = keras.layers.Embedding(
            vocab_size, embedding_dim, mask_zero=True,
            embeddings_initializer=keras.initializers.RandomUniform(-0.1, 0.1),
            dtype=self.dtype_policy, name="embedding")
        self.embedding_dropout = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="embedding_dropout")

        def make_lstm(go_backwards):
            # The reference passes dropout=0.5 to nn.LSTM, which is a no-op
            # with a single layer, so there is no dropout inside the LSTM.
            return keras.layers.LSTM(
                units, return_sequences=True, return_state=True,
                go_backwards=go_backwards,
                kernel_initializer=keras.initializers.RandomUniform(-limit, limit),
                recurrent_initializer=keras.initializers.RandomUniform(-limit, limit),
                bias_initializer=SumOfTwoUniforms(limit),
                unit_forget_bias=False,
                dtype=self.dtype_policy,
                name="backward_lstm" if go_backwards else "forward_lstm")

        self.rnn = keras.layers.Bidirectional(
            make_lstm(False), backward_layer=make_lstm(True),
            merge_mode="concat", dtype=self.dtype_policy, name="bidirectional_lstm")

    def build(self, input_shape):
        batch, steps = input_shape[0], input_shape[1]
        self.embedding.build(input_shape)
        self.rnn.build((batch, steps, self.embedding_dim))
        self.built = True

    def call(self, caption_ids, training=False):
        caption_ids = tf.convert_to_tensor(caption_ids)
        if caption_ids.dtype not in (tf.int32, tf.int64):
            caption_ids = tf.cast(caption_ids, "int32")
        steps = tf.shape(caption_ids)[1]
        positions = tf.range(1, steps + 1)
        # Length = last non-zero position + 1, so the mask is right-padded by
        # construction (cuDNN asserts on any other mask).
        lengths = tf.reduce_max(
            tf.where(caption_ids != 0, positions[tf.newaxis, :], 0), axis=1)
        mask = tf.sequence_mask(lengths, steps)
        # cuDNN also asserts on all-padding rows: let the LSTM read one
        # (padding) token there and zero that caption's outputs afterwards.
        lstm_mask = tf.sequence_mask(tf.maximum(lengths, 1), steps)

        embedded = self.embedding(caption_ids)
        embedded = self.embedding_dropout(embedded, training=training)
        word_features, forward_h, _, backward_h, _ = self.rnn(
            embedded, mask=lstm_mask, training=training)
        sentence_embedding = tf.concat([forward_h, backward_h], axis=-1)

        word_features = tf.cast(word_features, "float32")
        sentence_embedding = tf.cast(sentence_embedding, "float32")
        # tf.where rather than a product: exact +0.0, and no NaN leaks through.
        word_features = tf.where(
            mask[:, :, tf.newaxis], word_features, tf.zeros_like(word_features))
        sentence_embedding = tf.where(
            (lengths > 0)[:, tf.newaxis], sentence_embedding,
            tf.zeros_like(sentence_embedding))
        return word_features, sentence_embedding

    def compute_mask(self, caption_ids, mask=None):
        # Outputs are a tuple of differently shaped tensors; downstream code
        # uses `caption_ids != 0` explicitly rather than Keras masks.
        return None

    def get_config(self):
        config = super().get_config()
        config.update({
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "hidden_dim": self.hidden_dim,
            "dropout": self.dropout_rate,
        })
        return config
