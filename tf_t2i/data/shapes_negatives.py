"""Negative images of the shapes dataset: real images with objects added until they hold
three, a count no real image has.

The discriminator scores them as fakes with their images' captions (Negative Data
Augmentation, Sinha et al. 2021; `--loss_negative_images_weight`). Each is its real image
plus the added objects, pixel for pixel elsewhere (grain included), so telling the two
apart takes counting.

Example:
    >>> render_with_extra_objects(3).shape
    (64, 64, 3)
"""

import numpy as np

from tf_t2i.data import shapes

# The added objects draw from their own generator, keyed by this after (seed, index), so
# that the example's own draws, and with them its pixels and grain, stay generate_example's.
_EXTRA_OBJECTS_KEY = 1
EXTRA_OBJECTS_TOTAL = shapes.MAX_OBJECTS + 1


def render_with_extra_objects(index: int, image_size: int = 64, seed: int = 0) -> np.ndarray:
    """Example `index`'s image with objects added until it holds EXTRA_OBJECTS_TOTAL (3).

    Each added object is, with equal chance, a copy of one of the image's objects (shape,
    colour and size, as a generator's extra objects in sample grids often are) or a new
    one, at a position where it does not overlap the others when one is free.

    Returns:
      uint8 [image_size, image_size, 3].
    """
    rng, attributes, _, objects, background = shapes.example_scene(index, seed)
    extra_rng = np.random.default_rng([seed, index, _EXTRA_OBJECTS_KEY])
    placed = [(attributes.position[i], attributes.size[i])
              for i in range(attributes.num_objects)]
    excluded = shapes.EXCLUDED_COLORS[attributes.background]
    allowed = [i for i, c in enumerate(shapes.COLORS) if c not in excluded]
    while len(objects) < EXTRA_OBJECTS_TOTAL:
        if extra_rng.random() < 0.5:
            source = int(extra_rng.integers(attributes.num_objects))
            shape, color, size = (int(attributes.shape[source]), int(attributes.color[source]),
                                  int(attributes.size[source]))
        else:
            shape = int(extra_rng.integers(len(shapes.SHAPES)))
            color = int(extra_rng.choice(allowed))
            size = int(extra_rng.integers(len(shapes.SIZES)))
        position, size = _free_position(extra_rng, placed, size)
        placed.append((position, size))
        objects.append(shapes.object_params(extra_rng, shape, color, size, position))
    return shapes.render(rng, objects, background, image_size)


def _free_position(rng: np.random.Generator, placed: list, size: int) -> tuple:
    """(position, size) for a new object: a position whose enclosing circle only touches
    the placed ones', at `size` or else small; else the one farthest from them."""
    centers, radii = shapes.POSITION_CENTERS, shapes.SIZE_RADII

    def clearance(p, s):
        return min(np.hypot(*np.subtract(centers[p], centers[q])) - radii[s] - radii[r]
                   for q, r in placed)

    positions = range(len(shapes.POSITIONS))
    for s in (size, 0):
        free = [p for p in positions if clearance(p, s) >= 0]
        if free:
            return int(rng.choice(free)), s
    return int(np.argmax([clearance(p, 0) for p in positions])), 0
