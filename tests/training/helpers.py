"""Shared fixtures of the training tests: the tiny config, one tiny DAMSM run, one batch.

Everything expensive is built once per pytest process and cached here: the shapes
dataset is prepared by TFDS in a temporary data_dir, and a DAMSM pretraining run of
DAMSM_STEPS steps on configs/tiny.cfg gives the GAN tests their encoders and vocabulary.
Tests that train a run further copy its directory first (`copy_run`).
"""

import atexit
import dataclasses
import functools
import hashlib
import os
import shutil
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf

from tf_t2i import config as config_lib
from tf_t2i import flags as t2i_flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_CFG = os.path.join(ROOT, "configs", "tiny.cfg")
DAMSM_STEPS = 2
MODELS = ("generator", "discriminator", "ema_generator")


@functools.lru_cache(maxsize=None)
def scratch_dir() -> str:
    """A temporary directory for this pytest process, removed at exit."""
    path = tempfile.mkdtemp(prefix="tf_t2i_training_tests_")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def read_flagfile(path: str) -> dict:
    """`--name=value` lines of an absl flagfile, nested --flagfile first, without absl.

    Nested paths are relative to the file that names them, as tf_t2i.flags reads them.
    """
    values = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("--"):
                continue
            name, _, value = line[2:].partition("=")
            if name == "flagfile":
                values.update(read_flagfile(os.path.join(os.path.dirname(path), value)))
            else:
                values[name] = value
    return values


def config_from_flagfile(path: str = TINY_CFG) -> config_lib.ExperimentConfig:
    """The ExperimentConfig a binary builds from this flagfile alone.

    Flag `<prefix>_<field>` sets `<section>.<field>` (tf_t2i.flags.FLAG_PREFIXES), typed
    like the field's default; tests/test_config.py checks the same file through absl.
    """
    updates = {}
    name = None
    for flag, raw in read_flagfile(path).items():
        if flag == "experiment_name":
            name = raw
            continue
        for section, section_cls in config_lib.SECTION_CLASSES.items():
            prefix = t2i_flags.FLAG_PREFIXES[section]
            if prefix and not flag.startswith(prefix + "_"):
                continue
            field = flag[len(prefix) + 1:] if prefix else flag
            if field not in {f.name for f in dataclasses.fields(section_cls)}:
                continue
            default = getattr(section_cls(), field)
            if isinstance(default, bool):
                value = raw.lower() in ("1", "true")
            else:
                value = type(default)(raw)
            updates.setdefault(section, {})[field] = value
            break
        else:
            raise ValueError(f"{path}: flag --{flag} matches no config field.")
    cfg = config_lib.ExperimentConfig().replace(**updates)
    return cfg.replace(name=name) if name else cfg


def data_dir() -> str:
    """TFDS data_dir of the tests: the tiny shapes dataset is prepared here once."""
    path = os.path.join(scratch_dir(), "tfds")
    os.makedirs(path, exist_ok=True)
    return path


def tiny_config(**sections) -> config_lib.ExperimentConfig:
    """configs/tiny.cfg with its data under the scratch dir, plus section overrides."""
    cfg = config_from_flagfile(TINY_CFG).replace(data={"data_dir": data_dir()})
    return cfg.replace(**sections) if sections else cfg


def tiny_gan_config(**sections) -> config_lib.ExperimentConfig:
    """The tiny GAN config on the shared DAMSM run, with that run's encoder sections."""
    from tf_t2i.training import run_dirs  # pylint: disable=g-import-not-at-top
    cfg = tiny_config(train={"task": "gan"}, runtime={"damsm_dir": damsm_run()})
    cfg = run_dirs.adopt_damsm_config(cfg)
    return cfg.replace(**sections) if sections else cfg


def tiny_damsm_config(**sections) -> config_lib.ExperimentConfig:
    cfg = tiny_config(train={"task": "damsm", "steps": DAMSM_STEPS})
    return cfg.replace(**sections) if sections else cfg


class EncoderRecorder:
    """Wraps `pretrain_lib.build_encoders` to keep the encoders a run builds.

    `initial` holds their trainable weights as built (before any restore or training);
    `encoders` the (text, image) encoder objects, which end up holding the run's weights.
    """

    def __init__(self):
        from tf_t2i.training import pretrain_lib  # pylint: disable=g-import-not-at-top
        self._build = pretrain_lib.build_encoders
        self.encoders = None
        self.initial = None

    def __call__(self, cfg, vocab_size):
        self.encoders = self._build(cfg, vocab_size)
        self.initial = [[v.numpy() for v in e.trainable_variables] for e in self.encoders]
        return self.encoders

    def patch(self):
        from tf_t2i.training import pretrain_lib  # pylint: disable=g-import-not-at-top
        return mock.patch.object(pretrain_lib, "build_encoders", self)


_DAMSM_RECORDER = EncoderRecorder()


@functools.lru_cache(maxsize=None)
def damsm_run() -> str:
    """Model dir of a DAMSM_STEPS-step pretraining run on tiny (made once per process).

    Read-only for the tests: copy it (`copy_run`) to train it further. The encoders'
    weights before training are kept in `damsm_initial_weights()`.
    """
    from tf_t2i.training import pretrain_lib  # pylint: disable=g-import-not-at-top
    model_dir = os.path.join(scratch_dir(), "damsm")
    with _DAMSM_RECORDER.patch():
        pretrain_lib.run_pretraining(tiny_damsm_config(), model_dir, verbose=0)
    return model_dir


def damsm_initial_weights():
    """[text encoder, image encoder] trainable weights of damsm_run() before training."""
    damsm_run()
    return _DAMSM_RECORDER.initial


def tree_digests(directory: str) -> dict:
    """sha256 and mtime of every file under `directory`, by relative path: equal before
    and after a command means it wrote nothing there."""
    digests = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                digests[os.path.relpath(path, directory)] = (
                    hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime_ns)
    return digests


def copy_run(model_dir: str, name: str) -> str:
    """A copy of a run directory under the scratch dir."""
    target = os.path.join(scratch_dir(), name)
    shutil.copytree(model_dir, target)
    return target


@functools.lru_cache(maxsize=None)
def _train_data():
    from tf_t2i.data import pipeline  # pylint: disable=g-import-not-at-top
    from tf_t2i.data import sources  # pylint: disable=g-import-not-at-top
    from tf_t2i.data import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
    cfg = tiny_gan_config()
    source = sources.load_source(cfg.data, "train")
    tok = tokenizer_lib.CaptionTokenizer.load(damsm_run(), cfg.data.max_caption_length)
    return source, pipeline.CaptionBank(source, tok), tok


def vocab_size() -> int:
    return _train_data()[2].vocab_size


def train_batches(cfg: config_lib.ExperimentConfig, start_step: int = 0, count: int = 1):
    """Global batches start_step, start_step + 1, ... of the GAN training stream (numpy)."""
    from tf_t2i.data import pipeline  # pylint: disable=g-import-not-at-top
    source, bank, _ = _train_data()
    ds = pipeline.make_train_dataset(
        source, bank, batch_size=cfg.train.batch_size, image_size=cfg.data.image_size,
        max_length=cfg.data.max_caption_length, seed=cfg.train.seed,
        start_step=start_step, noise_dim=cfg.generator.z_dim)
    batches = []
    for batch in ds.take(count):
        batch.pop("attributes", None)  # evaluation ground truth; training never reads it
        batches.append(tf.nest.map_structure(lambda t: t.numpy(), batch))
    return batches


def train_batch(cfg: config_lib.ExperimentConfig, step: int = 0) -> dict:
    """Global batch `step` of the GAN training stream (numpy), noise z included."""
    return train_batches(cfg, step, 1)[0]


def one_batch_dataset(batch: dict) -> tf.data.Dataset:
    """One global batch, repeated; batched so that a strategy can split it over replicas."""
    size = len(batch["real_images"])
    return tf.data.Dataset.from_tensor_slices(batch).batch(size, drop_remainder=True).repeat()


def weights(parts, names=MODELS):
    """{model name: list of numpy weights} of a GANComponents (models that exist)."""
    return {n: [np.array(w) for w in getattr(parts, n).get_weights()]
            for n in names if getattr(parts, n) is not None}


def max_abs_diff(a, b) -> float:
    """Largest absolute elementwise difference between two lists of arrays."""
    assert len(a) == len(b), (len(a), len(b))
    return max([float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
                for x, y in zip(a, b) if np.size(x)] or [0.0])
