"""tf.data input pipeline shared by DAMSM pretraining, GAN training and evaluation.

A dataset is first loaded into an `ImageCaptionSource` (images, all their captions,
ids, classes, attributes) and its captions are tokenized into a dense bank. The
training stream is then a pure function of (seed, start_step):

* epoch e visits the images in a permutation drawn from (seed, e);
* the element at global position p draws its captions, its mismatched image and the
  kept word positions of long captions from a stateless RNG keyed by (seed, p);
* optional noise `z` for the GAN is drawn from (seed, p) as well.

So a run resumed at step k sees exactly the batches an uninterrupted run sees from step
k on, without replaying the stream (the data "RNG state" is the step counter), and the
global batch does not depend on the number of replicas it is split over.

Images come in two forms. Small datasets (shapes) hold decoded uint8 `images` and are
only scaled (and resized when their size differs). Real datasets (CUB, COCO) hold
`encoded_images` (JPEG bytes, any size) decoded per element in the graph with the
AttnGAN/SSA-GAN transform: the shorter side resized to int(S * 76 / 64) (304 for
S = 256), then for training a random S x S crop and a random horizontal flip, both
drawn from the element's (seed, position) key like everything else, and for
evaluation a centre crop without flip.
"""

import dataclasses
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_t2i import images as images_lib
from tf_t2i.data import tokenizer as tokenizer_lib

NO_CLASS = -1
_MISMATCH_TRIES = 16
# The reference loads images at 76/64 of the model's size before cropping to it.
ATTNGAN_LOAD_SCALE = 76 / 64
# fold_in keys of the per-element stateless seed; 7 is the noise.
_AUGMENT_KEY = 11
_HARD_NEGATIVE_KEY = 13


@dataclasses.dataclass
class ImageCaptionSource:
    """A split held in memory, with decoded or with JPEG-encoded images.

    Attributes:
      images: uint8 [N, S, S, 3], or None when `encoded_images` holds the images.
      captions: N lists of C caption strings.
      image_ids: int64 [N].
      class_ids: int64 [N]; NO_CLASS (-1) where the dataset has no classes.
      attributes: optional dict of int arrays [N, ...] (ground truth of the shapes dataset).
      name: for messages.
      encoded_images: object [N] of JPEG bytes (any size), or None when `images` is set;
        decoded per element in the graph, so a large dataset never exists decoded.
      load_scale: encoded images only: the shorter side is resized to
        int(image_size * load_scale) before the crop to image_size.
      random_flip: encoded images only: flip training images horizontally at random.
      vocabulary: the dataset's own word list (tokenizer order, see
        `tokenizer.CaptionTokenizer`), or None to build one from the captions.
      file_names: optional N names, for messages.
    """
    images: Optional[np.ndarray]
    captions: List[List[str]]
    image_ids: np.ndarray
    class_ids: np.ndarray
    attributes: Optional[Dict[str, np.ndarray]] = None
    name: str = "dataset"
    encoded_images: Optional[np.ndarray] = None
    load_scale: float = ATTNGAN_LOAD_SCALE
    random_flip: bool = True
    vocabulary: Optional[List[str]] = None
    file_names: Optional[List[str]] = None

    def __post_init__(self):
        if (self.images is None) == (self.encoded_images is None):
            raise ValueError(f"{self.name}: give exactly one of images and encoded_images.")
        n = len(self)
        if n == 0:
            raise ValueError(f"{self.name}: the split is empty.")
        if len(self.captions) != n or len(self.image_ids) != n or len(self.class_ids) != n:
            raise ValueError(f"{self.name}: {n} images but {len(self.captions)} caption lists, "
                             f"{len(self.image_ids)} ids and {len(self.class_ids)} class ids.")
        if self.images is not None and (self.images.dtype != np.uint8 or self.images.ndim != 4
                                        or self.images.shape[-1] != 3):
            raise ValueError(f"{self.name}: images must be uint8 [N,H,W,3], got "
                             f"{self.images.dtype} {self.images.shape}.")
        if self.encoded_images is not None:
            if self.encoded_images.ndim != 1:
                raise ValueError(f"{self.name}: encoded_images must be a 1-D array of bytes, "
                                 f"got shape {self.encoded_images.shape}.")
            if self.load_scale < 1.0:
                raise ValueError(f"{self.name}: load_scale must be >= 1 (the crop must fit), "
                                 f"got {self.load_scale}.")
        if self.file_names is not None and len(self.file_names) != n:
            raise ValueError(f"{self.name}: {len(self.file_names)} file names for {n} images.")

    def __len__(self):
        return len(self.images) if self.images is not None else len(self.encoded_images)

    @property
    def is_encoded(self) -> bool:
        """True when images are JPEG bytes decoded in the pipeline (`images` is None)."""
        return self.encoded_images is not None

    def load_size(self, image_size: int) -> int:
        """Side the shorter image side is resized to before the crop (encoded images)."""
        return int(image_size * self.load_scale)

    @property
    def captions_per_image(self) -> int:
        return len(self.captions[0])

    def all_captions(self) -> List[str]:
        return [c for caps in self.captions for c in caps]


class CaptionBank:
    """Every caption of a split as token ids, for in-graph sampling.

    Args:
      source: the split.
      tokenizer: the vocabulary.
      hard_negatives: optional N lists of C captions: for each caption, a wrong caption of
        the same image (e.g. `shapes_captions.shape_swapped_captions`), or None where it
        has none; `make_train_dataset(hard_negative_fraction=...)` draws mismatched
        captions from them.
    """

    def __init__(self, source: ImageCaptionSource, tokenizer: tokenizer_lib.CaptionTokenizer,
                 hard_negatives: Optional[Sequence[Sequence[Optional[str]]]] = None):
        ids, lengths = tokenizer_lib.encode_caption_bank(tokenizer, source.captions, source.name)
        self.ids = ids            # int32 [N, C, L]
        self.lengths = lengths    # int32 [N, C]
        self.class_ids = np.asarray(source.class_ids, np.int64)
        self.num_images, self.captions_per_image, self.max_tokens = ids.shape
        self.hard_negative_ids = self.hard_negative_lengths = None
        if hard_negatives is not None:
            if [len(c) for c in hard_negatives] != [len(c) for c in source.captions]:
                raise ValueError(f"{source.name}: hard_negatives must give one entry per "
                                 "caption.")
            # A placeholder word where a caption has none; its length 0 marks it unusable.
            hard_ids, hard_lengths = tokenizer_lib.encode_caption_bank(
                tokenizer, [[c or "none" for c in caps] for caps in hard_negatives],
                source.name + " (hard negatives)")
            missing = np.array([[c is None for c in caps] for caps in hard_negatives])
            self.hard_negative_ids = hard_ids                                  # [N, C, L']
            self.hard_negative_lengths = np.where(missing, 0, hard_lengths).astype(np.int32)


def select_words(ids, length, max_length, seed):
    """Keeps T tokens of a caption: all if it is short, else T random positions in order.

    This is AttnGAN's `get_caption` rule for captions longer than WORDS_NUM.

    Args:
      ids: int32 [L] token ids, zero padded.
      length: int32 scalar, the caption's length.
      max_length: T.
      seed: stateless seed [2].

    Returns:
      int32 [T], zero padded.
    """
    positions = tf.range(tf.shape(ids)[0])
    scores = tf.random.stateless_uniform(tf.shape(ids), seed=seed)
    # Padding positions get score -1 so they are never kept over real words.
    scores = tf.where(positions < length, scores, -1.0)
    keep = tf.sort(tf.math.top_k(scores, k=tf.minimum(max_length, tf.shape(ids)[0])).indices)
    kept = tf.gather(ids, keep)
    kept = tf.where(tf.range(tf.shape(keep)[0]) < length, kept, 0)
    pad = max_length - tf.shape(kept)[0]
    return tf.pad(kept, [[0, pad]])


def _element_fn(bank: CaptionBank, max_length: int, seed: int, noise_dim: int,
                augment_seed: bool = False, hard_negative_fraction: float = 0.0):
    if hard_negative_fraction and bank.hard_negative_ids is None:
        raise ValueError("hard_negative_fraction > 0 needs a CaptionBank built with "
                         "hard_negatives.")
    bank_ids = tf.constant(bank.ids)
    bank_lengths = tf.constant(bank.lengths)
    class_ids = tf.constant(bank.class_ids)
    if hard_negative_fraction:
        hard_ids = tf.constant(bank.hard_negative_ids)
        hard_lengths = tf.constant(bank.hard_negative_lengths)
    n = bank.num_images
    c = bank.captions_per_image

    def caption(image, index, s):
        at = tf.stack([image, tf.cast(index, tf.int64)])
        return select_words(tf.gather_nd(bank_ids, at), tf.gather_nd(bank_lengths, at),
                            max_length, s)

    def fn(position, image):
        base = tf.stack([tf.cast(seed, tf.int64), position])
        seeds = tf.random.experimental.stateless_split(base, num=6)
        first = tf.random.stateless_uniform([], seeds[0], 0, c, dtype=tf.int32)
        # A different caption of the same image, uniformly among the other C - 1.
        offset = tf.random.stateless_uniform([], seeds[1], 1, max(c, 2), dtype=tf.int32)
        second = (first + offset) % c if c > 1 else first

        # Rejection sampling of another image, of another class where classes exist.
        candidates = tf.random.stateless_uniform([_MISMATCH_TRIES], seeds[2], 0, n, dtype=tf.int64)
        own_class = class_ids[image]
        ok = tf.logical_and(
            tf.not_equal(candidates, image),
            tf.logical_or(tf.equal(own_class, NO_CLASS),
                          tf.not_equal(tf.gather(class_ids, candidates), own_class)))
        fallback = (image + 1) % n
        other = tf.cond(tf.reduce_any(ok),
                        lambda: tf.boolean_mask(candidates, ok)[0], lambda: fallback)
        other_caption = tf.random.stateless_uniform([], seeds[3], 0, c, dtype=tf.int32)
        mismatched_ids = caption(other, other_caption,
                                 tf.random.experimental.stateless_fold_in(seeds[5], 1))
        if hard_negative_fraction:
            # The first caption's hard negative, its words kept at the same positions.
            at = tf.stack([image, tf.cast(first, tf.int64)])
            hard_length = tf.gather_nd(hard_lengths, at)
            draw = tf.random.stateless_uniform(
                [], tf.random.experimental.stateless_fold_in(base, _HARD_NEGATIVE_KEY))
            use_hard = tf.logical_and(draw < hard_negative_fraction, hard_length > 0)
            mismatched_ids = tf.cond(
                use_hard,
                lambda: select_words(tf.gather_nd(hard_ids, at), hard_length, max_length,
                                     seeds[4]),
                lambda: mismatched_ids)
            other = tf.where(use_hard, image, other)

        out = {
            "index": image,
            "caption_ids": caption(image, first, seeds[4]),
            "caption_ids_2": caption(image, second, seeds[5]),
            "mismatched_ids": mismatched_ids,
            "mismatched_index": other,
        }
        if noise_dim:
            out["z"] = tf.random.stateless_normal(
                [noise_dim], tf.random.experimental.stateless_fold_in(base, 7))
        if augment_seed:
            out["augment_seed"] = tf.random.experimental.stateless_fold_in(base, _AUGMENT_KEY)
        return out

    return fn


def _index_stream(pool: np.ndarray, seed: int, start_position: int):
    """(position, image index) pairs: epoch e is a permutation of `pool` (the image
    indices of an epoch, each as many times as it comes) drawn from (seed, e)."""
    num_slots = len(pool)
    start_epoch = start_position // num_slots
    offset = start_position % num_slots
    pool = tf.constant(pool, tf.int64)

    def epoch_indices(epoch):
        keys = tf.random.stateless_uniform([num_slots], seed=tf.stack([tf.cast(seed, tf.int64),
                                                                       1_000_003 + epoch]))
        return tf.data.Dataset.from_tensor_slices(tf.gather(pool, tf.argsort(keys, stable=True)))

    images = tf.data.Dataset.range(start_epoch, 2**62).flat_map(
        lambda e: epoch_indices(e)).map(lambda i: tf.cast(i, tf.int64)).skip(offset)
    positions = tf.data.Dataset.range(start_position, 2**62)
    return tf.data.Dataset.zip(positions, images)


def _pipeline_share(stream, batch_size: int, ctx: tf.distribute.InputContext):
    """(the positions of `stream` one input pipeline feeds, per-replica batch size).

    Replicas are numbered worker by worker, so pipeline i feeds the consecutive
    replicas [i * R_i, (i + 1) * R_i) and, in each global batch, one contiguous slice.
    """
    replicas, pipelines = ctx.num_replicas_in_sync, ctx.num_input_pipelines
    if batch_size % replicas or replicas % pipelines:
        raise ValueError(f"A global batch of {batch_size} does not divide among {replicas} "
                         f"replicas fed by {pipelines} input pipelines.")
    per_replica = batch_size // replicas
    share = per_replica * (replicas // pipelines)
    pipeline_id = ctx.input_pipeline_id
    # Only positions are read for every element; the costly map runs on this share only.
    mine = stream.filter(lambda position, image:
                         tf.equal((position % batch_size) // share, pipeline_id))
    return mine, per_replica


def _resize_shorter_side(image, size: int):
    """float [H,W,3] -> shorter side `size`, aspect kept (torchvision's Resize(int))."""
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    # Integer arithmetic: int(size * long / short) without float rounding surprises.
    new_h = tf.where(h <= w, size, size * h // w)
    new_w = tf.where(h <= w, size * w // h, size)
    return tf.cond(tf.logical_and(tf.equal(new_h, h), tf.equal(new_w, w)),
                   lambda: image,
                   lambda: tf.image.resize(image, tf.stack([new_h, new_w]), antialias=True))


def _decode_element(source: ImageCaptionSource, image_size: int, training: bool):
    """Per element: JPEG bytes -> float [S,S,3] in [-1,1], with the reference transform."""
    encoded = source.encoded_images
    load_size = source.load_size(image_size)
    flip = source.random_flip

    def fetch(i):
        # Object array so bytes ending in NUL are not truncated by a fixed-width dtype.
        return np.array(encoded[i], dtype=object)

    def fn(element):
        data = tf.numpy_function(fetch, [element["index"]], tf.string, stateful=False)
        data.set_shape([])
        # INTEGER_ACCURATE is libjpeg's islow IDCT, what PIL (the reference) decodes with.
        image = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")
        image = _resize_shorter_side(tf.cast(image, tf.float32), load_size)
        if training:
            crop_seed, flip_seed = tf.unstack(
                tf.random.experimental.stateless_split(element.pop("augment_seed"), num=2))
            image = tf.image.stateless_random_crop(image, [image_size, image_size, 3],
                                                   seed=crop_seed)
            if flip:
                image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
        else:
            shape = tf.shape(image)
            top = (shape[0] - image_size) // 2
            left = (shape[1] - image_size) // 2
            image = image[top:top + image_size, left:left + image_size]
        image.set_shape([image_size, image_size, 3])
        element["real_images"] = tf.clip_by_value(images_lib.from_uint8(image), -1.0, 1.0)
        return element

    return fn


def _attach_images(source: ImageCaptionSource, image_size: int,
                   negative_images: Optional[np.ndarray] = None):
    images = source.images
    image_ids = np.asarray(source.image_ids, np.int64)
    class_ids = np.asarray(source.class_ids, np.int64)
    attributes = source.attributes or {}

    def scaled(array, idx):
        h, w = array.shape[1:3]
        pixels = tf.numpy_function(lambda i: array[i], [idx], tf.uint8, stateful=False)
        pixels.set_shape([None, h, w, 3])
        out = images_lib.from_uint8(pixels)
        if (h, w) != (image_size, image_size):
            out = tf.clip_by_value(
                tf.image.resize(out, [image_size, image_size], antialias=True), -1.0, 1.0)
        return out

    def fn(batch):
        idx = batch.pop("index")
        mismatched = batch.pop("mismatched_index")
        if images is not None:
            batch["real_images"] = scaled(images, idx)
        if negative_images is not None:
            batch["negative_images"] = scaled(negative_images, idx)
        # Encoded sources were decoded per element (_decode_element) before batching.
        batch["image_id"] = tf.gather(tf.constant(image_ids), idx)
        batch["class_id"] = tf.gather(tf.constant(class_ids), idx)
        batch["mismatched_image_id"] = tf.gather(tf.constant(image_ids), mismatched)
        if attributes:
            batch["attributes"] = {k: tf.gather(tf.constant(v), idx) for k, v in attributes.items()}
        return batch

    return fn


def make_train_dataset(source: ImageCaptionSource, bank: CaptionBank, *, batch_size: int,
                       image_size: int, max_length: int = 18, seed: int = 0,
                       start_step: int = 0, noise_dim: int = 0,
                       hard_negative_fraction: float = 0.0,
                       negative_images: Optional[np.ndarray] = None,
                       epoch_repeats: Optional[np.ndarray] = None,
                       input_context: Optional[tf.distribute.InputContext] = None
                       ) -> tf.data.Dataset:
    """The infinite, deterministic training stream of global batches.

    Element `p` of the stream (global position `p`, batch `p // B`) is a pure function
    of (seed, p): which image, caption, mismatched caption and noise it gets. That makes
    batch k the same whatever `start_step` a run resumes from, and lets an input
    pipeline of a multi-worker run build only its share of each global batch.

    Args:
      source: the split, in memory.
      bank: its tokenized captions.
      batch_size: global batch size B.
      image_size: output side S. Decoded sources are resized (antialiased) when their size
        differs; encoded ones get the reference transform (module docstring).
      max_length: T.
      seed: determines order, caption choices and noise.
      start_step: first batch to emit (resume); batch k is identical whatever start_step.
      noise_dim: when > 0, each element also carries `z` [B, noise_dim] ~ N(0, 1).
      input_context: under `distribute_datasets_from_function`: this pipeline's place.
        It then yields per-replica batches, for each global batch one per replica it
        feeds, in replica order: replica r of R gets positions [kB + rB/R, kB + (r+1)B/R)
        of global batch k, the rows a single device would give it.
      hard_negative_fraction: the share of elements whose mismatched caption is the hard
        negative of its matched caption (`CaptionBank(hard_negatives=...)`; elements whose
        caption has none keep a caption of another image); their mismatched_image_id is
        their own image.
      negative_images: optional uint8 [N, H, W, 3], one per image of `source` (e.g. its
        image with an object added, `shapes_negatives.render_with_extra_objects`): each element
        also carries its image's, scaled and resized as the real images.
      epoch_repeats: optional int [N] >= 1, one per image of `source`: how many times the
        image comes in an epoch (default: once each), e.g. to give the harder scenes more
        of the steps.

    Returns:
      A dataset of dicts: real_images float32 [B,S,S,3] in [-1,1]; caption_ids,
      caption_ids_2, mismatched_ids int32 [B,T]; image_id, class_id,
      mismatched_image_id int64 [B]; attributes (dict of [B,...]) when the source has
      them; z float32 [B, noise_dim] when asked; negative_images float32 [B,S,S,3] when
      given.
    """
    if negative_images is not None and (
            negative_images.dtype != np.uint8 or negative_images.ndim != 4
            or len(negative_images) != len(source) or negative_images.shape[-1] != 3):
        raise ValueError(f"{source.name}: negative_images must be uint8 [{len(source)},H,W,3], "
                         f"got {negative_images.dtype} {negative_images.shape}.")
    pool = np.arange(len(source), dtype=np.int64)
    if epoch_repeats is not None:
        epoch_repeats = np.asarray(epoch_repeats)
        if (epoch_repeats.shape != (len(source),) or epoch_repeats.dtype.kind not in "iu"
                or np.any(epoch_repeats < 1)):
            raise ValueError(f"{source.name}: epoch_repeats must be [{len(source)}] ints >= 1, "
                             f"got {epoch_repeats.dtype} {epoch_repeats.shape}.")
        pool = np.repeat(pool, epoch_repeats)
    stream = _index_stream(pool, seed, start_step * batch_size)
    if input_context is not None and input_context.num_replicas_in_sync > 1:
        stream, batch_size = _pipeline_share(stream, batch_size, input_context)
    ds = stream.map(_element_fn(bank, max_length, seed, noise_dim,
                                augment_seed=source.is_encoded,
                                hard_negative_fraction=hard_negative_fraction),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if source.is_encoded:
        ds = ds.map(_decode_element(source, image_size, training=True),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(_attach_images(source, image_size, negative_images),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def make_eval_dataset(source: ImageCaptionSource, bank: CaptionBank, *, batch_size: int,
                      image_size: int, max_length: int = 18, seed: int = 0,
                      caption_index: Optional[int] = None) -> tf.data.Dataset:
    """One pass over the split in order, one caption per image (last batch may be short).

    Encoded sources are centre-cropped after the resize, without flip, so evaluation
    images (e.g. FID's real set) do not depend on a seed.

    Args:
      caption_index: which caption of each image; None draws one per image from the seed.
    """
    n, c = bank.num_images, bank.captions_per_image
    rng = np.random.default_rng(seed)
    choice = (np.full(n, caption_index, np.int32) if caption_index is not None
              else rng.integers(0, c, n).astype(np.int32))
    ids = tf.constant(bank.ids)
    lengths = tf.constant(bank.lengths)

    def element(i, cap):
        at = tf.stack([i, tf.cast(cap, tf.int64)])
        return {"index": i,
                "caption_ids": _prefix(tf.gather_nd(ids, at), tf.gather_nd(lengths, at), max_length),
                "mismatched_index": i}

    ds = tf.data.Dataset.from_tensor_slices((np.arange(n, dtype=np.int64), choice))
    ds = ds.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if source.is_encoded:
        ds = ds.map(_decode_element(source, image_size, training=False),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size).map(_attach_images(source, image_size),
                                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def _prefix(ids, length, max_length):
    """Evaluation keeps the first T words (deterministic)."""
    kept = ids[:max_length]
    kept = tf.where(tf.range(tf.shape(kept)[0]) < length, kept, 0)
    return tf.pad(kept, [[0, max_length - tf.shape(kept)[0]]])


def caption_mask(caption_ids) -> tf.Tensor:
    """bool [B, T]: True at real words."""
    return tf.not_equal(caption_ids, tokenizer_lib.PAD_ID)
