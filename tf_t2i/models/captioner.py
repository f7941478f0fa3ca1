"""Captioning model F_C for the re-captioning loss: image encoder + Transformer decoder.

The paper's re-captioning term (section 3.4) asks a frozen, pretrained captioner to
read the generated image and scores the true caption under it (teacher-forced token
cross-entropy). The captioner here encodes the image into region features with the
DAMSM image-encoder architecture (its own weights, trained with the decoder) and
decodes with keras-hub `TransformerDecoder` layers cross-attending to the regions.

Token space: the caption vocabulary's ids (0 = padding, 1 = OOV, words from 2), plus
BOS = vocab_size and EOS = vocab_size + 1.
"""

import warnings

import keras
import keras_hub
import tensorflow as tf

from tf_t2i.models.image_encoder import DAMSMImageEncoder


def shift_right(caption_ids, bos_id):
    """Decoder inputs for teacher forcing: BOS followed by the caption. [B,T] -> [B,T+1]."""
    bos = tf.fill([tf.shape(caption_ids)[0], 1], tf.cast(bos_id, caption_ids.dtype))
    return tf.concat([bos, caption_ids], axis=1)


def append_eos(caption_ids, eos_id):
    """Targets: the caption with EOS after its last word, padded. [B,T] -> [B,T+1]."""
    ids = tf.concat([caption_ids, tf.zeros_like(caption_ids[:, :1])], axis=1)
    lengths = tf.reduce_sum(tf.cast(tf.not_equal(caption_ids, 0), tf.int32), axis=1)
    eos_at = tf.one_hot(lengths, tf.shape(ids)[1], dtype=ids.dtype)
    return ids + eos_at * tf.cast(eos_id, ids.dtype)


@keras.saving.register_keras_serializable(package="tf_t2i")
class Captioner(keras.Model):
    """Image -> caption model (Transformer decoder over image regions).

    Args:
        vocab_size: size of the caption id space (padding and OOV included).
        max_length: T, the caption length; the decoder sees T + 1 positions.
        backbone: image encoder backbone ("small_cnn" or "inception_v3").
        embed_dim: width of regions, token embeddings and the decoder.
        num_layers: TransformerDecoder layers.
        num_heads: attention heads.
        intermediate_dim: feed-forward width.
        dropout: dropout in the decoder.
        small_cnn_width: width of the small_cnn backbone.
        weights_path: ImageNet weights for the inception_v3 backbone.

    Call:
        `captioner(images, input_ids, training=...)` with images [B,S,S,3] in [-1,1] and
        input_ids [B,T+1] (BOS + caption) returns logits float32 [B,T+1,vocab_size+2].

    Example:
        >>> cap = Captioner(vocab_size=50, max_length=12, embed_dim=32, num_heads=2,
        ...                 intermediate_dim=64, small_cnn_width=8)
        >>> ids = tf.zeros([2, 12], tf.int32)
        >>> cap(tf.zeros([2, 64, 64, 3]), shift_right(ids, cap.bos_id)).shape
        TensorShape([2, 13, 52])
    """

    def __init__(self, vocab_size, max_length=18, backbone="small_cnn", embed_dim=256,
                 num_layers=2, num_heads=4, intermediate_dim=512, dropout=0.1,
                 small_cnn_width=64, weights_path=None, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.backbone = backbone
        self.embed_dim = embed_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.small_cnn_width = small_cnn_width
        self.weights_path = weights_path
        self.bos_id = vocab_size
        self.eos_id = vocab_size + 1
        self.output_vocab = vocab_size + 2

        self.image_encoder = DAMSMImageEncoder(
            backbone=backbone, embedding_dim=embed_dim, weights_path=weights_path,
            small_cnn_width=small_cnn_width, name="captioner_image_encoder")
        self.token_embedding = keras_hub.layers.TokenAndPositionEmbedding(
            vocabulary_size=self.output_vocab, sequence_length=max_length + 1,
            embedding_dim=embed_dim, name="token_embedding")
        self.decoder_layers = [
            keras_hub.layers.TransformerDecoder(intermediate_dim, num_heads, dropout=dropout,
                                                name=f"decoder_{i}")
            for i in range(num_layers)]
        self.output_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="output_norm")
        self.output_projection = keras.layers.Dense(self.output_vocab, name="logits")

    def encode_image(self, images, training=None):
        """Region features flattened to a sequence [B, h*w, embed_dim]."""
        regions, _ = self.image_encoder(images, training=training)
        shape = tf.shape(regions)
        return tf.reshape(regions, [shape[0], shape[1] * shape[2], self.embed_dim])

    def decode(self, memory, input_ids, training=None):
        x = self.token_embedding(input_ids)
        padding = tf.not_equal(input_ids, 0)
        for layer in self.decoder_layers:
            x = layer(x, memory, decoder_padding_mask=padding, use_causal_mask=True,
                      training=training)
        return tf.cast(self.output_projection(self.output_norm(x)), tf.float32)

    def call(self, images, input_ids, training=None):
        return self.decode(self.encode_image(images, training), input_ids, training)

    def greedy_decode(self, images, max_length=None):
        """Greedy captions: int32 [B, T] in the caption id space (EOS and after -> 0)."""
        t = max_length or self.max_length
        memory = self.encode_image(images, training=False)
        batch = tf.shape(images)[0]
        ids = tf.fill([batch, 1], self.bos_id)
        for _ in range(t):
            with warnings.catch_warnings():
                # keras warns about the one-position softmax of the first step.
                warnings.simplefilter("ignore", UserWarning)
                logits = self.decode(memory, ids, training=False)[:, -1]
            # Padding, OOV and BOS are never produced.
            banned = tf.one_hot([0, 1, self.bos_id], self.output_vocab)
            logits = logits - 1e9 * tf.reduce_sum(banned, axis=0)
            ids = tf.concat([ids, tf.argmax(logits, -1, output_type=tf.int32)[:, None]], 1)
        ids = ids[:, 1:]
        ended = tf.cumsum(tf.cast(tf.equal(ids, self.eos_id), tf.int32), axis=1) > 0
        return tf.where(ended, 0, ids)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, max_length=self.max_length,
                      backbone=self.backbone, embed_dim=self.embed_dim,
                      num_layers=self.num_layers, num_heads=self.num_heads,
                      intermediate_dim=self.intermediate_dim, dropout=self.dropout,
                      small_cnn_width=self.small_cnn_width, weights_path=self.weights_path)
        return config


def caption_cross_entropy(logits, target_ids):
    """Per-example teacher-forced token cross-entropy, averaged over real target tokens.

    The re-captioning loss L_CP of the paper (section 3.4) when `logits` come from the
    frozen captioner reading generated images.

    Args:
        logits: float [B, L, V].
        target_ids: int [B, L], 0 = padding (ignored).

    Returns:
        float32 [B].
    """
    mask = tf.cast(tf.not_equal(target_ids, 0), tf.float32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(target_ids, tf.int32), logits=tf.cast(logits, tf.float32))
    return tf.reduce_sum(ce * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
