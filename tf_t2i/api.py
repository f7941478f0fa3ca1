"""The Python API: a trained generator as an object, from a run or from an export.

    import tf_t2i
    model = tf_t2i.TextToImage.from_run("runs/ssagan")         # the training directory
    model = tf_t2i.TextToImage.from_export("exports/t2i")      # or the served SavedModel
    images = model.generate(["a large red circle in the center"], seeds=[0])
    model.save_grid(["a small blue square on the left"], "grid.png", samples_per_caption=8)
    maps = model.generate_with_maps(["a small blue square on the left"], seeds=[0])
    model.save_map_sheet(["a small blue square on the left"], "maps.png")

Both constructors compute the same function the server does (`export_lib.generate`):
the caption is tokenized with the run's vocabulary and the noise of each image comes from
its seed alone (stateless RNG), so one (caption, seed) gives the same image from the run,
from its export, and from a TF Serving request.
"""

import contextlib
import json
import os
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

Seeds = Union[None, int, Sequence[int]]
# Images drawn per generator call: memory stays bounded whatever the number asked.
GENERATE_BATCH = 64
# Images (with M maps each, M up to 2 * 18 at 256 px) per generate_with_maps call.
MAPS_BATCH = 8
# A grid's images; more is not something to look at (use generate in a loop).
MAX_GRID_IMAGES = 1024
# Rows of a map sheet (each an image and its maps).
MAX_MAP_SHEET_ROWS = 64


class TextToImage:
    """Captions in, uint8 images out. Build it with `from_run` or `from_export`.

    Attributes:
      image_size: side of the generated images in pixels.
      source: where the model came from (a run's checkpoint or an export's directory).
      use_ema: whether the EMA copy of the generator draws (None when unknown).
    """

    def __init__(self, generate_fn: Callable, image_size: int, source: str,
                 use_ema: Optional[bool] = None, style_generator=None, vocabulary=None,
                 max_words: Optional[int] = None, maps_fn: Optional[Callable] = None):
        self._generate_fn = generate_fn
        self._maps_fn = maps_fn
        self._style_generator = style_generator
        self.image_size = int(image_size)
        self.source = source
        self.use_ema = use_ema
        self.vocabulary = frozenset(vocabulary) if vocabulary is not None else None
        self.max_words = max_words

    def too_long(self, captions: Sequence[str]) -> List[str]:
        """Captions with more words than the model reads (it reads the first
        `max_words`); empty when that length is not known."""
        if self.max_words is None:
            return []
        from tf_t2i.data import words  # pylint: disable=g-import-not-at-top
        return [c for c in captions if len(words.split_words(c)) > self.max_words]

    def unknown_words(self, captions: Sequence[str]) -> List[str]:
        """Words of `captions` outside the training vocabulary (read as [UNK]); empty
        when the vocabulary is not known (an export)."""
        if self.vocabulary is None:
            return []
        from tf_t2i.data import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
        return sorted({w for c in captions for w in tokenizer_lib.split_words(c)}
                      - self.vocabulary)

    @classmethod
    def from_run(cls, model_dir: str, use_ema: bool = True) -> "TextToImage":
        """The latest checkpoint of a training directory (EMA generator by default).

        Raises:
          FileNotFoundError: no run or no checkpoint in `model_dir`.
          ValueError: `use_ema` asked of a run trained without an EMA copy.
        """
        if not os.path.isfile(os.path.join(model_dir, "config.json")):
            raise FileNotFoundError(f"{model_dir} is not a training run (no config.json).")
        from tf_t2i.serving import export_lib  # pylint: disable=g-import-not-at-top
        module, _, tokenizer, info = export_lib.build_module(model_dir, use_ema=use_ema)

        def generate(captions, seeds):
            return module(captions, seeds)["images"].numpy()

        def generate_with_maps(captions, seeds):
            return module.with_maps(captions, seeds)

        # Style generators read `truncation_psi`; SSA-GAN and AttnGAN have none.
        style = module.generator if hasattr(module.generator, "truncation_psi") else None
        return cls(generate, module.image_size, info["checkpoint"], use_ema, style,
                   tokenizer.vocabulary, info["max_caption_length"], generate_with_maps)

    @classmethod
    def from_export(cls, path: str) -> "TextToImage":
        """An exported SavedModel: a version directory, or an export base (its newest
        version). Needs TensorFlow only, not the run or its checkpoints.

        Raises:
          FileNotFoundError: no SavedModel at `path`.
        """
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        from tf_t2i.serving import export_lib  # pylint: disable=g-import-not-at-top
        version_dir = _version_dir(path)
        loaded = tf.saved_model.load(version_dir)
        signature = loaded.signatures[export_lib.SERVING_DEFAULT]
        info_path = os.path.join(version_dir, export_lib.ASSETS_EXTRA,
                                 export_lib.EXPORT_INFO_FILENAME)
        info = {}
        if os.path.isfile(info_path):
            with open(info_path) as f:
                info = json.load(f)
        image_size = info.get("image_size") or int(
            signature.structured_outputs[export_lib.IMAGES].shape[1])

        def generate(captions, seeds):
            out = signature(captions=tf.constant(captions, tf.string),
                            seeds=tf.constant(seeds, tf.int64))
            return out[export_lib.IMAGES].numpy()

        maps_signature = loaded.signatures.get(export_lib.GENERATE_WITH_MAPS)

        def generate_with_maps(captions, seeds):
            return maps_signature(captions=tf.constant(captions, tf.string),
                                  seeds=tf.constant(seeds, tf.int64))

        # Exports written before the signature existed draw images, not maps.
        model = cls(generate, image_size, version_dir, info.get("use_ema"),
                    max_words=info.get("max_caption_length"),
                    maps_fn=generate_with_maps if maps_signature is not None else None)
        model._loaded = loaded  # keeps the SavedModel's variables and tables alive
        return model

    def generate(self, captions: Union[str, Sequence[str]], seeds: Seeds = None,
                 truncation_psi: Optional[float] = None) -> np.ndarray:
        """Draws one image per caption.

        Args:
          captions: a caption or a list of them.
          seeds: one noise seed per caption; an int gives every caption that seed; None
            hashes each caption into its seed (as the server's `generate_unseeded`), so
            a caption always gives the same image.
          truncation_psi: style generators of a run only: pull the style vectors toward
            their average (1 = none; the config's value when None).

        Returns:
          uint8 [B, H, W, 3].

        Raises:
          ValueError: an empty caption, a seed count that does not match, or a
            truncation the model cannot apply.
        """
        captions = [captions] if isinstance(captions, str) else list(captions)
        check_captions(captions)
        seeds = self._seeds(captions, seeds)
        with self._truncation_context(truncation_psi):
            return self._generate_in_batches(captions, seeds)

    def _truncation_context(self, truncation_psi: Optional[float]):
        """A context that applies `truncation_psi` to the style generators (nothing when
        None); refuses it for a model without style generators to set."""
        if truncation_psi is None:
            return contextlib.nullcontext()
        if self._style_generator is None:
            raise ValueError(f"truncation_psi applies to the style generators of a run "
                             f"(from_run); {self.source} has none to set.")
        return _truncation(self._style_generator, truncation_psi)

    @staticmethod
    def _grid_rows(captions, samples_per_caption: int, seed: int, check_size):
        """(captions, one row per caption and sample, their seeds: seed, seed + 1, ... in
        every caption's row, so the noise is the same down each column)."""
        captions = [captions] if isinstance(captions, str) else list(captions)
        if samples_per_caption < 1:
            raise ValueError(f"samples_per_caption must be >= 1, got {samples_per_caption}.")
        check_size(len(captions), samples_per_caption)
        rows = [c for c in captions for _ in range(samples_per_caption)]
        seeds = [seed + j for _ in captions for j in range(samples_per_caption)]
        return captions, rows, seeds

    def _generate_in_batches(self, captions: List[str], seeds: np.ndarray) -> np.ndarray:
        """The generator on GENERATE_BATCH captions at a time (the same images as one call:
        each image depends on its own caption and seed only)."""
        if not captions:
            return np.zeros([0, self.image_size, self.image_size, 3], np.uint8)
        out = np.empty([len(captions), self.image_size, self.image_size, 3], np.uint8)
        for start in range(0, len(captions), GENERATE_BATCH):
            stop = start + GENERATE_BATCH
            out[start:stop] = self._generate_fn(captions[start:stop], seeds[start:stop])
        return out

    def save_grid(self, captions: Union[str, Sequence[str]], path: str,
                  samples_per_caption: int = 4, seed: int = 0,
                  truncation_psi: Optional[float] = None) -> str:
        """A PNG grid: one row per caption, `samples_per_caption` images with seeds
        seed, seed + 1, ... (the same noise down each column). Returns the path."""
        from tf_t2i.training import callbacks  # pylint: disable=g-import-not-at-top
        captions, rows, seeds = self._grid_rows(captions, samples_per_caption, seed,
                                                check_grid_size)
        images = self.generate(rows, seeds, truncation_psi)
        grid = callbacks.render_grid(images, captions, samples_per_caption)
        return callbacks.save_png_atomic(grid, path)

    def generate_with_maps(self, captions: Union[str, Sequence[str]], seeds: Seeds = None,
                           truncation_psi: Optional[float] = None) -> Dict[str, np.ndarray]:
        """Draws one image per caption with the generator's maps: where it drew what.

        The images equal `generate`'s. The maps are those of the export's
        `generate_with_maps` signature (`tf_t2i.serving.signatures`): SSA-GAN's predicted
        mask per generator block, or the AttnGAN family's word attention per later
        stage and caption position (each divided by its maximum), resized to the image.

        Args: as `generate`.

        Returns:
          {"images": uint8 [B, H, W, 3], "maps": float32 [B, M, H, W] in [0, 1],
           "map_labels": str [B, M], "map_words": str [B, M] ("" for a map of no word)}.

        Raises:
          ValueError: as `generate`, or an export written before the signature existed.
        """
        if self._maps_fn is None:
            raise ValueError(f"{self.source} has no generate_with_maps signature (exported "
                             "before it existed): export the run again.")
        captions = [captions] if isinstance(captions, str) else list(captions)
        check_captions(captions)
        seeds = self._seeds(captions, seeds)
        parts = []
        with self._truncation_context(truncation_psi):
            # Each image and its maps depend on its own caption and seed only. No caption
            # is one (empty) call too: it still says how many maps an image has.
            for start in range(0, max(1, len(captions)), MAPS_BATCH):
                stop = start + MAPS_BATCH
                parts.append(self._maps_fn(captions[start:stop], seeds[start:stop]))
        out = {}
        for key in ("images", "maps", "map_labels", "map_words"):
            value = np.concatenate([np.asarray(p[key]) for p in parts])
            if value.dtype == object:  # strings come back as bytes
                value = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(value)
            out[key] = value
        return out

    def save_map_sheet(self, captions: Union[str, Sequence[str]], path: str,
                       samples_per_caption: int = 1, seed: int = 0,
                       truncation_psi: Optional[float] = None) -> str:
        """A PNG sheet: one row per caption and seed (seed, seed + 1, ...) with the image
        and its maps over it, labelled (`tf_t2i.serving.map_sheet`). Returns the path."""
        from tf_t2i.serving import map_sheet  # pylint: disable=g-import-not-at-top
        from tf_t2i.training import callbacks  # pylint: disable=g-import-not-at-top
        _, rows, seeds = self._grid_rows(captions, samples_per_caption, seed,
                                         check_map_sheet_size)
        out = self.generate_with_maps(rows, seeds, truncation_psi)
        titles = [f"{caption} (seed {s})" for caption, s in zip(rows, seeds)]
        sheet = map_sheet.render_map_sheet(out["images"], out["maps"],
                                           out["map_labels"].tolist(), titles)
        return callbacks.save_png_atomic(sheet, path)

    @staticmethod
    def _seeds(captions, seeds) -> np.ndarray:
        if seeds is None:
            from tf_t2i.serving import export_lib  # pylint: disable=g-import-not-at-top
            return export_lib.caption_seeds(captions).numpy()
        if isinstance(seeds, (int, np.integer)):
            return np.full([len(captions)], int(seeds), np.int64)
        seeds = np.asarray(seeds, np.int64).reshape([-1])
        if len(seeds) != len(captions):
            raise ValueError(f"{len(seeds)} seeds for {len(captions)} captions: give one "
                             f"seed per caption (or one int for all).")
        return seeds


def _check_at_most(num_captions: int, samples_per_caption: int, limit: int, unit: str,
                   holder: str, method: str) -> None:
    total = num_captions * samples_per_caption
    if total > limit:
        raise ValueError(f"{num_captions} caption(s) x {samples_per_caption} samples = {total:,} "
                         f"{unit} is more than {holder} holds (at most {limit:,}); draw fewer, "
                         f"or call TextToImage.{method} in a loop.")


def check_grid_size(num_captions: int, samples_per_caption: int) -> None:
    """Raises ValueError when a grid would hold more than MAX_GRID_IMAGES images."""
    _check_at_most(num_captions, samples_per_caption, MAX_GRID_IMAGES, "images", "a grid",
                   "generate")


def check_map_sheet_size(num_captions: int, samples_per_caption: int) -> None:
    """Raises ValueError when a map sheet would have more than MAX_MAP_SHEET_ROWS rows."""
    _check_at_most(num_captions, samples_per_caption, MAX_MAP_SHEET_ROWS, "rows",
                   "a map sheet", "generate_with_maps")


def check_captions(captions: Sequence[str]) -> None:
    """Raises ValueError (EmptyCaptionError) naming the first caption with no word in it."""
    from tf_t2i.data import words  # pylint: disable=g-import-not-at-top
    words.check_captions(captions)


@contextlib.contextmanager
def _truncation(generator, psi: float):
    """A style generator's `truncation_psi` (read when it runs) set for one call, then
    put back."""
    if not 0.0 <= psi <= 1.0:
        raise ValueError(f"truncation_psi must be in [0, 1], got {psi}.")
    old, generator.truncation_psi = generator.truncation_psi, float(psi)
    try:
        yield
    finally:
        generator.truncation_psi = old


def _version_dir(path: str) -> str:
    """`path` if it holds a SavedModel, else the newest numeric version inside it."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    if os.path.isdir(path):
        versions = sorted((int(n) for n in os.listdir(path) if n.isdigit()
                           and os.path.isfile(os.path.join(path, n, "saved_model.pb"))))
        if versions:
            return os.path.join(path, str(versions[-1]))
    raise FileNotFoundError(f"No SavedModel at {path} (neither a version directory with "
                            f"saved_model.pb nor an export base with numbered versions).")


# --- Metrics on a user's own images. ---------------------------------------------------
Images = Union[np.ndarray, str]


def fid_statistics(images: np.ndarray, save_to: Optional[str] = None,
                   weights_path: Optional[str] = None, features=None):
    """FID statistics (mu [2048], sigma [2048, 2048]) of uint8 images [N, H, W, 3], N >= 2.

    Args:
      images: uint8 (or 0..255 float) RGB images; other sizes than 299 are resized with
        TF1's bilinear resize, as the TTUR / pytorch-fid reference.
      save_to: also write them as a pytorch-fid `.npz` (keys `mu`, `sigma`).
      weights_path: the FID Inception TorchScript file; default: the cache that
        `python -m tf_t2i.evaluate --fetch_inception` fills.
      features: a feature extractor images -> [N, D] to use instead of FID Inception.

    Raises:
      tf_t2i.eval.inception.InceptionWeightsError: the weights are missing or corrupt.
      ValueError: images of the wrong shape or fewer than 2.
    """
    from tf_t2i.eval import fid as fid_lib  # pylint: disable=g-import-not-at-top
    if features is None:
        from tf_t2i.eval import inception  # pylint: disable=g-import-not-at-top
        features = inception.fid_inception(weights_path)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"Expected images [N, H, W, 3], got shape {images.shape}.")
    mu, sigma = fid_lib.feature_statistics(features(images))
    if save_to:
        fid_lib.save_statistics(save_to, mu, sigma)
    return mu, sigma


def fid(first: Images, second: Images, weights_path: Optional[str] = None,
        features=None) -> float:
    """Frechet Inception Distance (Heusel et al. 2017) between two image sets.

    Each side is uint8 images [N, H, W, 3] or the path of a pytorch-fid / TTUR `.npz`
    of statistics (e.g. a dataset's published reference statistics). Arguments as
    `fid_statistics`.
    """
    from tf_t2i.eval import fid as fid_lib  # pylint: disable=g-import-not-at-top
    if features is None and not (isinstance(first, str) and isinstance(second, str)):
        from tf_t2i.eval import inception  # pylint: disable=g-import-not-at-top
        features = inception.fid_inception(weights_path)

    def statistics(side):
        if isinstance(side, str):
            return fid_lib.load_statistics(side)
        return fid_statistics(side, features=features)

    return fid_lib.frechet_distance(*statistics(first), *statistics(second))


def r_precision(images: np.ndarray, captions: Sequence[str], damsm_dir: str,
                candidates: int = 100, folds: int = 10, seed: int = 0):
    """R-precision (Xu et al. 2018, AttnGAN) of images against their captions, with the
    encoders of a DAMSM run: for each image, does its own caption's sentence vector score
    above `candidates - 1` captions of other images (cosine with the global image code)?

    Args:
      images: uint8 RGB [N, H, W, 3] (resized to the run's image size when different).
      captions: N captions, captions[i] describing images[i].
      damsm_dir: a finished `tf_t2i.pretrain` run.
      candidates: 1 true + candidates - 1 mismatched captions per image, drawn (with
        `seed`) from the other images' captions that differ from the true one.
      folds: contiguous folds of the images for the mean and std.

    Returns:
      (mean, std) over the folds.

    Raises:
      FileNotFoundError / ValueError: not a DAMSM run; shapes, counts or captions that
        do not allow the protocol (one line each).
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tf_t2i import config as config_lib  # pylint: disable=g-import-not-at-top
    from tf_t2i import images as images_lib  # pylint: disable=g-import-not-at-top
    from tf_t2i.data import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
    from tf_t2i.eval import r_precision as r_precision_lib  # pylint: disable=g-import-not-at-top
    from tf_t2i.training import pretrain_lib, train_lib  # pylint: disable=g-import-not-at-top
    images, captions = np.asarray(images), list(captions)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"Expected images [N, H, W, 3], got shape {images.shape}.")
    if len(captions) != len(images):
        raise ValueError(f"{len(captions)} captions for {len(images)} images: give one "
                         f"caption per image.")
    check_captions(captions)
    if not os.path.isfile(os.path.join(damsm_dir, "config.json")):
        raise FileNotFoundError(f"{damsm_dir} is not a DAMSM pretraining run (no config.json).")
    mismatched = _mismatched_captions(captions, candidates - 1, seed)
    cfg = config_lib.load_config(damsm_dir)
    tok = tokenizer_lib.CaptionTokenizer.load(damsm_dir, cfg.data.max_caption_length)
    text_encoder, image_encoder = pretrain_lib.build_encoders(cfg, tok.vocab_size)
    train_lib.restore_encoders(text_encoder, image_encoder, damsm_dir)
    size = cfg.data.image_size
    codes, sentences = [], []
    for i in range(0, len(images), 100):
        x = images_lib.from_uint8(images[i:i + 100])
        if x.shape[1] != size or x.shape[2] != size:
            x = tf.image.resize(x, [size, size], antialias=True)
        codes.append(image_encoder(x, training=False)[1].numpy())
        ids = tf.cast(tok.encode(captions[i:i + 100]), tf.int32)
        sentences.append(text_encoder(ids, training=False)[1].numpy())
    return r_precision_lib.r_precision_indexed(np.concatenate(codes), np.concatenate(sentences),
                                               mismatched, folds=folds)


def _mismatched_captions(captions: Sequence[str], count: int, seed: int) -> np.ndarray:
    """int [N, count]: for each caption, `count` indices of other, different captions."""
    rng = np.random.default_rng(seed)
    names = np.asarray(captions, dtype=object)
    rows = []
    for i, caption in enumerate(captions):
        pool = np.flatnonzero(names != caption)
        if len(pool) < count:
            raise ValueError(f"R-precision with {count + 1} candidates needs at least "
                             f"{count} captions different from each one; {caption!r} has "
                             f"{len(pool)}.")
        rows.append(rng.choice(pool, count, replace=False))
    return np.asarray(rows, np.int64).reshape([len(captions), count])
