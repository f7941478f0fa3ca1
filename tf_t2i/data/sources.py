"""Loads a dataset split into memory as an `ImageCaptionSource`.

Every dataset goes through its TFDS builder: the first run prepares the records (shapes
from its generator; CUB-200-2011 and COCO-2014 from the raw files in
`data.manual_dir`), later runs only read them from `data.data_dir`. Shapes comes back
as decoded uint8 images; the real datasets as JPEG bytes the pipeline decodes per
element (COCO decoded would not fit in memory), with their vocabulary when the raw
files carry one. See docs/datasets.md.
"""

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from tf_t2i import config as config_lib
from tf_t2i.data import pipeline
from tf_t2i.data import raw_files
from tf_t2i.data import real_tfds
from tf_t2i.data import shapes_negatives

SPLITS = ("train", "test")


def load_source(data: config_lib.DataConfig, split: str) -> pipeline.ImageCaptionSource:
    """Reads one split of the configured dataset into memory.

    Raises:
      MissingFilesError: CUB/COCO not prepared yet and their raw files are missing.
      raw_files.INPUT_ERRORS: unusable raw files (corrupt image without
        `skip_corrupt_images`, too few captions, unsafe pickle), naming the file.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
    if data.dataset == "shapes":
        return _load_shapes(data, split)
    if data.dataset in real_tfds.BUILDERS:
        return _load_real(data, split)
    raise NotImplementedError(f"No reader for dataset {data.dataset!r}.")


def real_builder(data: config_lib.DataConfig, prepare: bool = True):
    """The prepared TFDS builder of CUB or COCO (preparing it from manual_dir if needed)."""
    make = lambda: real_tfds.make_builder(data.dataset, data_dir=data.data_dir or None,
                                          skip_corrupt_images=data.skip_corrupt_images)
    builder = make()
    if prepare:
        real_tfds.prepare(builder, data.manual_dir or None)
        # Made again: a builder reads what is on disk when it is made, and another
        # process may have prepared the dataset while this one waited for its lock.
        builder = make()
    return builder


def shapes_builder(data: config_lib.DataConfig):
    from tf_t2i.data import shapes_tfds  # pylint: disable=g-import-not-at-top
    return shapes_tfds.make_builder(image_size=data.image_size,
                                    train_size=data.shapes_train_size,
                                    test_size=data.shapes_test_size, seed=data.shapes_seed,
                                    data_dir=data.data_dir or None)


def _load_shapes(data: config_lib.DataConfig, split: str) -> pipeline.ImageCaptionSource:
    builder = shapes_builder(data)  # prepared (once, under a lock) by make_builder
    arrays = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))
    captions = [[c.decode("utf-8") for c in row] for row in arrays["captions"]]
    return pipeline.ImageCaptionSource(
        images=np.asarray(arrays["image"], np.uint8),
        captions=captions,
        image_ids=np.asarray(arrays["image_id"], np.int64),
        class_ids=np.asarray(arrays["class_id"], np.int64),
        attributes={k: np.asarray(v) for k, v in arrays["attributes"].items()},
        name=f"shapes_t2i/{split}")


def shapes_negative_images(data: config_lib.DataConfig,
                           source: pipeline.ImageCaptionSource) -> np.ndarray:
    """uint8 [N, S, S, 3]: each image of a shapes split with objects added until it holds
    three (`shapes_negatives`), in the source's order (about 1 ms each)."""
    return np.stack([shapes_negatives.render_with_extra_objects(
        int(i), image_size=data.image_size, seed=data.shapes_seed) for i in source.image_ids])


def _load_real(data: config_lib.DataConfig, split: str) -> pipeline.ImageCaptionSource:
    builder = real_builder(data)
    skipped = real_tfds.skipped_images(builder, split)
    if skipped:
        logging.warning(raw_files.describe_skipped(f"{builder.name}/{split}", skipped))
    # SkipDecoding keeps the JPEG bytes: decoding happens per element in the pipeline.
    ds = builder.as_dataset(split=split, shuffle_files=False,
                            decoders={"image": tfds.decode.SkipDecoding()})
    encoded, captions, image_ids, class_ids, names = [], [], [], [], []
    for example in tfds.as_numpy(ds):
        encoded.append(example["image"])
        captions.append([c.decode("utf-8") for c in example["captions"]])
        image_ids.append(example["image_id"])
        class_ids.append(example["class_id"])
        names.append(example["file_name"].decode("utf-8"))
    if not encoded:
        raise raw_files.DatasetFormatError(
            f"{builder.name}/{split} in {builder.data_dir} has no images"
            f"{' (all were skipped as corrupt)' if skipped else ''}.")
    encoded_images = np.empty(len(encoded), dtype=object)
    encoded_images[:] = encoded
    return pipeline.ImageCaptionSource(
        images=None,
        encoded_images=encoded_images,
        captions=captions,
        image_ids=np.asarray(image_ids, np.int64),
        class_ids=np.asarray(class_ids, np.int64),
        vocabulary=real_tfds.vocabulary(builder),
        file_names=names,
        name=f"{builder.name}/{split}")
