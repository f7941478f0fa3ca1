"""Reads COCO-2014 captions and images, in AttnGAN's layout or the official one.

The layout is detected from what the folder (`manual_dir`, or a `coco/` folder inside
it) holds:

* "attngan" (the reference's `data/coco/`): images/<name>.jpg (train2014 and val2014
  images together), text/<name>.txt with 5 captions each, train/filenames.pickle,
  test/filenames.pickle, captions.pickle. The vocabulary comes from captions.pickle.
* "official" (cocodataset.org): train2014/, val2014/,
  annotations/captions_train2014.json, annotations/captions_val2014.json. The train
  split is train2014 and the test split val2014; an image keeps its first 5 captions
  in annotation order. There is no vocabulary file: the tokenizer is built from the
  training captions.

When both are present the AttnGAN layout wins, since its vocabulary lines up with
DAMSM encoders trained by the reference. COCO has no classes (class id -1) and no
bounding-box crop.
"""

import json
import os
import re
from typing import Dict, List, Optional, Tuple

from tf_t2i.data import raw_files
from tf_t2i.io import safe_pickle

DATASET = "COCO-2014"
CAPTIONS_PER_IMAGE = 5
NO_CLASS = -1
SPLITS = ("train", "test")
ATTNGAN, OFFICIAL = "attngan", "official"

_LAYOUT_ENTRIES = {
    ATTNGAN: ("images/", "text/", "train/filenames.pickle", "test/filenames.pickle",
              "captions.pickle"),
    OFFICIAL: ("train2014/", "val2014/", "annotations/captions_train2014.json",
               "annotations/captions_val2014.json"),
}
_OFFICIAL_SPLITS = {"train": "train2014", "test": "val2014"}
EXPECTED_TREE = (
    "<manual_dir>/ (or <manual_dir>/coco/) with either the AttnGAN layout: images/<name>.jpg, "
    "text/<name>.txt (5 captions each), train/filenames.pickle, test/filenames.pickle, "
    "captions.pickle; or the official layout: train2014/*.jpg, val2014/*.jpg, "
    "annotations/captions_train2014.json, annotations/captions_val2014.json.")
HOW_TO_GET = (
    "Get it from: the images train2014.zip and val2014.zip and the annotations "
    "annotations_trainval2014.zip from https://cocodataset.org/#download; for the AttnGAN "
    "layout also its preprocessed metadata coco.zip "
    "(https://drive.google.com/open?id=1rSnbIGNDGZeHlsUlLdahj0RJ9oo6lgH9, linked from "
    "github.com/taoxugit/AttnGAN's README) with both image folders' files copied into "
    "images/. See docs/datasets.md.")
_TRAILING_NUMBER_RE = re.compile(r"(\d+)$")


def find_root(manual_dir: str) -> Tuple[str, str]:
    """(root folder, layout name): `manual_dir` or its `coco/` child, either layout.

    Raises:
      MissingFilesError: neither layout is complete; lists what each one lacks.
    """
    if not manual_dir or not os.path.isdir(manual_dir):
        raise raw_files.MissingFilesError(
            f"{DATASET}: the manual_dir {manual_dir!r} does not exist. Expected layout: "
            f"{EXPECTED_TREE} {HOW_TO_GET}")
    candidates = [manual_dir]
    if os.path.isdir(os.path.join(manual_dir, "coco")):
        candidates.append(os.path.join(manual_dir, "coco"))
    for root in candidates:
        for layout in (ATTNGAN, OFFICIAL):
            if not _missing(root, layout):
                return root, layout
    # Report against the candidate and layout that came closest.
    root, layout = min(((r, l) for r in candidates for l in (ATTNGAN, OFFICIAL)),
                       key=lambda rl: len(_missing(*rl)))
    missing = _missing(root, layout)
    raise raw_files.MissingFilesError(
        f"{DATASET}: {root} holds neither complete layout; the closest ({layout}) lacks "
        f"{', '.join(missing)}. Expected: {EXPECTED_TREE} {HOW_TO_GET}")


def _missing(root: str, layout: str) -> List[str]:
    out = []
    for entry in _LAYOUT_ENTRIES[layout]:
        path = os.path.join(root, entry.rstrip("/"))
        if not (os.path.isdir(path) if entry.endswith("/") else os.path.isfile(path)):
            out.append(entry)
    return out


def read_split(root: str, layout: str, split: str) -> List[raw_files.RawExample]:
    """The examples of one split: 5 cleaned captions each, class id -1.

    Args:
      root, layout: what `find_root` returned.
      split: "train" or "test".

    Raises:
      MissingFilesError: a listed image or caption file is missing.
      CaptionCountError: naming every image with fewer than 5 captions.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
    if layout == ATTNGAN:
        return _read_attngan_split(root, split)
    if layout == OFFICIAL:
        return _read_official_split(root, split)
    raise ValueError(f"Unknown COCO layout {layout!r}; expected {ATTNGAN!r} or {OFFICIAL!r}.")


def read_vocabulary(root: str, layout: str) -> Optional[List[str]]:
    """The AttnGAN layout's vocabulary (captions.pickle); None for the official layout."""
    if layout != ATTNGAN:
        return None
    return raw_files.read_attngan_vocabulary(os.path.join(root, "captions.pickle"), DATASET)


def _image_id_from_name(name: str, fallback: int) -> int:
    """COCO names end in the image id ("COCO_val2014_000000000042" -> 42)."""
    match = _TRAILING_NUMBER_RE.search(name)
    return int(match.group(1)) if match else fallback


def _read_attngan_split(root: str, split: str) -> List[raw_files.RawExample]:
    names_path = os.path.join(root, split, "filenames.pickle")
    names = safe_pickle.string_list(safe_pickle.load(names_path), names_path, "file names")
    examples, counts = [], {}
    for index, name in enumerate(names):
        image_path = os.path.join(root, "images", name + ".jpg")
        text_path = os.path.join(root, "text", name + ".txt")
        captions = raw_files.read_example_captions(image_path, text_path, CAPTIONS_PER_IMAGE,
                                                   DATASET, HOW_TO_GET, counts)
        examples.append(raw_files.RawExample(
            name=name, image_path=image_path, image_id=_image_id_from_name(name, index),
            class_id=NO_CLASS, captions=tuple(captions)))
    raw_files.check_caption_counts(counts, CAPTIONS_PER_IMAGE, DATASET, "caption files")
    return examples


def _read_official_split(root: str, split: str) -> List[raw_files.RawExample]:
    folder = _OFFICIAL_SPLITS[split]
    path = os.path.join(root, "annotations", f"captions_{folder}.json")
    try:
        with open(path, "r", encoding="utf-8") as f:
            annotations = json.load(f)
        images = {int(im["id"]): str(im["file_name"]) for im in annotations["images"]}
        lines: Dict[int, List[str]] = {image_id: [] for image_id in images}
        for annotation in annotations["annotations"]:
            lines.setdefault(int(annotation["image_id"]), []).append(str(annotation["caption"]))
    except (ValueError, KeyError, TypeError) as e:
        raise raw_files.DatasetFormatError(
            f"{DATASET}: {path} is not a COCO captions file ({type(e).__name__}: {e}).") from e
    orphans = sorted(set(lines) - set(images))
    if orphans:
        raise raw_files.DatasetFormatError(
            f"{DATASET}: {path} has captions for image ids {orphans[:10]} that its 'images' "
            "list lacks.")

    examples, counts, missing = [], {}, []
    for image_id in sorted(images):
        file_name = images[image_id]
        image_path = os.path.join(root, folder, file_name)
        if not os.path.isfile(image_path):
            missing.append(file_name)
            continue
        captions = raw_files.first_captions(lines[image_id], CAPTIONS_PER_IMAGE)
        counts[f"{file_name} (id {image_id})"] = len(captions)
        examples.append(raw_files.RawExample(
            name=os.path.splitext(file_name)[0], image_path=image_path, image_id=image_id,
            class_id=NO_CLASS, captions=tuple(captions)))
    if missing:
        raise raw_files.MissingFilesError(
            f"{DATASET}: {len(missing)} image(s) listed in {path} are missing from "
            f"{os.path.join(root, folder)}: {', '.join(missing[:10])}"
            f"{' ...' if len(missing) > 10 else ''}. {HOW_TO_GET}")
    raw_files.check_caption_counts(counts, CAPTIONS_PER_IMAGE, DATASET, f"images of {path}")
    return examples


def encoded_image(example: raw_files.RawExample) -> bytes:
    """The JPEG to store, after a full integrity-checking decode.

    An RGB JPEG is kept byte for byte (no second lossy encoding); grayscale, CMYK or
    non-JPEG files are converted to RGB and encoded.
    """
    image, file_format, mode = raw_files.load_rgb(example.image_path)
    if file_format == "JPEG" and mode == "RGB":
        with open(example.image_path, "rb") as f:
            return f.read()
    return raw_files.encode_jpeg(image)
