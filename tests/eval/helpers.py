"""Shared, cached fixtures of the evaluation tests: a scratch dir, fake weights, a tiny run.

Everything is built once per pytest process: the fake FID Inception file, a fake IS
classifier and the tiny dataset's attribute classifier here; the tiny shapes data, the
2-step DAMSM run and the 2-step SSA-GAN run on configs/tiny.cfg are the training and
serving tests' own (tests/training/helpers, tests/serving/helpers), shared so that a
process builds each once.
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
    """configs/tiny.cfg with its data in the training tests' TFDS dir (prepared once)."""
    from tests import test_config  # pylint: disable=g-import-not-at-top
    from tests.training import helpers as training_helpers  # pylint: disable=g-import-not-at-top
    cfg = test_config.parse_flagfile("configs/tiny.cfg")
    return cfg.replace(data={"data_dir": training_helpers.data_dir()})


@functools.lru_cache(maxsize=None)
def tiny_runs():
    """(damsm_dir, gan_dir): 2 steps of each on tiny; read-only for the tests.

    The training tests' DAMSM run and the serving tests' GAN run on it, the same
    configs/tiny.cfg runs that `python -m tf_t2i.pretrain` / `tf_t2i.train` would make:
    one pair per pytest process, not one per test package.
    """
    from tests.serving import helpers as serving_helpers  # pylint: disable=g-import-not-at-top
    from tests.training import helpers as training_helpers  # pylint: disable=g-import-not-at-top
    return training_helpers.damsm_run(), serving_helpers.trained_run()


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
