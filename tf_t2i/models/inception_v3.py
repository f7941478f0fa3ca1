"""Inception-v3 (Szegedy et al. 2016) as the PyTorch reference code runs it, in Keras.

One topology, written once (`CONV_SPECS` and `_Builder`), built in two variants:

* `TORCHVISION`, the trunk of AttnGAN's `CNN_ENCODER` (and so of SSA-GAN's and
  T2I_CL's DAMSM), which runs the modules of `torchvision.models.inception_v3`
  directly, `Conv2d_1a_3x3` to `Mixed_7c` (`build_trunk`);
* `FID`, the TF 2015-12-05 Inception graph that FID is defined on (TTUR, pytorch-fid's
  `FIDInception*` blocks, the Keras port behind `tf_t2i.eval.inception`)
  (`build_fid_trunk`).

They differ in three places, and nowhere else:

* torchvision's `BasicConv2d` is a convolution without bias, BatchNorm (eps 0.001)
  *with* a scale, and ReLU; the FID graph's batch norm has no scale, and is folded into
  the convolution's kernel and bias when its weights are read, so the FID variant is
  one biased convolution with ReLU per `BasicConv2d`;
* torchvision's 3x3 average pools inside Mixed_5b-5d, 6b-6e, 7b and 7c are
  `F.avg_pool2d(x, 3, stride=1, padding=1)`, which counts the zero padding
  (count_include_pad=True): the input is zero-padded explicitly and pooled VALID,
  which divides by 9 everywhere. TF's SAME average pooling (the FID graph) divides by
  the number of real pixels: Keras' SAME pooling does the same;
* the FID graph's Mixed_7c pools with max instead of average (pytorch-fid's
  `FIDInceptionE_2`).

Neither is `keras.applications.InceptionV3`, whose weights would not transfer. Each
layer is named after its torchvision module path (`Mixed_6e.branch7x7dbl_3.conv`,
`Mixed_6e.branch7x7dbl_3.bn`), so a torchvision state dict maps by name
(`torch_import.by_layer_name`); the ReLU of a BasicConv2d is a layer of its own
(torchvision variant) or the convolution's activation (FID variant).

The torchvision trunk maps images (the DAMSM feeds [-1, 1] at 299 px, torchvision's
`transform_input=False` scaling) to `[Mixed_6e (17x17x768), Mixed_7c (8x8x2048)]` at
299 px.

Example:
  >>> trunk = build_trunk(299)
  >>> [t.shape for t in trunk.outputs]
  [(None, 17, 17, 768), (None, 8, 8, 2048)]
"""

import dataclasses
import os
from typing import Dict, List, Tuple

import keras

from tf_t2i.io import torchscript_reader
from tf_t2i.models import torch_import

BN_EPSILON = 1e-3
REGION_MODULE = "Mixed_6e"
GLOBAL_MODULE = "Mixed_7c"
GLOBAL_CHANNELS = 2048
FID_INPUT_SIZE = 299
# Heads in torchvision's ImageNet file (and CNN_ENCODER's projections) that the trunk
# does not use: ignored when reading a weights file.
HEAD_PREFIXES = ("AuxLogits.", "fc.", "emb_features.", "emb_cnn_code.")


@dataclasses.dataclass(frozen=True)
class Variant:
    """How a variant builds the shared topology (see the module docstring).

    Attributes:
      folded_batch_norm: one biased convolution with ReLU per BasicConv2d (batch norm
        folded in), instead of convolution, BatchNorm and ReLU layers.
      pool_counts_padding: the towers' 3x3 average pools divide by 9 at the borders.
      last_block_max_pool: Mixed_7c's pooling tower pools with max.
    """
    folded_batch_norm: bool
    pool_counts_padding: bool
    last_block_max_pool: bool


TORCHVISION = Variant(folded_batch_norm=False, pool_counts_padding=True,
                      last_block_max_pool=False)
FID = Variant(folded_batch_norm=True, pool_counts_padding=False, last_block_max_pool=True)


# --- Topology. ------------------------------------------------------------------------
# Every BasicConv2d by its torchvision module path, with (output channels, kernel
# height, kernel width, stride, padded). Padded convolutions have stride 1 and
# symmetric padding (k - 1) / 2, i.e. SAME; the others are VALID.
def _block_a(p: str, pool_features: int):
    return [(f"{p}.branch1x1", 64, 1, 1, 1, False), (f"{p}.branch5x5_1", 48, 1, 1, 1, False),
            (f"{p}.branch5x5_2", 64, 5, 5, 1, True),
            (f"{p}.branch3x3dbl_1", 64, 1, 1, 1, False),
            (f"{p}.branch3x3dbl_2", 96, 3, 3, 1, True),
            (f"{p}.branch3x3dbl_3", 96, 3, 3, 1, True),
            (f"{p}.branch_pool", pool_features, 1, 1, 1, False)]


def _block_b(p: str):
    return [(f"{p}.branch3x3", 384, 3, 3, 2, False),
            (f"{p}.branch3x3dbl_1", 64, 1, 1, 1, False),
            (f"{p}.branch3x3dbl_2", 96, 3, 3, 1, True),
            (f"{p}.branch3x3dbl_3", 96, 3, 3, 2, False)]


def _block_c(p: str, c7: int):
    return [(f"{p}.branch1x1", 192, 1, 1, 1, False), (f"{p}.branch7x7_1", c7, 1, 1, 1, False),
            (f"{p}.branch7x7_2", c7, 1, 7, 1, True), (f"{p}.branch7x7_3", 192, 7, 1, 1, True),
            (f"{p}.branch7x7dbl_1", c7, 1, 1, 1, False),
            (f"{p}.branch7x7dbl_2", c7, 7, 1, 1, True),
            (f"{p}.branch7x7dbl_3", c7, 1, 7, 1, True),
            (f"{p}.branch7x7dbl_4", c7, 7, 1, 1, True),
            (f"{p}.branch7x7dbl_5", 192, 1, 7, 1, True),
            (f"{p}.branch_pool", 192, 1, 1, 1, False)]


def _block_d(p: str):
    return [(f"{p}.branch3x3_1", 192, 1, 1, 1, False),
            (f"{p}.branch3x3_2", 320, 3, 3, 2, False),
            (f"{p}.branch7x7x3_1", 192, 1, 1, 1, False),
            (f"{p}.branch7x7x3_2", 192, 1, 7, 1, True),
            (f"{p}.branch7x7x3_3", 192, 7, 1, 1, True),
            (f"{p}.branch7x7x3_4", 192, 3, 3, 2, False)]


def _block_e(p: str):
    return [(f"{p}.branch1x1", 320, 1, 1, 1, False), (f"{p}.branch3x3_1", 384, 1, 1, 1, False),
            (f"{p}.branch3x3_2a", 384, 1, 3, 1, True),
            (f"{p}.branch3x3_2b", 384, 3, 1, 1, True),
            (f"{p}.branch3x3dbl_1", 448, 1, 1, 1, False),
            (f"{p}.branch3x3dbl_2", 384, 3, 3, 1, True),
            (f"{p}.branch3x3dbl_3a", 384, 1, 3, 1, True),
            (f"{p}.branch3x3dbl_3b", 384, 3, 1, 1, True),
            (f"{p}.branch_pool", 192, 1, 1, 1, False)]


CONV_SPECS: List[Tuple[str, int, int, int, int, bool]] = (
    [("Conv2d_1a_3x3", 32, 3, 3, 2, False), ("Conv2d_2a_3x3", 32, 3, 3, 1, False),
     ("Conv2d_2b_3x3", 64, 3, 3, 1, True), ("Conv2d_3b_1x1", 80, 1, 1, 1, False),
     ("Conv2d_4a_3x3", 192, 3, 3, 1, False)]
    + _block_a("Mixed_5b", 32) + _block_a("Mixed_5c", 64) + _block_a("Mixed_5d", 64)
    + _block_b("Mixed_6a")
    + _block_c("Mixed_6b", 128) + _block_c("Mixed_6c", 160) + _block_c("Mixed_6d", 160)
    + _block_c(REGION_MODULE, 192)
    + _block_d("Mixed_7a") + _block_e("Mixed_7b") + _block_e(GLOBAL_MODULE))


class _Builder:
    """Builds the functional graph of one variant, keeping each convolution by path."""

    def __init__(self, variant: Variant, dtype=None):
        self.variant = variant
        self.dtype = dtype
        self.specs = {s[0]: s[1:] for s in CONV_SPECS}
        self.convs: Dict[str, keras.layers.Conv2D] = {}

    def conv(self, x, name):
        """One BasicConv2d (`name` is its torchvision module path)."""
        filters, kh, kw, stride, padded = self.specs[name]
        folded = self.variant.folded_batch_norm
        layer = keras.layers.Conv2D(filters, (kh, kw), strides=stride,
                                    padding="same" if padded else "valid", use_bias=folded,
                                    activation="relu" if folded else None, dtype=self.dtype,
                                    name=f"{name}.conv")
        self.convs[name] = layer
        x = layer(x)
        if folded:
            return x
        x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, dtype=self.dtype,
                                            name=f"{name}.bn")(x)
        return keras.layers.ReLU(dtype=self.dtype, name=f"{name}.relu")(x)

    def chain(self, x, block, *branches):
        for branch in branches:
            x = self.conv(x, f"{block}.{branch}" if block else branch)
        return x

    def avg_pool(self, x, block):
        if not self.variant.pool_counts_padding:
            return keras.layers.AveragePooling2D(3, 1, padding="same", dtype=self.dtype,
                                                 name=f"{block}.avg_pool")(x)
        # F.avg_pool2d(x, 3, 1, padding=1) divides by 9 at the borders too
        # (count_include_pad=True): pad with zeros, then pool without padding.
        x = keras.layers.ZeroPadding2D(1, dtype=self.dtype, name=f"{block}.pool_pad")(x)
        return keras.layers.AveragePooling2D(3, 1, dtype=self.dtype,
                                             name=f"{block}.avg_pool")(x)

    def max_pool(self, x, name):
        return keras.layers.MaxPooling2D(3, 2, dtype=self.dtype, name=name)(x)

    def concat(self, tensors, name):
        return keras.layers.Concatenate(dtype=self.dtype, name=name)(tensors)

    def inception_a(self, x, block):
        return self.concat([
            self.chain(x, block, "branch1x1"),
            self.chain(x, block, "branch5x5_1", "branch5x5_2"),
            self.chain(x, block, "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
            self.chain(self.avg_pool(x, block), block, "branch_pool"),
        ], f"{block}.concat")

    def inception_b(self, x, block):
        return self.concat([
            self.chain(x, block, "branch3x3"),
            self.chain(x, block, "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
            self.max_pool(x, f"{block}.max_pool"),
        ], f"{block}.concat")

    def inception_c(self, x, block):
        return self.concat([
            self.chain(x, block, "branch1x1"),
            self.chain(x, block, "branch7x7_1", "branch7x7_2", "branch7x7_3"),
            self.chain(x, block, *[f"branch7x7dbl_{i}" for i in range(1, 6)]),
            self.chain(self.avg_pool(x, block), block, "branch_pool"),
        ], f"{block}.concat")

    def inception_d(self, x, block):
        return self.concat([
            self.chain(x, block, "branch3x3_1", "branch3x3_2"),
            self.chain(x, block, *[f"branch7x7x3_{i}" for i in range(1, 5)]),
            self.max_pool(x, f"{block}.max_pool"),
        ], f"{block}.concat")

    def inception_e(self, x, block):
        # Each 3x3 path forks into a 1x3 and a 3x1 convolution, both concatenated.
        stem = self.chain(x, block, "branch3x3_1")
        double = self.chain(x, block, "branch3x3dbl_1", "branch3x3dbl_2")
        branches = [self.chain(x, block, "branch1x1"),
                    self.chain(stem, block, "branch3x3_2a"),
                    self.chain(stem, block, "branch3x3_2b"),
                    self.chain(double, block, "branch3x3dbl_3a"),
                    self.chain(double, block, "branch3x3dbl_3b")]
        # Layers are created in the order of the checkpoints' layer lists: pool last.
        if block == GLOBAL_MODULE and self.variant.last_block_max_pool:
            pooled = keras.layers.MaxPooling2D(3, 1, padding="same", dtype=self.dtype,
                                               name=f"{block}.max_pool")(x)
        else:
            pooled = self.avg_pool(x, block)
        branches.append(self.chain(pooled, block, "branch_pool"))
        return self.concat(branches, f"{block}.concat")

    def build(self, inputs):
        """inputs [B, S, S, 3] -> (Mixed_6e [B, 17, 17, 768], Mixed_7c [B, 8, 8, 2048])."""
        x = self.chain(inputs, "", "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3")
        x = self.max_pool(x, "maxpool1")                                 # 73x73x64
        x = self.chain(x, "", "Conv2d_3b_1x1", "Conv2d_4a_3x3")
        x = self.max_pool(x, "maxpool2")                                 # 35x35x192
        for block in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
            x = self.inception_a(x, block)                               # 35x35x288
        x = self.inception_b(x, "Mixed_6a")                              # 17x17x768
        for block in ("Mixed_6b", "Mixed_6c", "Mixed_6d", REGION_MODULE):
            x = self.inception_c(x, block)
        regions = x
        x = self.inception_d(regions, "Mixed_7a")                        # 8x8x1280
        x = self.inception_e(x, "Mixed_7b")
        features = self.inception_e(x, GLOBAL_MODULE)                    # 8x8x2048
        return regions, features


def build_trunk(input_size: int = 299, dtype=None) -> keras.Model:
    """The torchvision trunk, randomly initialised: images `[B, S, S, 3]` -> [Mixed_6e,
    Mixed_7c].

    Args:
      input_size: S (299 in the reference; at least 75).
      dtype: Keras dtype policy of every layer.
    """
    inputs = keras.Input((input_size, input_size, 3), name="images")
    regions, features = _Builder(TORCHVISION, dtype).build(inputs)
    return keras.Model(inputs, [regions, features], name="torchvision_inception_v3")


def build_fid_trunk() -> Tuple[keras.Model, Dict[str, keras.layers.Conv2D]]:
    """The FID variant, untrained: (model mapping scaled 299 px images to pool3 [B, 2048],
    {torchvision module path: its convolution, to set with folded weights})."""
    builder = _Builder(FID)
    inputs = keras.Input((FID_INPUT_SIZE, FID_INPUT_SIZE, 3), name="scaled_images")
    _, features = builder.build(inputs)
    pool3 = keras.layers.GlobalAveragePooling2D(name="pool3")(features)
    return keras.Model(inputs, pool3, name="fid_inception_v3"), builder.convs


def load_weights_file(trunk: keras.Model, path: str) -> int:
    """Sets the trunk from a torchvision-named PyTorch state dict; returns tensors read.

    Reads torchvision's ImageNet file (`inception_v3_google-*.pth`) or an AttnGAN
    `CNN_ENCODER` file without torch (`torchscript_reader`, no code execution). The
    classifier heads (`AuxLogits`, `fc`) and DAMSM projections are ignored; anything
    else that does not fit raises `torch_import.StateDictMismatchError`.

    Raises:
      FileNotFoundError: no such file.
      ValueError: not a PyTorch state dict, or not this network (names the tensor).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"Inception-v3 weights file not found: {path}")
    try:
        state = torchscript_reader.load_state_dict(path)
    except torchscript_reader.TorchFileError as e:
        raise ValueError(f"The torchvision_inception_v3 backbone reads a torchvision "
                         f"Inception-v3 state dict (.pth); {e}") from e
    state = torch_import.strip_data_parallel_prefix(state)
    return torch_import.assign(torch_import.by_layer_name(trunk), state, path,
                               ignored_prefixes=HEAD_PREFIXES)
