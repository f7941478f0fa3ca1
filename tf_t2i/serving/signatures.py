"""The computations an export serves, as functions of tensors (eager or traced).

`export_lib` wraps them into SavedModel signatures; `tf_t2i.TextToImage` calls them
in memory, so a run, its export and a server give the same outputs.

  serving_default(captions: string [B], seeds: int64 [B])
      -> {images: uint8 [B, H, W, 3], png_bytes: string [B]}
  generate_unseeded(captions: string [B]) -> the same, with seeds hashed from the captions
  generate_with_maps(captions: string [B], seeds: int64 [B])
      -> {images, png_bytes (as serving_default), maps: float32 [B, M, H, W] in [0, 1],
          map_png_bytes: string [B, M], map_labels: string [B, M],
          map_words: string [B, M]}
  caption_words(captions: string [B])
      -> {words: string [B, T], in_vocabulary: bool [B, T], num_words: int32 [B]}

The maps are `interface.generate_with_maps`'s: SSA-GAN's predicted mask per generator
block (M = blocks; labels "mask, block 3 (32x32)", words ""), or the AttnGAN family's
word attention per later stage and caption position (M = (stages - 1) * T, map
(s - 2) * T + t is stage s on word t; labels "stage 2 (64x64): red", each map divided
by its maximum; positions past the caption are zero maps labelled "...: (padding)" with
word ""). M is fixed per export. `serving_default` computes no map: it is traced from
`generate` alone, so its graph and speed do not depend on the explainability outputs.
Outputs whose names end in `_bytes` come back base64 encoded from TF Serving's REST API.
"""

from typing import Dict

import tensorflow as tf

from tf_t2i import images as images_lib
from tf_t2i.data import pipeline
from tf_t2i.data import tokenizer as tokenizer_lib
from tf_t2i.models import interface

SERVING_DEFAULT = "serving_default"
GENERATE_UNSEEDED = "generate_unseeded"
GENERATE_WITH_MAPS = "generate_with_maps"
CAPTION_WORDS = "caption_words"
# Inputs.
CAPTIONS = "captions"
SEEDS = "seeds"
# Outputs.
IMAGES = "images"
PNG_BYTES = "png_bytes"
MAPS = "maps"
MAP_PNG_BYTES = "map_png_bytes"
MAP_LABELS = "map_labels"
MAP_WORDS = "map_words"
WORDS = "words"
IN_VOCABULARY = "in_vocabulary"
NUM_WORDS = "num_words"
# What follows a word-attention map's label at a position past the caption's last word.
PADDING_LABEL = "(padding)"

# The second word of every per-image noise seed. Fixed, so that a request's seed alone
# decides the noise; changing it changes every served image.
NOISE_SEED_KEY = 0x7432_6931
# Philox explicitly: "auto_select" may pick another generator on another device.
NOISE_ALG = "philox"
# Caption hashes are bucketed below 2**62: non-negative int64 seeds.
_CAPTION_SEED_BUCKETS = 2 ** 62


def noise_from_seeds(seeds, z_dim: int) -> tf.Tensor:
    """The generator's noise for each seed: int64 [B] -> float32 [B, z_dim].

    Row i depends only on seeds[i] (stateless RNG, one draw per seed), so an image does
    not change with the batch it is served in. The in-memory reference of the export
    tests uses this same function.
    """
    seeds = tf.convert_to_tensor(seeds, tf.int64)
    key = tf.constant(NOISE_SEED_KEY, tf.int64)
    return tf.map_fn(
        lambda s: tf.random.stateless_normal([z_dim], seed=tf.stack([s, key]), alg=NOISE_ALG),
        seeds, fn_output_signature=tf.TensorSpec([z_dim], tf.float32))


def caption_seeds(captions) -> tf.Tensor:
    """Seeds from the caption bytes (FarmHash fingerprint): string [B] -> int64 [B] >= 0."""
    return tf.strings.to_hash_bucket_fast(captions, _CAPTION_SEED_BUCKETS)


def encode_pngs(images) -> tf.Tensor:
    """uint8 [B, H, W, C] -> PNG bytes [B] (encode_png takes one image at a time)."""
    return tf.map_fn(tf.io.encode_png, images, fn_output_signature=tf.TensorSpec([], tf.string))


def _checked_batch(captions, seeds):
    """(captions, seeds, B) as tensors, B only once both have the same length."""
    captions = tf.convert_to_tensor(captions, tf.string)
    seeds = tf.convert_to_tensor(seeds, tf.int64)
    # Both inputs are batched by a server independently: a mismatch is the caller's
    # error (INVALID_ARGUMENT), not something to broadcast.
    check = tf.debugging.assert_equal(
        tf.shape(captions)[0], tf.shape(seeds)[0],
        message="captions and seeds must have the same length (one seed per caption)")
    with tf.control_dependencies([check]):
        batch = tf.shape(captions)[0]
    return captions, seeds, batch


def _caption_ids(tokenizer, captions) -> tf.Tensor:
    """int32 [B, T] token ids; refuses (INVALID_ARGUMENT) a caption without a word."""
    caption_ids = tf.cast(tokenizer.encode(captions), tf.int32)  # [B, T]
    # A caption without a word (only padding, id 0) conditions on nothing: refused,
    # as sample and the client refuse it (INVALID_ARGUMENT through a server).
    empty = tf.where(tf.reduce_all(tf.equal(caption_ids, 0), axis=1))
    check = tf.debugging.Assert(
        tf.equal(tf.size(empty), 0),
        ["Empty caption (no word) at index", empty[:, 0],
         "of the request: a caption needs at least one word."])
    with tf.control_dependencies([check]):
        return tf.identity(caption_ids)


def generate(generator, text_encoder, tokenizer, captions, seeds, z_dim: int,
             image_size: int) -> Dict:
    """The exported computation, callable eagerly too (the in-memory reference).

    Args:
      generator: any generator `tf_t2i.models.interface.generate` can call.
      text_encoder: `text_encoder(caption_ids, training=False) -> (words, sentence)`.
      tokenizer: the run's `CaptionTokenizer` (first T tokens of each caption).
      captions: string [B].
      seeds: int64 [B], one noise seed per caption.
      z_dim: the generator's noise size.
      image_size: the generator's output side H = W.

    Returns:
      {"images": uint8 [B, H, W, 3], "png_bytes": string [B]}.
    """
    captions, seeds, batch = _checked_batch(captions, seeds)

    def run():
        return images_lib.to_uint8(interface.generate_from_captions(
            generator, text_encoder, _caption_ids(tokenizer, captions),
            noise_from_seeds(seeds, z_dim)))

    def nothing():
        return tf.zeros([0, image_size, image_size, 3], tf.uint8)

    # An empty request is well defined (empty outputs); the generator's batch norm
    # kernels reject a zero-sized batch, so it must not run.
    images = tf.cond(batch > 0, run, nothing)
    return {IMAGES: images, PNG_BYTES: encode_pngs(images)}


def generate_with_maps(generator, text_encoder, tokenizer, captions, seeds, z_dim: int,
                       image_size: int) -> Dict:
    """`generate` and the generator's maps (see the module docstring).

    Args: as `generate`.

    Returns:
      {"images", "png_bytes" (equal to `generate`'s), "maps": float32 [B, M, H, W],
       "map_png_bytes": string [B, M] (grayscale PNGs of round(255 * map)),
       "map_labels": string [B, M], "map_words": string [B, M]}.
    """
    captions, seeds, batch = _checked_batch(captions, seeds)
    layout = interface.map_layout(generator, tokenizer.max_length)
    num_maps = layout.num_maps

    def run():
        caption_ids = _caption_ids(tokenizer, captions)
        words, sentence = text_encoder(caption_ids, training=False)
        generated, maps, _ = interface.generate_with_maps(
            generator, noise_from_seeds(seeds, z_dim), sentence, words,
            pipeline.caption_mask(caption_ids))
        return images_lib.to_uint8(generated.final), maps

    def nothing():
        return (tf.zeros([0, image_size, image_size, 3], tf.uint8),
                tf.zeros([0, num_maps, image_size, image_size], tf.float32))

    images, maps = tf.cond(batch > 0, run, nothing)
    map_words, map_labels = _map_words_and_labels(tokenizer.words(captions), layout)
    return {IMAGES: images, PNG_BYTES: encode_pngs(images), MAPS: maps,
            MAP_PNG_BYTES: _encode_map_pngs(maps, batch, num_maps),
            MAP_LABELS: map_labels, MAP_WORDS: map_words}


def _map_words_and_labels(caption_words, layout: interface.MapLayout):
    """string [B, M] twice: each map's word ("" for none) and its label."""
    batch = tf.shape(caption_words)[0]
    # Position -1 (no word) reads an appended "" column.
    padded = tf.pad(caption_words, [[0, 0], [0, 1]])
    positions = [p if p >= 0 else caption_words.shape[1] for p in layout.word_positions]
    map_words = tf.gather(padded, tf.constant(positions, tf.int32), axis=1)  # [B, M]
    labels = tf.tile(tf.constant(layout.labels, tf.string, shape=[layout.num_maps])[None],
                     tf.stack([batch, 1]))
    is_word_map = tf.constant([p >= 0 for p in layout.word_positions], tf.bool,
                              shape=[layout.num_maps])[None]
    shown = tf.where(tf.equal(map_words, ""), PADDING_LABEL, map_words)
    labels = tf.where(is_word_map, tf.strings.join([labels, shown], separator=": "), labels)
    return map_words, labels


def _encode_map_pngs(maps, batch, num_maps: int) -> tf.Tensor:
    """float32 [B, M, H, W] in [0, 1] -> grayscale PNG bytes [B, M]."""
    pixels = tf.cast(tf.round(maps * 255.0), tf.uint8)
    size = tf.shape(maps)[2:]
    flat = tf.reshape(pixels, tf.concat([[-1], size, [1]], axis=0))  # [B * M, H, W, 1]
    return tf.reshape(encode_pngs(flat), tf.stack([batch, num_maps]))


def caption_words(tokenizer, captions) -> Dict:
    """What the model reads of each caption (the `caption_words` signature).

    Args:
      tokenizer: the run's `CaptionTokenizer`.
      captions: string [B]; an empty caption is answered (num_words 0), not refused.

    Returns:
      {"words": string [B, T] (the first T tokens, "" padded), "in_vocabulary": bool
       [B, T] (False for unknown words, read as [UNK], and for padding), "num_words":
       int32 [B] (how many of the T positions hold a word)}.
    """
    captions = tf.convert_to_tensor(captions, tf.string)
    words = tokenizer.words(captions)
    ids = tokenizer.encode(captions)
    # Padding (0) and out-of-vocabulary (1) ids are below every word's.
    in_vocabulary = tf.greater(ids, tokenizer_lib.OOV_ID)
    num_words = tf.reduce_sum(tf.cast(tf.not_equal(words, ""), tf.int32), axis=1)
    return {WORDS: words, IN_VOCABULARY: in_vocabulary, NUM_WORDS: num_words}
