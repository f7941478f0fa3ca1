"""What the CUB and COCO readers share: errors, caption cleaning, image checks.

The readers (`cub.py`, `coco.py`) turn a folder of raw files into `RawExample`s and
check everything that can be checked without decoding images (folders, index files,
caption counts) before any work starts, so a missing file fails in the first second
of a run and names what is expected where. Image decoding happens while the TFDS
builder writes its records, through `load_rgb`, which opens, verifies and fully
decodes each image so a corrupt or truncated file is caught there and never mid-epoch.
"""

import dataclasses
import io
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

from PIL import Image

from tf_t2i.data import tokenizer as tokenizer_lib
from tf_t2i.io import safe_pickle

# AttnGAN drops this pair, a mis-decoded character in some CUB caption files.
_MOJIBAKE = "\ufffd\ufffd"
# `\w` in Python 3 is Unicode-aware, as NLTK's RegexpTokenizer(r'\w+') in the reference.
_WORD_RE = re.compile(r"\w+")
# CUB crops must be stored re-encoded; at 95 the loss is well below what the later
# resize to the model's size removes.
JPEG_QUALITY = 95
# How many names an error or log line lists before "and N more".
_NAMES_SHOWN = 10


class MissingFilesError(FileNotFoundError):
    """Files or folders of a raw dataset are missing; the message lists the expected tree."""


class DatasetFormatError(ValueError):
    """A raw dataset file is present but its content is unusable."""


class CorruptImageError(DatasetFormatError):
    """An image file cannot be decoded completely (corrupt, truncated, not an image)."""


class CaptionCountError(DatasetFormatError):
    """Images have fewer captions than the dataset promises (10 for CUB, 5 for COCO)."""


# What the binaries should report as one-line input errors (see flags.run_or_fail):
# MissingFilesError is already a FileNotFoundError.
INPUT_ERRORS = (DatasetFormatError, safe_pickle.UnsafePickleError, safe_pickle.PickleFormatError)


@dataclasses.dataclass(frozen=True)
class RawExample:
    """One image of a raw dataset, before decoding.

    Attributes:
      name: the dataset's own key, e.g. "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18"
        for CUB or "COCO_train2014_000000000009" for COCO; unique within a dataset.
      image_path: the image file.
      image_id: the dataset's numeric id (CUB: images.txt; COCO: the COCO image id).
      class_id: 0-based class, or -1 where the dataset has no classes.
      captions: the cleaned captions, exactly as many as the dataset has per image.
      bbox: CUB's (x, y, width, height) box in pixels, or None.
    """
    name: str
    image_path: str
    image_id: int
    class_id: int
    captions: Tuple[str, ...]
    bbox: Optional[Tuple[int, int, int, int]] = None


def clean_caption(line: str) -> Optional[str]:
    """AttnGAN's caption cleaning; None for a line without any word.

    Lower-cases, finds `\\w+` runs, strips non-ASCII characters from each and joins the
    non-empty results with single spaces, so our tokenizer splits the stored caption
    into exactly the reference's tokens.
    """
    line = line.replace(_MOJIBAKE, " ")
    tokens = []
    for token in _WORD_RE.findall(line.lower()):
        token = token.encode("ascii", "ignore").decode("ascii")
        if token:
            tokens.append(token)
    return " ".join(tokens) if tokens else None


def first_captions(lines: Sequence[str], count: int) -> List[str]:
    """The first `count` cleaned captions among `lines`, skipping empty ones (may be fewer)."""
    captions = []
    for line in lines:
        caption = clean_caption(line)
        if caption is not None:
            captions.append(caption)
            if len(captions) == count:
                break
    return captions


def read_caption_file(path: str, count: int) -> List[str]:
    """The first `count` captions of a one-caption-per-line text file (may be fewer)."""
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        return first_captions(f.read().split("\n"), count)


def check_caption_counts(found: Dict[str, int], expected: int, dataset: str,
                         where: str) -> None:
    """Raises CaptionCountError naming every image with fewer than `expected` captions.

    Args:
      found: image (or caption file) name -> number of usable captions.
      expected: captions each image must have.
      dataset: "CUB" or "COCO", for the message.
      where: what the names refer to, e.g. "caption files under /data/birds/text".
    """
    short = {name: n for name, n in found.items() if n < expected}
    if short:
        listed = ", ".join(f"{name} ({n})" for name, n in list(short.items())[:_NAMES_SHOWN])
        raise CaptionCountError(
            f"{dataset} needs {expected} non-empty captions per image, but {len(short)} "
            f"have fewer ({where}): {listed}{_more(len(short))}.")


def require(root: str, entries: Sequence[str], dataset: str, expected_tree: str,
            how_to_get: str) -> None:
    """Raises MissingFilesError listing every missing entry, the expected tree and sources.

    Args:
      root: the folder the entries are relative to.
      entries: relative paths; a trailing "/" marks a folder.
      dataset: name for the message.
      expected_tree: the layout, one entry a line.
      how_to_get: where the files come from.
    """
    missing = []
    for entry in entries:
        path = os.path.join(root, entry.rstrip("/"))
        exists = os.path.isdir(path) if entry.endswith("/") else os.path.isfile(path)
        if not exists:
            missing.append(entry)
    if missing:
        raise MissingFilesError(
            f"{dataset}: missing {', '.join(missing)} in {root}. Expected layout: "
            f"{expected_tree} {how_to_get}")


def read_example_captions(image_path: str, text_path: str, count: int, dataset: str,
                          how_to_get: str, counts: Dict[str, int]) -> List[str]:
    """Checks that an example's image and caption file exist and reads its captions.

    Records how many captions the file held in `counts` (for `check_caption_counts`).
    """
    for path, what in ((image_path, "image"), (text_path, "caption file")):
        if not os.path.isfile(path):
            raise missing_file_error(path, dataset, what, how_to_get)
    captions = read_caption_file(text_path, count)
    counts[text_path] = len(captions)
    return captions


def missing_file_error(path: str, dataset: str, what: str, how_to_get: str) -> MissingFilesError:
    """A MissingFilesError for one file a readable index file refers to."""
    return MissingFilesError(f"{dataset}: {what} {path} is missing. {how_to_get}")


def load_rgb(path: str) -> Tuple[Image.Image, str, str]:
    """Opens, verifies and fully decodes an image.

    Returns:
      (the image as RGB, the file's format such as "JPEG", its original PIL mode).

    Raises:
      CorruptImageError: naming the file, when it is not a complete, decodable image.
      FileNotFoundError: when it does not exist.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Missing image file: {path}")
    try:
        # verify() checks the structure but leaves the object unusable; load() on a
        # fresh handle decodes every pixel, which is where truncation shows up.
        with Image.open(path) as probe:
            probe.verify()
        with Image.open(path) as image:
            image.load()
            file_format, mode = image.format, image.mode
            rgb = image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise CorruptImageError(f"Cannot decode image {path}: {e}") from e
    if rgb.width < 1 or rgb.height < 1:
        raise CorruptImageError(f"Image {path} is empty ({rgb.width}x{rgb.height}).")
    return rgb, file_format, mode


def encode_jpeg(image: Image.Image) -> bytes:
    """RGB image -> baseline JPEG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def describe_skipped(dataset_split: str, names: Sequence[str]) -> str:
    """The log line that reports images skipped as corrupt."""
    shown = ", ".join(names[:_NAMES_SHOWN])
    return (f"{dataset_split}: skipped {len(names)} corrupt or truncated image(s) "
            f"(skip_corrupt_images=True): {shown}{_more(len(names))}.")


def _more(count: int) -> str:
    return f" and {count - _NAMES_SHOWN} more" if count > _NAMES_SHOWN else ""


def read_attngan_vocabulary(path: str, dataset: str) -> List[str]:
    """Our vocabulary from AttnGAN's `captions.pickle`, aligned with its word indices.

    The pickle holds [train_captions, test_captions, ixtoword, wordtoix], with
    ixtoword[0] = "<end>" used as padding. `CaptionTokenizer` reserves id 0 for padding
    and 1 for out-of-vocabulary words, so the vocabulary is ixtoword[1], ixtoword[2], ...
    in index order, and a word's id here is its pickle index + 1. An embedding matrix
    trained by the reference (rows = pickle indices) maps over by inserting one row (for
    OOV) at index 1.

    Raises:
      FileNotFoundError: the pickle is missing.
      UnsafePickleError, PickleFormatError: it is not the plain-data layout above.
      DatasetFormatError: a word is not a single lower-case ASCII token, or repeats.
    """
    value = safe_pickle.load(path)
    if not isinstance(value, (list, tuple)) or len(value) != 4 or not isinstance(value[2], dict):
        raise safe_pickle.PickleFormatError(
            f"{path}: expected [train_captions, test_captions, ixtoword, wordtoix] as AttnGAN "
            "writes it.")
    ixtoword = value[2]
    size = len(ixtoword)
    if (any(type(k) is not int for k in ixtoword)  # pylint: disable=unidiomatic-typecheck
            or sorted(ixtoword) != list(range(size))):
        raise safe_pickle.PickleFormatError(
            f"{path}: ixtoword keys must be the integers 0..{size - 1}.")
    words = [safe_pickle.as_str(ixtoword[i], path, f"ixtoword[{i}]") for i in range(1, size)]
    bad = [f"{i + 1}:{w!r}" for i, w in enumerate(words) if tokenizer_lib.split_words(w) != [w]]
    if bad:
        raise DatasetFormatError(
            f"{dataset}: {path} has {len(bad)} vocabulary entries that are not single "
            f"lower-case word tokens (index:word): {', '.join(bad[:_NAMES_SHOWN])}"
            f"{_more(len(bad))}.")
    if len(set(words)) != len(words):
        raise DatasetFormatError(f"{dataset}: {path} lists a word twice in ixtoword.")
    return words
