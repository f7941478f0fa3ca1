"""Adversarial losses and penalties for text-to-image GANs.

Hinge losses and the matching-aware gradient penalty serve the DF-GAN /
SSA-GAN family; the binary cross-entropy losses, R1 and the conditioning
augmentation KL term serve the AttnGAN family. All are pure functions of
tensors returning per-example values [B]; gradients for the penalties are
taken by the caller's tape.
"""

import tensorflow as tf


def _flatten_per_example(x):
    x = tf.cast(x, tf.float32)
    return tf.reshape(x, [tf.shape(x)[0], -1])


def _logits(x):
    # Discriminators may emit [B, 1] logits; losses are per example [B].
    x = tf.cast(x, tf.float32)
    return tf.reshape(x, [tf.shape(x)[0]])


def hinge_discriminator_loss(real_logits, fake_logits, mismatched_logits=None):
    """Hinge discriminator loss (Lim & Ye 2017, "Geometric GAN").

    As conditioned in DF-GAN (Tao et al. 2022) and SSA-GAN (Liao et al. 2022):
    relu(1 - real) + 0.5 * (relu(1 + fake) + relu(1 + mismatched)). The
    reference pairs real images [0:B-1] with sentences [1:B], giving B-1
    mismatched pairs; this library's pipeline supplies a mismatched caption for
    every example (as DF-GAN v2 does), so all three inputs have B entries.
    Without `mismatched_logits` the loss is relu(1 - real) + relu(1 + fake).

    Args:
        real_logits: [B] or [B, 1] logits of real images with their captions.
        fake_logits: [B] or [B, 1] logits of generated images with their captions.
        mismatched_logits: optional [B] or [B, 1] logits of real images with
            mismatched captions.

    Returns:
        float32 [B] per-example loss.
    """
    real_term = tf.nn.relu(1.0 - _logits(real_logits))
    fake_term = hinge_fake_term(fake_logits)
    if mismatched_logits is None:
        return real_term + fake_term
    return real_term + 0.5 * (fake_term + hinge_fake_term(mismatched_logits))


def hinge_fake_term(logits):
    """The hinge loss's term for a pair D must reject: relu(1 + logits), per example.

    Args:
        logits: [B] or [B, 1].

    Returns:
        float32 [B].
    """
    return tf.nn.relu(1.0 + _logits(logits))


def hinge_generator_loss(fake_logits):
    """Hinge generator loss (Lim & Ye 2017; DF-GAN, Tao et al. 2022): -fake.

    Args:
        fake_logits: [B] or [B, 1] logits of generated images with their captions.

    Returns:
        float32 [B] per-example loss.
    """
    return -_logits(fake_logits)


def generator_matching_loss(matched_logits, mismatched_logits):
    """The generator's matching term: softplus(mismatched - matched), per example.

    -log sigmoid(D(fake, s) - D(fake, s')): the cross-entropy of the discriminator's
    matching logits picking the fake's own sentence s over a mismatched one s'. The
    matching-aware discriminator (Reed et al. 2016, GAN-CLS; DF-GAN and SSA-GAN's
    (real, mismatched) term) learns to tell matching from mismatched pairs on real
    images only; the generator's hinge term -D(fake, s) rewards realism and matching
    together. This term rewards matching alone, as a two-way contrastive loss between a
    fake and two sentences scored by the discriminator (XMC-GAN, Zhang et al. 2021, Eq. 5
    uses D's image and sentence embeddings the same way, against the batch); with hard
    negatives (a caption wrong in one attribute) it asks the fake to show that
    attribute as the discriminator reads it on real images. Not in the reference.

    Args:
        matched_logits: [B] or [B, 1] logits of the fakes with their own sentences.
        mismatched_logits: [B] or [B, 1] logits of the same fakes with mismatched ones.

    Returns:
        float32 [B] per-example loss.
    """
    return tf.nn.softplus(_logits(mismatched_logits) - _logits(matched_logits))


def matching_aware_gradient_penalty(image_grads,
                                    sentence_grads=None,
                                    weight=2.0,
                                    power=6.0):
    """Matching-aware gradient penalty, MA-GP (Tao et al. 2022, "DF-GAN", Eq. 3).

    weight * ||(grad_x D, grad_s D)||_2 ** power per example, where the two
    gradients of the discriminator's output on real images with their matching
    sentences are flattened and concatenated. DF-GAN and SSA-GAN use k = 2 and
    p = 6.

    Args:
        image_grads: [B, H, W, C] gradients with respect to the real images.
        sentence_grads: optional [B, D] gradients with respect to the sentence
            embeddings; when None only the image part enters the norm.
        weight: the multiplier k.
        power: the exponent p.

    Returns:
        float32 [B] per-example penalty.
    """
    grads = _flatten_per_example(image_grads)
    if sentence_grads is not None:
        grads = tf.concat([grads, _flatten_per_example(sentence_grads)], axis=1)
    squared_norm = tf.reduce_sum(tf.square(grads), axis=1)
    # norm ** p written as (norm^2) ** (p / 2): no sqrt, so the gradient stays
    # finite when all gradients are zero.
    return weight * tf.pow(squared_norm, power / 2.0)


def bce_discriminator_loss(real_logits, fake_logits, mismatched_logits=None):
    """Binary cross-entropy discriminator loss (Goodfellow et al. 2014).

    As used, from probabilities, by AttnGAN (Xu et al. 2018); here from logits
    through softplus for numerical stability: softplus(-real) + softplus(fake),
    plus softplus(mismatched) when given (mismatched pairs are labelled fake).
    AttnGAN's weighting of the conditional and unconditional terms is left to
    the caller, which can combine several calls.

    Args:
        real_logits: [B] or [B, 1] logits of real (matching) inputs.
        fake_logits: [B] or [B, 1] logits of generated inputs.
        mismatched_logits: optional [B] or [B, 1] logits of real images with
            mismatched captions.

    Returns:
        float32 [B] per-example loss, the unweighted sum of the terms.
    """
    loss = tf.nn.softplus(-_logits(real_logits)) + tf.nn.softplus(
        _logits(fake_logits))
    if mismatched_logits is not None:
        loss += tf.nn.softplus(_logits(mismatched_logits))
    return loss


def attngan_discriminator_loss(cond_real, cond_fake, cond_mismatched, uncond_real,
                               uncond_fake):
    """One stage's discriminator loss of AttnGAN (Xu et al. 2018, miscc/losses.py).

    Binary cross-entropy of the conditional (image, sentence) and unconditional (image)
    logits, combined as the reference does:
    (uncond_real + cond_real) / 2 + (uncond_fake + cond_fake + cond_mismatched) / 3,
    where a real term is BCE against 1, softplus(-x), and a fake or mismatched term BCE
    against 0, softplus(x). The reference applies BCELoss to sigmoid outputs; the logit
    form is the same value, computed stably.

    Args:
        cond_real: [B] logits of (real image, its sentence).
        cond_fake: [B] logits of (fake image, its sentence).
        cond_mismatched: [B] logits of (real image, a mismatched sentence).
        uncond_real: [B] unconditional logits of the real images.
        uncond_fake: [B] unconditional logits of the fakes.

    Returns:
        float32 [B] per-example loss.
    """
    real = tf.nn.softplus(-_logits(cond_real)) + tf.nn.softplus(-_logits(uncond_real))
    fake = (tf.nn.softplus(_logits(cond_fake)) + tf.nn.softplus(_logits(uncond_fake))
            + tf.nn.softplus(_logits(cond_mismatched)))
    return real / 2.0 + fake / 3.0


def bce_generator_loss(fake_logits):
    """Non-saturating generator loss (Goodfellow et al. 2014): softplus(-fake).

    The logit form of AttnGAN's BCELoss(D(G(z)), 1) (Xu et al. 2018).

    Args:
        fake_logits: [B] or [B, 1] logits of generated inputs.

    Returns:
        float32 [B] per-example loss.
    """
    return tf.nn.softplus(-_logits(fake_logits))


def r1_penalty(real_grads, gamma=10.0):
    """R1 gradient penalty (Mescheder et al. 2018, Eq. 9): gamma/2 ||grad||^2.

    Args:
        real_grads: [B, ...] gradients of the discriminator's output with respect
            to the real inputs.
        gamma: the penalty weight.

    Returns:
        float32 [B] per-example penalty.
    """
    grads = _flatten_per_example(real_grads)
    return 0.5 * gamma * tf.reduce_sum(tf.square(grads), axis=1)


def kl_loss(mu, logvar):
    """KL divergence of N(mu, exp(logvar)) from N(0, I) per dimension.

    Conditioning augmentation of StackGAN (Zhang et al. 2017), as in AttnGAN's
    `KL_loss` (Xu et al. 2018): -0.5 * mean(1 + logvar - mu^2 - exp(logvar)).
    The reference averages over all elements; the per-example value averages
    over the dimensions, so the batch mean equals the reference.

    Args:
        mu: [B, D] means.
        logvar: [B, D] log-variances.

    Returns:
        float32 [B] per-example loss.
    """
    mu = tf.cast(mu, tf.float32)
    logvar = tf.cast(logvar, tf.float32)
    element = 1.0 + logvar - tf.square(mu) - tf.exp(logvar)
    return -0.5 * tf.reduce_mean(element, axis=1)


def mode_seeking_loss(images_a, images_b, z_a, z_b, eps=1e-5):
    """Mode-seeking regulariser (Mao et al. 2019, "Mode Seeking Generative Adversarial
    Networks for Diverse Image Synthesis", MSGAN, Eq. 3).

    Two images of the same condition from two noise vectors should differ in proportion
    to their noise: the ratio d_I / d_z of the mean absolute differences is maximised by
    minimising 1 / (d_I / d_z + eps), the form of the authors' code. Counters the mode
    collapse of conditional GANs, where the generator ignores its noise.

    Args:
        images_a, images_b: [B, H, W, C] images generated from the same conditions with
            the noise `z_a` and `z_b`.
        z_a, z_b: [B, Z] the noise vectors.
        eps: keeps the loss finite when the two images are equal.

    Returns:
        float32 [B] per-example loss.
    """
    image_distance = tf.reduce_mean(
        tf.abs(_flatten_per_example(images_a) - _flatten_per_example(images_b)), axis=1)
    noise_distance = tf.reduce_mean(
        tf.abs(_flatten_per_example(z_a) - _flatten_per_example(z_b)), axis=1)
    return 1.0 / (image_distance / noise_distance + eps)
