"""Diversity over noise for one caption, against real images that fit the same caption.

A conditional GAN can satisfy its captions and still collapse: one image per caption,
whatever the noise. On shapes this is measurable against the data itself, because the
test split's ground truth says which real images fit a caption:

* for a caption, generate G images from G noise vectors and take the mean pairwise
  distance of their attribute-classifier features;
* take up to G real test images whose ground truth shows everything the caption names
  (judged as `attributes.judge` judges generated images) and the same distance;
* the ratio of the two, averaged over captions, is 1 when generated images vary over z
  as much as real images vary over what the caption leaves open, and near 0 under mode
  collapse.

What the caption leaves open is also reported one attribute at a time: the number of
distinct positions and sizes among the G images for captions that do not name them, and
the spread of the background colour (the mean colour of a 4-pixel border, where objects
rarely reach), each next to the same number for the real images.
"""

import dataclasses
from typing import Dict, Optional, Sequence

import numpy as np

from tf_t2i.data import shapes_captions
from tf_t2i.eval import attributes as attributes_lib

# The border, in pixels at the classifier's 64 px, whose mean colour stands for the
# background (objects sit at least 2% + their radius away from the image edge).
BORDER = 4


def mean_pairwise_distance(features: np.ndarray) -> float:
    """Mean Euclidean distance over the n(n-1)/2 pairs of rows of `features` [n, d]."""
    features = np.asarray(features, np.float64)
    n = len(features)
    if n < 2:
        raise ValueError(f"Need at least 2 rows for a pairwise distance, got {n}.")
    diff = features[:, None, :] - features[None, :, :]
    distances = np.sqrt(np.sum(diff * diff, axis=-1))
    return float(distances[np.triu_indices(n, 1)].mean())


def ground_truth_reading(attributes: Dict[str, np.ndarray]) -> attributes_lib.Reading:
    """A `Reading` of real images taken from their ground truth instead of the classifier."""
    targets = attributes_lib.slot_targets(attributes)
    occupied = targets["occupancy"] > 0.5
    n = len(occupied)
    return attributes_lib.Reading(occupied=occupied, color=targets["color"],
                                  shape=targets["shape"], size=targets["size"],
                                  features=np.zeros((n, 0), np.float32))


def fitting_images(named: shapes_captions.NamedAttributes,
                   truth: attributes_lib.Reading) -> np.ndarray:
    """Indices of the images whose ground truth shows everything `named` names.

    The rule of `attributes.judge` (a named value must be shown by some object, a named
    colour-shape pair by one object), vectorised over the images.
    """
    occupied = truth.occupied
    fits = np.ones(len(occupied), bool)
    for name in ("color", "shape", "size"):
        values = getattr(truth, name)
        for wanted in getattr(named, name):
            fits &= np.any(occupied & (values == wanted), axis=1)
    for slot in named.position:
        fits &= occupied[:, slot]
    for color, shape in named.color_shape:
        fits &= np.any(occupied & (truth.color == color) & (truth.shape == shape), axis=1)
    return np.flatnonzero(fits)


def border_colour(images: np.ndarray, border: int = BORDER) -> np.ndarray:
    """Mean RGB [n, 3] in [0, 1] of the `border`-pixel frame of uint8 images [n, H, W, 3]."""
    x = np.asarray(images, np.float64) / 255.0
    mask = np.ones(x.shape[1:3], bool)
    mask[border:-border, border:-border] = False
    return x[:, mask, :].mean(axis=1)


@dataclasses.dataclass
class GroupStatistics:
    """What one group of images (one caption) shows; see `group_statistics`."""
    feature_distance: float
    background_spread: float
    distinct: Dict[str, Optional[float]]


def group_statistics(reading: attributes_lib.Reading, images: np.ndarray,
                     named: shapes_captions.NamedAttributes) -> GroupStatistics:
    """Spread of one group of images of the same caption.

    Args:
      reading: the classifier's reading of the group (features, slots).
      images: uint8 [n, H, W, 3], the same images.
      named: what the caption names.

    Returns:
      feature_distance: mean pairwise distance of the classifier features;
      background_spread: mean pairwise distance of the border colours;
      distinct: for "position" and "size" when the caption does not name them, the
        number of distinct values among the images' objects (all objects of all images
        pooled); None when the caption names it.
    """
    distinct = {}
    for name in ("position", "size"):
        if getattr(named, name):
            distinct[name] = None
            continue
        values = set()
        for i in range(len(reading.occupied)):
            slots = np.flatnonzero(reading.occupied[i])
            values |= set(slots.tolist()) if name == "position" else {
                int(reading.size[i, s]) for s in slots}
        distinct[name] = float(len(values))
    return GroupStatistics(mean_pairwise_distance(reading.features),
                           mean_pairwise_distance(border_colour(images)), distinct)


def summarize(generated: Sequence[GroupStatistics], real: Sequence[GroupStatistics]) -> Dict:
    """Averages over captions; `generated[i]` and `real[i]` belong to caption i.

    Returns a dict with `value` (mean generated / mean real feature distance), the two
    means, the same for the background spread, and per open attribute the mean distinct
    count of the generated and of the real groups over the captions that leave it open.
    """
    if not generated or len(generated) != len(real):
        raise ValueError(f"Need one real group per generated group, got {len(generated)} "
                         f"and {len(real)}.")
    mean = lambda values: float(np.mean(values)) if values else float("nan")
    gen_distance = mean([g.feature_distance for g in generated])
    real_distance = mean([r.feature_distance for r in real])
    gen_background = mean([g.background_spread for g in generated])
    real_background = mean([r.background_spread for r in real])
    open_attributes = {}
    for name in ("position", "size"):
        both = [(g.distinct[name], r.distinct[name]) for g, r in zip(generated, real)
                if g.distinct[name] is not None]
        open_attributes[name] = {
            "captions": len(both),
            "generated_distinct": mean([g for g, _ in both]),
            "real_distinct": mean([r for _, r in both])}
    return {"value": gen_distance / real_distance, "generated_distance": gen_distance,
            "real_distance": real_distance, "captions": len(generated),
            "background_spread": {"generated": gen_background, "real": real_background,
                                  "ratio": gen_background / real_background},
            "open_attributes": open_attributes}


def choose_real_group(candidates: np.ndarray, size: int,
                      rng: np.random.Generator) -> Optional[np.ndarray]:
    """Up to `size` of the fitting images, drawn without replacement; None if under 2."""
    if len(candidates) < 2:
        return None
    return np.sort(rng.choice(candidates, min(size, len(candidates)), replace=False))
