"""DAMSM image encoder: a CNN backbone and two trainable projections.

Port of `CNN_ENCODER` from AttnGAN (taoxugit/AttnGAN `code/model.py`), used
unchanged by SSA-GAN and T2I_CL (`DAMSM.py`), plus a small CNN backbone that
is trained from scratch for the procedural shapes dataset and for tests.
"""

import os
import warnings

import keras
import tensorflow as tf

from tf_t2i.models import inception_v3

BACKBONES = ("inception_v3", "torchvision_inception_v3", "small_cnn")
# Backbones that are a frozen, pretrained Inception-v3 (region map 17x17x768 at 299 px).
_INCEPTION_BACKBONES = ("inception_v3", "torchvision_inception_v3")

# Keras names of torchvision's Mixed_6e (17x17x768) and Mixed_7c (8x8x2048).
_INCEPTION_REGION_LAYER = "mixed7"
_INCEPTION_GLOBAL_LAYER = "mixed10"
_INCEPTION_GLOBAL_CHANNELS = 2048
_DEFAULT_INPUT_SIZE = {"inception_v3": 299, "torchvision_inception_v3": 299,
                       "small_cnn": 64}
# The Inception stem needs at least 75 px; the small CNN halves the size
# four times and flattens the last map, so it needs a multiple of 16.
_MIN_INCEPTION_SIZE = 75
_SMALL_CNN_FACTOR = 16


def _resize(images, size):
    """Resizes NHWC images to `size` x `size`; a no-op when already there.

    An integer downscale is an average pool (exact area resampling: no
    aliasing of thin edges, and unlike antialiased `tf.image.resize` it
    compiles with XLA); anything else is bilinear with half-pixel centres,
    as `nn.Upsample(mode='bilinear', align_corners=False)` does.
    """
    height, width = images.shape[1], images.shape[2]
    if height == size and width == size:
        return images
    if (height is not None and width is not None and height == width
            and height > size and height % size == 0):
        factor = height // size
        return tf.nn.avg_pool2d(images, factor, factor, "VALID")
    return tf.image.resize(images, (size, size), method="bilinear")


@keras.saving.register_keras_serializable(package="tf_t2i")
class DAMSMImageEncoder(keras.Model):
    """Image encoder of DAMSM: region features and a global code.

    Three backbones:

    * `"inception_v3"`: Keras' InceptionV3 without its top,
      frozen and always run in inference mode, on images bilinearly resized to
      299 px and kept in [-1, 1] (Keras' Inception preprocessing is
      `x / 127.5 - 1`, so [-1, 1] is its expected range). Region features come
      from `mixed7` (torchvision's Mixed_6e, 17x17x768) through a 1x1
      convolution without bias; the global code from `mixed10` (Mixed_7c,
      8x8x2048) through global average pooling and a dense layer. Only these
      two projections are trainable (721,152 weights for embedding_dim 256,
      as in the reference) and both start from U(-0.1, 0.1) as the
      reference's `init_trainable_weights` (the dense bias keeps PyTorch's
      default U(-1/sqrt(2048), 1/sqrt(2048))). ImageNet weights come from the
      local file `weights_path`; without it the backbone is random and a
      warning says that R-precision will not be comparable with published
      numbers.
    * `"torchvision_inception_v3"` (the reference's network): torchvision's
      Inception-v3 trunk, ported in `inception_v3` with torchvision's
      module names, so that PyTorch weights load by name. It differs from Keras'
      InceptionV3 in its BatchNorm scale and its border average pooling (see that
      module), so ImageNet weights and DAMSM checkpoints of the reference
      (`image_encoder200.pth`, via `python -m tf_t2i.convert`) give the
      reference's features. Same frozen trunk, layers (Mixed_6e and Mixed_7c),
      299 px bilinear resize, projections and initialisation as `"inception_v3"`.
      `weights_path` is a torchvision state dict (`inception_v3_google-*.pth`),
      read without torch.
    * `"small_cnn"`: a fast convolutional net trained from scratch, for the
      shapes dataset and tests; every layer is trainable. Images are resized
      to `input_size` (default 64; a multiple of 16), two coordinate channels
      are appended so position is explicit, then 3x3 convolutions with
      BatchNorm and LeakyReLU(0.2): stride 2 to `width // 2` channels, stride
      2 to `width`, stride 1 at `width`, stride 2 to `2 * width` (the region
      map, input_size / 8 on a side: 8x8 at 64 px, the role of Inception's
      17x17 Mixed_6e; the DAMSM word loss costs O(B^2 T R D) in the region
      count R, so 64 regions keep pretraining fast), stride 2 to `4 * width`
      (input_size / 16 on a side). The global code is a dense layer on that last map
      flattened, not pooled, so it keeps where objects are. Same projections
      and initialisation as above.

    The image is always resized to the backbone's fixed input size, so 64,
    128 and 256 px generator outputs all work and cost the same.

    Call arguments:
        images: float `[B, S, S, 3]` in [-1, 1], any S.
        training: training mode for the small CNN's BatchNorm. The Inception
            backbones ignore it and always run in inference mode.

    Returns:
        `(region_features, global_code)`: float32 `[B, h, w, embedding_dim]`
        (17x17 for Inception at 299 px, input_size / 4 for the small CNN)
        and float32 `[B, embedding_dim]`. Computation follows the dtype
        policy; outputs are cast to float32.

    Args:
        backbone: `"inception_v3"`, `"torchvision_inception_v3"` or
            `"small_cnn"`.
        embedding_dim: size of the region features and global code.
        weights_path: local ImageNet weights: for inception_v3 a Keras weights
            file (`.h5` or `.weights.h5`) of `InceptionV3(include_top=False)`;
            for torchvision_inception_v3 a torchvision state dict (`.pth`).
            A path that does not exist raises FileNotFoundError.
        small_cnn_width: channel width of the small CNN's region map.
        input_size: side the images are resized to; None means 299 for the
            Inception backbones (the reference; other sizes change the region
            grid) and 64 for small_cnn.
        **kwargs: passed to `keras.Model` (`name`, `dtype`, ...).

    Example:
    >>> encoder = DAMSMImageEncoder("small_cnn", embedding_dim=8,
    ...                             small_cnn_width=8, input_size=32)
    >>> regions, code = encoder(tf.zeros([2, 64, 64, 3]))
    >>> regions.shape, code.shape
    (TensorShape([2, 8, 8, 8]), TensorShape([2, 8]))
    """

    def __init__(self, backbone="small_cnn", embedding_dim=256,
                 weights_path=None, small_cnn_width=64, input_size=None,
                 **kwargs):
        super().__init__(**kwargs)
        if backbone not in BACKBONES:
            raise ValueError(
                f"backbone must be one of {BACKBONES}, got {backbone!r}")
        if weights_path is not None and backbone not in _INCEPTION_BACKBONES:
            raise ValueError(
                "weights_path is only used by the Inception backbones; "
                f"got weights_path={weights_path!r} with backbone={backbone!r}")
        if small_cnn_width < 2 or small_cnn_width % 2:
            raise ValueError(
                f"small_cnn_width must be an even number >= 2, got {small_cnn_width}")
        size = _DEFAULT_INPUT_SIZE[backbone] if input_size is None else input_size
        if backbone in _INCEPTION_BACKBONES and size < _MIN_INCEPTION_SIZE:
            raise ValueError(
                f"{backbone} needs input_size >= {_MIN_INCEPTION_SIZE}, got {size}")
        if backbone == "small_cnn" and (size < _SMALL_CNN_FACTOR
                                        or size % _SMALL_CNN_FACTOR):
            raise ValueError(
                f"small_cnn needs input_size divisible by {_SMALL_CNN_FACTOR}, "
                f"got {size}")
        self.backbone_name = backbone
        self.embedding_dim = embedding_dim
        self.weights_path = weights_path
        self.small_cnn_width = small_cnn_width
        self.input_size = input_size
        self._size = size

        # === Backbone ===
        if backbone in _INCEPTION_BACKBONES:
            if backbone == "inception_v3":
                self.backbone = self._build_inception(size, weights_path)
            else:
                self.backbone = self._build_torchvision_inception(size, weights_path)
            # Frozen, as the reference sets requires_grad=False on Inception.
            self.backbone.trainable = False
            global_channels = _INCEPTION_GLOBAL_CHANNELS
        else:
            self.backbone = self._build_small_cnn(size, small_cnn_width)
            global_channels = None

        # === Projections ===
        uniform = keras.initializers.RandomUniform(-0.1, 0.1)
        self.region_projection = keras.layers.Conv2D(
            embedding_dim, 1, use_bias=False, kernel_initializer=uniform,
            dtype=self.dtype_policy, name="region_projection")
        if global_channels is None:
            # Flattened map: PyTorch's default bias bound is 1/sqrt(fan_in).
            global_channels = self.backbone.outputs[1].shape[-1]
        bias_limit = global_channels ** -0.5
        self.global_projection = keras.layers.Dense(
            embedding_dim, kernel_initializer=uniform,
            bias_initializer=keras.initializers.RandomUniform(-bias_limit, bias_limit),
            dtype=self.dtype_policy, name="global_projection")
        if backbone in _INCEPTION_BACKBONES:
            # The reference's avg_pool2d(kernel 8) over Mixed_7c's 8x8 map.
            self.global_pool = keras.layers.GlobalAveragePooling2D(
                dtype=self.dtype_policy, name="global_pool")
        else:
            self.global_pool = keras.layers.Flatten(
                dtype=self.dtype_policy, name="global_flatten")

    @staticmethod
    def _check_weights_path(weights_path):
        if weights_path is not None:
            if not os.path.exists(weights_path):
                raise FileNotFoundError(
                    f"Inception-v3 weights file not found: {weights_path}")
        else:
            warnings.warn(
                "DAMSMImageEncoder: no weights_path given, the Inception-v3 "
                "backbone is randomly initialised and frozen; R-precision "
                "and DAMSM losses will not be comparable with published "
                "numbers.", stacklevel=4)

    def _build_inception(self, size, weights_path):
        self._check_weights_path(weights_path)
        # keras.applications builds under the global dtype policy; make it
        # this model's so an explicit `dtype=` reaches the backbone too.
        previous_policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.dtype_policy)
        try:
            inception = keras.applications.InceptionV3(
                include_top=False, weights=weights_path,
                input_shape=(size, size, 3))
        finally:
            keras.config.set_dtype_policy(previous_policy)
        return keras.Model(
            inception.inputs,
            [inception.get_layer(_INCEPTION_REGION_LAYER).output,
             inception.get_layer(_INCEPTION_GLOBAL_LAYER).output],
            name="inception_v3_backbone")

    def _build_torchvision_inception(self, size, weights_path):
        self._check_weights_path(weights_path)
        trunk = inception_v3.build_trunk(size, dtype=self.dtype_policy)
        if weights_path is not None:
            inception_v3.load_weights_file(trunk, weights_path)
        return trunk

    def _build_small_cnn(self, size, width):
        policy = self.dtype_policy

        def conv_block(x, filters, strides, name):
            x = keras.layers.Conv2D(
                filters, 3, strides=strides, padding="same", use_bias=False,
                dtype=policy, name=f"{name}_conv")(x)
            # PyTorch-like statistics (momentum 0.1 there) so that short
            # from-scratch runs get usable moving averages.
            x = keras.layers.BatchNormalization(
                momentum=0.9, epsilon=1e-5, dtype=policy, name=f"{name}_bn")(x)
            return keras.layers.LeakyReLU(0.2, dtype=policy, name=f"{name}_act")(x)

        # 3 colour channels + 2 coordinate channels, appended in call().
        inputs = keras.Input((size, size, 5), name="images_with_coordinates")
        x = conv_block(inputs, width // 2, 2, "block1")
        x = conv_block(x, width, 2, "block2")
        x = conv_block(x, width, 1, "block3")
        regions = conv_block(x, 2 * width, 2, "block4")
        x = conv_block(regions, 4 * width, 2, "block5")
        return keras.Model(inputs, [regions, x], name="small_cnn_backbone")

    def _coordinates(self, images):
        """Two channels holding x and y in [-1, 1], broadcast over the batch."""
        line = tf.linspace(-1.0, 1.0, self._size)
        grid_y, grid_x = tf.meshgrid(line, line, indexing="ij")
        grid = tf.cast(tf.stack([grid_x, grid_y], axis=-1), images.dtype)
        return tf.tile(grid[tf.newaxis], [tf.shape(images)[0], 1, 1, 1])

    def build(self, input_shape):
        region_shape, global_shape = self.backbone.output_shape
        self.region_projection.build(region_shape)
        self.global_projection.build(
            self.global_pool.compute_output_shape(global_shape))
        self.built = True

    def call(self, images, training=False):
        images = tf.convert_to_tensor(images)
        images = _resize(tf.cast(images, "float32"), self._size)
        images = tf.cast(images, self.compute_dtype)
        if self.backbone_name in _INCEPTION_BACKBONES:
            # Always inference mode: frozen BatchNorm statistics.
            region_map, global_map = self.backbone(images, training=False)
        else:
            images = tf.concat([images, self._coordinates(images)], axis=-1)
            region_map, global_map = self.backbone(images, training=training)
        region_features = self.region_projection(region_map)
        global_code = self.global_projection(self.global_pool(global_map))
        return (tf.cast(region_features, "float32"),
                tf.cast(global_code, "float32"))

    def get_config(self):
        config = super().get_config()
        config.update({
            "backbone": self.backbone_name,
            "embedding_dim": self.embedding_dim,
            "weights_path": self.weights_path,
            "small_cnn_width": self.small_cnn_width,
            "input_size": self.input_size,
        })
        return config
