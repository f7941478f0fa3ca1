"""Procedural captioned shapes: a small text-to-image dataset that needs no download.

Each image holds one or two flat-coloured objects (a shape, a colour, a size and
a position each) on a textured background, and comes with `NUM_CAPTIONS`
English captions drawn from varied templates and synonyms. Some captions name
only part of the attributes, so the captions of one image differ in words and
structure the way CUB's do; every caption is true to the image and names the
colour or the shape of at least one object, and most name both for the first
(main) object.

Everything is a pure function of `(seed, index)`: example `index` draws its own
random generator, so any slice can be produced in parallel, and the attributes
and captions do not depend on the rendering resolution. Only numpy and PIL are
used; the TFDS builder lives in `shapes_tfds.py`.

Example:
  >>> ex = generate_example(3, image_size=64, seed=0)
  >>> ex.image.shape, len(ex.captions)
  ((64, 64, 3), 10)
"""

import dataclasses
import functools
import re
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw

# --- Attribute vocabulary (ids are indices into these tuples). ---------------
SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
COLORS = ("red", "green", "blue", "yellow", "purple", "orange", "cyan", "white")
SIZES = ("small", "large")
POSITIONS = ("center", "left", "right", "top", "bottom",
             "top left", "top right", "bottom left", "bottom right")
BACKGROUNDS = ("black", "gray", "white", "beige", "navy", "olive")
ATTRIBUTE_FIELDS = ("shape", "color", "size", "position")

NUM_CAPTIONS = 10
MAX_OBJECTS = 2
MAX_CAPTION_WORDS = 25
# Splits use disjoint ranges of example indices, so they never share an example
# and image ids stay unique across splits.
SPLIT_CAPACITY = 1_000_000
SPLIT_OFFSETS = {"train": 0, "test": SPLIT_CAPACITY}

COLOR_RGB = ((215, 35, 35), (40, 175, 60), (35, 80, 225), (240, 215, 40),
             (135, 55, 185), (245, 135, 25), (40, 205, 215), (245, 245, 245))
BACKGROUND_RGB = ((22, 22, 26), (125, 125, 128), (232, 232, 228),
                  (222, 202, 160), (22, 32, 88), (88, 92, 38))
# Object colours never drawn on a background of the same colour family (or too
# little contrast), so every object stays visible.
EXCLUDED_COLORS = ((), (), ("white", "yellow"), ("white", "yellow", "orange"),
                   ("blue", "purple"), ("green", "yellow"))

# Object centres (x, y) as fractions of the image side, y pointing down.
POSITION_CENTERS = ((0.5, 0.5), (0.22, 0.5), (0.78, 0.5), (0.5, 0.22), (0.5, 0.78),
                    (0.22, 0.22), (0.78, 0.22), (0.22, 0.78), (0.78, 0.78))
# Nominal radius of the circle that encloses an object, as a fraction of the side.
SIZE_RADII = (0.11, 0.19)
_CENTER_JITTER = 0.02
_RADIUS_JITTER = 0.01
_MAX_ROTATION_DEG = 12.0
_COLOR_JITTER = 12
_GRAIN_STD = 3.0
_SUPERSAMPLE = 4

# --- Words. The first synonym is the canonical name. -------------------------
COLOR_SYNONYMS = (("red", "crimson", "scarlet"), ("green", "emerald"),
                  ("blue", "cobalt", "sapphire"), ("yellow", "golden", "lemon"),
                  ("purple", "violet"), ("orange", "tangerine"),
                  ("cyan", "turquoise", "aqua"), ("white", "snow-white"))
SHAPE_SYNONYMS = (("circle", "disc", "disk"), ("square", "box", "block"), ("triangle",),
                  ("star", "five-pointed star"), ("diamond", "rhombus", "lozenge"),
                  ("cross", "plus sign"))
# Words that describe a shape in front of "shape" or "object": "a red round shape".
SHAPE_ADJECTIVES = (("round", "circular"), ("square",), ("triangular",), ("star",),
                    ("diamond",), ("cross",))
SIZE_SYNONYMS = (("small", "tiny", "little"), ("large", "big", "huge"))
BACKGROUND_SYNONYMS = (("black", "dark"), ("gray", "grey"), ("white", "pale"),
                       ("beige", "sandy", "cream"), ("navy", "midnight"),
                       ("olive", "dark olive"))
# Short phrases fit every template; long ones only single-object captions, which
# keeps two-object captions within MAX_CAPTION_WORDS.
_POSITION_SHORT = (
    ("in the center", "in the middle", "at the center"),
    ("on the left", "on the left side"), ("on the right", "on the right side"),
    ("at the top", "near the top"), ("at the bottom", "near the bottom"),
    ("in the top left corner", "at the top left", "in the upper left"),
    ("in the top right corner", "at the top right", "in the upper right"),
    ("in the bottom left corner", "at the bottom left", "in the lower left"),
    ("in the bottom right corner", "at the bottom right", "in the lower right"))
_POSITION_LONG = (
    ("in the middle of the picture", "at the center of the image"),
    ("at the left side of the picture", "near the left edge of the image"),
    ("at the right side of the picture", "near the right edge of the image"),
    ("in the upper part of the image", "near the top edge of the picture"),
    ("in the lower part of the image", "near the bottom edge of the picture"),
    ("in the upper left corner of the image",), ("in the upper right corner of the image",),
    ("in the lower left corner of the image",), ("in the lower right corner of the image",))
_DIRECTION_KEYWORDS = {"center": ("center", "centre", "middle"), "left": ("left",),
                       "right": ("right",), "top": ("top", "upper"),
                       "bottom": ("bottom", "lower")}
# Words a caption may use for each position: evaluation and tests check these.
POSITION_KEYWORDS = tuple(
    tuple(w for part in name.split() for w in _DIRECTION_KEYWORDS[part]) for name in POSITIONS)

# Templates. Fields: s size, c colour, n shape noun, j shape adjective, p short
# position, q short or long position, b background, z canonical size; a trailing
# 1/2 names the object. "Core" templates name the colour and shape of the main
# object; "partial" ones leave some of it out but keep a colour or a shape.
_SINGLE_CORE = (
    "a {s} {c} {n} {p}", "there is a {s} {c} {n} {q}", "{p}, there is a {s} {c} {n}",
    "this picture shows a {s} {c} {n} {p} against a {b} background", "a {c} {n} {q}",
    "a {c} {n}", "the image shows a {c} {n}", "a {n} painted {c}",
    "a {c} {n} on a {b} background", "a {s} {c} {n} against a {b} background",
    "a {c} {j} shape", "a single {c} {n} {p}", "one {s} {c} {n} sits {p}",
    "a {n} that is {s} and {c}", "a {c} {n} of {z} size",
    "the only object is a {c} {n} {q}", "we can see a {s} {c} {n} {q}",
    "{c} {n}, {s}, {p}", "a {s} {c} {j} object {p}")
_SINGLE_PARTIAL = (
    "a {s} {n} {q}", "a {n} placed {p}", "the image contains a single {n}",
    "a {c} object {q}", "something {c} {p}", "a {s} {c} shape on a {b} background",
    "a {s} {n} on a {b} background", "a lone {n} on a {b} background")
_PAIR_CORE = (
    "two objects: a {s1} {c1} {n1} {p1} and a {s2} {c2} {n2} {p2}",
    "a {c1} {n1} {p1} and a {c2} {n2} {p2}", "a {c1} {n1} and a {c2} {n2}",
    "there are two shapes, a {c1} {n1} and a {c2} {n2}, on a {b} background",
    "a {s1} {c1} {n1} and a {s2} {c2} {n2}", "{p1} is a {c1} {n1}, {p2} a {c2} {n2}",
    "the image shows a {c1} {n1} next to a {c2} {n2}", "a {c1} {n1} {rel} a {c2} {n2}",
    "a {s1} {c1} {n1} {p1}", "this picture has a {c1} {n1} {p1} and a {s2} {c2} {n2}",
    "we see a {c2} {n2} and a {c1} {n1}",
    "two shapes on a {b} background: a {c1} {n1} and a {c2} {n2}",
    "a {c1} {j1} shape and a {c2} {j2} shape")
_PAIR_SAME_SHAPE = ("two {np}, one {c1} and one {c2}", "a pair of {np}: a {c1} one and a {c2} one")
_PAIR_SAME_SIZE = ("two {s1} shapes: a {c1} {n1} and a {c2} {n2}",)
_PAIR_SIZES_DIFFER = ("a {cb} {nb} and a smaller {cs} {ns}",)
# Names only the larger object: core when that is the main one, else partial.
_PAIR_LARGER = "the larger shape is a {cb} {nb}"
_PAIR_PARTIAL = (
    "a {n1} and a {n2}", "a {c1} shape and a {c2} shape", "a {n1} {p1} and a {n2} {p2}",
    "two objects on a {b} background, one of them {c1}", "a {s2} {c2} {n2} {p2}",
    "the image contains two shapes, including a {c2} {n2}")
# How many of the captions are partial: 1 to 3, so most stay core.
_NUM_PARTIAL_CHOICES = (1, 2, 3)
_NUM_PARTIAL_PROBS = (0.35, 0.4, 0.25)


@dataclasses.dataclass(frozen=True, eq=False)
class ShapesAttributes:
    """Ground-truth attributes of one image; ids index the vocabulary tuples.

    Attributes:
      shape: int64 [MAX_OBJECTS], ids into SHAPES; -1 for an absent object.
      color: int64 [MAX_OBJECTS], ids into COLORS; -1 for an absent object.
      size: int64 [MAX_OBJECTS], ids into SIZES; -1 for an absent object.
      position: int64 [MAX_OBJECTS], ids into POSITIONS; -1 for an absent object.
      num_objects: number of objects present (1 or 2); present slots come first.
      background: id into BACKGROUNDS.
    """
    shape: np.ndarray
    color: np.ndarray
    size: np.ndarray
    position: np.ndarray
    num_objects: int
    background: int

    def to_dict(self) -> dict:
        """Returns the attributes as a dict of int64 numpy values (TFDS features)."""
        out = {f: np.asarray(getattr(self, f), np.int64) for f in ATTRIBUTE_FIELDS}
        out["num_objects"] = np.int64(self.num_objects)
        out["background"] = np.int64(self.background)
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class ShapesExample:
    """One generated example.

    Attributes:
      image: uint8 [S, S, 3].
      captions: NUM_CAPTIONS non-empty strings.
      attributes: the ground truth, `ShapesAttributes`.
      image_id: the example index; unique across splits of one seed.
    """
    image: np.ndarray
    captions: tuple
    attributes: ShapesAttributes
    image_id: int


def attributes_to_array(attributes: ShapesAttributes) -> np.ndarray:
    """Stacks per-object attributes into int64 [MAX_OBJECTS, 4].

    Columns follow ATTRIBUTE_FIELDS (shape, color, size, position); rows of absent
    objects are -1.
    """
    return np.stack([np.asarray(getattr(attributes, f), np.int64)
                     for f in ATTRIBUTE_FIELDS], axis=1)


def canonical_caption(attributes: ShapesAttributes) -> str:
    """Returns the one canonical caption naming every attribute of every object.

    For example "a large red circle in the center and a small blue star at the top
    left". Useful for demos and attribute-conditioned sampling.
    """
    return _fix_articles(" and ".join(
        f"a {SIZES[attributes.size[i]]} {COLORS[attributes.color[i]]} "
        f"{SHAPES[attributes.shape[i]]} {_POSITION_SHORT[attributes.position[i]][0]}"
        for i in range(attributes.num_objects)))


def split_indices(split: str, num_examples: int) -> range:
    """Returns the example indices of a split.

    Args:
      split: "train" or "test".
      num_examples: how many examples the split holds, at most SPLIT_CAPACITY.

    Raises:
      ValueError: on an unknown split or too many examples.
    """
    if split not in SPLIT_OFFSETS:
        raise ValueError(f"Unknown split {split!r}; expected one of {sorted(SPLIT_OFFSETS)}.")
    if not 0 <= num_examples <= SPLIT_CAPACITY:
        raise ValueError(f"num_examples must be in [0, {SPLIT_CAPACITY}], got {num_examples}.")
    return range(SPLIT_OFFSETS[split], SPLIT_OFFSETS[split] + num_examples)


def generate_split(split: str, num_examples: int, image_size: int = 64,
                   seed: int = 0) -> Iterator[ShapesExample]:
    """Yields the examples of a split in index order.

    Args:
      split: "train" or "test"; the two use disjoint index ranges.
      num_examples: number of examples to yield.
      image_size: side of the square images in pixels.
      seed: dataset seed; same seed, same examples.
    """
    for index in split_indices(split, num_examples):
        yield generate_example(index, image_size=image_size, seed=seed)


def generate_example(index: int, image_size: int = 64, seed: int = 0) -> ShapesExample:
    """Generates example `index` of the stream with this seed.

    The result depends only on (seed, index, image_size), and the attributes and
    captions only on (seed, index).

    Args:
      index: non-negative example index.
      image_size: side of the square image in pixels, at least 16.
      seed: non-negative dataset seed.

    Returns:
      A `ShapesExample`.
    """
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16, got {image_size}.")
    rng, attributes, captions, objects, background = example_scene(index, seed)
    # Rendered last, so that its size-dependent pixel grain cannot shift any earlier draw.
    return ShapesExample(image=render(rng, objects, background, image_size),
                         captions=captions, attributes=attributes, image_id=int(index))


def example_scene(index: int, seed: int = 0) -> tuple:
    """(rng, attributes, captions, objects, background) of example `index`: all of it but
    the pixels, with `rng` at the state `render` continues from (the grain)."""
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be non-negative, got {index} and {seed}.")
    rng = np.random.default_rng([seed, index])
    attributes = _sample_attributes(rng)
    captions = _make_captions(rng, attributes)
    return (rng, attributes, captions) + _sample_render_params(rng, attributes)


# --- Attributes. ---------------------------------------------------------------
def _sample_attributes(rng: np.random.Generator) -> ShapesAttributes:
    background = int(rng.integers(len(BACKGROUNDS)))
    num_objects = 1 + int(rng.random() < 0.5)
    allowed = [i for i, c in enumerate(COLORS) if c not in EXCLUDED_COLORS[background]]
    # Distinct colours keep the two objects of a caption apart.
    colors = [int(c) for c in rng.choice(allowed, size=num_objects, replace=False)]
    shapes = [int(s) for s in rng.integers(len(SHAPES), size=num_objects)]
    sizes = [int(s) for s in rng.integers(len(SIZES), size=num_objects)]
    positions = [int(rng.integers(len(POSITIONS)))]
    if num_objects == 2:
        # Enclosing circles may only touch, so the objects barely overlap.
        needed = SIZE_RADII[sizes[0]] + SIZE_RADII[sizes[1]]
        free = [p for p in range(len(POSITIONS))
                if np.hypot(*np.subtract(POSITION_CENTERS[p], POSITION_CENTERS[positions[0]]))
                >= needed]
        positions.append(int(rng.choice(free)))
    shapes, colors, sizes, positions = (
        np.array(v + [-1] * (MAX_OBJECTS - num_objects), np.int64)
        for v in (shapes, colors, sizes, positions))
    return ShapesAttributes(shape=shapes, color=colors, size=sizes, position=positions,
                            num_objects=num_objects, background=background)


# --- Captions. -----------------------------------------------------------------
def _pick(rng: np.random.Generator, words: tuple) -> str:
    """Picks the canonical word more often than each synonym."""
    if len(words) == 1 or rng.random() < 0.55:
        return words[0]
    return words[int(rng.integers(1, len(words)))]


def _plural(noun: str) -> str:
    head, _, last = noun.rpartition(" ")
    last = last + ("es" if last.endswith(("s", "x")) else "s")
    return f"{head} {last}" if head else last


def _fix_articles(text: str) -> str:
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)


def _object_words(rng: np.random.Generator, attributes: ShapesAttributes, i: int,
                  suffix: str) -> dict:
    shape, pos = attributes.shape[i], attributes.position[i]
    words = {
        "s": _pick(rng, SIZE_SYNONYMS[attributes.size[i]]),
        "c": _pick(rng, COLOR_SYNONYMS[attributes.color[i]]),
        "n": _pick(rng, SHAPE_SYNONYMS[shape]),
        "j": _pick(rng, SHAPE_ADJECTIVES[shape]),
        "p": _pick(rng, _POSITION_SHORT[pos]),
        "q": _pick(rng, _POSITION_SHORT[pos] + _POSITION_LONG[pos]),
        "z": SIZES[attributes.size[i]],
    }
    return {k + suffix: v for k, v in words.items()}


def _relation(rng: np.random.Generator, attributes: ShapesAttributes) -> str:
    """A true spatial relation of object 1 to object 2."""
    (x1, y1), (x2, y2) = (POSITION_CENTERS[p] for p in attributes.position[:2])
    options = []
    if x1 != x2:
        options.append("to the left of" if x1 < x2 else "to the right of")
    if y1 != y2:
        options.append("above" if y1 < y2 else "below")
    return options[int(rng.integers(len(options)))]


def _pair_pools(attributes: ShapesAttributes) -> tuple:
    core, partial = list(_PAIR_CORE), list(_PAIR_PARTIAL)
    if attributes.shape[0] == attributes.shape[1]:
        core += _PAIR_SAME_SHAPE
    if attributes.size[0] == attributes.size[1]:
        core += _PAIR_SAME_SIZE
    else:
        core += _PAIR_SIZES_DIFFER
        (core if attributes.size[0] > attributes.size[1] else partial).append(_PAIR_LARGER)
    return core, partial


def _caption_words(rng: np.random.Generator, attributes: ShapesAttributes) -> dict:
    """Draws fresh synonyms for every field of one caption."""
    words = {"b": _pick(rng, BACKGROUND_SYNONYMS[attributes.background])}
    if attributes.num_objects == 1:
        words.update(_object_words(rng, attributes, 0, ""))
        return words
    words.update(_object_words(rng, attributes, 0, "1"))
    words.update(_object_words(rng, attributes, 1, "2"))
    words["rel"] = _relation(rng, attributes)
    words["np"] = _plural(_pick(rng, SHAPE_SYNONYMS[attributes.shape[0]]))
    big = 0 if attributes.size[0] > attributes.size[1] else 1
    words.update(cb=words[f"c{big + 1}"], nb=words[f"n{big + 1}"],
                 cs=words[f"c{2 - big}"], ns=words[f"n{2 - big}"])
    return words


def _make_captions(rng: np.random.Generator, attributes: ShapesAttributes) -> tuple:
    if attributes.num_objects == 1:
        core, partial = _SINGLE_CORE, _SINGLE_PARTIAL
    else:
        core, partial = _pair_pools(attributes)
    num_partial = int(rng.choice(_NUM_PARTIAL_CHOICES, p=_NUM_PARTIAL_PROBS))
    chosen = ([core[i] for i in rng.choice(len(core), NUM_CAPTIONS - num_partial, replace=False)]
              + [partial[i] for i in rng.choice(len(partial), num_partial, replace=False)])
    captions, seen = [], set()
    for j in rng.permutation(NUM_CAPTIONS):
        # Fresh synonyms make a repeat unlikely; a few more draws make it rarer.
        for _ in range(4):
            text = _fix_articles(chosen[j].format(**_caption_words(rng, attributes)))
            if text not in seen:
                break
        seen.add(text)
        if rng.random() < 0.5:  # Half are written as sentences, half as lower-case phrases.
            text = text[0].upper() + text[1:] + "."
        captions.append(text)
    return tuple(captions)


# --- Rendering. ----------------------------------------------------------------
def _star(points: int = 5, inner: float = 0.42) -> np.ndarray:
    angles = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles) + 0.06], axis=1)


# Polygons in units of the enclosing radius, centred on the object's position;
# the triangle and the star are shifted down so that they look centred.
_POLYGONS = {
    "square": 0.7 * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64),
    "triangle": 0.95 * np.array(
        [[0, -1], [np.sqrt(3) / 2, 0.5], [-np.sqrt(3) / 2, 0.5]]) + [0, 0.22],
    "star": _star(),
    "diamond": np.array([[0, -1], [0.72, 0], [0, 1], [-0.72, 0]], np.float64),
    "cross": 0.92 * np.array([[-0.33, -1], [0.33, -1], [0.33, -0.33], [1, -0.33],
                              [1, 0.33], [0.33, 0.33], [0.33, 1], [-0.33, 1],
                              [-0.33, 0.33], [-1, 0.33], [-1, -0.33], [-0.33, -0.33]]),
}
_CIRCLE_RADIUS = 0.86


def _sample_render_params(rng: np.random.Generator, attributes: ShapesAttributes) -> tuple:
    """Draws resolution-independent jitter for objects and background."""
    # Rows of (shape, colour, size, position), object_params' arguments.
    objects = [object_params(rng, *row)
               for row in attributes_to_array(attributes)[:attributes.num_objects]]
    background = {
        "rgb": np.asarray(BACKGROUND_RGB[attributes.background], np.float32),
        # 0 plain, 1 linear gradient, 2 soft mottled noise, 3 mottled noise plus grain.
        "kind": int(rng.integers(4)),
        "angle": rng.uniform(0, 2 * np.pi),
        "amplitude": rng.uniform(15, 35),
        "grid": rng.uniform(-1, 1, size=(4, 4)),
    }
    return objects, background


def object_params(rng, shape: int, color: int, size: int, position: int) -> tuple:
    """One object's render tuple for `render`, with the jitter of the dataset's objects."""
    cx, cy = np.asarray(POSITION_CENTERS[position]) + rng.uniform(
        -_CENTER_JITTER, _CENTER_JITTER, size=2)
    radius = SIZE_RADII[size] + rng.uniform(-_RADIUS_JITTER, _RADIUS_JITTER)
    angle = np.deg2rad(rng.uniform(-_MAX_ROTATION_DEG, _MAX_ROTATION_DEG))
    rgb = np.clip(np.asarray(COLOR_RGB[color])
                  + rng.integers(-_COLOR_JITTER, _COLOR_JITTER + 1, size=3), 0, 255)
    return (SHAPES[shape], cx, cy, radius, angle, rgb)


@functools.lru_cache(maxsize=16)
def _interp_matrix(size: int, grid: int) -> np.ndarray:
    """Bilinear interpolation weights [size, grid] from grid nodes to pixel centres."""
    pos = (np.arange(size) + 0.5) / size * (grid - 1)
    lo = np.minimum(np.floor(pos).astype(int), grid - 2)
    frac = pos - lo
    weights = np.zeros((size, grid), np.float32)
    weights[np.arange(size), lo] = 1 - frac
    weights[np.arange(size), lo + 1] = frac
    return weights


def _background(params: dict, size: int) -> np.ndarray:
    image = np.broadcast_to(params["rgb"], (size, size, 3)).astype(np.float32)
    if params["kind"] == 1:
        coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
        ramp = (np.cos(params["angle"]) * coords[None, :]
                + np.sin(params["angle"]) * coords[:, None])
        image = image + (params["amplitude"] * 1.4 * ramp)[..., None]
    elif params["kind"] in (2, 3):
        weights = _interp_matrix(size, params["grid"].shape[0])
        noise = weights @ params["grid"].astype(np.float32) @ weights.T  # [size, size]
        image = image + (0.6 * params["amplitude"] * noise)[..., None]
    return image


def _object_mask(shape: str, cx: float, cy: float, radius: float, angle: float,
                 size: int) -> np.ndarray:
    """Anti-aliased coverage in [0, 1], float32 [size, size]."""
    big = size * _SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    scale = radius * big
    centre = np.array([cx, cy]) * big
    if shape == "circle":
        r = _CIRCLE_RADIUS * scale
        draw.ellipse([centre[0] - r, centre[1] - r, centre[0] + r, centre[1] + r], fill=255)
    else:
        c, s = np.cos(angle), np.sin(angle)
        points = _POLYGONS[shape] @ np.array([[c, s], [-s, c]]) * scale + centre
        draw.polygon([tuple(p) for p in points], fill=255)
    small = canvas.resize((size, size), Image.BOX)
    return np.asarray(small, np.float32) / 255.0


def render(rng: np.random.Generator, objects: list, background: dict,
            size: int) -> np.ndarray:
    image = _background(background, size)
    for shape, cx, cy, radius, angle, rgb in objects:
        alpha = _object_mask(shape, cx, cy, radius, angle, size)[..., None]
        image = image * (1 - alpha) + rgb.astype(np.float32) * alpha
    if background["kind"] == 3:
        # Per-pixel grain on a quarter of the images only: it makes PNGs several
        # times larger.
        image = image + rng.normal(0.0, _GRAIN_STD, size=(size, size, 1)).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
