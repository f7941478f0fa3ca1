"""Shared, cached fixtures of the evaluation tests: a scratch dir, fake weights, a tiny run.

Everything is built once per pytest process: the tiny shapes data in a temporary TFDS
dir, a 2-step DAMSM run and a 2-step SSA-GAN run on configs/tiny.cfg (in-process, as
`python -m tf_t2i.pretrain` / `tf_t2i.train` would), the fake FID Inception file and a
fake IS classifier.
"""

import atexit
import functools
import os
import shutil
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@functools.lru_cache(maxsize=None)
def scratch() -> str:
    path = tempfile.mkdtemp(prefix="tf_t2i_eval_tests_")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.lru_cache(maxsize=None)
def fake_inception_weights() -> str:
    """The FID Inception archive layout with random weights (87 MB, written once)."""
    from tests.eval import torch_files  # pylint: disable=g-import-not-at-top
    return torch_files.write_fake_inception(os.path.join(scratch(), "fake_inception.pt"))


@functools.lru_cache(maxsize=None)
def fake_is_classifier() -> str:
    """A small Keras classifier of [-1, 1] images with 10 classes, saved as .keras."""
    import keras  # pylint: disable=g-import-not-at-top
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    path = os.path.join(scratch(), "fake_classifier.keras")
    model.save(path)
    return path


@functools.lru_cache(maxsize=None)
def tiny_config():
    """configs/tiny.cfg with its data in the scratch dir."""
    from tests import test_config  # pylint: disable=g-import-not-at-top
    cfg = test_config.parse_flagfile("configs/tiny.cfg")
    return cfg.replace(data={"data_dir": os.path.join(scratch(), "tfds")})


@functools.lru_cache(maxsize=None)
def tiny_runs():
    """(damsm_dir, gan_dir): 2 steps of each on tiny; read-only for the tests."""
    from tf_t2i.training import pretrain_lib  # pylint: disable=g-import-not-at-top
    from tf_t2i.training import train_lib  # pylint: disable=g-import-not-at-top
    cfg = tiny_config()
    damsm_dir = os.path.join(scratch(), "damsm")
    gan_dir = os.path.join(scratch(), "gan")
    pretrain_lib.run_pretraining(cfg.replace(train={"task": "damsm"}), damsm_dir, verbose=0)
    train_lib.run_training(cfg.replace(train={"task": "gan"}, runtime={"damsm_dir": damsm_dir}),
                           gan_dir, verbose=0)
    return damsm_dir, gan_dir


@functools.lru_cache(maxsize=None)
def cache_dir() -> str:
    """A TF_T2I_CACHE holding the tiny dataset's attribute classifier (1 epoch, quick)."""
    from tf_t2i.eval import attributes  # pylint: disable=g-import-not-at-top
    path = os.path.join(scratch(), "cache")
    attributes.load_or_train_classifier(
        tiny_config().data, cache_root=os.path.join(path, "attribute_classifier"), epochs=1,
        extra_images=0, verbose=0, log=lambda *_: None)
    return path


def finite(value) -> bool:
    return value is not None and bool(np.isfinite(value))
