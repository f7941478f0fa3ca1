"""Loads a dataset split into memory as an `ImageCaptionSource`.

The shapes dataset is prepared through its TFDS builder (offline, deterministic) and read
back; CUB-200 and COCO-2014 readers come with their TFDS builders (see the README).
"""

import numpy as np
import tensorflow_datasets as tfds

from tf_t2i import config as config_lib
from tf_t2i.data import pipeline

SPLITS = ("train", "test")


def load_source(data: config_lib.DataConfig, split: str) -> pipeline.ImageCaptionSource:
    """Reads one split of the configured dataset into memory."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
    if data.dataset == "shapes":
        return _load_shapes(data, split)
    raise NotImplementedError(
        f"The {data.dataset!r} reader is not available in this version of tf_t2i; only the "
        "built-in 'shapes' dataset can be loaded (see the README's dataset section).")


def shapes_builder(data: config_lib.DataConfig):
    from tf_t2i.data import shapes_tfds  # pylint: disable=g-import-not-at-top
    return shapes_tfds.make_builder(image_size=data.image_size,
                                    train_size=data.shapes_train_size,
                                    test_size=data.shapes_test_size, seed=data.shapes_seed,
                                    data_dir=data.data_dir or None)


def _load_shapes(data: config_lib.DataConfig, split: str) -> pipeline.ImageCaptionSource:
    builder = shapes_builder(data)
    builder.download_and_prepare()
    arrays = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))
    captions = [[c.decode("utf-8") for c in row] for row in arrays["captions"]]
    return pipeline.ImageCaptionSource(
        images=np.asarray(arrays["image"], np.uint8),
        captions=captions,
        image_ids=np.asarray(arrays["image_id"], np.int64),
        class_ids=np.asarray(arrays["class_id"], np.int64),
        attributes={k: np.asarray(v) for k, v in arrays["attributes"].items()},
        name=f"shapes_t2i/{split}")
