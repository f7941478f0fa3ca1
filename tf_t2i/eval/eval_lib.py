"""Evaluation of a trained run: generate from test captions, score, append JSON lines.

The protocol follows the reference code (AttnGAN / DM-GAN / DF-GAN sampling): draw k
takes test image k mod N_test and one of its captions at random, a fresh noise vector,
and generates one image; the generated images are quantised to uint8 before any
metric sees them, as saved PNGs would be. One pass over the draws feeds every
requested metric, so generation runs once however many metrics are asked for.

Metrics are registered by name (stylegan2-ada-pytorch's `metric_main` style), each with
the streams of features it needs, a `prepare` step that loads its networks or says why
it cannot run, and a `compute` step. Results are rows with the sample count in the
name (`fid30k`, `r_precision2k`), appended to `<model_dir>/metrics.jsonl`.

Library code: `tf_t2i/evaluate.py` is the command line; `EvaluationCallback` runs the
same evaluation during training.
"""

import dataclasses
import json
import os
import time
import types
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tf_t2i import config as config_lib
from tf_t2i.data import pipeline
from tf_t2i.data import sources
from tf_t2i.data import tokenizer as tokenizer_lib
from tf_t2i.eval import attributes as attributes_lib
from tf_t2i.eval import diversity as diversity_lib
from tf_t2i.eval import fid as fid_lib
from tf_t2i.eval import inception as inception_lib
from tf_t2i.eval import inception_score as is_lib
from tf_t2i.eval import r_precision as r_precision_lib
from tf_t2i.models import interface

RESULTS_FILENAME = "metrics.jsonl"
# Images generated per evaluation when --num_images is not given: the 30k of the
# papers for CUB and COCO; the test split's size for shapes (a CPU-friendly default).
DEFAULT_NUM_IMAGES = {"cub": 30000, "coco": 30000}


class MetricUnavailableError(RuntimeError):
    """A metric cannot run here (a weights file is missing, wrong dataset, ...)."""


@dataclasses.dataclass
class EvalOptions:
    """What to evaluate and how. Every field is a flag of `tf_t2i.evaluate`."""
    metrics: Sequence[str] = ("fid", "is", "r_precision")
    num_images: Optional[int] = None       # None: DEFAULT_NUM_IMAGES or the test split size.
    batch_size: int = 50                   # Images generated (and scored) at a time.
    use_ema: bool = True                   # Sample from the EMA generator when there is one.
    seed: int = 0                          # Caption draws, noise and mismatched captions.
    real_stats: Optional[str] = None       # pytorch-fid style .npz of the real images.
    inception_weights: Optional[str] = None  # TorchScript file; default: the cache.
    is_classifier: Optional[str] = None    # IS classifier file; default: known locations.
    is_splits: int = 10                    # IS splits (improved-gan: 10).
    r_precision_folds: int = 10            # R-precision folds (DM-GAN: 10).
    r_precision_mismatched: int = 99       # Mismatched captions per image (99).
    classifier_epochs: int = 6             # Attribute classifier training, when not cached,
    classifier_extra_images: int = 10000   # on the train split plus this many more images.
    diversity_captions: int = 50           # Captions of the diversity metric,
    diversity_samples: int = 16            # each generated from this many noise vectors.


@dataclasses.dataclass(frozen=True)
class Metric:
    """A registered metric.

    Attributes:
      name: the base name ("fid"); rows carry the sample count ("fid30k").
      streams: per-draw features it reads ("inception", "is_probs", "damsm", "attributes").
      prepare: loads what it needs into the context; raises MetricUnavailableError.
      compute: context -> {"value": float, "std": float or None, ...extra fields}.
      description: one line saying what it measures.
      label: options -> the sample-count part of the row's name, for metrics that do not
        score the evaluation's `num_images` draws; None: `num_images` ("fid30k").
    """
    name: str
    streams: Tuple[str, ...]
    prepare: Callable[["EvalContext"], None]
    compute: Callable[["EvalContext"], Dict]
    description: str
    label: Optional[Callable[["EvalOptions"], str]] = None


METRICS: Dict[str, Metric] = {}


def register_metric(name: str, streams: Sequence[str], prepare: Callable, description: str,
                    label: Optional[Callable[["EvalOptions"], str]] = None):
    """Decorator registering `compute` under `name`."""
    def wrap(compute):
        METRICS[name] = Metric(name, tuple(streams), prepare, compute, description, label)
        return compute
    return wrap


def metric_label(name: str, num_images: int) -> str:
    """`fid` with 30000 images -> `fid30k`; 2500 -> `fid2500`."""
    count = f"{num_images // 1000}k" if num_images % 1000 == 0 else str(num_images)
    return f"{name}{count}"


class EvalContext:
    """Everything one evaluation reads: the run, the test split, networks and streams."""

    def __init__(self, cfg, tokenizer, parts, options: EvalOptions, log=print):
        self.cfg, self.tokenizer, self.parts, self.options, self.log = (
            cfg, tokenizer, parts, options, log)
        self.test_source = sources.load_source(cfg.data, "test")
        self.bank = pipeline.CaptionBank(self.test_source, tokenizer)
        self.num_images = options.num_images or DEFAULT_NUM_IMAGES.get(
            cfg.data.dataset, len(self.test_source))
        self.resources: Dict[str, object] = {}
        self.streams: Dict[str, object] = {}
        self.stream_seconds: Dict[str, float] = {}
        self.draw_images: Optional[np.ndarray] = None
        self.draw_captions: Optional[np.ndarray] = None

    @property
    def use_ema(self) -> bool:
        return bool(self.options.use_ema and self.parts.ema_generator is not None)

    def caption_text(self, draw: int) -> str:
        return self.test_source.captions[self.draw_images[draw]][self.draw_captions[draw]]

    def real_images(self) -> np.ndarray:
        """The test split as uint8 at the model's resolution (what FID compares against)."""
        size = self.cfg.data.image_size
        if self.test_source.is_encoded:
            # CUB / COCO: decoded and centre-cropped as the evaluation pipeline does.
            return self._decoded_real_images()
        images = self.test_source.images
        if images.shape[1:3] != (size, size):
            out = []
            for i in range(0, len(images), 256):
                x = tf.image.resize(tf.cast(images[i:i + 256], tf.float32), [size, size],
                                    antialias=True)
                out.append(np.clip(np.round(x.numpy()), 0, 255).astype(np.uint8))
            images = np.concatenate(out)
        return images


    def _decoded_real_images(self) -> np.ndarray:
        data = self.cfg.data
        ds = pipeline.make_eval_dataset(self.test_source, self.bank, batch_size=64,
                                        image_size=data.image_size,
                                        max_length=data.max_caption_length, caption_index=0)
        out = [np.clip(np.round((batch["real_images"].numpy() + 1.0) * 127.5), 0, 255)
               .astype(np.uint8) for batch in ds]
        return np.concatenate(out)


# --- Preparation: networks each metric needs. -----------------------------------------
def _prepare_inception(ctx: EvalContext) -> None:
    if "inception" in ctx.resources:
        return
    try:
        ctx.resources["inception"] = inception_lib.fid_inception(ctx.options.inception_weights,
                                                                 ctx.options.batch_size)
    except inception_lib.InceptionWeightsError as e:
        raise MetricUnavailableError(str(e)) from e


def _prepare_is(ctx: EvalContext) -> None:
    if "is_classifier" in ctx.resources:
        return
    try:
        ctx.resources["is_classifier"] = is_lib.load_classifier(ctx.options.is_classifier,
                                                                ctx.options.batch_size)
    except (is_lib.ClassifierUnavailableError, ValueError) as e:
        raise MetricUnavailableError(str(e)) from e


def _prepare_damsm(ctx: EvalContext) -> None:
    # The run's own DAMSM encoders are part of every GAN checkpoint; a GAN model trained
    # without the DAMSM term (seen by the training callback) holds no image encoder.
    if ctx.parts.image_encoder is None:
        raise MetricUnavailableError("r_precision needs the run's DAMSM image encoder.")


def _prepare_attributes(ctx: EvalContext) -> None:
    if "attribute_classifier" in ctx.resources:
        return
    if ctx.cfg.data.dataset != "shapes":
        raise MetricUnavailableError(f"attribute_accuracy and shapes_fid need the shapes "
                                     f"dataset; this run uses {ctx.cfg.data.dataset!r}.")
    ctx.resources["attribute_classifier"] = attributes_lib.load_or_train_classifier(
        ctx.cfg.data, test_source=ctx.test_source, epochs=ctx.options.classifier_epochs,
        extra_images=ctx.options.classifier_extra_images, verbose=2, log=ctx.log)


# --- Generation and the feature streams. ---------------------------------------------
def _draws(ctx: EvalContext) -> None:
    """Image and caption of every draw: image k mod N_test, a random caption of it."""
    n_test = len(ctx.test_source)
    rng = np.random.default_rng([ctx.options.seed, 1])
    ctx.draw_images = np.arange(ctx.num_images) % n_test
    ctx.draw_captions = rng.integers(0, ctx.bank.captions_per_image, ctx.num_images)


def _make_generate_fn(ctx: EvalContext):
    generator = ctx.parts.gan.sampling_generator(ctx.use_ema)
    text_encoder = ctx.parts.text_encoder

    @tf.function(reduce_retracing=True)
    def generate(z, caption_ids):
        words, sentence = text_encoder(caption_ids, training=False)
        images = interface.generate_images(generator, z, sentence, words,
                                           pipeline.caption_mask(caption_ids), training=False)
        pixels = tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0),
                         tf.uint8)
        return pixels, sentence

    return generate


def _make_encode_fn(ctx: EvalContext):
    image_encoder = ctx.parts.image_encoder

    @tf.function(reduce_retracing=True)
    def encode(pixels):
        _, code = image_encoder(tf.cast(pixels, tf.float32) / 127.5 - 1.0, training=False)
        return code

    return encode


def _caption_ids(ctx: EvalContext, images: np.ndarray, captions: np.ndarray) -> tf.Tensor:
    """Token ids [n, T] of caption `captions[i]` of test image `images[i]`."""
    max_length = ctx.cfg.data.max_caption_length
    # Evaluation reads the first T tokens of a caption, as make_eval_dataset does.
    ids = ctx.bank.ids[images, captions, :max_length]
    if ids.shape[1] < max_length:
        ids = np.pad(ids, [[0, 0], [0, max_length - ids.shape[1]]])
    return tf.constant(ids, tf.int32)


def generate_and_collect(ctx: EvalContext, streams: Sequence[str], progress: bool = True):
    """Generates every draw once and feeds the streams; fills ctx.streams."""
    _draws(ctx)
    generate = _make_generate_fn(ctx)
    encode = _make_encode_fn(ctx) if "damsm" in streams else None
    noise_rng = np.random.default_rng([ctx.options.seed, 2])
    collected = {s: [] for s in streams}
    seconds = {s: 0.0 for s in streams}
    seconds["generation"] = 0.0
    bar = keras.utils.Progbar(ctx.num_images, unit_name="image") if progress else None
    batch = ctx.options.batch_size
    for start in range(0, ctx.num_images, batch):
        stop = min(start + batch, ctx.num_images)
        t0 = time.time()
        ids = _caption_ids(ctx, ctx.draw_images[start:stop], ctx.draw_captions[start:stop])
        z = noise_rng.standard_normal((stop - start, ctx.cfg.generator.z_dim)).astype(np.float32)
        pixels, sentence = generate(tf.constant(z), ids)
        seconds["generation"] += time.time() - t0
        for stream in streams:
            t0 = time.time()
            if stream == "damsm":
                collected[stream].append((encode(pixels).numpy(), sentence.numpy()))
            elif stream == "inception":
                collected[stream].append(ctx.resources["inception"](pixels))
            elif stream == "is_probs":
                collected[stream].append(ctx.resources["is_classifier"](pixels.numpy()))
            elif stream == "attributes":
                collected[stream].append(ctx.resources["attribute_classifier"](pixels.numpy()))
            seconds[stream] += time.time() - t0
        if bar is not None:
            bar.update(stop)
    for stream, parts in collected.items():
        if stream == "damsm":
            ctx.streams["damsm_codes"] = np.concatenate([p[0] for p in parts])
            ctx.streams["damsm_sentences"] = np.concatenate([p[1] for p in parts])
        elif stream == "attributes":
            ctx.streams["attributes"] = attributes_lib.Reading.concat(parts)
        else:
            ctx.streams[stream] = np.concatenate(parts)
    ctx.stream_seconds = seconds


# --- Real-image statistics. ----------------------------------------------------------
def _real_stats_path(ctx: EvalContext) -> str:
    d = ctx.cfg.data
    key = f"{d.dataset}-px{d.image_size}-test"
    if d.dataset == "shapes":
        key += f"-seed{d.shapes_seed}-n{d.shapes_test_size}"
    return os.path.join(inception_lib.cache_dir(), "fid_stats", f"{key}-inception2015.npz")


def real_inception_statistics(ctx: EvalContext) -> Tuple[np.ndarray, np.ndarray, str]:
    """(mu, sigma, source) of the real test images: --real_stats, the cache, or computed."""
    if ctx.options.real_stats:
        mu, sigma = fid_lib.load_statistics(ctx.options.real_stats)
        if mu.shape != (inception_lib.FEATURE_DIM,):
            raise ValueError(f"{ctx.options.real_stats} holds {mu.shape[0]}-d statistics; FID "
                             f"needs the {inception_lib.FEATURE_DIM}-d pool3 ones.")
        return mu, sigma, ctx.options.real_stats
    path = _real_stats_path(ctx)
    if os.path.exists(path):
        mu, sigma = fid_lib.load_statistics(path)
        return mu, sigma, path
    images = ctx.real_images()
    ctx.log(f"Computing Inception statistics of {len(images)} real test images (cached at "
            f"{path}).")
    features = ctx.resources["inception"](images)
    mu, sigma = fid_lib.feature_statistics(features)
    fid_lib.save_statistics(path, mu, sigma, num_images=np.int64(len(images)))
    return mu, sigma, path


# --- The metrics. --------------------------------------------------------------------
@register_metric("fid", ["inception"], _prepare_inception,
                 "FID on TF 2015 Inception pool3 against the real test images")
def _fid(ctx: EvalContext) -> Dict:
    mu_real, sigma_real, source = real_inception_statistics(ctx)
    mu, sigma = fid_lib.feature_statistics(ctx.streams["inception"])
    out = {"value": fid_lib.frechet_distance(mu, sigma, mu_real, sigma_real), "std": None,
           "real_stats": source}
    if ctx.num_images < inception_lib.FEATURE_DIM:
        out["note"] = (f"{ctx.num_images} < {inception_lib.FEATURE_DIM} images: the covariance "
                       "is rank-deficient; not comparable with published FID.")
    return out


@register_metric("is", ["is_probs"], _prepare_is,
                 "Inception Score (improved-gan formula, contiguous splits)")
def _inception_score(ctx: EvalContext) -> Dict:
    mean, std = is_lib.inception_score(ctx.streams["is_probs"], ctx.options.is_splits)
    return {"value": mean, "std": std, "splits": ctx.options.is_splits}


@register_metric("r_precision", ["damsm"], _prepare_damsm,
                 "R-precision with the run's DAMSM encoders (1 true vs 99 mismatched captions)")
def _r_precision(ctx: EvalContext) -> Dict:
    codes, sentences = ctx.streams["damsm_codes"], ctx.streams["damsm_sentences"]
    source = ctx.test_source
    groups = r_precision_lib.mismatched_groups(source.class_ids[ctx.draw_images],
                                               source.image_ids[ctx.draw_images])
    rng = np.random.default_rng([ctx.options.seed, 3])
    mismatched = r_precision_lib.sample_mismatched(groups, ctx.options.r_precision_mismatched,
                                                   rng)
    mean, std = r_precision_lib.r_precision_indexed(codes, sentences, mismatched,
                                                    folds=ctx.options.r_precision_folds)
    return {"value": mean, "std": std, "folds": ctx.options.r_precision_folds}


def _real_reading(ctx: EvalContext) -> attributes_lib.Reading:
    if "real_reading" not in ctx.resources:
        ctx.resources["real_reading"] = ctx.resources["attribute_classifier"](ctx.real_images())
    return ctx.resources["real_reading"]


@register_metric("attribute_accuracy", ["attributes"], _prepare_attributes,
                 "shapes: share of caption-named attributes the image shows")
def _attribute_accuracy(ctx: EvalContext) -> Dict:
    named = [attributes_lib.parse_caption(ctx.caption_text(k)) for k in range(ctx.num_images)]
    judgements = attributes_lib.judge(ctx.streams["attributes"], named)
    summary = attributes_lib.summarize_judgements(judgements)
    real_draws = _real_reading(ctx).take(ctx.draw_images)
    reference = attributes_lib.summarize_judgements(attributes_lib.judge(real_draws, named))
    classifier = ctx.resources["attribute_classifier"]
    num_objects = np.asarray(ctx.test_source.attributes["num_objects"])[ctx.draw_images]
    return {"value": summary.pop("attribute_accuracy"), "std": None, "per_attribute": summary,
            "breakdown": attributes_lib.breakdown(judgements, named, num_objects,
                                                  ctx.streams["attributes"]),
            "real_images": reference["attribute_accuracy"],
            "classifier_test_accuracy": classifier.accuracy}


@register_metric("shapes_fid", ["attributes"], _prepare_attributes,
                 "shapes: FID in the attribute classifier's 256-d feature space")
def _shapes_fid(ctx: EvalContext) -> Dict:
    real = _real_reading(ctx)
    value = fid_lib.fid_from_features(ctx.streams["attributes"].features, real.features)
    return {"value": value, "std": None, "real_images": int(len(real.features)),
            "real_vs_real": _shapes_fid_real_vs_real(ctx, real)}


def _shapes_fid_real_vs_real(ctx: EvalContext, real: attributes_lib.Reading) -> float:
    """shapes-FID of as many real train images as were generated against the test split:
    the value a perfect generator would get with this sample size."""
    key = ("shapes_fid_real_vs_real", ctx.num_images)
    if key not in ctx.resources:
        train = sources.load_source(ctx.cfg.data, "train")
        count = min(ctx.num_images, len(train))
        features = ctx.resources["attribute_classifier"](train.images[:count]).features
        ctx.resources[key] = fid_lib.fid_from_features(features, real.features)
    return ctx.resources[key]


@register_metric("diversity", [], _prepare_attributes,
                 "shapes: spread over noise for one caption / spread of real images that fit it",
                 label=lambda o: f"{o.diversity_captions}x{o.diversity_samples}")
def _diversity(ctx: EvalContext) -> Dict:
    """See `tf_t2i.eval.diversity`; generates its own groups (one caption, many z).

    Captions are drawn at random from the test split among those that at least two real
    test images fit, so that every caption has a real reference group.
    """
    options, source = ctx.options, ctx.test_source
    classifier = ctx.resources["attribute_classifier"]
    rng = np.random.default_rng([options.seed, 4])
    truth = diversity_lib.ground_truth_reading(source.attributes)
    real_pixels, real_reading = ctx.real_images(), _real_reading(ctx)
    generate = _make_generate_fn(ctx)
    samples, per_image = options.diversity_samples, ctx.bank.captions_per_image
    generated, real = [], []
    for draw in rng.permutation(len(source) * per_image):
        if len(generated) == options.diversity_captions:
            break
        image, caption = divmod(int(draw), per_image)
        named = attributes_lib.parse_caption(source.captions[image][caption])
        group = diversity_lib.choose_real_group(diversity_lib.fitting_images(named, truth),
                                                samples, rng)
        if group is None:
            continue
        ids = _caption_ids(ctx, np.full(samples, image), np.full(samples, caption))
        z = rng.standard_normal((samples, ctx.cfg.generator.z_dim)).astype(np.float32)
        pixels = generate(tf.constant(z), ids)[0].numpy()
        generated.append(diversity_lib.group_statistics(classifier(pixels), pixels, named))
        real.append(diversity_lib.group_statistics(real_reading.take(group),
                                                   real_pixels[group], named))
    out = diversity_lib.summarize(generated, real)
    out["std"] = None
    out["samples_per_caption"] = samples
    return out


# --- Running an evaluation. ----------------------------------------------------------
def available_metrics(ctx: EvalContext, names: Sequence[str], required: bool
                      ) -> Tuple[List[str], Dict[str, str]]:
    """Prepares each metric; returns (ready names, {skipped name: reason}).

    Raises:
      MetricUnavailableError: when `required` and one cannot run.
    """
    ready, skipped = [], {}
    for name in names:
        if name not in METRICS:
            raise ValueError(f"Unknown metric {name!r}; known: {sorted(METRICS)}.")
        try:
            METRICS[name].prepare(ctx)
            ready.append(name)
        except MetricUnavailableError as e:
            if required:
                raise MetricUnavailableError(f"{name}: {e}") from e
            skipped[name] = str(e)
    return ready, skipped


def default_metrics(dataset: str) -> List[str]:
    """Everything that applies to the dataset; those that cannot run are skipped."""
    names = ["fid", "is", "r_precision"]
    if dataset == "shapes":
        names += ["attribute_accuracy", "shapes_fid", "diversity"]
    return names


def evaluate(ctx: EvalContext, names: Sequence[str], step: Optional[int] = None,
             progress: bool = True) -> List[Dict]:
    """Generates once, computes each (prepared) metric; returns one row per metric."""
    streams = sorted({s for n in names for s in METRICS[n].streams})
    started = time.time()
    generate_and_collect(ctx, streams, progress=progress)
    rows = []
    for name in names:
        t0 = time.time()
        result = METRICS[name].compute(ctx)
        seconds = time.time() - t0 + sum(ctx.stream_seconds.get(s, 0.0)
                                         for s in METRICS[name].streams)
        metric = METRICS[name]
        label = (f"{name}{metric.label(ctx.options)}" if metric.label
                 else metric_label(name, ctx.num_images))
        row = {"metric": label, "value": result.pop("value"),
               "std": result.pop("std"), "num_images": ctx.num_images,
               "step": step, "ema": ctx.use_ema, "seconds": round(seconds, 2),
               "generation_seconds": round(ctx.stream_seconds["generation"], 2), **result}
        rows.append(row)
    ctx.log(f"Evaluated {len(names)} metric(s) on {ctx.num_images} images in "
            f"{time.time() - started:.0f}s.")
    return rows


def checkpoint_step(parts) -> int:
    return int(parts.gan.step.numpy())


def append_results(model_dir: str, rows: Sequence[Dict]) -> str:
    """Appends rows to <model_dir>/metrics.jsonl (one JSON object per line)."""
    path = os.path.join(model_dir, RESULTS_FILENAME)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    with open(path, "a") as f:
        for row in rows:
            f.write(json.dumps(_plain({**row, "model_dir": model_dir, "timestamp": stamp}),
                               default=_json_default, allow_nan=False) + "\n")
    return path


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"Not JSON serializable: {type(value).__name__}")


def _plain(value):
    """NaN (an attribute no caption named) becomes null: JSON has no NaN."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    return value


def format_table(rows: Sequence[Dict]) -> str:
    """A fixed-width table: metric, value, std, seconds."""
    lines = [f"{'metric':<26}{'value':>12}{'std':>10}{'seconds':>10}"]
    for row in rows:
        std = "" if row.get("std") is None else f"{row['std']:.4f}"
        lines.append(f"{row['metric']:<26}{row['value']:>12.4f}{std:>10}{row['seconds']:>10.1f}")
        for key, value in (row.get("per_attribute") or {}).items():
            lines.append(f"  {key:<24}{value:>12.4f}")
        lines += attributes_lib.format_breakdown(row.get("breakdown") or {})
        if "real_vs_real" in row:
            lines.append(f"  {'real vs real (reference)':<24}{row['real_vs_real']:>12.4f}")
        if "real_distance" in row:
            lines.append(f"  {'real images (reference)':<24}{row['real_distance']:>12.4f}"
                         f"  (generated {row['generated_distance']:.4f})")
        if "real_images" in row and isinstance(row["real_images"], float):
            lines.append(f"  {'real images (reference)':<24}{row['real_images']:>12.4f}")
    return "\n".join(lines)


class TrainingClock:
    """Wall time of training without the evaluations: paused while one runs."""

    def __init__(self, offset: float = 0.0):
        self._started = time.time()
        self._paused_seconds = 0.0
        self._paused_at = None
        self.offset = offset

    def pause(self) -> float:
        """Pauses the clock; returns the training seconds so far."""
        self._paused_at = time.time()
        return self.offset + self._paused_at - self._started - self._paused_seconds

    def resume(self) -> None:
        self._paused_seconds += time.time() - self._paused_at
        self._paused_at = None


def previous_train_seconds(model_dir: str, step: int) -> float:
    """Training seconds of a resumed run: those logged at the last evaluation <= `step`.

    Time between that evaluation and the checkpoint the run resumes from is not known and
    not counted; a fresh run starts at 0.
    """
    path = os.path.join(model_dir, RESULTS_FILENAME)
    best_step, seconds = -1, 0.0
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                at = row.get("step")
                if (row.get("train_seconds") is not None and at is not None
                        and best_step < at <= step):
                    best_step, seconds = at, float(row["train_seconds"])
    return seconds


class EvaluationCallback(keras.callbacks.Callback):
    """Runs the evaluation every `every` steps of GAN training; logs to TensorBoard and JSONL.

    Built before the models exist: at its first evaluation it reads the run's config.json
    and vocabulary from `model_dir` (both written before training starts) and evaluates
    the `TextToImageGAN` it is attached to. Metrics that cannot run are skipped with a
    log line. For example, in a training binary:

        run_training(cfg, model_dir, extra_callbacks=[
            eval_lib.EvaluationCallback(model_dir, every=1000,
                                        options=eval_lib.EvalOptions(num_images=2000))])

    Args:
      model_dir: the training run's directory (metrics.jsonl, logs/eval).
      every: steps between evaluations.
      options: what to evaluate; default EvalOptions() with all metrics of the dataset.
      ctx: an EvalContext to use instead of building one (tests).
      names: the metrics to run instead of preparing `options.metrics` (with `ctx`).
      log: where progress lines go.
    """

    def __init__(self, model_dir: str, every: int, options: Optional[EvalOptions] = None,
                 ctx: Optional[EvalContext] = None, names: Optional[Sequence[str]] = None,
                 log=print):
        super().__init__()
        self.model_dir, self.every, self.log = model_dir, every, log
        self.options = options
        self.ctx = ctx
        self.names = list(names) if names is not None else None
        self.writer = tf.summary.create_file_writer(os.path.join(model_dir, "logs", "eval"))
        self._last = None
        self._clock = None

    def _context(self) -> EvalContext:
        if self.ctx is None:
            cfg = config_lib.load_config(self.model_dir)
            tok = tokenizer_lib.CaptionTokenizer.load(self.model_dir,
                                                      cfg.data.max_caption_length)
            gan = self.model
            parts = types.SimpleNamespace(gan=gan, text_encoder=gan.text_encoder,
                                          image_encoder=gan.image_encoder,
                                          ema_generator=gan.ema_generator)
            options = self.options or EvalOptions(metrics=default_metrics(cfg.data.dataset))
            self.ctx = EvalContext(cfg, tok, parts, options, log=self.log)
        if self.names is None:
            self.names, skipped = available_metrics(self.ctx, self.ctx.options.metrics,
                                                    required=False)
            for name, reason in skipped.items():
                self.log(f"Evaluation callback skips {name}: {reason}")
        return self.ctx

    def on_train_begin(self, logs=None):
        step = int(self.model.step.numpy())
        self._clock = TrainingClock(previous_train_seconds(self.model_dir, step))

    def evaluate(self, step: int) -> List[Dict]:
        ctx = self._context()
        if not self.names:
            return []
        clock = self._clock
        train_seconds = clock.pause() if clock is not None else None
        rows = evaluate(ctx, self.names, step=step, progress=False)
        if clock is not None:
            clock.resume()
            for row in rows:
                row["train_seconds"] = round(train_seconds, 1)
        append_results(self.model_dir, rows)
        with self.writer.as_default():
            for row in rows:
                tf.summary.scalar(f"eval/{row['metric']}", row["value"], step=step)
        self.writer.flush()
        return rows

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.step.numpy())
        if step % self.every or step == self._last:
            return
        self._last = step
        self.evaluate(step)

    def on_train_end(self, logs=None):
        # The curve ends where the run stopped (a step count that `every` does not divide,
        # a time budget), with its training seconds; not after a non-finite loss.
        step = int(self.model.step.numpy())
        if step == self._last or getattr(self.model, "nonfinite_loss", False):
            return
        self._last = step
        self.evaluate(step)
