"""tf_t2i: text-to-image GANs in Keras 3 / TensorFlow 2.

The public Python API (README, "Python API"):

* `tf_t2i.TextToImage`: a trained generator, `from_run(model_dir)` or
  `from_export(path)`, with `generate(captions, seeds)` and `save_grid(...)`;
* `tf_t2i.fid(a, b)` and `tf_t2i.fid_statistics(images, save_to=...)`: FID between
  image arrays or pytorch-fid `.npz` statistics files;
* `tf_t2i.r_precision(images, captions, damsm_dir)`: R-precision of images against
  their captions with a DAMSM run's encoders.

Everything else is internal. The names load lazily, so that `import tf_t2i` (which every
binary does) stays cheap.
"""

__all__ = ["TextToImage", "fid", "fid_statistics", "r_precision"]


def __getattr__(name):
    if name in __all__:
        from tf_t2i import api  # pylint: disable=g-import-not-at-top
        return getattr(api, name)
    raise AttributeError(f"module 'tf_t2i' has no attribute {name!r}")
