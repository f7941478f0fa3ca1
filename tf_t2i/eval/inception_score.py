"""Inception Score (Salimans et al. 2016) and the classifiers it can be computed with.

`inception_score` follows openai/improved-gan `inception_score/model.py`: the N rows are
cut into `splits` contiguous parts (no shuffle), each part scores
exp(mean_i KL(p(y|x_i) || p(y))) with p(y) that part's mean, and the mean and the
standard deviation (ddof=0) over parts are reported. It is float64 and takes 0 log 0 as 0,
so one-hot rows give the true score where the original gives NaN.

The score needs a classifier's probabilities. The FID weights file stops at pool3, so
the 1008-way classifier comes from a file the user supplies:

* pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` or torch-fidelity's
  `weights-inception-2015-12-05-6726825d.pth` (torchvision names), read without torch:
  pool3 of that trunk times `fc.weight`, without the bias, as improved-gan computes its
  logits, then a float64 softmax;
* a Keras classifier (`.keras`, `.h5`, or a SavedModel directory) that maps float
  images in [-1, 1] at its input size to logits, or to probabilities (rows that are
  non-negative and sum to 1 are taken as probabilities).

Without one, `load_classifier` raises `ClassifierUnavailableError`, which says so.
"""

import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from tf_t2i import images as images_lib

# File names of the 2015 classifier as pytorch-fid and torch-fidelity download it.
KNOWN_CLASSIFIER_FILES = ("pt_inception-2015-12-05-6726825d.pth",
                          "weights-inception-2015-12-05-6726825d.pth")
NUM_INCEPTION_CLASSES = 1008


class ClassifierUnavailableError(FileNotFoundError):
    """No classifier for the Inception Score was given or found."""


def inception_score(probs, splits: int = 10) -> Tuple[float, float]:
    """Mean and standard deviation of the Inception Score over contiguous splits.

    Args:
      probs: [N, K] class probabilities (rows sum to 1), N >= splits.
      splits: number of contiguous parts (10 in the original).

    Returns:
      (mean, std) as Python floats.
    """
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or p.shape[0] < splits or splits < 1:
        raise ValueError(f"Expected probabilities [N >= splits={splits}, K], got {p.shape}.")
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("Rows must be probabilities (non-negative, summing to 1); pass the "
                         "softmax of the logits.")
    n = p.shape[0]
    scores = []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        positive = part > 0
        # p log(p / p(y)) with 0 log 0 = 0; p(y) > 0 wherever p > 0.
        terms = np.where(positive, part * (np.log(np.where(positive, part, 1.0))
                                           - np.log(np.where(positive, marginal, 1.0))), 0.0)
        scores.append(np.exp(terms.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def softmax(logits) -> np.ndarray:
    """Row-wise softmax in float64."""
    x = np.asarray(logits, np.float64)
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


def candidate_paths() -> List[str]:
    """Where `find_classifier` looks: the tf_t2i cache, then torch hub's checkpoint cache."""
    from tf_t2i.eval import inception  # pylint: disable=g-import-not-at-top
    dirs = [os.path.join(inception.cache_dir(), "inception"),
            os.path.expanduser("~/.cache/torch/hub/checkpoints")]
    return [os.path.join(d, name) for d in dirs for name in KNOWN_CLASSIFIER_FILES]


def find_classifier(path: Optional[str] = None) -> str:
    """The classifier file to use: `path` if given, else the first known file found.

    Raises:
      ClassifierUnavailableError: none given and none found; the message says what to do.
    """
    if path:
        if not os.path.exists(path):
            raise ClassifierUnavailableError(f"The Inception Score classifier {path} does not "
                                             "exist.")
        return path
    for candidate in candidate_paths():
        if os.path.exists(candidate):
            return candidate
    raise ClassifierUnavailableError(
        "The Inception Score needs a 1008-class Inception classifier, and the FID weights "
        "file has none. Give one with --is_classifier=PATH: pytorch-fid's "
        f"{KNOWN_CLASSIFIER_FILES[0]} or torch-fidelity's {KNOWN_CLASSIFIER_FILES[1]} "
        "(read without torch), or a Keras .keras/.h5/SavedModel classifier of images in "
        f"[-1, 1]. Looked in: {', '.join(candidate_paths())}.")


class TorchInceptionClassifier:
    """pool3 of a torchvision-named Inception trunk times fc.weight (no bias), softmax.

    Args:
      state: the state dict of pytorch-fid's / torch-fidelity's .pth file.
      path: for messages.
      batch_size: images per forward pass.
    """

    def __init__(self, state, path: str, batch_size: int = 50):
        from tf_t2i.eval import inception  # pylint: disable=g-import-not-at-top
        weight = state.get("fc.weight")
        if weight is None or weight.ndim != 2 or weight.shape[1] != inception.FEATURE_DIM:
            got = None if weight is None else weight.shape
            raise ValueError(f"{path} has no classifier layer fc.weight [K, 2048] (got {got}): "
                             "not an Inception classifier.")
        self.features = inception.feature_extractor_from_state_dict(state, path, batch_size)
        self.weight = np.asarray(weight, np.float64)
        self.num_classes = weight.shape[0]

    def logits(self, images) -> np.ndarray:
        return self.features(images).astype(np.float64) @ self.weight.T

    def __call__(self, images) -> np.ndarray:
        """uint8 images [B, H, W, 3] -> probabilities [B, K], float64."""
        return softmax(self.logits(images))


class KerasClassifier:
    """A Keras model or SavedModel: float images in [-1, 1] -> logits or probabilities.

    Args:
      fn: callable on a float32 batch [B, S, S, 3].
      input_size: the model's (height, width), or None to feed images as they are.
      batch_size: images per call.
    """

    def __init__(self, fn, input_size: Optional[Sequence[int]], batch_size: int = 50):
        self.fn = fn
        self.input_size = tuple(input_size) if input_size else None
        self.batch_size = batch_size

    def _outputs(self, images):
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        x = images_lib.from_uint8(images)
        if self.input_size and tuple(x.shape[1:3]) != self.input_size:
            x = tf.image.resize(x, self.input_size, method="bilinear")
        out = self.fn(x)
        if isinstance(out, dict):
            out = next(iter(out.values()))
        return np.asarray(out, np.float64)

    def __call__(self, images) -> np.ndarray:
        """uint8 images [B, H, W, 3] -> probabilities [B, K], float64."""
        images = np.asarray(images)
        out = np.concatenate([self._outputs(images[i:i + self.batch_size])
                              for i in range(0, len(images), self.batch_size)])
        if out.ndim != 2:
            raise ValueError(f"The classifier returned shape {out.shape}, expected [B, K].")
        is_probs = np.all(out >= 0) and np.allclose(out.sum(axis=1), 1.0, atol=1e-4)
        return out if is_probs else softmax(out)


def load_classifier(path: Optional[str] = None, batch_size: int = 50):
    """Loads the Inception Score classifier: uint8 images -> probabilities [B, K].

    Args:
      path: a .pth/.pt file (pytorch-fid / torch-fidelity), a .keras/.h5 file or a
        SavedModel directory; None searches `candidate_paths()`.
      batch_size: images per forward pass.

    Raises:
      ClassifierUnavailableError: none given and none found.
      ValueError: the file is not a classifier this module can read.
    """
    path = find_classifier(path)
    if os.path.isdir(path):
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        loaded = tf.saved_model.load(path)
        signature = loaded.signatures.get("serving_default")
        if signature is None:
            raise ValueError(f"The SavedModel {path} has no serving_default signature.")
        spec = next(iter(signature.structured_input_signature[1].values()))
        size = spec.shape[1:3] if spec.shape.rank == 4 and None not in spec.shape[1:3] else None
        name = next(iter(signature.structured_input_signature[1]))
        return KerasClassifier(lambda x: signature(**{name: x}), size, batch_size)
    if path.endswith((".keras", ".h5", ".hdf5")):
        import keras  # pylint: disable=g-import-not-at-top
        try:
            model = keras.models.load_model(path, compile=False)
        except (OSError, ValueError) as e:
            raise ValueError(f"Cannot load the Keras classifier {path}: {e}") from e
        shape = model.input_shape
        size = shape[1:3] if len(shape) == 4 and None not in shape[1:3] else None
        return KerasClassifier(lambda x: model(x, training=False), size, batch_size)
    from tf_t2i.eval import inception  # pylint: disable=g-import-not-at-top
    from tf_t2i.io import torchscript_reader  # pylint: disable=g-import-not-at-top
    try:
        state = torchscript_reader.load_state_dict(path)
        return TorchInceptionClassifier(state, path, batch_size)
    except (torchscript_reader.TorchFileError, inception.InceptionWeightsError) as e:
        raise ValueError(f"Cannot use {path} as the Inception Score classifier: {e}") from e
