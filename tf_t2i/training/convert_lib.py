"""Turns the reference PyTorch checkpoints into tf_t2i model directories.

Library code behind `python -m tf_t2i.convert` (no flags here). Users of AttnGAN, DM-GAN,
DF-GAN, SSA-GAN and T2I_CL arrive with:

* `text_encoder200.pth` (`RNN_ENCODER`) and `image_encoder200.pth` (`CNN_ENCODER`), the
  DAMSM encoders, plus the dataset's `captions.pickle` ([train captions, test captions,
  ixtoword, wordtoix]) whose vocabulary the text encoder's embedding rows follow;
* `netG_<epoch>.pth`, SSA-GAN's generator (keys with or without nn.DataParallel's
  `module.` prefix).

`convert_damsm` writes a directory that training and evaluation accept as `--damsm_dir`
(config.json, vocab.txt, a checkpoint of both encoders in the format
`train_lib.restore_encoders` reads); the two encoders may come in one call or in two
calls on the same directory. `convert_ssagan_generator` writes a GAN model directory
that `tf_t2i.export`, `sample` and `evaluate` accept (`models.trained_run.load_run`): the
converted generator (also as the EMA generator, which SSA-GAN does not have), the text
and image encoders of a converted DAMSM directory, and a freshly initialised
discriminator. Every directory also holds `conversion.json`, saying what was converted
from which file; `load_converted` reads a converted model back.

Files are read without torch and without running code (`torchscript_reader`,
`safe_pickle`); directories are written under a temporary name and renamed into place.
"""

import dataclasses
import json
import os
import shutil
import tempfile
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tf_t2i import config as config_lib
from tf_t2i.data import tokenizer as tokenizer_lib
from tf_t2i.io import checkpoints
from tf_t2i.io import digest
from tf_t2i.io import safe_pickle
from tf_t2i.io import torchscript_reader
from tf_t2i.models import factory
from tf_t2i.models import torch_import
from tf_t2i.training import run_dirs
from tf_t2i.training import train_lib

KINDS = ("damsm", "damsm_text", "damsm_image", "ssagan_generator")
DAMSM_KINDS = ("damsm_text", "damsm_image")
MANIFEST_FILENAME = run_dirs.CONVERSION_MANIFEST
IMAGE_BACKBONE = "torchvision_inception_v3"
PADDING_WORD = "<end>"
# Checkpoint object names, as pretraining and GAN runs write them.
_OBJECT_NAMES = {"damsm_text": "text_encoder", "damsm_image": "image_encoder",
                 "ssagan_generator": "generator"}
_TEXT_KEYS = ("encoder.weight", "rnn.weight_hh_l0")
_IMAGE_KEYS = ("emb_features.weight",)


class ConversionError(ValueError):
    """The inputs or the output directory do not allow the conversion; says why."""


# Everything a user's input can get wrong; the binary turns these into one-line errors.
INPUT_ERRORS = (ConversionError, torch_import.StateDictMismatchError,
                torchscript_reader.TorchFileError, safe_pickle.UnsafePickleError,
                safe_pickle.PickleFormatError, run_dirs.DAMSMRunError,
                checkpoints.CheckpointMismatchError)


@dataclasses.dataclass(frozen=True)
class ConversionResult:
    """What a conversion wrote.

    Attributes:
      output_dir: the directory.
      kinds: the converted models it now holds ("damsm_text", "damsm_image",
        "ssagan_generator").
      checkpoint: the checkpoint path inside it.
      usable_as: "--damsm_dir", "--model_dir", or "" while a DAMSM directory still
        lacks one encoder.
    """
    output_dir: str
    kinds: Tuple[str, ...]
    checkpoint: str
    usable_as: str


# --- Reading the inputs. ---------------------------------------------------------------

def read_state_dict(path: str) -> Dict[str, np.ndarray]:
    """A `torch.save`d state dict as numpy arrays, without `module.` prefixes."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such file: {path}")
    return torch_import.strip_data_parallel_prefix(torchscript_reader.load_state_dict(path))


def read_captions_vocabulary(path: str) -> List[str]:
    """Our vocabulary (no padding, no OOV) from AttnGAN's `captions.pickle`.

    The pickle's `ixtoword` maps 0 to `<end>` (padding) and 1.. to words. Our tokenizer
    reserves 0 for padding and 1 for out-of-vocabulary words, so the words keep their
    order and our id is the pickle's id + 1.
    """
    value = safe_pickle.load(path)
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise ConversionError(f"{path}: expected AttnGAN's captions.pickle, a list [train "
                              "captions, test captions, ixtoword, wordtoix].")
    ixtoword = value[2]
    if not isinstance(ixtoword, dict) or not ixtoword:
        raise ConversionError(f"{path}: its third entry (ixtoword) is not a non-empty dict.")
    if sorted(ixtoword) != list(range(len(ixtoword))):
        raise ConversionError(f"{path}: ixtoword's keys are not 0..{len(ixtoword) - 1}.")
    words = [safe_pickle.as_str(ixtoword[i], path, f"ixtoword[{i}]")
             for i in range(len(ixtoword))]
    if words[0] != PADDING_WORD:
        raise ConversionError(f"{path}: ixtoword[0] is {words[0]!r}, expected "
                              f"{PADDING_WORD!r} (the padding id).")
    bad = [w for w in words[1:] if tokenizer_lib.split_words(w) != [w]]
    if bad:
        raise ConversionError(f"{path}: {len(bad)} vocabulary entries are not single "
                              f"lower-case words, e.g. {bad[:3]}.")
    return words[1:]


def _source_record(path: str, tensors: int) -> Dict:
    return {"source": os.path.abspath(path), "sha256": digest.file_digest(path, "sha256"),
            "tensors": tensors}


def read_manifest(directory: str) -> Optional[Dict]:
    """The directory's conversion.json, or None when it has none."""
    path = os.path.join(directory, MANIFEST_FILENAME)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


# --- Writing directories. --------------------------------------------------------------

def _check_output(output_dir: str, overwrite: bool) -> None:
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ConversionError(f"--output={output_dir} is a file, not a directory.")
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
        raise ConversionError(f"--output={output_dir} is not empty; pass --overwrite to "
                              "replace it.")


def _publish(tmp: str, output_dir: str) -> None:
    """Moves the finished temporary directory into place; the old one goes last."""
    if os.path.isdir(output_dir) and not os.listdir(output_dir):
        os.rmdir(output_dir)
    if not os.path.exists(output_dir):
        os.rename(tmp, output_dir)
        return
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.old-",
                           dir=os.path.dirname(output_dir))
    os.rmdir(old)
    os.rename(output_dir, old)
    try:
        os.rename(tmp, output_dir)
    except OSError:
        os.rename(old, output_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


class _StagingDirectory:
    """A temporary sibling of the output that becomes the output on success."""

    def __init__(self, output_dir: str):
        self.output_dir = os.path.abspath(output_dir)

    def __enter__(self) -> str:
        parent = os.path.dirname(self.output_dir)
        os.makedirs(parent, exist_ok=True)
        self.path = tempfile.mkdtemp(prefix=f".{os.path.basename(self.output_dir)}.tmp-",
                                     dir=parent)
        return self.path

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            _publish(self.path, self.output_dir)
        else:
            shutil.rmtree(self.path, ignore_errors=True)
        return False


def _write_json(path: str, value) -> None:
    with open(path, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")


def _save_checkpoint(directory: str, **models) -> str:
    ckpt = checkpoints.make_checkpoint(**models)
    manager = tf.train.CheckpointManager(
        ckpt, os.path.join(directory, checkpoints.CHECKPOINT_SUBDIR), max_to_keep=1)
    return manager.save(checkpoint_number=0)


def _restore(directory: str, **models) -> str:
    """Restores the named models (all their variables) from the directory's checkpoint."""
    path = tf.train.latest_checkpoint(os.path.join(directory, checkpoints.CHECKPOINT_SUBDIR))
    if path is None:
        raise ConversionError(f"{directory} has no checkpoint.")
    status = checkpoints.make_checkpoint(**models).restore(path).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ConversionError(f"The checkpoint {path} does not hold {sorted(models)} in "
                              f"this configuration: {str(e)[:300]}") from e
    return path


def _quiet_image_encoder(cfg):
    # The backbone warns that it has no ImageNet weights: here they come from a file.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return factory.build_image_encoder(cfg)


def _built_text_encoder(cfg, vocab_size: int):
    encoder = factory.build_text_encoder(cfg, vocab_size)
    encoder(tf.zeros([1, cfg.data.max_caption_length], tf.int32), training=False)
    return encoder


def _built_image_encoder(cfg):
    encoder = _quiet_image_encoder(cfg)
    encoder(tf.zeros([1, 299, 299, 3]), training=False)
    return encoder


# --- DAMSM. ----------------------------------------------------------------------------

def _damsm_config(base: Optional[config_lib.ExperimentConfig], dataset: Optional[str],
                  text_dims: Optional[Tuple[int, int]], image_dim: Optional[int]):
    """The DAMSM directory's config: encoder sizes from the files, the rest defaults."""
    if base is not None and dataset and dataset != base.data.dataset:
        raise ConversionError(f"The output directory holds encoders for "
                              f"{base.data.dataset!r}, not --dataset={dataset!r}.")
    if base is None and not dataset:
        raise ConversionError(f"--dataset is required (one of {list(config_lib.DATASETS)}): "
                              "GAN runs check that their DAMSM encoders match their data.")
    if base is None and dataset not in config_lib.DATASETS:
        raise ConversionError(f"--dataset={dataset!r} is not one of "
                              f"{list(config_lib.DATASETS)}.")
    cfg = base or config_lib.ExperimentConfig(name="converted_damsm").replace(
        data={"dataset": dataset}, train={"task": "damsm"},
        image_encoder={"backbone": IMAGE_BACKBONE, "weights_path": ""})
    if text_dims is not None:
        cfg = cfg.replace(text={"embedding_dim": text_dims[0], "hidden_dim": text_dims[1]})
    elif base is None:
        cfg = cfg.replace(text={"hidden_dim": image_dim})
    if image_dim is not None and image_dim != cfg.text.hidden_dim:
        raise ConversionError(
            f"The image encoder embeds into {image_dim} dimensions but the text encoder "
            f"into {cfg.text.hidden_dim}: they are not one DAMSM.")
    cfg.text.validate()
    cfg.image_encoder.validate()
    return cfg


def _merge_base(output_dir: str, kinds: Sequence[str], overwrite: bool):
    """The converted DAMSM directory to add encoders to, or None for a fresh one."""
    manifest = read_manifest(output_dir) if os.path.isdir(output_dir) else None
    held = set((manifest or {}).get("kinds", {}))
    if (not overwrite and manifest is not None and held and held <= set(DAMSM_KINDS)
            and not held & set(kinds)):
        return manifest
    if manifest is not None and held & set(kinds) and not overwrite:
        raise ConversionError(f"{output_dir} already holds {sorted(held & set(kinds))}; "
                              "pass --overwrite to replace the directory.")
    _check_output(output_dir, overwrite)
    return None


def convert_damsm(output_dir: str, dataset: Optional[str] = None,
                  text_input: Optional[str] = None, image_input: Optional[str] = None,
                  captions_pickle: Optional[str] = None,
                  overwrite: bool = False) -> ConversionResult:
    """Converts DAMSM encoders into a directory usable as `--damsm_dir`.

    Either encoder may be given alone; a later call with the other one and the same
    `output_dir` adds it (the directory is usable as `--damsm_dir` once it holds both).

    Args:
      output_dir: the directory to write.
      dataset: "cub", "coco" or "shapes"; required unless adding to a converted directory.
      text_input: `RNN_ENCODER` state dict (`text_encoder200.pth`).
      image_input: `CNN_ENCODER` state dict (`image_encoder200.pth`).
      captions_pickle: AttnGAN's `captions.pickle`; required with `text_input`, since
        the embedding rows are indexed by its vocabulary.
      overwrite: replace a non-empty `output_dir` (otherwise only a converted DAMSM
        directory lacking the given encoder may be written to).

    Raises:
      ConversionError, StateDictMismatchError, TorchFileError, pickle errors: bad inputs.
    """
    output_dir = os.path.abspath(output_dir)
    if text_input is None and image_input is None:
        raise ConversionError("Give the text encoder, the image encoder or both.")
    if text_input is not None and captions_pickle is None:
        raise ConversionError(
            "Converting a text encoder needs --captions_pickle (the dataset's "
            "captions.pickle): its embedding rows follow that vocabulary, and without "
            "vocab.txt the directory cannot tokenize captions.")
    kinds = (["damsm_text"] if text_input else []) + (["damsm_image"] if image_input else [])
    manifest = _merge_base(output_dir, kinds, overwrite)
    base_cfg = config_lib.load_config(output_dir) if manifest else None

    text_state = image_state = vocabulary = None
    text_dims = image_dim = None
    if text_input:
        text_state = read_state_dict(text_input)
        torch_import.require_keys(text_state, text_input, _TEXT_KEYS,
                                  "AttnGAN RNN_ENCODER")
        vocabulary = read_captions_vocabulary(captions_pickle)
        rows, width = text_state["encoder.weight"].shape
        if rows != len(vocabulary) + 1:
            raise ConversionError(
                f"{text_input} embeds {rows} token ids but {captions_pickle} has "
                f"{len(vocabulary) + 1} (with {PADDING_WORD}): the encoder was trained "
                "with another dataset's vocabulary.")
        text_dims = (int(width), 2 * int(text_state["rnn.weight_hh_l0"].shape[1]))
    if image_input:
        image_state = read_state_dict(image_input)
        torch_import.require_keys(image_state, image_input, _IMAGE_KEYS,
                                  "AttnGAN CNN_ENCODER")
        image_dim = int(image_state["emb_features.weight"].shape[0])
    elif manifest and "damsm_image" in manifest["kinds"]:
        image_dim = base_cfg.text.hidden_dim  # checked against the text encoder's width
    cfg = _damsm_config(base_cfg, dataset, text_dims, image_dim)

    records = dict((manifest or {}).get("kinds", {}))
    models = {}
    if text_input:
        models["text_encoder"] = _built_text_encoder(cfg, len(vocabulary) + 2)
        count = torch_import.assign(
            torch_import.text_encoder_assignments(models["text_encoder"]), text_state,
            text_input)
        records["damsm_text"] = _source_record(text_input, count)
        records["damsm_text"]["captions_pickle"] = _source_record(captions_pickle, 0)
    if image_input:
        models["image_encoder"] = _built_image_encoder(cfg)
        count = torch_import.assign(
            torch_import.image_encoder_assignments(models["image_encoder"]), image_state,
            image_input)
        records["damsm_image"] = _source_record(image_input, count)
    if manifest:
        # The encoder converted earlier comes along unchanged.
        if "damsm_text" in manifest["kinds"]:
            vocabulary = tokenizer_lib.CaptionTokenizer.load(output_dir).vocabulary
            models["text_encoder"] = _built_text_encoder(cfg, len(vocabulary) + 2)
            _restore(output_dir, text_encoder=models["text_encoder"])
        if "damsm_image" in manifest["kinds"]:
            models["image_encoder"] = _built_image_encoder(cfg)
            _restore(output_dir, image_encoder=models["image_encoder"])

    complete = {"text_encoder", "image_encoder"} <= set(models)
    with _StagingDirectory(output_dir) as tmp:
        config_lib.save_config(cfg, tmp)
        if vocabulary is not None:
            tokenizer_lib.CaptionTokenizer(vocabulary, cfg.data.max_caption_length).save(tmp)
        path = _save_checkpoint(tmp, **models)
        _write_json(os.path.join(tmp, MANIFEST_FILENAME),
                    {"format_version": 1, "kinds": records, "complete": complete})
    return ConversionResult(output_dir, tuple(sorted(records)),
                            os.path.join(output_dir, os.path.relpath(path, tmp)),
                            "--damsm_dir" if complete else "")


# --- SSA-GAN generator. ----------------------------------------------------------------

def convert_ssagan_generator(input_path: str, output_dir: str, damsm_dir: str,
                             overwrite: bool = False, ndf: int = 64) -> ConversionResult:
    """Converts SSA-GAN's `netG_*.pth` into a GAN model directory (`--model_dir`).

    The generator's widths and image size are read off the file. The directory takes
    its vocabulary, text and image encoders and encoder config from `damsm_dir` (a
    converted or pretrained DAMSM directory), so export, sampling and evaluation work
    from it alone. The EMA generator starts as a copy of the generator (export uses it
    by default); the discriminator, absent from the file, is freshly initialised.

    Args:
      input_path: the NetG state dict.
      output_dir: the directory to write.
      damsm_dir: the DAMSM directory whose text encoder conditioned this generator.
      overwrite: replace a non-empty `output_dir`.
      ndf: width of the (untrained) discriminator, for fine-tuning from the directory.

    Raises:
      ConversionError, StateDictMismatchError, TorchFileError, DAMSMRunError: bad inputs.
    """
    output_dir = os.path.abspath(output_dir)
    damsm_dir = os.path.abspath(damsm_dir)
    _check_output(output_dir, overwrite)
    state = read_state_dict(input_path)
    sizes = torch_import.generator_hyperparameters(state, input_path)
    if sizes["image_size"] not in config_lib.IMAGE_SIZES:
        raise ConversionError(f"{input_path} has blocks for {sizes['image_size']} px; the "
                              f"generator supports {list(config_lib.IMAGE_SIZES)}.")
    # Validates the DAMSM directory (config, vocabulary, checkpoint) the way training does.
    probe = config_lib.ExperimentConfig().replace(runtime={"damsm_dir": damsm_dir})
    damsm_cfg = config_lib.load_config(damsm_dir) if os.path.isdir(damsm_dir) else None
    if damsm_cfg is not None:
        probe = probe.replace(data={"dataset": damsm_cfg.data.dataset})
    adopted = run_dirs.adopt_damsm_config(probe)
    if adopted.text.hidden_dim != sizes["sentence_dim"]:
        raise ConversionError(
            f"{input_path} is conditioned on {sizes['sentence_dim']}-d sentence embeddings "
            f"but the text encoder of {damsm_dir} produces {adopted.text.hidden_dim}-d ones.")
    cfg = adopted.replace(
        name="converted_ssagan", data=damsm_cfg.data).replace(
        data={"image_size": sizes["image_size"],
              "max_caption_length": adopted.data.max_caption_length},
        generator={"arch": "ssagan", "ngf": sizes["ngf"], "z_dim": sizes["z_dim"],
                   "mask_channels": sizes["mask_channels"]},
        discriminator={"ndf": ndf}, train={"task": "gan"})
    tokenizer = tokenizer_lib.CaptionTokenizer.load(damsm_dir, cfg.data.max_caption_length)

    with _StagingDirectory(output_dir) as tmp:
        config_lib.save_config(cfg, tmp)
        tokenizer.save(tmp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            parts = train_lib.GANComponents(cfg, tokenizer.vocab_size, tmp)
        train_lib.restore_encoders(parts.text_encoder, parts.image_encoder, damsm_dir)
        count = torch_import.assign(torch_import.generator_assignments(parts.generator),
                                    state, input_path)
        parts.gan.init_ema()
        path = parts.checkpoint.save(0)
        record = _source_record(input_path, count)
        record["damsm_dir"] = damsm_dir
        _write_json(os.path.join(tmp, MANIFEST_FILENAME),
                    {"format_version": 1, "kinds": {"ssagan_generator": record},
                     "complete": True})
    return ConversionResult(output_dir, ("ssagan_generator",),
                            os.path.join(output_dir, os.path.relpath(path, tmp)),
                            "--model_dir")


# --- Reading back. ---------------------------------------------------------------------

def load_converted(directory: str, kind: Optional[str] = None):
    """The converted Keras model of a directory written by this module.

    Args:
      directory: a converted directory.
      kind: "damsm_text" (a `DAMSMTextEncoder`), "damsm_image" (a `DAMSMImageEncoder`)
        or "ssagan_generator" (an `SSAGANGenerator`); may be omitted when the directory
        holds one kind only. Its tokenizer is `CaptionTokenizer.load(directory)`.

    Returns:
      The model, built and restored from the directory's checkpoint.

    Raises:
      ConversionError: not a converted directory, or `kind` missing or not held.
    """
    manifest = read_manifest(directory)
    if manifest is None:
        raise ConversionError(f"{directory} has no {MANIFEST_FILENAME}: not written by "
                              "`python -m tf_t2i.convert`.")
    held = sorted(manifest.get("kinds", {}))
    if kind is None:
        if len(held) != 1:
            raise ConversionError(f"{directory} holds {held}: pass kind= one of them.")
        kind = held[0]
    if kind not in held:
        raise ConversionError(f"{directory} holds {held}, not {kind!r}.")
    cfg = config_lib.load_config(directory)
    if kind == "damsm_text":
        vocab_size = tokenizer_lib.CaptionTokenizer.load(directory).vocab_size
        model = _built_text_encoder(cfg, vocab_size)
    elif kind == "damsm_image":
        model = _built_image_encoder(cfg)
    else:
        model = factory.build_generator(cfg)
        model(tf.zeros([1, cfg.generator.z_dim]), tf.zeros([1, cfg.text.hidden_dim]),
              training=False)
    _restore(directory, **{_OBJECT_NAMES[kind]: model})
    return model
