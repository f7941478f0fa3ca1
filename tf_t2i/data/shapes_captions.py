"""What a shapes caption names: its colours, shapes, sizes and positions.

Two readers of the captions of `tf_t2i.data.shapes`, built from its synonym lists:

* `parse_caption` reads a caption as written (colours, shapes, sizes, positions, and
  colour-shape pairs written next to each other, "a red circle"); the attribute
  evaluation (`tf_t2i.eval.attributes`) judges generated images against it;
* `token_attributes` maps the single tokens of a tokenized caption to the colour or
  shape they name; the captioner's evaluation counts how often they are true.

Example:
    >>> parse_caption("a small crimson disc in the top left corner").color
    frozenset({0})
    >>> token_attributes()["plus"]
    ('shape', 5)
"""

import dataclasses
import re
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

import numpy as np

from tf_t2i.data import shapes
from tf_t2i.data import tokenizer as tokenizer_lib


def _surface_forms():
    colors = {w: i for i, words in enumerate(shapes.COLOR_SYNONYMS) for w in words}
    nouns = {}
    for i, words in enumerate(shapes.SHAPE_SYNONYMS):
        for w in words:
            if " " not in w:
                nouns[w] = nouns[_plural(w)] = i
    adjectives = {w: i for i, words in enumerate(shapes.SHAPE_ADJECTIVES) for w in words}
    sizes = {w: i for i, words in enumerate(shapes.SIZE_SYNONYMS) for w in words}
    return colors, {**adjectives, **nouns}, sizes


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "x")) else "s")


# Multi-word shape names become one word first ("a red five-pointed star" -> "a red
# star"), so that a colour and its shape stay next to each other.
_MULTIWORD_SHAPES = {
    form: canonical
    for i, words in enumerate(shapes.SHAPE_SYNONYMS) for w in words if " " in w
    for form, canonical in ((w, shapes.SHAPES[i]), (_plural(w), _plural(shapes.SHAPES[i])))}
_MULTIWORD = re.compile(r"\b({})\b".format("|".join(
    sorted(map(re.escape, _MULTIWORD_SHAPES), key=len, reverse=True))))
_COLOR_WORDS, _SHAPE_WORDS, _SIZE_WORDS = _surface_forms()
_BACKGROUND = re.compile(r"\b(?:{})\s+background\b".format("|".join(
    sorted((re.escape(w) for ws in shapes.BACKGROUND_SYNONYMS for w in ws), key=len,
           reverse=True))))
_DIRECTIONS = {"top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom",
               "left": "left", "right": "right", "center": "center", "centre": "center",
               "middle": "center"}
# "in/at/on/near the <direction> [<direction>]"; "to the left of" (a relation between
# two objects, not a position) does not match.
_POSITION = re.compile(r"\b(?:in|at|on|near) the ((?:top|upper|bottom|lower) (?:left|right)|"
                       r"top|upper|bottom|lower|left|right|center|centre|middle)\b")
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")


@dataclasses.dataclass(frozen=True)
class NamedAttributes:
    """What a caption names, as ids into the `tf_t2i.data.shapes` vocabularies."""
    color: FrozenSet[int] = frozenset()
    shape: FrozenSet[int] = frozenset()
    size: FrozenSet[int] = frozenset()
    position: FrozenSet[int] = frozenset()
    color_shape: FrozenSet[Tuple[int, int]] = frozenset()


def parse_caption(caption: str) -> NamedAttributes:
    """The attributes a shapes caption names.

    For example "A small crimson disc in the top left corner on a white background."
    names colour red, shape circle, size small, position top left and the pair (red,
    circle); "white" describes the background, not an object, and is not read.
    """
    text = _BACKGROUND.sub(" ", caption.lower())
    text = _MULTIWORD.sub(lambda m: _MULTIWORD_SHAPES[m.group(1)], text)
    positions = set()
    for match in _POSITION.finditer(text):
        name = " ".join(_DIRECTIONS[w] for w in match.group(1).split())
        positions.add(shapes.POSITIONS.index(name))
    text = _POSITION.sub(" ", text)
    words = _WORD.findall(text)
    colors, shape_ids, sizes, pairs = set(), set(), set(), set()
    for i, word in enumerate(words):
        if word in _COLOR_WORDS:
            colors.add(_COLOR_WORDS[word])
            if i + 1 < len(words) and words[i + 1] in _SHAPE_WORDS:
                pairs.add((_COLOR_WORDS[word], _SHAPE_WORDS[words[i + 1]]))
        elif word in _SHAPE_WORDS:
            shape_ids.add(_SHAPE_WORDS[word])
            # "a circle painted red"
            if i + 2 < len(words) and words[i + 1] == "painted" and words[i + 2] in _COLOR_WORDS:
                pairs.add((_COLOR_WORDS[words[i + 2]], _SHAPE_WORDS[word]))
        elif word in _SIZE_WORDS:
            sizes.add(_SIZE_WORDS[word])
    return NamedAttributes(frozenset(colors), frozenset(shape_ids), frozenset(sizes),
                           frozenset(positions), frozenset(pairs))


def token_attributes() -> Dict[str, Tuple[str, int]]:
    """token -> ("color" | "shape", id) for the single words of the shapes vocabulary.

    A multi-word name counts by its last token ("five-pointed star" -> "star"), except
    "plus sign", whose "sign" says nothing alone: "plus" stands for the cross.
    """
    table = {}
    for kind, groups in (("color", shapes.COLOR_SYNONYMS), ("shape", shapes.SHAPE_SYNONYMS)):
        for attribute_id, words in enumerate(groups):
            for phrase in words:
                table.setdefault(tokenizer_lib.split_words(phrase)[-1], (kind, attribute_id))
    table.pop("sign", None)
    table["plus"] = ("shape", shapes.SHAPES.index("cross"))
    return table


def _shape_forms() -> Dict[str, Tuple[int, str]]:
    """surface form -> (shape id, "noun" | "plural" | "adjective"); multi-word forms too."""
    forms = {}
    for i, words in enumerate(shapes.SHAPE_SYNONYMS):
        for w in words:
            forms[w] = (i, "noun")
            forms[_plural(w)] = (i, "plural")
    for i, words in enumerate(shapes.SHAPE_ADJECTIVES):
        for w in words:
            forms.setdefault(w, (i, "adjective"))
    return forms


_SHAPE_FORMS = _shape_forms()
# Longest first, so "five-pointed star" wins over "star"; hyphens are part of a word.
_SHAPE_FORM = re.compile(r"(?<![\w-])({})(?![\w-])".format("|".join(
    sorted(map(re.escape, _SHAPE_FORMS), key=len, reverse=True))))


def _shape_word(shape_id: int, kind: str) -> str:
    """Shape `shape_id` named in the grammatical form `kind` of the word it replaces."""
    if kind == "adjective":
        return shapes.SHAPE_ADJECTIVES[shape_id][0]
    return _plural(shapes.SHAPES[shape_id]) if kind == "plural" else shapes.SHAPES[shape_id]


def swap_shapes(caption: str, offset: int) -> Optional[str]:
    """The caption with every shape word naming shape (s + offset) mod 6 instead of s.

    A hard negative for the discriminator's mismatched pair: same colours, sizes,
    positions and sentence, other shapes, so telling it from the true caption takes
    reading the shape. One offset for every object of the caption, so each names a
    shape it does not have. None when the caption names no shape ("a red object").

    Example:
        >>> swap_shapes("a red disc and two blue five-pointed stars", 2)
        'a red triangle and two blue crosses'
    """
    if offset % len(shapes.SHAPES) == 0:
        raise ValueError(f"offset {offset} maps every shape to itself.")
    text = caption.lower()
    found = False

    def replace(match):
        nonlocal found
        found = True
        shape_id, kind = _SHAPE_FORMS[match.group(1)]
        return _shape_word((shape_id + offset) % len(shapes.SHAPES), kind)

    swapped = _SHAPE_FORM.sub(replace, text)
    return swapped if found else None


def exchange_shapes(caption: str) -> Optional[str]:
    """The caption with its two objects' shapes exchanged, when that makes it false.

    A hard negative for binding: the same words in other places, so telling it from the
    true caption takes knowing which colour goes with which shape. None unless the
    caption names exactly two different shapes and the exchange changes a colour-shape
    pair it names ("a red square and a red circle" stays true when exchanged).

    Example:
        >>> exchange_shapes("a red disc and a blue five-pointed star")
        'a red star and a blue circle'
    """
    text = caption.lower()
    matches = list(_SHAPE_FORM.finditer(text))
    ids = [_SHAPE_FORMS[m.group(1)][0] for m in matches]
    if len(ids) != 2 or ids[0] == ids[1]:
        return None
    pieces, end = [], 0
    for match, new in zip(matches, reversed(ids)):
        pieces += [text[end:match.start()], _shape_word(new, _SHAPE_FORMS[match.group(1)][1])]
        end = match.end()
    exchanged = "".join(pieces) + text[end:]
    if parse_caption(exchanged).color_shape == parse_caption(text).color_shape:
        return None
    return exchanged


def shape_swapped_captions(captions_per_image: Sequence[Sequence[str]], seed: int,
                           exchange: float = 0.0) -> List[List[Optional[str]]]:
    """`swap_shapes` of every caption, each with its own offset in 1..5 drawn from `seed`;
    with probability `exchange`, `exchange_shapes` instead where it gives a caption.

    The offsets are drawn as without `exchange`, so the other captions' negatives do
    not change with it.
    """
    if not 0.0 <= exchange <= 1.0:
        raise ValueError(f"exchange must be in [0, 1], got {exchange}.")
    rng = np.random.default_rng(seed)
    exchange_rng = np.random.default_rng([seed, 1])
    result = []
    for caps in captions_per_image:
        negatives = []
        for caption in caps:
            swapped = swap_shapes(caption, int(rng.integers(1, len(shapes.SHAPES))))
            exchanged = exchange_shapes(caption) if exchange else None
            if exchanged is not None and exchange_rng.random() < exchange:
                swapped = exchanged
            negatives.append(swapped)
        result.append(negatives)
    return result
