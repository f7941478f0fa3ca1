"""Times the DAMSM word loss, forward and backward, against its earlier formulations.

  python benchmarks/damsm_word_loss.py [--batch=32 --regions=16 --dim=256 --repeats=20]
  python benchmarks/damsm_word_loss.py --batch=48 --regions=8   # shapes pretraining

`tf_t2i.losses.damsm.damsm_word_loss` scores only the valid words of the batch (packed,
with segment softmaxes). Until the seventh shapes round it scored all T token slots of
every caption and masked the padding afterwards; `all_slots_word_loss` below is that
formulation, kept here only as the baseline. Captions get the word counts of the
built-in shapes captions (9 words at the median, at most T = 18), each in a
`tf.function`; the rows alternate three times so that drift of the machine hits all of
them, and the ratio column is against the all-slots float32 row. Also times the packed
loss with its two matmuls in bfloat16 (what pretraining uses under mixed_bfloat16).
`context_word_loss` is the packed loss as it was until the twenty-second shapes round:
caption-major [N, B, R] tensors and the attended context vectors materialised; the
loss now takes w.c and |c| from the scores and the regions' Gram matrix where there are
no more regions than dimensions (`damsm._context_sq_norm`).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from tf_t2i.data import shapes  # pylint: disable=g-import-not-at-top
from tf_t2i.losses import damsm  # pylint: disable=g-import-not-at-top

_MASK_VALUE = -1e9


def all_slots_word_loss(word_features, caption_mask, region_features, gamma1=4.0,
                        gamma2=5.0, gamma3=10.0):
    """The same loss over every token slot, padding masked out of each softmax."""
    mask = tf.cast(caption_mask, tf.bool)
    shape = tf.shape(region_features)
    regions = tf.reshape(region_features, [shape[0], shape[1] * shape[2], shape[3]])
    scores = tf.einsum('itd,jrd->jitr', word_features, regions)
    scores = tf.where(mask[None, :, :, None], scores, _MASK_VALUE)
    attention = tf.nn.softmax(gamma1 * tf.nn.softmax(scores, axis=2), axis=3)
    context = tf.einsum('jitr,jrd->jitd', attention, regions)
    dot = tf.einsum('itd,jitd->jit', word_features, context)
    norms = (tf.norm(word_features, axis=-1)[None] * tf.norm(context, axis=-1))
    cosine = tf.where(mask[None], gamma2 * dot / tf.maximum(norms, 1e-8), _MASK_VALUE)
    relevance = tf.reduce_logsumexp(cosine, axis=2)
    return damsm._symmetric_cross_entropy(gamma3 * relevance, None)  # pylint: disable=protected-access


def context_word_loss(word_features, caption_mask, region_features, gamma1=4.0, gamma2=5.0,
                      gamma3=10.0):
    """The packed loss with the context vectors, caption-major (the earlier formulation)."""
    shape = tf.shape(region_features)
    regions = tf.reshape(region_features, [shape[0], shape[1] * shape[2], shape[3]])
    positions = tf.where(tf.cast(caption_mask, tf.bool))
    owner = tf.cast(positions[:, 0], tf.int32)
    words = tf.gather_nd(word_features, positions)
    scores = tf.einsum('nd,jrd->njr', words, regions)
    over_words = damsm._segment_softmax(scores, owner, shape[0])  # pylint: disable=protected-access
    attention = tf.nn.softmax(gamma1 * over_words, axis=2)
    context = tf.einsum('njr,jrd->njd', attention, regions)
    dot = tf.einsum('nd,njd->nj', words, context)
    norms = tf.norm(words, axis=-1)[:, None] * tf.norm(context, axis=-1)
    relevance = damsm._segment_logsumexp(  # pylint: disable=protected-access
        gamma2 * dot / tf.maximum(norms, 1e-8), owner, shape[0])
    return damsm._symmetric_cross_entropy(  # pylint: disable=protected-access
        gamma3 * tf.transpose(relevance), None)


def shapes_word_counts(count, max_length, seed=0):
    """Word counts of `count` captions drawn from the shapes training split."""
    lengths = [min(max_length, len(c.split()))
               for example in shapes.generate_split("train", 300) for c in example.captions]
    return np.random.default_rng(seed).choice(lengths, count)


def timed_step(loss_fn, words, regions, mask):
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(words, mask, regions))
        return loss, tape.gradient(loss, [words, regions])
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=18, help="Token slots T.")
    parser.add_argument("--regions", type=int, default=16, help="Region grid side.")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    lengths = shapes_word_counts(args.batch, args.length)
    mask = tf.constant(np.arange(args.length)[None] < lengths[:, None])
    words = tf.Variable(rng.normal(size=[args.batch, args.length, args.dim]).astype(np.float32)
                        * 0.1)
    regions = tf.Variable(rng.normal(
        size=[args.batch, args.regions, args.regions, args.dim]).astype(np.float32) * 0.1)
    rows = {
        "all slots, float32": timed_step(all_slots_word_loss, words, regions, mask),
        "valid words, context vectors": timed_step(context_word_loss, words, regions, mask),
        "valid words, float32": timed_step(
            lambda w, m, r: damsm.damsm_word_loss(w, m, r)[0], words, regions, mask),
        "valid words, bf16 matmuls": timed_step(
            lambda w, m, r: damsm.damsm_word_loss(w, m, r, matmul_dtype="bfloat16")[0],
            words, regions, mask),
    }
    values = {name: float(step()[0]) for name, step in rows.items()}  # traces each
    times = {name: [] for name in rows}
    for _ in range(3):
        for name, step in rows.items():
            step()
            started = time.perf_counter()
            for _ in range(args.repeats):
                step()
            times[name].append((time.perf_counter() - started) / args.repeats)
    base = min(times["all slots, float32"])
    print(f"DAMSM word loss, forward + backward: batch {args.batch}, T = {args.length} "
          f"({np.median(lengths):g} words at the median), {args.regions}x{args.regions} "
          f"regions x {args.dim}")
    for name in rows:
        best = min(times[name])
        print(f"  {name:<28} {1000 * best:7.1f} ms   x{base / best:4.2f}   loss "
              f"{values[name]:.5f}")


if __name__ == "__main__":
    main()
