"""torchvision's Inception-v3 trunk as a Keras model whose layers carry torchvision's names.

AttnGAN's `CNN_ENCODER` (and so SSA-GAN's and T2I_CL's DAMSM) runs the modules of
`torchvision.models.inception_v3` directly, `Conv2d_1a_3x3` to `Mixed_7c`. That network
is not `keras.applications.InceptionV3`, whose weights would not transfer:

* every `BasicConv2d` is a convolution without bias followed by BatchNorm (eps 0.001)
  *with* a scale (gamma); Keras' InceptionV3 has no scale;
* the 3x3 average pools inside Mixed_5b-5d, 6b-6e, 7b and 7c are
  `F.avg_pool2d(x, 3, stride=1, padding=1)`, which counts the zero padding
  (count_include_pad=True) at the borders; Keras' SAME pooling does not. Here the input
  is zero-padded explicitly and pooled VALID, which divides by 9 everywhere.

Each layer is named after its torchvision module path (`Mixed_6e.branch7x7dbl_3.conv`,
`Mixed_6e.branch7x7dbl_3.bn`), so a state dict maps by name
(`torch_import.by_layer_name`); the ReLU of a BasicConv2d is a Keras activation.

The trunk maps images (the DAMSM feeds [-1, 1] at 299 px, torchvision's
`transform_input=False` scaling) to `[Mixed_6e (17x17x768), Mixed_7c (8x8x2048)]` at
299 px.

Example:
  >>> trunk = build_trunk(299)
  >>> [t.shape for t in trunk.outputs]
  [(None, 17, 17, 768), (None, 8, 8, 2048)]
"""

import os

import keras

from tf_t2i.io import torchscript_reader
from tf_t2i.models import torch_import

BN_EPSILON = 1e-3
REGION_MODULE = "Mixed_6e"
GLOBAL_MODULE = "Mixed_7c"
GLOBAL_CHANNELS = 2048
# Heads in torchvision's ImageNet file (and CNN_ENCODER's projections) that the trunk
# does not use: ignored when reading a weights file.
HEAD_PREFIXES = ("AuxLogits.", "fc.", "emb_features.", "emb_cnn_code.")


class _TrunkBuilder:
    """Builds the functional graph layer by layer under one dtype policy."""

    def __init__(self, dtype):
        self.dtype = dtype

    def basic_conv(self, x, name, filters, kernel, strides=1, padded=False):
        """torchvision's BasicConv2d: conv (no bias) -> BatchNorm(eps 0.001) -> ReLU.

        Padded convolutions are stride 1 with padding (k - 1) / 2, i.e. SAME.
        """
        x = keras.layers.Conv2D(filters, kernel, strides=strides,
                                padding="same" if padded else "valid", use_bias=False,
                                dtype=self.dtype, name=f"{name}.conv")(x)
        x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, dtype=self.dtype,
                                            name=f"{name}.bn")(x)
        return keras.layers.ReLU(dtype=self.dtype, name=f"{name}.relu")(x)

    def chain(self, x, block, *convs):
        for name, filters, kernel, strides, padded in convs:
            x = self.basic_conv(x, f"{block}.{name}", filters, kernel, strides, padded)
        return x

    def avg_pool_with_padding(self, x, block):
        # F.avg_pool2d(x, 3, 1, padding=1) divides by 9 at the borders too
        # (count_include_pad=True): pad with zeros, then pool without padding.
        x = keras.layers.ZeroPadding2D(1, dtype=self.dtype, name=f"{block}.pool_pad")(x)
        return keras.layers.AveragePooling2D(3, 1, dtype=self.dtype,
                                             name=f"{block}.avg_pool")(x)

    def max_pool(self, x, name):
        return keras.layers.MaxPooling2D(3, 2, dtype=self.dtype, name=name)(x)

    def concat(self, tensors, name):
        return keras.layers.Concatenate(dtype=self.dtype, name=name)(tensors)

    def inception_a(self, x, block, pool_features):
        return self.concat([
            self.chain(x, block, ("branch1x1", 64, 1, 1, False)),
            self.chain(x, block, ("branch5x5_1", 48, 1, 1, False),
                       ("branch5x5_2", 64, 5, 1, True)),
            self.chain(x, block, ("branch3x3dbl_1", 64, 1, 1, False),
                       ("branch3x3dbl_2", 96, 3, 1, True),
                       ("branch3x3dbl_3", 96, 3, 1, True)),
            self.chain(self.avg_pool_with_padding(x, block), block,
                       ("branch_pool", pool_features, 1, 1, False)),
        ], f"{block}.concat")

    def inception_b(self, x, block):
        return self.concat([
            self.chain(x, block, ("branch3x3", 384, 3, 2, False)),
            self.chain(x, block, ("branch3x3dbl_1", 64, 1, 1, False),
                       ("branch3x3dbl_2", 96, 3, 1, True),
                       ("branch3x3dbl_3", 96, 3, 2, False)),
            self.max_pool(x, f"{block}.max_pool"),
        ], f"{block}.concat")

    def inception_c(self, x, block, c7):
        return self.concat([
            self.chain(x, block, ("branch1x1", 192, 1, 1, False)),
            self.chain(x, block, ("branch7x7_1", c7, 1, 1, False),
                       ("branch7x7_2", c7, (1, 7), 1, True),
                       ("branch7x7_3", 192, (7, 1), 1, True)),
            self.chain(x, block, ("branch7x7dbl_1", c7, 1, 1, False),
                       ("branch7x7dbl_2", c7, (7, 1), 1, True),
                       ("branch7x7dbl_3", c7, (1, 7), 1, True),
                       ("branch7x7dbl_4", c7, (7, 1), 1, True),
                       ("branch7x7dbl_5", 192, (1, 7), 1, True)),
            self.chain(self.avg_pool_with_padding(x, block), block,
                       ("branch_pool", 192, 1, 1, False)),
        ], f"{block}.concat")

    def inception_d(self, x, block):
        return self.concat([
            self.chain(x, block, ("branch3x3_1", 192, 1, 1, False),
                       ("branch3x3_2", 320, 3, 2, False)),
            self.chain(x, block, ("branch7x7x3_1", 192, 1, 1, False),
                       ("branch7x7x3_2", 192, (1, 7), 1, True),
                       ("branch7x7x3_3", 192, (7, 1), 1, True),
                       ("branch7x7x3_4", 192, 3, 2, False)),
            self.max_pool(x, f"{block}.max_pool"),
        ], f"{block}.concat")

    def inception_e(self, x, block):
        # Each 3x3 path forks into a 1x3 and a 3x1 convolution, both concatenated.
        stem = self.chain(x, block, ("branch3x3_1", 384, 1, 1, False))
        double = self.chain(x, block, ("branch3x3dbl_1", 448, 1, 1, False),
                            ("branch3x3dbl_2", 384, 3, 1, True))
        return self.concat([
            self.chain(x, block, ("branch1x1", 320, 1, 1, False)),
            self.chain(stem, block, ("branch3x3_2a", 384, (1, 3), 1, True)),
            self.chain(stem, block, ("branch3x3_2b", 384, (3, 1), 1, True)),
            self.chain(double, block, ("branch3x3dbl_3a", 384, (1, 3), 1, True)),
            self.chain(double, block, ("branch3x3dbl_3b", 384, (3, 1), 1, True)),
            self.chain(self.avg_pool_with_padding(x, block), block,
                       ("branch_pool", 192, 1, 1, False)),
        ], f"{block}.concat")

    def build(self, size):
        inputs = keras.Input((size, size, 3), name="images")
        x = self.basic_conv(inputs, "Conv2d_1a_3x3", 32, 3, strides=2)
        x = self.basic_conv(x, "Conv2d_2a_3x3", 32, 3)
        x = self.basic_conv(x, "Conv2d_2b_3x3", 64, 3, padded=True)
        x = self.max_pool(x, "maxpool1")                                 # 73x73x64
        x = self.basic_conv(x, "Conv2d_3b_1x1", 80, 1)
        x = self.basic_conv(x, "Conv2d_4a_3x3", 192, 3)
        x = self.max_pool(x, "maxpool2")                                 # 35x35x192
        x = self.inception_a(x, "Mixed_5b", 32)
        x = self.inception_a(x, "Mixed_5c", 64)
        x = self.inception_a(x, "Mixed_5d", 64)                          # 35x35x288
        x = self.inception_b(x, "Mixed_6a")                              # 17x17x768
        x = self.inception_c(x, "Mixed_6b", 128)
        x = self.inception_c(x, "Mixed_6c", 160)
        x = self.inception_c(x, "Mixed_6d", 160)
        regions = self.inception_c(x, REGION_MODULE, 192)
        x = self.inception_d(regions, "Mixed_7a")                        # 8x8x1280
        x = self.inception_e(x, "Mixed_7b")
        features = self.inception_e(x, GLOBAL_MODULE)                    # 8x8x2048
        return keras.Model(inputs, [regions, features], name="torchvision_inception_v3")


def build_trunk(input_size: int = 299, dtype=None) -> keras.Model:
    """The trunk, randomly initialised: images `[B, S, S, 3]` -> [Mixed_6e, Mixed_7c].

    Args:
      input_size: S (299 in the reference; at least 75).
      dtype: Keras dtype policy of every layer.
    """
    return _TrunkBuilder(dtype).build(input_size)


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
