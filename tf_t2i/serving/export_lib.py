"""SavedModel export of a trained text-to-image run, for TF Serving and `tf_t2i.serve`.

An export is a plain SavedModel that stock `tensorflow_model_server` loads: the graph
holds only core TensorFlow ops (tokenization by `keras.layers.TextVectorization`, noise
from stateless RNG seeded by the request, PNG encoding), every input and output has
the batch as dimension 0 (so server-side batching can concatenate requests), and the
version directory carries `assets.extra/tf_serving_warmup_requests`.

Signatures (computed by `tf_t2i.serving.signatures`, whose docstring details them):
  serving_default(captions: string [B], seeds: int64 [B])
      -> {images: uint8 [B, H, W, 3], png_bytes: string [B]}
  generate_unseeded(captions: string [B]) -> the same, with seeds hashed from the captions
  generate_with_maps(captions, seeds) -> serving_default's outputs plus the generator's
      maps: {maps: float32 [B, M, H, W], map_png_bytes, map_labels, map_words: string
      [B, M]} (SSA-GAN's masks per block, the AttnGAN family's word attention)
  caption_words(captions) -> {words: string [B, T], in_vocabulary: bool [B, T],
      num_words: int32 [B]}

`png_bytes` ends in `_bytes` so that TF Serving's REST API returns it base64 encoded.

Versions are published atomically: `export_base/<n>/` is written under a temporary,
non-numeric name beside it (which servers ignore) and renamed only once complete.
"""

import dataclasses
import json
import os
import re
import shutil
import tempfile
import time
from typing import Dict, Optional, Sequence, Tuple

import tensorflow as tf

from tf_t2i.io import files
from tf_t2i.serving import signatures

# The signatures' names and computations, under the names their users import from here.
SERVING_DEFAULT = signatures.SERVING_DEFAULT
GENERATE_UNSEEDED = signatures.GENERATE_UNSEEDED
GENERATE_WITH_MAPS = signatures.GENERATE_WITH_MAPS
CAPTION_WORDS = signatures.CAPTION_WORDS
CAPTIONS = signatures.CAPTIONS
SEEDS = signatures.SEEDS
IMAGES = signatures.IMAGES
PNG_BYTES = signatures.PNG_BYTES
MAPS = signatures.MAPS
MAP_PNG_BYTES = signatures.MAP_PNG_BYTES
MAP_LABELS = signatures.MAP_LABELS
MAP_WORDS = signatures.MAP_WORDS
WORDS = signatures.WORDS
IN_VOCABULARY = signatures.IN_VOCABULARY
NUM_WORDS = signatures.NUM_WORDS
NOISE_SEED_KEY = signatures.NOISE_SEED_KEY
noise_from_seeds = signatures.noise_from_seeds
caption_seeds = signatures.caption_seeds
encode_pngs = signatures.encode_pngs
generate = signatures.generate

WARMUP_FILENAME = "tf_serving_warmup_requests"
ASSETS_EXTRA = "assets.extra"
EXPORT_INFO_FILENAME = "t2i_export.json"
DEFAULT_WARMUP_BATCH_SIZES = (1, 8)
WARMUP_CAPTIONS = ("a large red circle in the center", "a small blue square on the left",
                   "a green triangle at the top", "a big yellow star on the right")
_TMP_PREFIX = ".tmp-export-"
_VERSION_RE = re.compile(r"^[0-9]+$")


class ExportError(ValueError):
    """The export cannot be written as asked (existing version, bad base path, ...)."""


class TextToImageExport:
    """The generator, text encoder and vocabulary of a run, as SavedModel signatures.

    Args:
      generator: the (EMA) generator.
      text_encoder: the run's text encoder.
      tokenizer: the run's `CaptionTokenizer`; its TextVectorization layer owns the
        vocabulary lookup table, which the archive must track so that the SavedModel's
        init op fills it.
      z_dim: the generator's noise size.
      image_size: the generator's output side.
    """

    def __init__(self, generator, text_encoder, tokenizer, z_dim: int, image_size: int):
        self.generator = generator
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.z_dim = int(z_dim)
        self.image_size = int(image_size)

    def __call__(self, captions, seeds) -> Dict:
        """Eager (in-memory) twin of `serving_default`."""
        return generate(self.generator, self.text_encoder, self.tokenizer, captions, seeds,
                        self.z_dim, self.image_size)

    def unseeded(self, captions) -> Dict:
        """Eager twin of `generate_unseeded`."""
        return self(captions, caption_seeds(tf.convert_to_tensor(captions, tf.string)))

    def with_maps(self, captions, seeds) -> Dict:
        """Eager twin of `generate_with_maps`."""
        return signatures.generate_with_maps(self.generator, self.text_encoder,
                                             self.tokenizer, captions, seeds, self.z_dim,
                                             self.image_size)

    def caption_words(self, captions) -> Dict:
        """Eager twin of `caption_words`."""
        return signatures.caption_words(self.tokenizer, captions)

    def endpoints(self) -> Dict:
        """{signature name: (function, input signature)}: what `save` exports.

        Each signature is traced from its own function, so `serving_default`'s graph holds
        only what `generate` computes, whatever the other signatures add.
        """
        captions = tf.TensorSpec([None], tf.string, name=CAPTIONS)
        seeds = tf.TensorSpec([None], tf.int64, name=SEEDS)
        return {SERVING_DEFAULT: (self.__call__, [captions, seeds]),
                GENERATE_UNSEEDED: (self.unseeded, [captions]),
                GENERATE_WITH_MAPS: (self.with_maps, [captions, seeds]),
                CAPTION_WORDS: (self.caption_words, [captions])}

    def save(self, path: str) -> None:
        """Writes the SavedModel (no warmup file) to `path`."""
        # Deferred: Keras is needed to write an export, never to serve one.
        import keras  # pylint: disable=g-import-not-at-top
        # ExportArchive saves the variables the endpoints use and the lookup tables of
        # the tracked layers, without the Keras models' own (single-input) default
        # serving functions, which tf.saved_model.save would try to trace.
        archive = keras.export.ExportArchive()
        self.tokenizer.encode(["build"])  # an unbuilt TextVectorization cannot be tracked
        archive.track(self.tokenizer.layer)
        for name, (function, input_signature) in self.endpoints().items():
            archive.add_endpoint(name, function, input_signature=input_signature)
        archive.write_out(path, verbose=False)


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Where an export went."""
    path: str
    version: int
    model_name: str
    use_ema: bool
    checkpoint: str
    model_config_path: Optional[str] = None


def list_versions(export_base: str):
    """Numeric version directories under export_base, ascending (what TF Serving sees)."""
    if not os.path.isdir(export_base):
        return []
    return sorted(int(n) for n in os.listdir(export_base)
                  if _VERSION_RE.match(n) and os.path.isdir(os.path.join(export_base, n)))


def next_version(export_base: str) -> int:
    versions = list_versions(export_base)
    return versions[-1] + 1 if versions else 1


def write_warmup_requests(version_dir: str, model_name: str,
                          batch_sizes: Sequence[int] = DEFAULT_WARMUP_BATCH_SIZES) -> str:
    """Writes `assets.extra/tf_serving_warmup_requests`: one `serving_default` PredictLog
    per batch size, then one of batch 1 for `generate_with_maps` and `caption_words`.

    TF Serving replays the records when it loads the version (a failing record fails
    the load), so the first real request does not pay for tracing and allocation.
    """
    # Deferred: only exports need the serving protos.
    from tensorflow_serving.apis import model_pb2  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
    directory = os.path.join(version_dir, ASSETS_EXTRA)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, WARMUP_FILENAME)
    # serving_default at every batch size; the explainability signatures (a page's
    # first hover) once, at batch 1, when there is any warmup at all.
    requests = [(SERVING_DEFAULT, size, True) for size in batch_sizes]
    if batch_sizes:
        requests += [(GENERATE_WITH_MAPS, 1, True), (CAPTION_WORDS, 1, False)]
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, size, seeded in requests:
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(
                name=model_name, signature_name=signature_name))
            captions = [WARMUP_CAPTIONS[i % len(WARMUP_CAPTIONS)] for i in range(size)]
            request.inputs[CAPTIONS].CopyFrom(tf.make_tensor_proto(captions, dtype=tf.string))
            if seeded:
                request.inputs[SEEDS].CopyFrom(tf.make_tensor_proto(list(range(size)),
                                                                    dtype=tf.int64))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def model_config_text(model_name: str, base_path: str, versions: Sequence[int] = (),
                      labels: Optional[Dict[str, int]] = None) -> str:
    """A `ModelServerConfig` text proto (TF Serving's --model_config_file) for one model.

    Args:
      model_name: the served name.
      base_path: the model's base path as the server sees it (absolute).
      versions: serve exactly these versions; empty serves the latest one.
      labels: version labels, e.g. {"stable": 3}; each must be among the served versions.
    """
    lines = ["model_config_list {", "  config {", f"    name: {json.dumps(model_name)}",
             f"    base_path: {json.dumps(base_path)}", '    model_platform: "tensorflow"']
    if versions:
        lines.append("    model_version_policy {")
        lines.append("      specific {")
        lines += [f"        versions: {int(v)}" for v in versions]
        lines += ["      }", "    }"]
    else:
        lines.append("    model_version_policy { latest { num_versions: 1 } }")
    for label, version in sorted((labels or {}).items()):
        lines.append(f"    version_labels {{ key: {json.dumps(label)} value: {int(version)} }}")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def export_modules(module: TextToImageExport, export_base: str, version: Optional[int] = None,
                   model_name: str = "t2i",
                   warmup_batch_sizes: Sequence[int] = DEFAULT_WARMUP_BATCH_SIZES,
                   info: Optional[Dict] = None) -> Tuple[str, int]:
    """Saves `module` as version `version` (default: next) of export_base, atomically.

    Returns:
      (version_dir, version).

    Raises:
      ExportError: the version exists already, or export_base is not a directory.
    """
    export_base = os.path.abspath(export_base)
    if os.path.exists(export_base) and not os.path.isdir(export_base):
        raise ExportError(f"--export_base={export_base} exists and is not a directory.")
    os.makedirs(export_base, exist_ok=True)
    if version is None:
        version = next_version(export_base)
    if version < 0:
        raise ExportError(f"Version numbers are non-negative integers, got {version}.")
    final = os.path.join(export_base, str(version))
    if os.path.exists(final):
        raise ExportError(f"Version {version} already exists at {final}; choose another "
                          "--version or omit it to use the next free number.")
    # Beside the final directory (same filesystem: the rename is atomic) under a name
    # that is not a number, so that a server polling export_base ignores it.
    tmp = tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{version}-", dir=export_base)
    try:
        # mkdtemp makes it private (0700); a server running as another user (the
        # tensorflow/serving container) must be able to read the published version.
        os.chmod(tmp, 0o755)
        module.save(tmp)
        write_warmup_requests(tmp, model_name, warmup_batch_sizes)
        if info is not None:
            with open(os.path.join(tmp, ASSETS_EXTRA, EXPORT_INFO_FILENAME), "w") as f:
                json.dump(info, f, indent=2, sort_keys=True)
        _publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, version


def _publish(tmp: str, final: str) -> None:
    """The one step that makes a version visible: an atomic rename."""
    try:
        os.rename(tmp, final)
    except OSError as e:
        raise ExportError(f"Could not publish {final} (another export took this version?): "
                          f"{e}") from e


def module_from_run(cfg, tokenizer, parts, use_ema: bool = True) -> TextToImageExport:
    """Wraps the models of a `trained_run.TrainedRun` for export (EMA or raw generator)."""
    if use_ema and parts.ema_generator is None:
        raise ExportError("The run has no EMA generator (train_ema_decay was 0); use the "
                          "raw generator (--nouse_ema; use_ema=False in Python).")
    generator = parts.ema_generator if use_ema else parts.generator
    return TextToImageExport(generator, parts.text_encoder, tokenizer, cfg.generator.z_dim,
                             cfg.data.image_size)


def build_module(model_dir: str, use_ema: bool = True):
    """Rebuilds a trained run from its directory and wraps its generator for export.

    Returns:
      (module, cfg, tokenizer, info) with `info` a JSON-able description of the source.
    """
    # Deferred: loading a run pulls in Keras and the models, which only exports need.
    from tf_t2i.models import trained_run  # pylint: disable=g-import-not-at-top
    run = trained_run.load_run(model_dir)
    cfg, tokenizer = run.cfg, run.tokenizer
    module = module_from_run(cfg, tokenizer, run, use_ema)
    info = {"model_dir": os.path.abspath(model_dir), "checkpoint": run.checkpoint_path,
            "use_ema": bool(use_ema), "image_size": cfg.data.image_size,
            "z_dim": cfg.generator.z_dim, "max_caption_length": tokenizer.max_length,
            "vocab_size": tokenizer.vocab_size, "experiment": cfg.name,
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "tensorflow": tf.__version__}
    return module, cfg, tokenizer, info


def export_run(model_dir: str, export_base: str, version: Optional[int] = None,
               use_ema: bool = True, model_name: str = "t2i",
               warmup_batch_sizes: Sequence[int] = DEFAULT_WARMUP_BATCH_SIZES,
               write_model_config: Optional[str] = None,
               model_config_base_path: Optional[str] = None) -> ExportResult:
    """Exports the last checkpoint of a trained run as `export_base/<version>/`.

    Args:
      model_dir: a GAN run directory (config.json, vocab.txt, checkpoints/).
      export_base: the model's base path; versions are its numeric subdirectories.
      version: the version number; default: one more than the largest present.
      use_ema: export the EMA generator (default) or the raw one.
      model_name: the served model name (used in warmup requests and the config).
      warmup_batch_sizes: one warmup request per batch size.
      write_model_config: if set, also write a models.config snippet for this model there.
      model_config_base_path: base_path to put in that snippet (default: export_base,
        absolute); e.g. "/models/t2i" for the docker-compose deployment.
    """
    module, _, _, info = build_module(model_dir, use_ema)
    path, version = export_modules(module, export_base, version, model_name,
                                   warmup_batch_sizes, info)
    config_path = None
    if write_model_config:
        base = model_config_base_path or os.path.abspath(export_base)
        # Pin the exported version and label it: a deployment moves to a new version by
        # editing the config, not by whatever appears in the base path.
        text = model_config_text(model_name, base, versions=[version], labels={"stable": version})
        config_path = files.atomic_write_text(write_model_config, text)
    return ExportResult(path=path, version=version, model_name=model_name, use_ema=use_ema,
                        checkpoint=info["checkpoint"], model_config_path=config_path)


def saved_model_ops(saved_model_dir: str) -> Dict[str, int]:
    """Every op type in a SavedModel: the graph and every function body, with counts.

    `saved_model_cli show --all` skips nested function bodies (the map_fn and while
    loops), so this walks `graph_def.library.function[*].node_def` as well.
    """
    from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    counts = {}
    for meta_graph in saved_model.meta_graphs:
        nodes = list(meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            nodes.extend(function.node_def)
        for node in nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
    return counts


def unregistered_ops(saved_model_dir: str) -> Sequence[str]:
    """Op types of the SavedModel that this process's TensorFlow does not register.

    Run it in a process that has not imported tensorflow_text or keras_hub, so that the
    registry is plain TensorFlow's: then any op listed here would fail to load in a
    stock server (or needs its custom-op build).
    """
    from tensorflow.python.framework import op_def_registry  # pylint: disable=g-import-not-at-top
    return sorted(op for op in saved_model_ops(saved_model_dir)
                  if op_def_registry.get(op) is None)


def signature_ops(saved_model_dir: str, signature_name: str) -> Dict[str, int]:
    """The op types one signature runs, with counts: the nodes its outputs read and every
    function they call, transitively (each function counted once).

    What a request to that signature executes, e.g. to check that `serving_default`
    computes nothing the other signatures add.
    """
    from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    (meta_graph,) = saved_model.meta_graphs
    functions = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    graph_nodes = {node.name: node for node in meta_graph.graph_def.node}
    signature = meta_graph.signature_def[signature_name]
    # Output tensors are "node:index"; walk the graph nodes they depend on.
    pending = [info.name.split(":")[0] for info in signature.outputs.values()]
    seen_nodes, called = set(), []
    counts = {}
    while pending:
        name = pending.pop().lstrip("^").split(":")[0]
        if name in seen_nodes or name not in graph_nodes:
            continue
        seen_nodes.add(name)
        node = graph_nodes[name]
        counts[node.op] = counts.get(node.op, 0) + 1
        pending.extend(node.input)
        called.extend(_called_functions(node))
    seen_functions = set()
    while called:
        name = called.pop()
        if name in seen_functions or name not in functions:
            continue
        seen_functions.add(name)
        for node in functions[name].node_def:
            counts[node.op] = counts.get(node.op, 0) + 1
            called.extend(_called_functions(node))
    return counts


def _called_functions(node) -> Sequence[str]:
    """Names of the functions a node may call (PartitionedCall's `f`, cond branches, loop
    bodies, map_fn's body, ..., and its op when that is a library function)."""
    names = [node.op]
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        names.extend(f.name for f in value.list.func)
    return names
