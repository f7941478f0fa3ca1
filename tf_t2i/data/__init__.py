"""Datasets, tokenizer and the tf.data pipeline.

Importing the package imports nothing else, so `tf_t2i.data.tokenizer` stays free of
TensorFlow Datasets. The TFDS builders of the real datasets, `cub_t2i` and `coco_t2i`,
are registered by importing `tf_t2i.data.real_tfds` (as `sources` does), and
`shapes_t2i` by importing `tf_t2i.data.shapes_tfds`.
"""
