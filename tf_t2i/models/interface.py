"""One way to call every generator family, for training, sampling, evaluation and export.

SSA-GAN's generator is conditioned on the sentence embedding (and, with
`--gen_word_attention_max_size`, on the words too) and returns `(images, masks)`; the
AttnGAN family (AttnGAN, Style1AttnGAN, Style2AttnGAN) also attends over word features
and returns a dict with one image per stage plus the conditioning augmentation's `mu` /
`logvar`. Callers use these functions instead of calling a generator
directly, so that nothing downstream depends on the family.

`generate_with_maps` also returns what each family computes about *where* it draws:
SSA-GAN's predicted masks (one per generator block) and the AttnGAN family's word
attention (one map per later stage and caption position), for the explainability
outputs of sampling and export. Both are computed by every forward pass anyway, so the
training path is unchanged; only this function reads them.
"""

from typing import List, NamedTuple, Optional, Tuple

import tensorflow as tf

from tf_t2i.data import pipeline


class Generated(NamedTuple):
    """What one generator call produced.

    Attributes:
      stages: float32 images [B, S_i, S_i, 3] in [-1, 1], smallest first; the last is the
        final image (a single stage for SSA-GAN).
      mu, logvar: the conditioning augmentation's Gaussian [B, c_dim], or None.
    """
    stages: List[tf.Tensor]
    mu: Optional[tf.Tensor] = None
    logvar: Optional[tf.Tensor] = None

    @property
    def final(self) -> tf.Tensor:
        return self.stages[-1]


def conditions_on_words(generator) -> bool:
    """True for generators that attend over word features (the AttnGAN family)."""
    return bool(getattr(generator, "conditions_on_words", False))


def reads_words(generator) -> bool:
    """True for generators whose call takes words and word_mask: the AttnGAN family, and
    SSA-GAN with word attention (`--gen_word_attention_max_size`)."""
    return conditions_on_words(generator) or bool(getattr(generator, "reads_words", False))


def noise_seeds_from(z) -> tf.Tensor:
    """One stateless RNG seed per example, int32 [B, 2], taken from the bits of its z.

    The AttnGAN family draws more noise inside the generator (conditioning augmentation,
    per-pixel noise, style mixing). Seeding those draws from each example's own z makes
    the image a function of (z, caption) alone: the same whatever the replica count,
    after a resume, in a batch of any composition, and in the exported SavedModel,
    whose z comes from the request's seed.
    """
    bits = tf.cast(z[:, :2], tf.float32)
    if bits.shape[1] == 1:  # a one-dimensional z: its bits and a constant
        bits = tf.pad(bits, [[0, 0], [0, 1]], constant_values=1.0)
    return tf.bitcast(bits, tf.int32)


def second_noise(z) -> tf.Tensor:
    """Another noise vector per example, float32 like `z`, a pure function of that z.

    For terms that compare two images of one caption (the mode-seeking regulariser): the
    pair depends on the example alone, as everything else in a step does, so it is the
    same on any number of replicas and after a resume.
    """
    dim = z.shape[1]
    return tf.map_fn(
        lambda seed: tf.random.stateless_normal(
            [dim], tf.random.experimental.stateless_fold_in(seed, 1013)),
        noise_seeds_from(z), fn_output_signature=tf.TensorSpec([dim], tf.float32))


def generate(generator, z, sentence, words=None, word_mask=None,
             training: bool = False) -> Generated:
    """Runs any generator.

    Args:
      generator: an SSA-GAN or AttnGAN-family generator.
      z: float32 [B, z_dim] noise.
      sentence: float32 [B, D] sentence embeddings.
      words: float32 [B, T, D] word features (generators that `reads_words`).
      word_mask: bool [B, T], True at real words (generators that `reads_words`).
      training: training mode (batch statistics, style mixing).

    Returns:
      A `Generated`.
    """
    return _run(generator, z, sentence, words, word_mask, training)[0]


def _run(generator, z, sentence, words, word_mask, training):
    """(Generated, the generator's own maps): SSA-GAN's masks [B, s, s, 1] per block, or
    the AttnGAN family's attention [B, s, s, T] per later stage."""
    if conditions_on_words(generator):
        if words is None or word_mask is None:
            raise ValueError(f"{generator.name} attends over words: pass words and word_mask.")
        out = generator(z, sentence, words, word_mask, training=training,
                        noise_seed=noise_seeds_from(z))
        generated = Generated(list(out["images"]), out.get("mu"), out.get("logvar"))
        return generated, list(out["attention"])
    if reads_words(generator):  # it raises its own error when words are missing
        images, masks = generator(z, sentence, words, word_mask, training=training)
    else:
        images, masks = generator(z, sentence, training=training)
    return Generated([images]), list(masks)


class MapLayout(NamedTuple):
    """What the maps of `generate_with_maps` are, fixed by the generator and T.

    Attributes:
      labels: one per map: "mask, block 3 (32x32)" (SSA-GAN: the mask that gates
        generator block 3, at that block's resolution) or "stage 2 (64x64)" (AttnGAN
        family: the word attention of stage 2, counting from 1, computed at 64 x 64).
      word_positions: one per map: the caption position (0-based) a word-attention map
        belongs to, -1 for a map tied to no word.
      resolutions: one per map: the side of the feature map it was computed at.
    """
    labels: Tuple[str, ...]
    word_positions: Tuple[int, ...]
    resolutions: Tuple[int, ...]

    @property
    def num_maps(self) -> int:
        return len(self.labels)


# The AttnGAN family's first stage draws 64 px; each later stage attends over the words
# at its input resolution (the previous stage's) and doubles it.
_FIRST_STAGE_SIZE = 64


def map_layout(generator, max_words: int) -> MapLayout:
    """The maps `generate_with_maps` returns for this generator and caption length T.

    SSA-GAN: one mask per generator block, M = number of blocks (each block's
    semantic-spatial batch norms are gated by a mask predicted from the previous block's
    output, the first from the fc output). AttnGAN family: M = (stages - 1) * T, map
    `(s - 2) * T + t` is stage s's attention on caption position t; a 64 px model has
    one stage and so no word attention (M = 0).
    """
    if conditions_on_words(generator):
        labels, positions, sizes = [], [], []
        for stage in range(2, generator.num_stages + 1):
            size = _FIRST_STAGE_SIZE * 2 ** (stage - 2)
            labels += [f"stage {stage} ({size}x{size})"] * max_words
            positions += list(range(max_words))
            sizes += [size] * max_words
        return MapLayout(tuple(labels), tuple(positions), tuple(sizes))
    # Block k runs at 4 * 2^k px (4 px doubled k times).
    sizes = tuple(4 * 2 ** block for block in range(len(generator.blocks)))
    return MapLayout(tuple(f"mask, block {k} ({s}x{s})" for k, s in enumerate(sizes)),
                     (-1,) * len(sizes), sizes)


def generate_with_maps(generator, z, sentence, words=None, word_mask=None,
                       training: bool = False) -> Tuple[Generated, tf.Tensor, MapLayout]:
    """`generate`, plus the generator's maps at the final image's size.

    The images are those of `generate` (the same call). Each map is resized
    (bilinear, half-pixel centres) to the final image's S x S. SSA-GAN's masks are
    sigmoids, kept as they are (0: the block ignores the sentence there, 1: full
    conditioning). Word attention sums to 1 over the words at each pixel, so a word's
    map is small everywhere when the caption is long: each map is divided by its own
    maximum (after resizing) to show where that word drew most; padding positions are
    zero maps.

    Args:
      As `generate`; the AttnGAN family needs words (with a static T = words.shape[1])
      and word_mask.

    Returns:
      (Generated, maps float32 [B, M, S, S] in [0, 1], MapLayout).

    Raises:
      ValueError: a map's resolution differs from the layout (a generator change).
    """
    generated, raw_maps = _run(generator, z, sentence, words, word_mask, training)
    size = generated.final.shape[1]
    max_words = int(words.shape[1]) if words is not None else 0
    layout = map_layout(generator, max_words)
    if conditions_on_words(generator):
        # The attention's word axis comes out of a reshape with -1: make T static.
        raw_maps = [tf.ensure_shape(m, [None, None, None, max_words]) for m in raw_maps]
    # A mask is one channel, an attention map one channel per word.
    got = tuple(int(m.shape[1]) for m in raw_maps for _ in range(m.shape[-1]))
    if got != layout.resolutions:
        raise ValueError(f"{generator.name}'s maps are at {got} px, its layout says "
                         f"{layout.resolutions}.")
    batch = tf.shape(generated.final)[0]
    if not raw_maps:
        return generated, tf.zeros([batch, 0, size, size], tf.float32), layout
    if conditions_on_words(generator):
        real = tf.cast(word_mask, tf.float32)[:, None, None, :]  # [B, 1, 1, T]
        raw_maps = [tf.cast(m, tf.float32) * real for m in raw_maps]
    resized = [tf.image.resize(tf.cast(m, tf.float32), [size, size], method="bilinear")
               for m in raw_maps]
    maps = tf.transpose(tf.concat(resized, axis=-1), [0, 3, 1, 2])  # [B, M, S, S]
    if conditions_on_words(generator):
        peak = tf.reduce_max(maps, axis=[2, 3], keepdims=True)
        maps = tf.math.divide_no_nan(maps, peak)
    return generated, tf.clip_by_value(maps, 0.0, 1.0), layout


def generate_images(generator, z, sentence, words=None, word_mask=None,
                    training: bool = False) -> tf.Tensor:
    """The final image of any generator: float32 [B, S, S, 3] in [-1, 1]."""
    return generate(generator, z, sentence, words, word_mask, training).final


def generate_from_captions(generator, text_encoder, caption_ids, z,
                           training: bool = False) -> tf.Tensor:
    """Final images of any generator for token ids: the one path from captions to images
    (sampling, grids, evaluation, export).

    Args:
      generator: an SSA-GAN or AttnGAN-family generator.
      text_encoder: the DAMSM text encoder the generator was trained with.
      caption_ids: int32 [B, T] token ids, 0-padded.
      z: float32 [B, z_dim] noise.

    Returns:
      float32 [B, S, S, 3] in [-1, 1].
    """
    words, sentence = text_encoder(caption_ids, training=False)
    return generate_images(generator, z, sentence, words, pipeline.caption_mask(caption_ids),
                           training=training)


def build_generator(generator, z_dim: int, text_dim: int, max_length: int):
    """Creates a generator's weights with a one-example call."""
    z = tf.zeros([1, z_dim])
    sentence = tf.zeros([1, text_dim])
    words = tf.zeros([1, max_length, text_dim])
    mask = tf.ones([1, max_length], tf.bool)
    return generate(generator, z, sentence, words, mask, training=False)


def build_discriminator(discriminator, image_size: int, text_dim: int):
    """Creates a discriminator's weights (features and every logit head) with one call."""
    features = discriminator(tf.zeros([1, image_size, image_size, 3]), training=False)
    sentence = tf.zeros([1, text_dim])
    if hasattr(discriminator, "logits"):
        if getattr(discriminator, "word_logits", False):
            return discriminator.logits(features, sentence, tf.zeros([1, 1, text_dim]),
                                        tf.ones([1, 1], tf.bool))
        return discriminator.logits(features, sentence)
    discriminator.unconditional_logits(features)
    return discriminator.conditional_logits(features, sentence)
