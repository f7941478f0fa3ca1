"""tf_t2i: text-to-image GANs in Keras 3 / TensorFlow 2.

The public Python API (README, "Python API"):

* `tf_t2i.TextToImage`: a trained generator, `from_run(model_dir)` or
  `from_export(path)`, with `generate(captions, seeds)` and `save_grid(...)`.

Everything else is internal. The names load lazily, so that `import tf_t2i` (which every
binary does) stays cheap.
"""

__all__ = ["TextToImage"]


def __getattr__(name):
    if name == "TextToImage":
        from tf_t2i.api import TextToImage  # pylint: disable=g-import-not-at-top
        return TextToImage
    raise AttributeError(f"module 'tf_t2i' has no attribute {name!r}")
