"""Inputs and numpy reference operations shared by the model tests.

The numpy functions re-implement the PyTorch reference operations (convolution
with torch's padding, training-mode batch norm, bilinear align_corners resize)
so that layer outputs can be checked against an independent computation.
"""

import inspect

import keras
import numpy as np
import tensorflow as tf

BATCH = 2
WORDS = 5
Z_DIM = 100
SENTENCE_DIM = 256


def text_inputs(seed=0):
    """(z, sentence, words, mask, ca_noise) for a batch of BATCH captions.

    Sample 0 has two padding words at the end, sample 1 none.
    """
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((BATCH, Z_DIM)).astype(np.float32)
    sentence = rng.standard_normal((BATCH, SENTENCE_DIM)).astype(np.float32)
    words = rng.standard_normal((BATCH, WORDS, SENTENCE_DIM)).astype(
        np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    ca_noise = rng.standard_normal((BATCH, 100)).astype(np.float32)
    return z, sentence, words, mask, ca_noise


def noise_and_sentence(seed=0):
    """(z, sentence): the first two draws of `text_inputs(seed)`."""
    return text_inputs(seed)[:2]


def check_stage_outputs(test, out, image_size):
    """Checks an AttnGAN-family generator's output dict; returns the stage sizes.

    One float32 image in [-1, 1] per stage (64 px, doubling up to `image_size`),
    one attention map [B, S, S, WORDS] per stage after the first, mu [B, 100].
    """
    num_stages = {64: 1, 128: 2, 256: 3}[image_size]
    sizes = [64 * 2 ** i for i in range(num_stages)]
    test.assertEqual([image.shape for image in out["images"]],
                     [(BATCH, s, s, 3) for s in sizes])
    for image in out["images"]:
        test.assertEqual(image.dtype, tf.float32)
        test.assertAllInRange(image, -1.0, 1.0)
    test.assertEqual([a.shape for a in out["attention"]],
                     [(BATCH, s, s, WORDS) for s in sizes[:-1]])
    test.assertEqual(out["mu"].shape, (BATCH, 100))
    return sizes


def init_arg_names(cls):
    """The `__init__` argument names of a layer class (for config round trips)."""
    names = inspect.signature(cls.__init__).parameters
    return {n for n in names if n not in ("self", "kwargs")}


def config_round_trip(test, model):
    """A built clone of `model` through Keras serialisation, with `model`'s weights.

    Checks on the way that the config holds every `__init__` argument and that the
    clone has the model's class.
    """
    test.assertContainsSubset(init_arg_names(type(model)), model.get_config())
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(model))
    test.assertIsInstance(clone, type(model))
    model.build()
    clone.build()
    clone.set_weights(model.get_weights())
    return clone


def np_conv_same(x, kernel, bias=None):
    """Stride-1 convolution with symmetric zero padding, odd square kernels."""
    k = kernel.shape[0]
    pad = (k - 1) // 2
    height, width = x.shape[1], x.shape[2]
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],), np.float64)
    for i in range(k):
        for j in range(k):
            out += np.einsum("bhwc,co->bhwo",
                             padded[:, i:i + height, j:j + width], kernel[i, j])
    return out if bias is None else out + bias


def np_batch_norm_train(x, eps=1e-5):
    """Batch norm without affine terms, with the batch's statistics."""
    mean = x.mean(axis=(0, 1, 2))
    var = x.var(axis=(0, 1, 2))  # Biased, as torch normalises with.
    return (x - mean) / np.sqrt(var + eps)


def np_leaky_relu(x):
    return np.where(x > 0, x, 0.2 * x)


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_resize_align_corners(x, out_h, out_w):
    """torch's bilinear interpolation with align_corners=True, by its formula."""
    _, in_h, in_w, _ = x.shape

    def coords(n_out, n_in):
        src = np.arange(n_out) * ((n_in - 1) / (n_out - 1))
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    y0, y1, wy = coords(out_h, in_h)
    x0, x1, wx = coords(out_w, in_w)
    wy = wy[None, :, None, None]
    wx = wx[None, None, :, None]
    top = x[:, y0][:, :, x0] * (1 - wx) + x[:, y0][:, :, x1] * wx
    bottom = x[:, y1][:, :, x0] * (1 - wx) + x[:, y1][:, :, x1] * wx
    return top * (1 - wy) + bottom * wy
