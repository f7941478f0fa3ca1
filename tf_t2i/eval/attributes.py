"""Attribute accuracy and classifier-space FID for the shapes dataset.

Shapes images carry their ground truth, so a small classifier trained on real images
can judge generated ones:

* the classifier reads an image as a 3x3 grid of slots, one per named position, and
  predicts for each slot whether an object is there and, if so, its colour, shape and
  size (objects of one image never share a position). Its 256-d penultimate features
  give `shapes_fid`, a distribution distance that needs no Inception file;
* `parse_caption` (from `tf_t2i.data.shapes_captions`) finds what a caption names
  (colours, shapes, sizes, positions, and colour-shape pairs written next to each
  other, "a red circle"), from the synonym lists of `tf_t2i.data.shapes`;
* `judge` checks each named attribute against the classifier's reading of the image:
  a named colour, shape, size or position must be shown by some object, a named pair
  by one object.

The classifier is trained once per dataset configuration (seed, sizes) and cached in
`<cache>/attribute_classifier/` with its accuracy on the real test split.
"""

import dataclasses
import json
import os
import time
from typing import Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf

from tf_t2i import images as images_lib
from tf_t2i.data import shapes
from tf_t2i.data import shapes_captions
from tf_t2i.io import files

CLASSIFIER_SIZE = 64
FEATURE_DIM = 256
NUM_SLOTS = len(shapes.POSITIONS)
ATTRIBUTE_TYPES = ("color", "shape", "size", "position")
JUDGED = ATTRIBUTE_TYPES + ("color_shape",)
CLASSIFIER_VERSION = 1
REQUIRED_ACCURACY = 0.98

# Caption parsing lives beside the shapes vocabulary; eval_lib and diversity still
# reach it through these names.


# --- The classifier. ---------------------------------------------------------------
HEADS = {"occupancy": 1, "color": len(shapes.COLORS), "shape": len(shapes.SHAPES),
         "size": len(shapes.SIZES)}


def _classifier_graph(width: int):
    inputs = keras.Input((CLASSIFIER_SIZE, CLASSIFIER_SIZE, 3), name="images")
    x = inputs
    for i, filters in enumerate((width, 2 * width, 4 * width)):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                name=f"conv{i}a")(x)
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu",
                                name=f"conv{i}b")(x)                           # 32, 16, 8
    x = keras.layers.Flatten(name="flatten")(x)
    features = keras.layers.Dense(FEATURE_DIM, activation="relu", name="features")(x)
    outputs = {"features": features}
    for name, classes in HEADS.items():
        y = keras.layers.Dense(NUM_SLOTS * classes, name=f"{name}_logits")(features)
        shape = (NUM_SLOTS,) if classes == 1 else (NUM_SLOTS, classes)
        outputs[name] = keras.layers.Reshape(shape, name=name)(y)
    return inputs, outputs


def build_classifier(width: int = 32) -> keras.Model:
    """Slot classifier: float images [B, 64, 64, 3] in [-1, 1] -> dict of outputs.

    Outputs: `occupancy` logits [B, 9]; `color` [B, 9, 8], `shape` [B, 9, 6] and
    `size` [B, 9, 2] logits per slot (slot = index into shapes.POSITIONS); `features`
    [B, 256], the penultimate layer (for shapes_fid).
    """
    inputs, outputs = _classifier_graph(width)
    return keras.Model(inputs, outputs, name="shapes_attribute_classifier")


def slot_targets(attributes: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Ground truth per slot: occupancy [N, 9] float, colour/shape/size [N, 9] (-1: empty)."""
    position = np.asarray(attributes["position"])
    n = len(position)
    out = {"occupancy": np.zeros((n, NUM_SLOTS), np.float32)}
    for name in ("color", "shape", "size"):
        out[name] = np.full((n, NUM_SLOTS), -1, np.int32)
    rows, objects = np.nonzero(position >= 0)
    slots = position[rows, objects]
    out["occupancy"][rows, slots] = 1.0
    for name in ("color", "shape", "size"):
        out[name][rows, slots] = np.asarray(attributes[name])[rows, objects]
    return out


def _masked_sparse_ce(y_true, y_pred):
    """Cross-entropy over occupied slots only (label -1 marks an empty slot)."""
    y_true = tf.cast(y_true, tf.int32)
    mask = tf.cast(y_true >= 0, y_pred.dtype)
    ce = keras.losses.sparse_categorical_crossentropy(tf.maximum(y_true, 0), y_pred,
                                                      from_logits=True)
    return tf.reduce_sum(ce * mask, axis=-1)


def _occupancy_bce(y_true, y_pred):
    return tf.reduce_sum(keras.losses.binary_crossentropy(
        y_true[..., None], y_pred[..., None], from_logits=True), axis=-1)


def to_classifier_input(images) -> tf.Tensor:
    """uint8 images [B, H, W, 3] -> float32 [B, 64, 64, 3] in [-1, 1]."""
    x = images_lib.from_uint8(images)
    if x.shape[1] != CLASSIFIER_SIZE or x.shape[2] != CLASSIFIER_SIZE:
        x = tf.image.resize(x, [CLASSIFIER_SIZE, CLASSIFIER_SIZE], antialias=True)
    return x


@dataclasses.dataclass
class Reading:
    """The classifier's reading of a batch: per-slot predictions and features."""
    occupied: np.ndarray   # bool [B, 9]
    color: np.ndarray      # int [B, 9]
    shape: np.ndarray      # int [B, 9]
    size: np.ndarray       # int [B, 9]
    features: np.ndarray   # float32 [B, 256]

    @classmethod
    def concat(cls, readings: List["Reading"]) -> "Reading":
        return cls(*[np.concatenate([getattr(r, f.name) for r in readings])
                     for f in dataclasses.fields(cls)])

    def take(self, indices) -> "Reading":
        """The reading of the images at `indices`, in that order."""
        return type(self)(*[getattr(self, f.name)[indices] for f in dataclasses.fields(self)])


class AttributeClassifier:
    """A trained slot classifier with its test accuracy; call it on uint8 images."""

    def __init__(self, model: keras.Model, accuracy: Optional[Dict[str, float]] = None,
                 batch_size: int = 200):
        self.model = model
        self.accuracy = accuracy or {}
        self.batch_size = batch_size
        self._predict = tf.function(lambda x: self.model(to_classifier_input(x),
                                                         training=False),
                                    reduce_retracing=True)

    def __call__(self, images) -> Reading:
        readings = []
        for i in range(0, len(images), self.batch_size):
            out = {k: v.numpy() for k, v in self._predict(images[i:i + self.batch_size]).items()}
            readings.append(Reading(occupied=out["occupancy"] > 0.0,
                                    color=out["color"].argmax(-1), shape=out["shape"].argmax(-1),
                                    size=out["size"].argmax(-1),
                                    features=out["features"].astype(np.float32)))
        return Reading.concat(readings)


def classifier_accuracy(reading: Reading, attributes: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Accuracy of a reading against the ground truth, per attribute.

    position: the set of occupied slots is exactly right (per image); colour, shape,
    size: right at the object's true slot (per object); all: everything right (per image).
    """
    targets = slot_targets(attributes)
    truth = targets["occupancy"] > 0.5
    out = {"position": float(np.mean(np.all(reading.occupied == truth, axis=1)))}
    per_image_ok = np.all(reading.occupied == truth, axis=1)
    for name in ("color", "shape", "size"):
        right = (getattr(reading, name) == targets[name]) | ~truth
        out[name] = float(np.mean(right[truth] if truth.any() else [1.0]))
        per_image_ok &= np.all(right, axis=1)
    out["all"] = float(np.mean(per_image_ok))
    return out


# Slot permutation of a horizontal flip: left <-> right (every shape is symmetric about
# the vertical axis up to the +-12 degree rotation jitter, so flips stay in distribution).
FLIP_SLOTS = [shapes.POSITIONS.index(" ".join(
    {"left": "right", "right": "left"}.get(w, w) for w in name.split()))
    for name in shapes.POSITIONS]


def _training_dataset(images: np.ndarray, targets: Dict[str, np.ndarray], batch_size: int,
                      seed: int) -> tf.data.Dataset:
    """Shuffled batches with random horizontal flips (slot labels permuted to match)."""
    flip = tf.constant(FLIP_SLOTS)

    def augment(image, target, key):
        flipped = tf.random.stateless_uniform([], key) < 0.5
        image = tf.cond(flipped, lambda: tf.image.flip_left_right(image), lambda: image)
        target = {k: tf.cond(flipped, lambda v=v: tf.gather(v, flip), lambda v=v: v)
                  for k, v in target.items()}
        return to_classifier_input(image[None])[0], target

    keys = tf.random.experimental.stateless_split([seed, 7], len(images))
    ds = tf.data.Dataset.from_tensor_slices((images, targets, keys))
    ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def train_classifier(train_images: np.ndarray, train_attributes: Dict[str, np.ndarray],
                     epochs: int = 6, batch_size: int = 64, learning_rate: float = 2e-3,
                     width: int = 32, seed: int = 0, verbose: int = 1) -> keras.Model:
    """Trains the slot classifier on real uint8 images and their ground truth.

    Returns:
      The classifier (with the `features` output).
    """
    keras.utils.set_random_seed(seed)
    inputs, outputs = _classifier_graph(width)
    model = keras.Model(inputs, outputs, name="shapes_attribute_classifier")
    # The same layers without the feature output, which has no loss.
    trainer = keras.Model(inputs, {k: outputs[k] for k in HEADS})
    steps = -(-len(train_images) // batch_size) * epochs
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    trainer.compile(optimizer=keras.optimizers.Adam(schedule),
                    loss={"occupancy": _occupancy_bce, "color": _masked_sparse_ce,
                          "shape": _masked_sparse_ce, "size": _masked_sparse_ce})
    targets = slot_targets(train_attributes)
    ds = _training_dataset(np.asarray(train_images, np.uint8), targets, batch_size, seed)
    trainer.fit(ds, epochs=epochs, verbose=verbose)
    return model


def extra_training_examples(data, count: int):
    """`count` more real examples from the training stream, past the train split.

    The shapes generator is deterministic in (seed, index); indices after the train
    split's are never in either split, so they add real images without touching the
    test split. Returns (uint8 images, attributes dict).
    """
    start = shapes.SPLIT_OFFSETS["train"] + data.shapes_train_size
    examples = [shapes.generate_example(i, image_size=data.image_size, seed=data.shapes_seed)
                for i in range(start, start + count)]
    images = np.stack([e.image for e in examples]) if examples else np.zeros(
        (0, data.image_size, data.image_size, 3), np.uint8)
    attrs = {f: np.stack([np.asarray(getattr(e.attributes, f)) for e in examples])
             if examples else np.zeros((0, shapes.MAX_OBJECTS), np.int64)
             for f in shapes.ATTRIBUTE_FIELDS}
    return images, attrs


def _cache_key(data) -> str:
    return (f"shapes-seed{data.shapes_seed}-train{data.shapes_train_size}-px{data.image_size}"
            f"-v{CLASSIFIER_VERSION}")


def classifier_path(data, cache_root: Optional[str] = None) -> str:
    """Where the classifier of this dataset configuration is cached (.keras; .json beside)."""
    from tf_t2i.eval import inception  # pylint: disable=g-import-not-at-top
    root = cache_root or os.path.join(inception.cache_dir(), "attribute_classifier")
    return os.path.join(root, _cache_key(data) + ".keras")


def load_or_train_classifier(data, train_source=None, test_source=None,
                             cache_root: Optional[str] = None, epochs: int = 6,
                             extra_images: int = 10000, verbose: int = 1,
                             log=print) -> AttributeClassifier:
    """The cached classifier for this dataset configuration, trained first if missing.

    Args:
      data: the run's DataConfig (shapes only); the cache is keyed by its seed, train
        size and image size.
      train_source, test_source: the splits; loaded from `data` when None.
      cache_root: directory of cached classifiers; default `<cache>/attribute_classifier`.
      epochs: training epochs when it has to be trained.
      extra_images: real images from the training stream past the train split, added to
        the training set (`extra_training_examples`).
      verbose: Keras verbosity of the training.
      log: where progress lines go.
    """
    if data.dataset != "shapes":
        raise ValueError(f"attribute_accuracy and shapes_fid need the shapes dataset, not "
                         f"{data.dataset!r}.")
    path = classifier_path(data, cache_root)
    # Runs evaluated at once on a fresh machine train it once: the others wait, then load.
    with files.interprocess_lock(path[:-len(".keras")] + ".lock"):
        return _load_or_train(data, path, train_source, test_source, epochs, extra_images,
                              verbose, log)


def _load_or_train(data, path, train_source, test_source, epochs, extra_images, verbose,
                   log) -> AttributeClassifier:
    meta_path = path[:-len(".keras")] + ".json"
    if os.path.exists(path) and os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        model = keras.models.load_model(path, compile=False)
        return AttributeClassifier(model, meta.get("test_accuracy"))
    from tf_t2i.data import sources  # pylint: disable=g-import-not-at-top
    train_source = train_source or sources.load_source(data, "train")
    test_source = test_source or sources.load_source(data, "test")
    started = time.time()
    images, attrs = extra_training_examples(data, extra_images)
    images = np.concatenate([train_source.images, images])
    attrs = {f: np.concatenate([np.asarray(train_source.attributes[f]), attrs[f]])
             for f in shapes.ATTRIBUTE_FIELDS}
    log(f"Training the shapes attribute classifier on {len(images)} real images "
        f"({len(train_source)} of the train split + {extra_images} more of its stream), "
        f"{epochs} epochs; once, cached at {path}.")
    model = train_classifier(images, attrs, epochs=epochs, verbose=verbose)
    classifier = AttributeClassifier(model)
    accuracy = classifier_accuracy(classifier(test_source.images), test_source.attributes)
    classifier.accuracy = accuracy
    seconds = time.time() - started
    log("Attribute classifier accuracy on the real test split: " + ", ".join(
        f"{k} {v:.4f}" for k, v in accuracy.items()) + f" ({seconds:.0f}s).")
    if min(accuracy[k] for k in ATTRIBUTE_TYPES) < REQUIRED_ACCURACY:
        log(f"warning: below {REQUIRED_ACCURACY:.0%} on some attribute; attribute accuracy "
            "of generated images is less reliable.")
    with files.atomic_path(path) as tmp:
        model.save(tmp)
    files.atomic_write_json(meta_path, {
        "test_accuracy": accuracy, "train_images": int(len(images)),
        "test_images": len(test_source), "epochs": epochs,
        "train_seconds": round(seconds, 1)}, indent=2)
    return classifier


# --- Judging generated images. -----------------------------------------------------
def judge(reading: Reading,
          named: List[shapes_captions.NamedAttributes]) -> Dict[str, np.ndarray]:
    """For each image and attribute type: 1 shown, 0 not shown, NaN not named.

    A named colour, shape, size or position is shown when some predicted object has
    it; a named colour-shape pair when one predicted object has both. With several
    values of a type named, all must be shown.
    """
    n = len(named)
    out = {name: np.full(n, np.nan) for name in JUDGED}
    for i, names in enumerate(named):
        slots = np.flatnonzero(reading.occupied[i])
        shown = {"color": {int(reading.color[i, s]) for s in slots},
                 "shape": {int(reading.shape[i, s]) for s in slots},
                 "size": {int(reading.size[i, s]) for s in slots},
                 "position": {int(s) for s in slots},
                 "color_shape": {(int(reading.color[i, s]), int(reading.shape[i, s]))
                                 for s in slots}}
        for name in JUDGED:
            wanted = getattr(names, name)
            if wanted:
                out[name][i] = float(wanted <= shown[name])
    return out


def breakdown(judgements: Dict[str, np.ndarray], named: List[shapes_captions.NamedAttributes],
              num_objects: np.ndarray, reading: Reading) -> Dict[str, Dict[str, float]]:
    """Where the mistakes are: per object count, per named shape, objects drawn.

    Args:
        judgements: `judge`'s output for the images.
        named: what each image's caption names.
        num_objects: how many objects the real image behind each caption has (1 or 2).
        reading: the classifier's reading of the images.

    Returns:
        `by_objects`: {"1", "2"} -> `summarize_judgements` of the captions of one- and
        two-object images (binding two objects to one sentence is harder);
        `shape_accuracy`: shape name -> accuracy on captions naming that one shape;
        `objects_drawn`: count -> fraction of images with that many objects seen.
    """
    num_objects = np.asarray(num_objects)
    by_objects = {}
    for count in np.unique(num_objects):
        keep = num_objects == count
        by_objects[str(int(count))] = summarize_judgements(
            {k: v[keep] for k, v in judgements.items()})
    shape_accuracy = {}
    single_shape = np.array([next(iter(n.shape)) if len(n.shape) == 1 else -1 for n in named])
    for shape_id, shape_name in enumerate(shapes.SHAPES):
        values = judgements["shape"][single_shape == shape_id]
        if len(values):
            shape_accuracy[shape_name] = float(np.nanmean(values))
    drawn = np.asarray(reading.occupied).sum(axis=1)
    objects_drawn = {str(int(c)): float(np.mean(drawn == c)) for c in np.unique(drawn)}
    return {"by_objects": by_objects, "shape_accuracy": shape_accuracy,
            "objects_drawn": objects_drawn}


def format_breakdown(out: Dict[str, Dict[str, float]]) -> List[str]:
    """`breakdown`'s output as indented table lines ([] for an empty one)."""
    lines = [f"  {count}-object images: " + ", ".join(
        f"{k} {summary[k]:.3f}" for k in ATTRIBUTE_TYPES + ("all_named",))
        for count, summary in out.get("by_objects", {}).items()]
    if out.get("shape_accuracy"):
        lines.append("  shape, by name: " + ", ".join(
            f"{k} {v:.2f}" for k, v in out["shape_accuracy"].items()))
    if out.get("objects_drawn"):
        lines.append("  objects seen per image: " + ", ".join(
            f"{k}: {v:.2f}" for k, v in out["objects_drawn"].items()))
    return lines


def summarize_judgements(judgements: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Per attribute type: the fraction of captions naming it whose image shows it.

    `attribute_accuracy`, the headline value, is the mean of the four per-type values
    (colour, shape, size, position); `all_named` is the fraction of images that show
    everything their caption names.
    """
    out = {}
    for name in JUDGED:
        values = judgements[name][~np.isnan(judgements[name])]
        out[name] = float(values.mean()) if len(values) else float("nan")
    stacked = np.stack([judgements[k] for k in JUDGED], axis=1)
    out["all_named"] = float(np.mean(np.all(np.nan_to_num(stacked, nan=1.0) == 1.0, axis=1)))
    out["attribute_accuracy"] = float(np.nanmean([out[k] for k in ATTRIBUTE_TYPES]))
    return out
