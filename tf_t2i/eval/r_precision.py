"""R-precision (Xu et al. 2018, AttnGAN; protocol of DM-GAN / T2I_CL evaluation code).

For each image, its DAMSM global code is compared by cosine similarity with its own
caption's sentence embedding and with `num_candidates - 1` sentence embeddings of
captions of other images (of other classes where classes exist); a hit is when the true
caption ranks first. The hit rate is averaged within each of `folds` groups and the mean
and standard deviation over groups are reported.
"""

from typing import Dict, Optional

import numpy as np


def _normalize(x):
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)


def sample_mismatched(class_ids: np.ndarray, num_mismatched: int,
                      rng: np.random.Generator) -> np.ndarray:
    """For each item i, `num_mismatched` indices j != i with class_ids[j] != class_ids[i].

    Class ids < 0 mean "no class": then only j != i is required.
    """
    n = len(class_ids)
    out = np.empty((n, num_mismatched), np.int64)
    for i in range(n):
        if class_ids[i] >= 0:
            allowed = np.flatnonzero(class_ids != class_ids[i])
        else:
            allowed = np.delete(np.arange(n), i)
        if len(allowed) < num_mismatched:
            raise ValueError(f"R-precision needs {num_mismatched} mismatched captions per image but "
                             f"item {i} has only {len(allowed)} candidates; use more images.")
        out[i] = rng.choice(allowed, size=num_mismatched, replace=False)
    return out


def r_precision(image_codes: np.ndarray, sentence_embeddings: np.ndarray,
                class_ids: Optional[np.ndarray] = None, num_candidates: int = 100,
                folds: int = 10, seed: int = 0) -> Dict[str, float]:
    """R-precision of image codes against the sentences of their own captions.

    Args:
      image_codes: [N, D] global image codes (real or generated images).
      sentence_embeddings: [N, D]; row i embeds a caption of image i.
      class_ids: [N] or None.
      num_candidates: 1 true + (num_candidates - 1) mismatched captions.
      folds: groups over which mean and std are taken.
      seed: draws the mismatched captions.

    Returns:
      {"r_precision": mean, "r_precision_std": std over folds, "num_images": N}.
    """
    n = len(image_codes)
    if len(sentence_embeddings) != n:
        raise ValueError(f"{n} image codes but {len(sentence_embeddings)} sentences.")
    if n < folds:
        raise ValueError(f"R-precision over {folds} folds needs at least {folds} images, got {n}.")
    rng = np.random.default_rng(seed)
    cls = np.full(n, -1) if class_ids is None else np.asarray(class_ids)
    mismatched = sample_mismatched(cls, num_candidates - 1, rng)
    images = _normalize(image_codes)
    sentences = _normalize(sentence_embeddings)
    candidates = np.concatenate([np.arange(n)[:, None], mismatched], axis=1)   # [N, K]
    scores = np.einsum("nd,nkd->nk", images, sentences[candidates])
    # Strictly above every mismatched score: ties (e.g. a collapsed encoder) are misses.
    hits = (scores[:, 0] > scores[:, 1:].max(axis=1)).astype(np.float64)
    order = rng.permutation(n)
    per_fold = [hits[idx].mean() for idx in np.array_split(order, folds)]
    return {"r_precision": float(np.mean(per_fold)), "r_precision_std": float(np.std(per_fold)),
            "num_images": int(n)}
