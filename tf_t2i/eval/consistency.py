"""F2F consistency: do two captions of one image, with the same noise, give the same image?

The paper's fake-to-fake (F2F) term pulls together the images generated from two
captions of one image and the same z: both describe the same scene, so a generator that
understands them should draw the same scene. On shapes this is measurable with the
attribute classifier (`tf_t2i.eval.attributes`). For each pair (one test image, two of
its captions, one z) the two generated images are read by the classifier, and:

* **agreement** per attribute type (colour, shape, size, position): the type is
  compared on the values *both* captions name (`NamedAttributes`, intersected); the
  pair agrees when each of those values is shown by both images or by neither. A colour,
  shape or size is shown when some object the classifier sees has it, a position when
  that slot is occupied (the rule of `attributes.judge`). A type for which the two
  captions name no common value is not compared for that pair (NaN);
* the headline **value** is the share of all compared (pair, type) cases that agree;
  `per_attribute` gives the share per type;
* `identical_scenes`: the share of pairs whose two readings are the same in everything
  (occupied slots, and colour, shape and size at each), named or not; what the F2F term
  asks for in the limit;
* **feature distance**: the mean Euclidean distance between the classifier's 256-d
  penultimate features of the two images of a pair (the space `diversity` and
  `shapes_fid` use), next to the same distance for unrelated pairs (the first caption's
  image against an image generated from the same z and a caption of another test image).
  Their ratio is 0 when the wording of a caption changes nothing and 1 when two captions
  of one image are as far apart as captions of different images.

Agreement is about consistency, not correctness: two images that both miss a named
colour agree (`attribute_accuracy` measures correctness).

Why only the values both captions name: captions of one image name different subsets
of its attributes ("a red circle" and "a small red circle in the top left corner"), and
a caption that leaves an attribute open lets the generator choose it; a second object
that one caption omits may rightly be missing from its image. What both captions name is
fixed by both conditions, so a disagreement there is a failure of consistency whatever
else the captions say. Comparing named values as shown / not shown, rather than object
by object, keeps a colour's agreement from depending on where each image put the object
(position is compared on its own).
"""

from typing import Dict, Sequence

import numpy as np

from tf_t2i.data import shapes
from tf_t2i.data import shapes_captions
from tf_t2i.eval import attributes as attributes_lib

COMPARED = attributes_lib.ATTRIBUTE_TYPES   # color, shape, size, position
_VOCABULARY_SIZES = {"color": len(shapes.COLORS), "shape": len(shapes.SHAPES),
                     "size": len(shapes.SIZES), "position": len(shapes.POSITIONS)}


def shown_values(reading: attributes_lib.Reading) -> Dict[str, np.ndarray]:
    """Per attribute type, which values each image shows: bool [B, vocabulary size].

    A colour, shape or size is shown when some occupied slot has it; a position when its
    slot is occupied.
    """
    occupied = np.asarray(reading.occupied, bool)
    out = {"position": occupied.copy()}
    for name in ("color", "shape", "size"):
        values = np.asarray(getattr(reading, name))
        out[name] = np.stack([np.any(occupied & (values == v), axis=1)
                              for v in range(_VOCABULARY_SIZES[name])], axis=1)
    return out


def pair_agreement(first: attributes_lib.Reading, second: attributes_lib.Reading,
                   named_first: Sequence[shapes_captions.NamedAttributes],
                   named_second: Sequence[shapes_captions.NamedAttributes]
                   ) -> Dict[str, np.ndarray]:
    """Per attribute type and pair: 1 agree, 0 disagree, NaN not compared.

    Args:
      first, second: the classifier's readings of the two images of each pair [P].
      named_first, named_second: what the caption behind each image names [P].

    Returns:
      type -> float [P]: on the values both captions name, 1 when the two images show
      exactly the same of them, 0 otherwise; NaN when the captions name no common value
      of that type.
    """
    count = len(named_first)
    if not len(first.occupied) == len(second.occupied) == len(named_second) == count:
        raise ValueError(f"Need one reading and one caption per image of each pair, got "
                         f"{len(first.occupied)}, {len(second.occupied)}, {count} and "
                         f"{len(named_second)}.")
    shown_first, shown_second = shown_values(first), shown_values(second)
    out = {name: np.full(count, np.nan) for name in COMPARED}
    for i in range(count):
        for name in COMPARED:
            common = sorted(getattr(named_first[i], name) & getattr(named_second[i], name))
            if common:
                out[name][i] = float(np.array_equal(shown_first[name][i, common],
                                                    shown_second[name][i, common]))
    return out


def identical_scenes(first: attributes_lib.Reading,
                     second: attributes_lib.Reading) -> np.ndarray:
    """bool [P]: the same occupied slots, and the same colour, shape, size at each."""
    occupied = np.asarray(first.occupied, bool)
    same = np.all(occupied == np.asarray(second.occupied, bool), axis=1)
    for name in ("color", "shape", "size"):
        differs = occupied & (np.asarray(getattr(first, name)) != np.asarray(getattr(second,
                                                                                     name)))
        same &= ~np.any(differs, axis=1)
    return same


def pair_distances(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Euclidean distance [P] between row i of `first` and row i of `second` ([P, d])."""
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    if first.shape != second.shape or first.ndim != 2:
        raise ValueError(f"Need two [P, d] arrays of one shape, got {first.shape} and "
                         f"{second.shape}.")
    return np.sqrt(np.sum((first - second) ** 2, axis=1))


def summarize(agreement: Dict[str, np.ndarray], identical: np.ndarray,
              pair_distance: np.ndarray, unrelated_distance: np.ndarray) -> Dict:
    """The metric's fields from the per-pair values.

    Args:
      agreement: `pair_agreement`'s output.
      identical: `identical_scenes`'s output.
      pair_distance: feature distance [P] between the two images of each pair.
      unrelated_distance: feature distance [P] between the pair's first image and the
        image of a caption of another test image, from the same z.

    Returns:
      `value`: the share of compared (pair, type) cases that agree (NaN if none);
      `per_attribute`: type -> share of its compared pairs that agree (NaN if none);
      `compared`: type -> the number of pairs compared on it; `pairs`;
      `identical_scenes`; `pair_distance`, `unrelated_distance` (means) and
      `distance_ratio` (their quotient).
    """
    per_attribute, compared, agreeing = {}, {}, 0.0
    for name in COMPARED:
        values = agreement[name][~np.isnan(agreement[name])]
        compared[name] = int(len(values))
        per_attribute[name] = float(values.mean()) if len(values) else float("nan")
        agreeing += float(values.sum())
    total = sum(compared.values())
    pair_mean = float(np.mean(pair_distance))
    unrelated_mean = float(np.mean(unrelated_distance))
    return {"value": agreeing / total if total else float("nan"),
            "per_attribute": per_attribute, "compared": compared,
            "pairs": int(len(identical)),
            "identical_scenes": float(np.mean(identical)),
            "pair_distance": pair_mean, "unrelated_distance": unrelated_mean,
            "distance_ratio": pair_mean / unrelated_mean if unrelated_mean > 0
            else float("nan")}


def draw_pairs(num_test_images: int, captions_per_image: int, pairs: int,
               rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Which captions each pair (and its unrelated image) is generated from.

    Pair k takes test image `image[k]` (a random order of the test split, repeated when
    there are more pairs than images), two different captions of it (`first`,
    `second`), and for the unrelated image a random caption (`other_caption`) of a
    random other test image (`other_image`).

    Returns:
      int arrays [pairs]: image, first, second, other_image, other_caption.

    Raises:
      ValueError: fewer than 2 test images or 2 captions per image.
    """
    if num_test_images < 2 or captions_per_image < 2:
        raise ValueError(f"F2F consistency needs at least 2 test images with 2 captions "
                         f"each, got {num_test_images} images with {captions_per_image}.")
    order = rng.permutation(num_test_images)
    image = order[np.arange(pairs) % num_test_images]
    first = rng.integers(0, captions_per_image, pairs)
    # A uniform caption other than `first`.
    second = (first + rng.integers(1, captions_per_image, pairs)) % captions_per_image
    other_image = (image + rng.integers(1, num_test_images, pairs)) % num_test_images
    other_caption = rng.integers(0, captions_per_image, pairs)
    return {"image": image, "first": first, "second": second, "other_image": other_image,
            "other_caption": other_caption}
