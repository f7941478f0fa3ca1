"""Style-AttnGAN's conditioned mapping network: (z, c) -> w."""

import keras
import numpy as np
import tensorflow as tf

from tf_t2i.models import equalized_layers
from tf_t2i.models import style_ops


@keras.saving.register_keras_serializable(package="tf_t2i")
class MappingNetwork(keras.layers.Layer):
    """Style-AttnGAN's conditioned mapping network (z, c) -> w.

    gan-lab's `StyleConditionedMappingNetwork` with `embed_cond_vars=False`:
    the concatenation [z, c] is pixel-normalised as one vector, then
    `num_layers` equalised dense layers (gain sqrt(2), lr multiplier 0.01),
    each followed by LeakyReLU(0.2), the last one included.

    Shapes: z [B, z_dim], condition [B, c_dim] -> w [B, w_dim].

    Args:
        z_dim: int.
        condition_dim: int.
        w_dim: int.
        num_layers: int.
        lr_multiplier: float.
        **kwargs: `keras.layers.Layer` arguments.

    """

    def __init__(self, z_dim=100, condition_dim=100, w_dim=100, num_layers=8,
                 lr_multiplier=0.01, **kwargs):
        super().__init__(**kwargs)
        self.z_dim = z_dim
        self.condition_dim = condition_dim
        self.w_dim = w_dim
        self.num_layers = num_layers
        self.lr_multiplier = lr_multiplier
        # gan-lab spaces the widths linearly from z_dim to w_dim; they are all
        # w_dim when the two agree, as in every reference config.
        widths = np.linspace(z_dim, w_dim, num_layers).astype(np.int64)
        self.dense_layers = [
            equalized_layers.EqualizedDense(int(width), lr_multiplier=lr_multiplier,
                                            dtype=self.dtype_policy, name=f"dense{i}")
            for i, width in enumerate(widths)
        ]

    def build(self, input_shape=None):
        in_features = self.z_dim + self.condition_dim
        for dense in self.dense_layers:
            dense.build((None, in_features))
            in_features = dense.units

    def call(self, z, condition):
        x = tf.concat([z, tf.cast(condition, z.dtype)], axis=-1)
        x = style_ops.pixel_norm(x)
        for dense in self.dense_layers:
            x = tf.nn.leaky_relu(dense(x), alpha=style_ops.LEAKY_RELU_SLOPE)
        return x

    def get_config(self):
        config = super().get_config()
        config.update({"z_dim": self.z_dim,
                       "condition_dim": self.condition_dim,
                       "w_dim": self.w_dim, "num_layers": self.num_layers,
                       "lr_multiplier": self.lr_multiplier})
        return config
