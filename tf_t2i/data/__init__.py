"""Datasets, tokenizer and the tf.data pipeline.

Importing the package registers the TFDS builders of the real datasets, `cub_t2i` and
`coco_t2i` (`real_tfds.py`), so `tfds.builder("cub_t2i")` works after
`import tf_t2i.data`. Registration only defines the builder classes: nothing is read
or prepared until a builder is asked to.
"""

from tf_t2i.data import real_tfds  # noqa: F401  pylint: disable=unused-import
