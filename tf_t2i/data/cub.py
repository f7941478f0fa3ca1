"""Reads CUB-200-2011 in the AttnGAN layout (the `data/birds/` folder of the reference).

The folder (`manual_dir`, or a `birds/` folder inside it) holds:

  CUB_200_2011/images/<class>/<name>.jpg       the Caltech images
  CUB_200_2011/images.txt                      "<image id> <class>/<name>.jpg" lines
  CUB_200_2011/bounding_boxes.txt              "<image id> <x> <y> <width> <height>" lines
  text/<class>/<name>.txt                      10 captions, one a line
  train/filenames.pickle, test/filenames.pickle    lists of "<class>/<name>"
  train/class_info.pickle, test/class_info.pickle  1-based class per file name (optional)
  captions.pickle                              [train_caps, test_caps, ixtoword, wordtoix]

Each image is cropped around its bounding box as the reference does (`crop_box`);
captions are cleaned as the reference cleans them (`raw_files.clean_caption`), and
class ids are 0-based. Reading the index checks every folder, file and caption count
before any image is decoded.
"""

import os
import re
from typing import Dict, List, Tuple

from PIL import Image

from tf_t2i.data import raw_files
from tf_t2i.io import safe_pickle

DATASET = "CUB-200-2011"
CAPTIONS_PER_IMAGE = 10
SPLITS = ("train", "test")
# The reference crops a square of side 1.5 * max(width, height) around the box centre.
_BOX_HALF_SIDE = 0.75

EXPECTED_TREE = (
    "<manual_dir>/ (or <manual_dir>/birds/) with CUB_200_2011/images/<class>/<name>.jpg, "
    "CUB_200_2011/images.txt, CUB_200_2011/bounding_boxes.txt, "
    "text/<class>/<name>.txt (10 captions each), train/filenames.pickle, "
    "test/filenames.pickle, train/class_info.pickle and test/class_info.pickle (optional), "
    "captions.pickle.")
HOW_TO_GET = (
    "Get it from: AttnGAN's preprocessed metadata birds.zip "
    "(https://drive.google.com/open?id=1O_LtUP9sch09QH3s_EBAgLEctBQ5JBSJ, linked from "
    "github.com/taoxugit/AttnGAN's README; unzip to get birds/ and extract birds/text.zip "
    "inside it if text/ comes zipped) and the images CUB_200_2011.tgz from Caltech "
    "(https://data.caltech.edu/records/65de6-vp158, extract into birds/). "
    "See docs/datasets.md.")

_REQUIRED = ("CUB_200_2011/images/", "CUB_200_2011/images.txt",
             "CUB_200_2011/bounding_boxes.txt", "text/", "train/filenames.pickle",
             "test/filenames.pickle", "captions.pickle")
_CLASS_PREFIX_RE = re.compile(r"^(\d+)\.")


def find_root(manual_dir: str) -> str:
    """The folder holding `CUB_200_2011/`: `manual_dir` itself or its `birds/` child.

    Raises:
      MissingFilesError: listing every missing entry and where to get it.
    """
    if not manual_dir or not os.path.isdir(manual_dir):
        raise raw_files.MissingFilesError(
            f"{DATASET}: the manual_dir {manual_dir!r} does not exist. Expected layout: "
            f"{EXPECTED_TREE} {HOW_TO_GET}")
    nested = os.path.join(manual_dir, "birds")
    root = nested if (not os.path.isdir(os.path.join(manual_dir, "CUB_200_2011"))
                      and os.path.isdir(nested)) else manual_dir
    raw_files.require(root, _REQUIRED, DATASET, EXPECTED_TREE, HOW_TO_GET)
    return root


def crop_box(bbox: Tuple[int, int, int, int], width: int,
             height: int) -> Tuple[int, int, int, int]:
    """The reference's crop (x1, y1, x2, y2) for a box (x, y, w, h) in a width x height image.

    A square of half-side r = int(0.75 * max(w, h)) centred on the box, clipped to the
    image, so birds keep some context and the crop is square unless it meets an edge.
    """
    x, y, w, h = bbox
    r = int(max(w, h) * _BOX_HALF_SIDE)
    cx = int((2 * x + w) / 2)
    cy = int((2 * y + h) / 2)
    return max(0, cx - r), max(0, cy - r), min(width, cx + r), min(height, cy + r)


def crop_to_bbox(image: Image.Image, bbox: Tuple[int, int, int, int]) -> Image.Image:
    """Applies `crop_box` to a PIL image."""
    return image.crop(crop_box(bbox, image.width, image.height))


def read_bounding_boxes(root: str) -> Dict[str, Tuple[int, Tuple[int, int, int, int]]]:
    """Maps "<class>/<name>" (no extension) to (image id, (x, y, w, h)).

    Boxes are truncated to integers, as the reference's `astype(int)` does; images.txt
    and bounding_boxes.txt are matched through their image id.
    """
    meta = os.path.join(root, "CUB_200_2011")
    names = {}
    for image_id, fields in _numbered_lines(os.path.join(meta, "images.txt"), 1):
        names[image_id] = os.path.splitext(fields[0])[0]
    boxes = {}
    path = os.path.join(meta, "bounding_boxes.txt")
    for image_id, fields in _numbered_lines(path, 4):
        try:
            boxes[image_id] = tuple(int(float(v)) for v in fields)
        except ValueError as e:
            raise raw_files.DatasetFormatError(
                f"{DATASET}: {path}: bad box for image {image_id}: {fields}.") from e
    missing = sorted(set(names) - set(boxes))
    if missing:
        raise raw_files.DatasetFormatError(
            f"{DATASET}: {path} has no box for image id(s) {missing[:10]} of images.txt.")
    return {name: (image_id, boxes[image_id]) for image_id, name in names.items()}


def _numbered_lines(path: str, num_fields: int):
    """Yields (id, fields) from "<id> <field> ..." lines, skipping blank ones."""
    with open(path, "r", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != num_fields + 1 or not parts[0].isdigit():
                raise raw_files.DatasetFormatError(
                    f"{DATASET}: {path} line {number} should be an id and {num_fields} "
                    f"field(s), got {line.strip()!r}.")
            yield int(parts[0]), parts[1:]


def read_split(root: str, split: str) -> List[raw_files.RawExample]:
    """The examples of one split, in filenames.pickle order, with captions and boxes.

    Args:
      root: the folder `find_root` returned.
      split: "train" or "test".

    Raises:
      MissingFilesError: an image or caption file listed in filenames.pickle is missing.
      CaptionCountError: naming every caption file with fewer than 10 captions.
      UnsafePickleError, PickleFormatError: a pickle is not plain data of the expected shape.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
    names_path = os.path.join(root, split, "filenames.pickle")
    names = safe_pickle.string_list(safe_pickle.load(names_path), names_path, "file names")
    class_ids = _read_class_ids(root, split, names)
    boxes = read_bounding_boxes(root)

    examples, counts = [], {}
    for name, class_id in zip(names, class_ids):
        if name not in boxes:
            raise raw_files.DatasetFormatError(
                f"{DATASET}: {name} (from {names_path}) is not listed in "
                f"{os.path.join(root, 'CUB_200_2011', 'images.txt')}.")
        image_path = os.path.join(root, "CUB_200_2011", "images", name + ".jpg")
        text_path = os.path.join(root, "text", name + ".txt")
        captions = raw_files.read_example_captions(image_path, text_path, CAPTIONS_PER_IMAGE,
                                                   DATASET, HOW_TO_GET, counts)
        image_id, bbox = boxes[name]
        examples.append(raw_files.RawExample(
            name=name, image_path=image_path, image_id=image_id, class_id=class_id,
            captions=tuple(captions), bbox=bbox))
    raw_files.check_caption_counts(counts, CAPTIONS_PER_IMAGE, DATASET, "caption files")
    return examples


def _read_class_ids(root: str, split: str, names: List[str]) -> List[int]:
    """0-based class ids: class_info.pickle when present, else the class folder's number."""
    path = os.path.join(root, split, "class_info.pickle")
    if os.path.isfile(path):
        try:
            one_based = safe_pickle.int_list(safe_pickle.load(path), path, "class ids")
        except safe_pickle.UnsafePickleError as e:
            raise safe_pickle.UnsafePickleError(
                f"{e} Class ids can also come from the class folder names: move "
                f"{path} away to use them.") from e
        if len(one_based) != len(names):
            raise safe_pickle.PickleFormatError(
                f"{path}: {len(one_based)} class ids for {len(names)} file names in "
                f"{os.path.join(root, split, 'filenames.pickle')}.")
        return [c - 1 for c in one_based]
    return [_class_from_folder(name) for name in names]


def _class_from_folder(name: str) -> int:
    match = _CLASS_PREFIX_RE.match(name)
    if not match:
        raise raw_files.DatasetFormatError(
            f"{DATASET}: cannot read a class from {name!r}: expected '<NNN>.<class>/<image>' "
            "(or a class_info.pickle next to filenames.pickle).")
    return int(match.group(1)) - 1


def read_vocabulary(root: str) -> List[str]:
    """The DAMSM vocabulary from captions.pickle (see `raw_files.read_attngan_vocabulary`)."""
    return raw_files.read_attngan_vocabulary(os.path.join(root, "captions.pickle"), DATASET)


def encoded_image(example: raw_files.RawExample) -> bytes:
    """The bbox-cropped image as JPEG, after a full integrity-checking decode."""
    image, _, _ = raw_files.load_rgb(example.image_path)
    return raw_files.encode_jpeg(crop_to_bbox(image, example.bbox))

