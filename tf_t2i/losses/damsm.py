"""DAMSM word and sentence matching losses (Xu et al. 2018, AttnGAN).

Both losses score every (image, caption) pair of the batch, turn the scores
into a [B_images, B_captions] logit matrix and apply cross-entropy in both
directions with the diagonal as the target. They follow the reference code
(taoxugit/AttnGAN `code/miscc/losses.py`, `code/GlobalAttention.py`) rather
than the paper where the two differ; the differences are noted inline.

Both also take an optional hard negative per image: a wrong caption of image i (for
shapes, its own caption with the shape words changed) joins the image-to-caption softmax
of row i as one more candidate, as NegCLIP does for CLIP's contrastive loss (Yuksekgonul
et al. 2023, "When and why vision-language models behave like bags-of-words"). A random
batch's captions mostly differ in colour or position, so in-batch negatives alone rarely
make the encoders rank captions by shape; the hard negative does. It is scored against
its own image only, so it costs a B-row computation, not another B x B one.
"""

import tensorflow as tf

# The reference clamps the product of the two norms at this value.
_COSINE_EPS = 1e-8
# Stands in for the reference's -inf: finite so that cross-entropy and its
# gradient stay finite, yet exp() of it is exactly zero in float32.
_MASK_VALUE = -1e9


def _safe_norm(x, axis):
    # The floor keeps the gradient of sqrt finite for all-zero vectors (padded
    # word features are often zeros); it does not change the value of any norm
    # that the later clamp at _COSINE_EPS would not already override.
    return tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(x), axis=axis), 1e-30))


def _class_mask(class_ids, batch_size):
    """Returns a [B, B] bool mask of off-diagonal pairs that share a class."""
    class_ids = tf.reshape(class_ids, [-1])
    same = tf.equal(class_ids[:, None], class_ids[None, :])
    return tf.logical_and(same, tf.logical_not(tf.eye(batch_size, dtype=tf.bool)))


def _symmetric_cross_entropy(logits, class_ids, hard_negative_logits=None):
    """Per-example cross-entropy of a [B_images, B_captions] matrix, both ways.

    Args:
        logits: float32 [B, B]; entry (j, i) scores image j against caption i.
        class_ids: optional [B] ints; off-diagonal pairs of the same class are
            removed from both softmaxes.
        hard_negative_logits: optional float32 [B]: image j against its own wrong
            caption, one more candidate in row j's softmax (no column: that
            caption describes no image of the batch).

    Returns:
        float32 [B]: row i's cross-entropy (image i against all captions) plus
        column i's (caption i against all images), each with target i.
    """
    batch_size = tf.shape(logits)[0]
    if class_ids is not None:
        logits = tf.where(_class_mask(class_ids, batch_size), _MASK_VALUE, logits)
    labels = tf.range(batch_size)
    image_logits = logits
    if hard_negative_logits is not None:
        image_logits = tf.concat([logits, hard_negative_logits[:, None]], axis=1)
    image_direction = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=image_logits)
    caption_direction = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=tf.transpose(logits))
    return image_direction + caption_direction


def damsm_word_loss(word_features,
                    caption_mask,
                    region_features,
                    class_ids=None,
                    gamma1=4.0,
                    gamma2=5.0,
                    gamma3=10.0,
                    matmul_dtype=tf.float32,
                    hard_negative=None):
    """DAMSM word-level loss (Xu et al. 2018, "AttnGAN", Eqs. 7-13).

    For each image j and caption i, every valid word of caption i attends over
    the regions of image j: dot products, softmax over the caption's valid words,
    times `gamma1`, softmax over regions (reference `func_attention`). The
    attended region context is compared with the word by cosine similarity and
    R(j, i) = log(sum over valid words of exp(gamma2 * cos)). The reference code
    omits the paper's 1/gamma2 exponent on the sum and so does this function.
    Logits gamma3 * R are scored with cross-entropy both ways.

    Padding words (caption_mask False) take part in no softmax and no sum, the
    same as the reference's slicing to the caption length. Every caption must
    have at least one valid word.

    Args:
        word_features: [B, T, D] float word features of the captions.
        caption_mask: [B, T] bool or 0/1; True marks a real word.
        region_features: [B, H, W, D] float region features of the images.
        class_ids: optional [B] ints. Off-diagonal pairs of one class are masked
            out of the softmaxes, as the reference does for CUB.
        gamma1: attention sharpness over regions.
        gamma2: weight of the word-context cosine inside the log-sum-exp.
        gamma3: scale of the image-caption logits.
        matmul_dtype: dtype of the two matmuls that are nearly all of the loss's
            cost (words against regions, attention times regions); bfloat16 makes
            the loss about 1.4x faster on CPU (benchmarks/damsm_word_loss.py).
            Softmaxes, cosines and the log-sum-exp stay float32 whatever this is.
        hard_negative: optional `(word_features [B, T', D], caption_mask [B, T'])`
            of one wrong caption per image (module docstring), scored against
            its own image only; every one must have a valid word.

    Returns:
        A tuple `(per_example, attention)`: float32 [B] losses whose batch mean
        equals the reference's `w_loss0 + w_loss1`, and float32 [B, T, H, W]
        attention maps of each caption over its own image (zero at padding).
    """
    word_features = tf.cast(word_features, tf.float32)
    region_features = tf.cast(region_features, tf.float32)
    mask = tf.cast(caption_mask, tf.bool)
    shape = tf.shape(region_features)
    batch_size, height, width = shape[0], shape[1], shape[2]
    num_regions = height * width
    regions = tf.reshape(region_features,
                         [batch_size, num_regions, shape[3]])  # [B, R, D]

    # Every valid word of every caption, packed: n indexes them, caption-major, and
    # `owner[n]` is the caption word n belongs to. Scoring only real words instead of
    # all T slots of every caption halves the loss's cost on shapes captions (9 words
    # of 18 at the median), the matmuls below being almost all of it; padding never
    # entered the result, so the value is the same.
    positions = tf.where(mask)  # [N, 2]: (caption, word)
    owner = tf.cast(positions[:, 0], tf.int32)
    words = tf.gather_nd(word_features, positions)  # [N, D]

    # Index j is the image, r the region; image-major [B, N, R], so that both matmuls
    # are plain batched ones over the images (no transposes of the B x N x R tensors).
    matmul_regions = tf.cast(regions, matmul_dtype)
    scores = tf.cast(tf.einsum('nd,jrd->jnr', tf.cast(words, matmul_dtype), matmul_regions),
                     tf.float32)
    over_words = tf.transpose(
        _segment_softmax(tf.transpose(scores, [1, 0, 2]), owner, batch_size), [1, 0, 2])
    attention = tf.nn.softmax(gamma1 * over_words, axis=2)  # [B, N, R]
    # The context c = sum_r a_r v_r enters only through w.c and |c|: w.c is
    # sum_r a_r (w.v_r), the scores again, and |c|^2 is a^T G a with G the regions'
    # Gram matrix, an R x R product per pair instead of R x D (`_context_sq_norm`).
    dot = tf.transpose(tf.reduce_sum(attention * scores, axis=2))  # [N, B]
    context_norm = tf.sqrt(tf.maximum(
        tf.transpose(_context_sq_norm(attention, matmul_regions, region_features.shape)),
        1e-30))
    norms = _safe_norm(words, axis=-1)[:, None] * context_norm
    cosine = gamma2 * dot / tf.maximum(norms, _COSINE_EPS)  # [N, B_images]
    relevance = _segment_logsumexp(cosine, owner, batch_size)  # [B_captions, B_images]

    hard_logits = None
    if hard_negative is not None:
        hard_words, hard_mask = hard_negative
        hard_logits = gamma3 * paired_word_relevance(hard_words, hard_mask, region_features,
                                                     gamma1, gamma2, matmul_dtype)
    per_example = _symmetric_cross_entropy(gamma3 * tf.transpose(relevance), class_ids,
                                           hard_logits)

    own_attention = tf.gather_nd(
        attention, tf.stack([owner, tf.range(tf.shape(owner)[0])], axis=1))  # [N, R]
    dense_shape = tf.cast(tf.stack([batch_size, tf.shape(mask)[1], num_regions]), tf.int64)
    own_attention = tf.scatter_nd(positions, own_attention, dense_shape)
    own_attention = tf.reshape(
        own_attention, [batch_size, tf.shape(mask)[1], height, width])
    return per_example, own_attention


def _context_sq_norm(attention, regions, region_shape):
    """|sum_r a[j, n, r] v[j, r]|^2 for attention [B, N, R] over regions [B, R, D], float32
    [B, N]; `region_shape` is the static [B, H, W, D]. Through the Gram matrix of each
    image's regions (R x R) where R <= D (shapes: 64 regions of 256 dimensions, where the
    word loss ran 1.95x faster on 2 CPU cores, benchmarks/damsm_word_loss.py); through the
    context vectors otherwise (CUB's 289 regions) or where R is unknown when tracing."""
    height, width, dim = region_shape[1], region_shape[2], region_shape[3]
    weights = tf.cast(attention, regions.dtype)
    if None not in (height, width, dim) and height * width <= dim:
        gram = tf.matmul(regions, regions, transpose_b=True)  # [B, R, R]
        return tf.reduce_sum(tf.cast(tf.matmul(weights, gram), tf.float32) * attention,
                             axis=2)
    context = tf.cast(tf.matmul(weights, regions), tf.float32)  # [B, N, D]
    return tf.reduce_sum(tf.square(context), axis=2)


def paired_word_relevance(word_features, caption_mask, region_features, gamma1=4.0,
                          gamma2=5.0, matmul_dtype=tf.float32):
    """R(i, i) of `damsm_word_loss`: caption i against image i only, float32 [B].

    The same attention and log-sum-exp as the loss's B x B relevance, computed per
    pair (dense over the caption's T slots, padding masked out), so a caption that
    is not in the batch's B x B matrix (a hard negative) costs B rows, not B^2.
    """
    words = tf.cast(word_features, tf.float32)
    regions = tf.cast(region_features, tf.float32)
    mask = tf.cast(caption_mask, tf.bool)
    shape = tf.shape(regions)
    regions = tf.reshape(regions, [shape[0], shape[1] * shape[2], shape[3]])  # [B, R, D]
    matmul_regions = tf.cast(regions, matmul_dtype)
    scores = tf.cast(tf.einsum('btd,brd->btr', tf.cast(words, matmul_dtype), matmul_regions),
                     tf.float32)
    # Softmax over the caption's valid words (for each region), then over regions.
    scores = tf.where(mask[:, :, None], scores, _MASK_VALUE)
    over_words = tf.nn.softmax(scores, axis=1)
    attention = tf.nn.softmax(gamma1 * over_words, axis=2)  # [B, T, R]
    context = tf.cast(tf.einsum('btr,brd->btd', tf.cast(attention, matmul_dtype),
                                matmul_regions), tf.float32)
    dot = tf.reduce_sum(words * context, axis=-1)
    norms = _safe_norm(words, axis=-1) * _safe_norm(context, axis=-1)
    cosine = gamma2 * dot / tf.maximum(norms, _COSINE_EPS)  # [B, T]
    cosine = tf.where(mask, cosine, _MASK_VALUE)
    return tf.reduce_logsumexp(cosine, axis=1)


# Unsorted segment ops (rather than the sorted ones) because XLA compiles them.
def _segment_softmax(values, segments, num_segments):
    """Softmax of [N, ...] `values` over the rows of each segment."""
    peak = tf.stop_gradient(tf.math.unsorted_segment_max(values, segments, num_segments))
    exps = tf.exp(values - tf.gather(peak, segments))
    return exps / tf.gather(tf.math.unsorted_segment_sum(exps, segments, num_segments),
                            segments)


def _segment_logsumexp(values, segments, num_segments):
    """log(sum(exp)) of [N, ...] `values` over the rows of each segment.

    A segment with no rows (a caption without a valid word, which the callers do
    not pass) comes out hugely negative but finite, as with masked slots."""
    peak = tf.stop_gradient(tf.maximum(
        tf.math.unsorted_segment_max(values, segments, num_segments), _MASK_VALUE))
    total = tf.math.unsorted_segment_sum(tf.exp(values - tf.gather(peak, segments)),
                                         segments, num_segments)
    return tf.math.log(tf.maximum(total, 1e-30)) + peak


def damsm_sentence_loss(sentence_embedding,
                        global_code,
                        class_ids=None,
                        gamma3=10.0,
                        hard_negative=None):
    """DAMSM sentence-level loss (Xu et al. 2018, "AttnGAN", Eqs. 10-13).

    Logits are gamma3 times the cosine similarity of every image's global code
    with every caption's sentence embedding, scored with cross-entropy both ways
    (reference `sent_loss`).

    Args:
        sentence_embedding: [B, D] float sentence embeddings.
        global_code: [B, D] float global image codes, row i matching caption i.
        class_ids: optional [B] ints. Off-diagonal pairs of one class are masked
            out of the softmaxes.
        gamma3: scale of the image-caption logits.
        hard_negative: optional [B, D] sentence embeddings of one wrong caption
            per image (module docstring), scored against its own image only.

    Returns:
        float32 [B] losses whose batch mean equals the reference's
        `s_loss0 + s_loss1`.
    """
    sentence_embedding = tf.cast(sentence_embedding, tf.float32)
    global_code = tf.cast(global_code, tf.float32)
    dot = tf.matmul(global_code, sentence_embedding, transpose_b=True)
    norms = (_safe_norm(global_code, axis=1)[:, None] *
             _safe_norm(sentence_embedding, axis=1)[None, :])
    logits = gamma3 * dot / tf.maximum(norms, _COSINE_EPS)  # [B_img, B_cap]
    hard_logits = None
    if hard_negative is not None:
        hard = tf.cast(hard_negative, tf.float32)
        hard_dot = tf.reduce_sum(global_code * hard, axis=1)
        hard_norms = _safe_norm(global_code, axis=1) * _safe_norm(hard, axis=1)
        hard_logits = gamma3 * hard_dot / tf.maximum(hard_norms, _COSINE_EPS)
    return _symmetric_cross_entropy(logits, class_ids, hard_logits)
