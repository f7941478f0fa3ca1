"""Maps PyTorch state dicts of the reference models onto the Keras ports.

A state dict is read elsewhere (`tf_t2i.io.torchscript_reader`, no torch needed) into
`{name: numpy array}`; this module says which array goes into which Keras variable and
how it is laid out:

* convolution `[out, in, kh, kw]` -> Keras kernel `[kh, kw, in, out]`;
* linear `[out, in]` -> Keras kernel `[in, out]`;
* BatchNorm `weight`, `bias`, `running_mean`, `running_var` -> gamma, beta,
  moving_mean, moving_variance;
* LSTM `weight_ih`, `weight_hh` transposed, `bias_ih + bias_hh` as Keras' single bias
  (both use the gate order input, forget, cell, output).

Every file is checked in full before any variable changes: the first missing key,
shape mismatch or unexpected key raises `StateDictMismatchError`, which names the
tensor ("expected [256, 768, 1, 1] for emb_features.weight, got [256, 512, 1, 1]")
and, when the keys look like another kind of reference file, says which.

Example:
  >>> state = torchscript_reader.load_state_dict("netG_550.pth")   # doctest: +SKIP
  >>> assign(generator_assignments(generator), state, "netG_550.pth")  # doctest: +SKIP
"""

import dataclasses
from typing import Callable, Dict, List, Mapping, Sequence, Tuple

import keras
import numpy as np

# BatchNorm's batch counter carries no weight; files of torch < 0.4.1 lack it.
IGNORED_SUFFIXES = (".num_batches_tracked",)
DATA_PARALLEL_PREFIX = "module."

# Keys that identify each kind of reference file, for error messages.
_KIND_MARKERS = (
    ("rnn.weight_ih_l0", "an AttnGAN/DAMSM text encoder (RNN_ENCODER, --kind=damsm_text)"),
    ("emb_cnn_code.weight", "an AttnGAN/DAMSM image encoder (CNN_ENCODER, --kind=damsm_image)"),
    ("block0.affine0.fc_gamma.linear1.weight", "an SSA-GAN generator (NetG, "
     "--kind=ssagan_generator)"),
    ("COND_DNET.joint_conv.0.weight", "an SSA-GAN / DF-GAN discriminator (NetD), which "
     "cannot be converted"),
    ("fc.weight", "a torchvision classifier (an ImageNet Inception-v3 is a weights_path "
     "of the torchvision_inception_v3 backbone, not a DAMSM encoder)"),
)


class StateDictMismatchError(ValueError):
    """A state dict does not fit the Keras model: names the first mismatched tensor."""


@dataclasses.dataclass(frozen=True)
class Assignment:
    """One Keras variable and the state-dict tensors it is computed from.

    Attributes:
      variable: the Keras variable to set.
      sources: `(key, torch shape)` of each tensor read.
      convert: maps the source arrays (in order) to the variable's value.
    """
    variable: keras.Variable
    sources: Tuple[Tuple[str, Tuple[int, ...]], ...]
    convert: Callable[..., np.ndarray]


def conv(variable, key: str) -> Assignment:
    """A Conv2D kernel `[kh, kw, in, out]` from a torch conv weight `[out, in, kh, kw]`."""
    kh, kw, cin, cout = variable.shape
    return Assignment(variable, ((key, (cout, cin, kh, kw)),),
                      lambda w: np.transpose(w, (2, 3, 1, 0)))


def linear(variable, key: str) -> Assignment:
    """A Dense (or LSTM) kernel `[in, out]` from a torch weight `[out, in]`."""
    cin, cout = variable.shape
    return Assignment(variable, ((key, (cout, cin)),), np.transpose)


def same(variable, key: str) -> Assignment:
    """A variable stored with the same shape in both frameworks (biases, BN vectors)."""
    return Assignment(variable, ((key, tuple(variable.shape)),), lambda w: w)


def scalar(variable, key: str) -> Assignment:
    """A scalar Keras weight from a torch parameter of shape [1]."""
    return Assignment(variable, ((key, (1,)),), lambda w: np.reshape(w, ()))


def summed(variable, *keys: str) -> Assignment:
    """A variable equal to the sum of several same-shaped tensors (LSTM biases)."""
    shape = tuple(variable.shape)
    return Assignment(variable, tuple((k, shape) for k in keys), lambda *ws: sum(ws))


def batch_norm(layer, prefix: str) -> List[Assignment]:
    """A Keras BatchNormalization from torch BatchNorm2d `prefix.{weight, bias, running_*}`.

    Without scale/center (torch's `affine=False`) only the running statistics are read.
    """
    out = []
    if layer.scale:
        out.append(same(layer.gamma, f"{prefix}.weight"))
    if layer.center:
        out.append(same(layer.beta, f"{prefix}.bias"))
    out.append(same(layer.moving_mean, f"{prefix}.running_mean"))
    out.append(same(layer.moving_variance, f"{prefix}.running_var"))
    return out


def conv_layer(layer, prefix: str) -> List[Assignment]:
    """A Conv2D layer (kernel, and bias when it has one) from torch `prefix.{weight, bias}`."""
    out = [conv(layer.kernel, f"{prefix}.weight")]
    if layer.use_bias:
        out.append(same(layer.bias, f"{prefix}.bias"))
    return out


def dense_layer(layer, prefix: str) -> List[Assignment]:
    """A Dense layer from torch Linear `prefix.{weight, bias}`."""
    out = [linear(layer.kernel, f"{prefix}.weight")]
    if layer.use_bias:
        out.append(same(layer.bias, f"{prefix}.bias"))
    return out


def by_layer_name(model: keras.Model) -> List[Assignment]:
    """Assignments for a model whose layers are named after the torch module paths.

    Conv2D, Dense and BatchNormalization layers are mapped; layers without weights
    (activations, pooling, concatenation) are skipped.
    """
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            out += conv_layer(layer, layer.name)
        elif isinstance(layer, keras.layers.Dense):
            out += dense_layer(layer, layer.name)
        elif isinstance(layer, keras.layers.BatchNormalization):
            out += batch_norm(layer, layer.name)
        elif layer.weights:
            raise TypeError(f"No torch mapping for layer {layer.name!r} "
                            f"({type(layer).__name__}).")
    return out


def strip_data_parallel_prefix(state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Drops the `module.` that nn.DataParallel adds to every key (when all have it)."""
    if state and all(k.startswith(DATA_PARALLEL_PREFIX) for k in state):
        return {k[len(DATA_PARALLEL_PREFIX):]: v for k, v in state.items()}
    return dict(state)


def describe_kind(state: Mapping[str, np.ndarray], expected_keys=()) -> str:
    """What the keys look like ("an SSA-GAN generator (NetG, ...)"), or "".

    Empty too when the identifying key is one of `expected_keys`: the file is of the
    expected kind, and only its sizes differ.
    """
    for marker, description in _KIND_MARKERS:
        if marker in state:
            return "" if marker in expected_keys else description
    return ""


def _shape(values) -> List[int]:
    return [int(n) for n in values]


def check(assignments: Sequence[Assignment], state: Mapping[str, np.ndarray], source: str,
          ignored_prefixes: Sequence[str] = ()) -> None:
    """Raises StateDictMismatchError at the first tensor that does not fit.

    Missing keys and shape mismatches are reported in the model's order, then unexpected
    keys in the file's order. Keys ending in `.num_batches_tracked` and keys under
    `ignored_prefixes` are allowed and ignored.
    """
    used = {key for assignment in assignments for key, _ in assignment.sources}
    for assignment in assignments:
        for key, expected in assignment.sources:
            if key not in state:
                _raise(state, source, f"missing {key} (expected shape {_shape(expected)})",
                       used)
            got = np.shape(state[key])
            if tuple(got) != tuple(expected):
                _raise(state, source, f"expected {_shape(expected)} for {key}, got "
                                      f"{_shape(got)}", used)
    for key, value in state.items():
        if key in used or key.endswith(IGNORED_SUFFIXES) or key.startswith(
                tuple(ignored_prefixes)):
            continue
        _raise(state, source, f"unexpected key {key} (shape {_shape(np.shape(value))})",
               used)


def require_keys(state: Mapping[str, np.ndarray], source: str, keys: Sequence[str],
                 what: str) -> None:
    """Raises StateDictMismatchError naming the first of `keys` that `state` lacks.

    Used before reading hyperparameters off shapes, so that a file of the wrong kind
    gets the same kind of message as a mismatched one.
    """
    for key in keys:
        if key not in state:
            _raise(state, source, f"missing {key}, which every {what} has", keys)


def _raise(state, source: str, problem: str, expected_keys=()) -> None:
    kind = describe_kind(state, expected_keys)
    hint = f"; its keys look like {kind}" if kind else ""
    raise StateDictMismatchError(f"{source} does not fit: {problem}{hint}.")


def assign(assignments: Sequence[Assignment], state: Mapping[str, np.ndarray], source: str,
           ignored_prefixes: Sequence[str] = ()) -> int:
    """Checks the whole state dict, then sets every variable. Returns the tensors read."""
    check(assignments, state, source, ignored_prefixes)
    for assignment in assignments:
        arrays = [np.asarray(state[key], np.float64) for key, _ in assignment.sources]
        value = assignment.convert(*arrays)
        assignment.variable.assign(np.asarray(value).astype(assignment.variable.dtype))
    return len({key for a in assignments for key, _ in a.sources})


# --- The reference models. -------------------------------------------------------------

def text_encoder_assignments(encoder) -> List[Assignment]:
    """`DAMSMTextEncoder` <- AttnGAN's `RNN_ENCODER` (embedding `encoder`, LSTM `rnn`).

    The embedding is shifted by one row: the reference's id 0 (`<end>`, padding) stays
    0, our id 1 is the out-of-vocabulary word (zeros: the reference has none), and the
    reference's id k becomes k + 1. The file therefore has `vocab_size - 1` rows.
    """
    table = encoder.embedding.embeddings
    rows, width = table.shape

    def shift(weight):
        return np.concatenate([weight[:1], np.zeros([1, width]), weight[1:]], axis=0)

    out = [Assignment(table, (("encoder.weight", (rows - 1, width)),), shift)]
    for layer, suffix in ((encoder.rnn.forward_layer, ""),
                          (encoder.rnn.backward_layer, "_reverse")):
        cell = layer.cell
        out += [linear(cell.kernel, f"rnn.weight_ih_l0{suffix}"),
                linear(cell.recurrent_kernel, f"rnn.weight_hh_l0{suffix}"),
                summed(cell.bias, f"rnn.bias_ih_l0{suffix}", f"rnn.bias_hh_l0{suffix}")]
    return out


def image_encoder_assignments(encoder) -> List[Assignment]:
    """`DAMSMImageEncoder("torchvision_inception_v3")` <- AttnGAN's `CNN_ENCODER`.

    The trunk's layers carry torchvision's module paths; `emb_features` (1x1 conv, no
    bias) is the region projection and `emb_cnn_code` (Linear) the global projection.
    """
    if encoder.backbone_name != "torchvision_inception_v3":
        raise ValueError("CNN_ENCODER weights need the torchvision_inception_v3 backbone, "
                         f"not {encoder.backbone_name!r}.")
    return (by_layer_name(encoder.backbone)
            + [conv(encoder.region_projection.kernel, "emb_features.weight")]
            + dense_layer(encoder.global_projection, "emb_cnn_code"))


def _mask_predictor(predictor, prefix: str) -> List[Assignment]:
    # conv_mask = Sequential(conv3x3, BN, ReLU, conv1x1): modules 0, 1 and 3.
    return (conv_layer(predictor.conv_hidden, f"{prefix}.0")
            + batch_norm(predictor.batch_norm, f"{prefix}.1")
            + conv_layer(predictor.conv_logits, f"{prefix}.3"))


def _sscbn(layer, prefix: str) -> List[Assignment]:
    # SSA-GAN's `affine`: BN without affine parameters and two 2-layer MLPs.
    return (batch_norm(layer.batch_norm, f"{prefix}.batch_norm2d")
            + dense_layer(layer.gamma_hidden, f"{prefix}.fc_gamma.linear1")
            + dense_layer(layer.gamma_out, f"{prefix}.fc_gamma.linear2")
            + dense_layer(layer.beta_hidden, f"{prefix}.fc_beta.linear1")
            + dense_layer(layer.beta_out, f"{prefix}.fc_beta.linear2"))


def generator_assignments(generator) -> List[Assignment]:
    """`SSAGANGenerator` <- SSA-GAN's `NetG` (wtliao/text2image model.py).

    fc, conv_mask, block<i> (c1, c2, affine0, affine2, gamma, c_sc where the width
    changes, conv_mask but on the last block) and conv_img (BN = module 0, conv =
    module 2).
    """
    out = dense_layer(generator.fc, "fc")
    out += _mask_predictor(generator.initial_mask_predictor, "conv_mask")
    for i, block in enumerate(generator.blocks):
        p = f"block{i}"
        out += _sscbn(block.sscbn_in, f"{p}.affine0")
        out += conv_layer(block.conv_in, f"{p}.c1")
        out += _sscbn(block.sscbn_out, f"{p}.affine2")
        out += conv_layer(block.conv_out, f"{p}.c2")
        out.append(scalar(block.gamma, f"{p}.gamma"))
        if block.shortcut_conv is not None:
            out += conv_layer(block.shortcut_conv, f"{p}.c_sc")
        if block.mask_predictor is not None:
            out += _mask_predictor(block.mask_predictor, f"{p}.conv_mask")
    out += batch_norm(generator.image_batch_norm, "conv_img.0")
    out += conv_layer(generator.image_conv, "conv_img.2")
    return out


def generator_hyperparameters(state: Mapping[str, np.ndarray], source: str) -> Dict[str, int]:
    """`SSAGANGenerator` arguments read off a NetG state dict's shapes.

    Returns:
      {"ngf", "z_dim", "sentence_dim", "mask_channels", "image_size"}: the fc layer
      gives ngf (its output is 8 ngf x 4 x 4) and z_dim, the first SSCBN the sentence
      width, the first mask predictor its hidden width, and the number of blocks the
      image size (4 px doubled once per block after the first).
    """
    needed = ("fc.weight", "conv_mask.0.weight", "block0.affine0.fc_gamma.linear1.weight")
    require_keys(state, source, needed, "SSA-GAN NetG")
    fc_out, z_dim = np.shape(state["fc.weight"])
    if fc_out % (8 * 16):
        _raise(state, source, f"fc.weight has {fc_out} outputs, not a multiple of 8 x 4 x 4")
    num_blocks = 0
    while f"block{num_blocks}.c1.weight" in state:
        num_blocks += 1
    return {"ngf": int(fc_out // (8 * 16)), "z_dim": int(z_dim),
            "sentence_dim": int(np.shape(state[needed[2]])[1]),
            "mask_channels": int(np.shape(state["conv_mask.0.weight"])[0]),
            "image_size": 4 * 2 ** (num_blocks - 1)}
