"""Caption words without TensorFlow: the tokenizer's splitting rule for light callers
(the client binary, flag checks) that must not pay for importing TensorFlow."""

import re
from typing import List, Sequence

# Every maximal run of [a-z0-9_] after lower-casing is a word (AttnGAN's RegexpTokenizer).
NON_WORD = r"[^a-z0-9_]+"
_NON_WORD_RE = re.compile(NON_WORD)


class EmptyCaptionError(ValueError):
    """A caption has no word tokens."""


def split_words(caption: str) -> List[str]:
    """Python twin of the in-graph standardisation: lower-case, split on non-word runs."""
    return _NON_WORD_RE.sub(" ", caption.lower()).split()


def check_captions(captions: Sequence[str]) -> None:
    """Raises EmptyCaptionError naming the first caption with no word in it."""
    for caption in captions:
        if not isinstance(caption, str) or not split_words(caption):
            raise EmptyCaptionError(f"Empty caption {caption!r}: a caption needs at least one "
                                    "word.")
