"""One way to call every generator family, for training, sampling, evaluation and export.

SSA-GAN's generator is conditioned on the sentence embedding only and returns
`(images, masks)`; the AttnGAN family (AttnGAN, Style1AttnGAN, Style2AttnGAN) also attends
over word features and returns a dict with one image per stage plus the conditioning
augmentation's `mu` / `logvar`. Callers use these functions instead of calling a generator
directly, so that nothing downstream depends on the family.
"""

from typing import List, NamedTuple, Optional

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
      words: float32 [B, T, D] word features (AttnGAN family only).
      word_mask: bool [B, T], True at real words (AttnGAN family only).
      training: training mode (batch statistics, style mixing).

    Returns:
      A `Generated`.
    """
    if conditions_on_words(generator):
        if words is None or word_mask is None:
            raise ValueError(f"{generator.name} attends over words: pass words and word_mask.")
        out = generator(z, sentence, words, word_mask, training=training,
                        noise_seed=noise_seeds_from(z))
        return Generated(list(out["images"]), out.get("mu"), out.get("logvar"))
    images, _ = generator(z, sentence, training=training)
    return Generated([images])


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
        return discriminator.logits(features, sentence)
    discriminator.unconditional_logits(features)
    return discriminator.conditional_logits(features, sentence)
