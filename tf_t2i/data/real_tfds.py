"""TFDS builders for the real datasets: `cub_t2i` (CUB-200-2011) and `coco_t2i` (COCO-2014).

Both read raw files from TFDS' `manual_dir` (layouts in `cub.py` and `coco.py`, user
documentation in docs/datasets.md). The first run checks the whole layout, decodes
every image once (verify + full load, so corrupt or truncated files are found here and
never mid-epoch) and writes TFRecords under `data_dir`; later runs only read them.
`import tf_t2i.data` registers both names:

  import tensorflow_datasets as tfds
  import tf_t2i.data  # Registers "cub_t2i" and "coco_t2i".

  ds = tfds.load("cub_t2i", split="train", data_dir="/tmp/tfds",
                 download_and_prepare_kwargs={"download_config": tfds.download.DownloadConfig(
                     manual_dir="/data/birds")})

Per image: `image` (JPEG; CUB's already cropped around its bounding box, any size),
`captions` (10 for CUB, 5 for COCO), `image_id`, `class_id` (0-based for CUB, -1 for
COCO) and `file_name`. Records keep the order of the split's file list. The metadata
(`builder.info.metadata`) holds the DAMSM `vocabulary` when the raw files provide one
(else None), the `layout` read, and `skipped_images` per split.

A corrupt image fails preparation with `raw_files.CorruptImageError` naming the file,
unless the builder is made with `skip_corrupt_images=True`: then such images are left
out, logged and listed in the metadata.
"""

import abc
import os
from typing import Dict, List, Optional, Tuple

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from tf_t2i.data import coco
from tf_t2i.data import cub
from tf_t2i.data import raw_files
from tf_t2i.io import files

VERSION = tfds.core.Version("1.0.0")
NAMES = {"cub": "cub_t2i", "coco": "coco_t2i"}

_CITATION_CUB = """@techreport{WahCUB_200_2011,
  title = {The Caltech-UCSD Birds-200-2011 Dataset},
  author = {Wah, C. and Branson, S. and Welinder, P. and Perona, P. and Belongie, S.},
  institution = {California Institute of Technology}, number = {CNS-TR-2011-001},
  year = {2011}}"""
_CITATION_COCO = """@inproceedings{lin2014microsoft,
  title = {Microsoft COCO: Common Objects in Context},
  author = {Lin, Tsung-Yi and others}, booktitle = {ECCV}, year = {2014}}"""


class _ManualT2IBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared body of the manual-download text-to-image builders."""

    VERSION = VERSION
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    CAPTIONS_PER_IMAGE = 0
    DATASET = ""
    EXPECTED_TREE = ""
    HOW_TO_GET = ""

    def __init__(self, *, skip_corrupt_images: bool = False, **kwargs):
        """Makes the builder.

        Args:
          skip_corrupt_images: leave out undecodable images (logged, listed in the
            metadata) instead of failing on the first one.
          **kwargs: `tfds.core.DatasetBuilder` arguments (data_dir, config, version).
        """
        self.skip_corrupt_images = bool(skip_corrupt_images)
        super().__init__(**kwargs)

    @abc.abstractmethod
    def check_manual_dir(self, manual_dir: str) -> None:
        """Raises MissingFilesError, listing the expected tree, if the layout is incomplete."""

    @abc.abstractmethod
    def _read_raw(self, manual_dir: str) -> Tuple[Dict[str, List[raw_files.RawExample]],
                                                  Optional[List[str]], str]:
        """({split: examples}, vocabulary or None, layout name) from the raw folder."""

    @abc.abstractmethod
    def _encoded_image(self, example: raw_files.RawExample) -> bytes:
        """The JPEG bytes to store for one example (decodes and checks it)."""

    def _description(self) -> str:
        return ""

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=self._description(),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(encoding_format="jpeg"),
                "captions": tfds.features.Sequence(tfds.features.Text(),
                                                   length=self.CAPTIONS_PER_IMAGE),
                "image_id": np.int64,
                "class_id": np.int64,
                "file_name": tfds.features.Text(),
            }),
            supervised_keys=None,
            # Records in file-list order, as the reference iterates them.
            disable_shuffling=True,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        try:
            manual_dir = os.fspath(dl_manager.manual_dir)
        except AssertionError as e:  # TFDS' way of saying the folder is missing or empty.
            raise raw_files.MissingFilesError(
                f"{self.DATASET}: no raw files to prepare from ({e}). Expected layout: "
                f"{self.EXPECTED_TREE} {self.HOW_TO_GET}") from e
        # Everything but image decoding is checked before a single record is written.
        splits, vocabulary, layout = self._read_raw(manual_dir)
        self.info.metadata.update(
            {"vocabulary": vocabulary, "layout": layout, "skipped_images": {}})
        return {split: self._generate_examples(split, examples)
                for split, examples in splits.items()}

    def _generate_examples(self, split: str, examples: List[raw_files.RawExample]):
        skipped = []
        for example in examples:
            try:
                image = self._encoded_image(example)
            except raw_files.CorruptImageError:
                if not self.skip_corrupt_images:
                    raise
                skipped.append(example.name)
                continue
            yield example.name, {
                "image": image,
                "captions": list(example.captions),
                "image_id": example.image_id,
                "class_id": example.class_id,
                "file_name": example.name,
            }
        self.info.metadata["skipped_images"][split] = skipped
        if skipped:
            logging.warning(raw_files.describe_skipped(f"{self.name}/{split}", skipped))


class CUBT2I(_ManualT2IBuilder):
    """CUB-200-2011 birds (AttnGAN layout): bbox-cropped images, 10 captions, 200 classes."""

    name = "cub_t2i"
    CAPTIONS_PER_IMAGE = cub.CAPTIONS_PER_IMAGE
    DATASET = cub.DATASET
    EXPECTED_TREE = cub.EXPECTED_TREE
    HOW_TO_GET = cub.HOW_TO_GET
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Put the AttnGAN birds folder in manual_dir. {cub.EXPECTED_TREE} {cub.HOW_TO_GET}")

    def _description(self) -> str:
        return ("CUB-200-2011 with the 10 captions per image of Reed et al. in AttnGAN's "
                "train/test split. Images are cropped to 1.5x their bounding box as AttnGAN "
                "does; class_id is the 0-based CUB class. metadata['vocabulary'] lists the "
                "words of AttnGAN's captions.pickle in index order (tokenizer id = pickle "
                "index + 1).")

    def check_manual_dir(self, manual_dir):
        cub.find_root(manual_dir)

    def _read_raw(self, manual_dir):
        root = cub.find_root(manual_dir)
        splits = {split: cub.read_split(root, split) for split in cub.SPLITS}
        return splits, cub.read_vocabulary(root), "attngan"

    def _encoded_image(self, example):
        return cub.encoded_image(example)


class COCOT2I(_ManualT2IBuilder):
    """COCO-2014 captions (AttnGAN or official layout): 5 captions per image, no classes."""

    name = "coco_t2i"
    CAPTIONS_PER_IMAGE = coco.CAPTIONS_PER_IMAGE
    DATASET = coco.DATASET
    EXPECTED_TREE = coco.EXPECTED_TREE
    HOW_TO_GET = coco.HOW_TO_GET
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Put COCO-2014 in manual_dir. {coco.EXPECTED_TREE} {coco.HOW_TO_GET}")

    def _description(self) -> str:
        return ("COCO-2014 images with 5 captions each; train = train2014, test = val2014 "
                "(or AttnGAN's filenames.pickle split). class_id is -1 (no classes). "
                "metadata['vocabulary'] holds AttnGAN's captions.pickle words for that "
                "layout and is None for the official one.")

    def check_manual_dir(self, manual_dir):
        coco.find_root(manual_dir)

    def _read_raw(self, manual_dir):
        root, layout = coco.find_root(manual_dir)
        splits = {split: coco.read_split(root, layout, split) for split in coco.SPLITS}
        return splits, coco.read_vocabulary(root, layout), layout

    def _encoded_image(self, example):
        return coco.encoded_image(example)


BUILDERS = {"cub": CUBT2I, "coco": COCOT2I}


def make_builder(dataset: str, data_dir: Optional[str] = None,
                 skip_corrupt_images: bool = False) -> _ManualT2IBuilder:
    """The builder of "cub" or "coco" (not prepared; see `prepare`)."""
    if dataset not in BUILDERS:
        raise ValueError(f"Unknown real dataset {dataset!r}; expected one of {sorted(BUILDERS)}.")
    return BUILDERS[dataset](data_dir=data_dir or None, skip_corrupt_images=skip_corrupt_images)


def prepare(builder: _ManualT2IBuilder, manual_dir: Optional[str]) -> None:
    """Writes the records from `manual_dir` unless they are already there.

    Raises:
      MissingFilesError: not prepared yet and `manual_dir` is empty or incomplete.
      CorruptImageError, CaptionCountError, ...: see the readers.
    """
    if builder.is_prepared():
        return
    if not manual_dir:
        raise raw_files.MissingFilesError(
            f"{builder.DATASET} is not prepared in {builder.data_dir} and no manual_dir was "
            f"given (--data_manual_dir): point it at the raw files. Expected layout: "
            f"{builder.EXPECTED_TREE} {builder.HOW_TO_GET}")
    manual_dir = os.path.abspath(os.path.expanduser(manual_dir))
    # Our own check first: TFDS would only say "missing or empty".
    builder.check_manual_dir(manual_dir)
    logging.info("Preparing %s from %s into %s (first run only).", builder.name, manual_dir,
                 builder.data_dir)
    with files.interprocess_lock(os.path.join(os.path.dirname(builder.data_dir),
                                              ".prepare.lock")):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))


def vocabulary(builder: _ManualT2IBuilder) -> Optional[List[str]]:
    """The dataset's DAMSM vocabulary from a prepared builder's metadata, or None."""
    words = builder.info.metadata.get("vocabulary")
    return list(words) if words else None


def skipped_images(builder: _ManualT2IBuilder, split: str) -> List[str]:
    """Names of the images of `split` left out as corrupt when the records were written."""
    return list(builder.info.metadata.get("skipped_images", {}).get(split, []))
