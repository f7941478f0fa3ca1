"""What one evaluation reads (`EvalContext`), the metric registry, and the generation pass.

The protocol follows the reference code (AttnGAN / DM-GAN / DF-GAN sampling): draw k
takes test image k mod N_test and one of its captions at random, a fresh noise vector,
and generates one image; the generated images are quantised to uint8 before any
metric sees them, as saved PNGs would be. One pass over the draws
(`generate_and_collect`) feeds every requested metric, so generation runs once however
many metrics are asked for.

Metrics are registered by name (stylegan2-ada-pytorch's `metric_main` style), each with
the streams of features it needs, a `prepare` step that loads its networks or says why
it cannot run, and a `compute` step; `metric_adapters` registers them and `eval_lib`
runs them.
"""

import dataclasses
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tf_t2i import images as images_lib
from tf_t2i.data import pipeline
from tf_t2i.data import sources
from tf_t2i.eval import attributes as attributes_lib
from tf_t2i.models import interface

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
    f2f_pairs: int = 500                   # F2F consistency: pairs of captions of one image.


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
        out = [images_lib.to_uint8(batch["real_images"]).numpy() for batch in ds]
        return np.concatenate(out)


# --- Generation and the feature streams. ---------------------------------------------
def _draws(ctx: EvalContext) -> None:
    """Image and caption of every draw: image k mod N_test, a random caption of it."""
    n_test = len(ctx.test_source)
    rng = np.random.default_rng([ctx.options.seed, 1])
    ctx.draw_images = np.arange(ctx.num_images) % n_test
    ctx.draw_captions = rng.integers(0, ctx.bank.captions_per_image, ctx.num_images)


def make_generate_fn(ctx: EvalContext):
    generator = ctx.parts.sampling_generator(ctx.use_ema)
    text_encoder = ctx.parts.text_encoder

    @tf.function(reduce_retracing=True)
    def generate(z, caption_ids):
        words, sentence = text_encoder(caption_ids, training=False)
        images = interface.generate_images(generator, z, sentence, words,
                                           pipeline.caption_mask(caption_ids), training=False)
        return images_lib.to_uint8(images), sentence

    return generate


def _make_encode_fn(ctx: EvalContext):
    image_encoder = ctx.parts.image_encoder

    @tf.function(reduce_retracing=True)
    def encode(pixels):
        _, code = image_encoder(images_lib.from_uint8(pixels), training=False)
        return code

    return encode


def caption_ids(ctx: EvalContext, images: np.ndarray, captions: np.ndarray) -> tf.Tensor:
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
    generate = make_generate_fn(ctx)
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
        ids = caption_ids(ctx, ctx.draw_images[start:stop], ctx.draw_captions[start:stop])
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
