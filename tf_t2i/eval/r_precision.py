"""R-precision (Xu et al. 2018, AttnGAN; the protocol of DM-GAN's evaluation code).

Each image's DAMSM global code is compared by cosine similarity with the sentence
embedding of its own caption and with those of 99 mismatched captions (captions of
other classes where classes exist, else of other images). It is a hit when the true
caption scores strictly highest; a tie is a miss, so a collapsed encoder that maps
everything to one vector scores 0, not 1. The hit rate is averaged over `folds`
contiguous slices and the mean and standard deviation (ddof=0) over slices reported.

Differences from DM-GAN's code, on purpose: no shuffle before the folds (the order is
already random: one caption draw per image), no off-by-one in the fold slices, and
ties count as misses (DM-GAN's `argmax == 0` counts a tie as a hit).
"""

from typing import Tuple

import numpy as np

NUM_MISMATCHED = 99


def _normalize(x: np.ndarray) -> np.ndarray:
    # Same epsilon as DM-GAN's clamp(norm * norm, 1e-8), applied per vector.
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


def r_precision(image_codes, true_sentence, mismatched_sentences,
                folds: int = 10) -> Tuple[float, float]:
    """R-precision (R = 1): mean and std over contiguous folds.

    Args:
      image_codes: [N, D] global image codes.
      true_sentence: [N, D] the sentence embedding of each image's own caption.
      mismatched_sentences: [N, M, D] embeddings of M mismatched captions per image
        (M = 99 in the protocol).
      folds: number of contiguous slices the N hits are averaged over.

    Returns:
      (mean, std) of the per-fold hit rates, as Python floats in [0, 1].
    """
    images = np.asarray(image_codes, np.float64)
    true = np.asarray(true_sentence, np.float64)
    mismatched = np.asarray(mismatched_sentences, np.float64)
    n = images.shape[0]
    if images.ndim != 2 or true.shape != images.shape or mismatched.ndim != 3 or \
            mismatched.shape[0] != n or mismatched.shape[2] != images.shape[1]:
        raise ValueError(f"Shapes do not fit: image_codes {images.shape}, true_sentence "
                         f"{true.shape}, mismatched_sentences {mismatched.shape}.")
    if n < folds or folds < 1:
        raise ValueError(f"R-precision over {folds} folds needs at least {folds} images, "
                         f"got {n}.")
    return fold_statistics(hits(images, true, mismatched), folds)


def hits(image_codes, true_sentence, mismatched_sentences) -> np.ndarray:
    """1.0 where the true sentence scores strictly above every mismatched one, float64 [N]."""
    images = _normalize(np.asarray(image_codes, np.float64))
    true_scores = np.einsum("nd,nd->n", images, _normalize(np.asarray(true_sentence,
                                                                      np.float64)))
    other_scores = np.einsum("nd,nmd->nm", images,
                             _normalize(np.asarray(mismatched_sentences, np.float64)))
    return (true_scores > other_scores.max(axis=1)).astype(np.float64)


def fold_statistics(values, folds: int) -> Tuple[float, float]:
    """Mean and std (ddof=0) of the means of `folds` contiguous slices of `values`."""
    values = np.asarray(values, np.float64)
    if len(values) < folds or folds < 1:
        raise ValueError(f"{folds} folds need at least {folds} values, got {len(values)}.")
    per_fold = [part.mean() for part in np.array_split(values, folds)]
    return float(np.mean(per_fold)), float(np.std(per_fold))


def r_precision_indexed(image_codes, sentences, mismatched_index, true_index=None,
                        folds: int = 10, chunk: int = 256) -> Tuple[float, float]:
    """`r_precision` with the mismatched sentences given as rows of `sentences`.

    Gathers [chunk, M, D] at a time instead of materialising [N, M, D] (30,000 x 99 x 256
    float64 would be 6 GB).

    Args:
      image_codes: [N, D].
      sentences: [S, D] sentence embeddings.
      mismatched_index: int [N, M] rows of `sentences` mismatched with each image.
      true_index: int [N] the row of each image's own sentence; default arange(N).
      folds: contiguous slices for mean and std.
      chunk: images scored at a time.
    """
    images = np.asarray(image_codes)
    sentences = np.asarray(sentences)
    mismatched_index = np.asarray(mismatched_index)
    n = len(images)
    true_index = np.arange(n) if true_index is None else np.asarray(true_index)
    if mismatched_index.ndim != 2 or len(mismatched_index) != n or len(true_index) != n:
        raise ValueError(f"Shapes do not fit: {n} image codes, mismatched_index "
                         f"{mismatched_index.shape}, true_index {true_index.shape}.")
    out = np.concatenate([
        hits(images[i:i + chunk], sentences[true_index[i:i + chunk]],
             sentences[mismatched_index[i:i + chunk]]) for i in range(0, n, chunk)])
    return fold_statistics(out, folds)


def sample_mismatched(groups, num_mismatched: int, rng: np.random.Generator) -> np.ndarray:
    """For each item i, `num_mismatched` indices j with groups[j] != groups[i].

    Pass class ids as groups where classes exist, else image ids, so mismatched captions
    come from other classes (CUB) or other images (COCO, shapes). Like DM-GAN's
    sampling, indices are drawn with replacement across the whole set.

    Args:
      groups: int [N].
      num_mismatched: M.
      rng: numpy generator (seeded by the caller).

    Returns:
      int64 [N, M].

    Raises:
      ValueError: some item has no item of another group.
    """
    groups = np.asarray(groups)
    n = len(groups)
    _, counts = np.unique(groups, return_counts=True)
    if n == 0 or counts.max() == n:
        raise ValueError("R-precision needs captions of at least two different classes or "
                         "images to draw mismatched captions from.")
    out = np.empty((n, num_mismatched), np.int64)
    todo = np.ones((n, num_mismatched), bool)
    # Rejection sampling: each round redraws the draws that hit the item's own group.
    while todo.any():
        rows, cols = np.nonzero(todo)
        draws = rng.integers(0, n, size=len(rows))
        ok = groups[draws] != groups[rows]
        out[rows[ok], cols[ok]] = draws[ok]
        todo[rows[ok], cols[ok]] = False
    return out


def mismatched_groups(class_ids, image_ids) -> np.ndarray:
    """Groups for `sample_mismatched`: class ids where every item has one, else image ids."""
    class_ids = np.asarray(class_ids)
    return class_ids if class_ids.size and np.all(class_ids >= 0) else np.asarray(image_ids)
