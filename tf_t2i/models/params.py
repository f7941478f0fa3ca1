"""Parameter counts of models, comparable with PyTorch's.

Keras lists a BatchNorm layer's moving statistics among its weights (non-trainable);
PyTorch keeps them as buffers, outside `parameters()`. A count to compare with a
PyTorch reference therefore sums the trainable weights only.

Example:
    >>> dense = keras.layers.Dense(3)
    >>> dense.build((None, 2))
    >>> count_trainable_parameters(dense)
    9
"""

from typing import Iterable


def count_weights(weights: Iterable) -> int:
    """Number of scalars in `weights` (variables or arrays, anything with a shape)."""
    total = 0
    for weight in weights:
        size = 1
        for dim in weight.shape:
            size *= int(dim)
        total += size
    return total


def count_trainable_parameters(model) -> int:
    """Number of trainable scalars of a Keras model or layer (BN statistics excluded).

    Builds the model first when it is not built (every tf_t2i model builds from its
    config alone); comparable with PyTorch's `sum(p.numel() for p in m.parameters())`.
    """
    if not model.built:
        model.build()
    return count_weights(model.trainable_weights)
