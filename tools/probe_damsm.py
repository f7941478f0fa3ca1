"""Does the generator fool the DAMSM image encoder? A shape probe on its image codes.

  python tools/probe_damsm.py --run=runs/shapes_ablation/r3_dw3_decay_3600

The DAMSM term pulls each fake towards its caption in the frozen image encoder's
feature space. If the encoder reads the caption's shape in a fake that shows another
shape, the term is satisfied without the shape being drawn: the fake is an adversarial
example of the encoder, and the term stops teaching shape. This measures it on shapes:

1. a linear probe (softmax regression on the standardised DAMSM image codes) is fitted
   to name the shape of the real one-object training images and tested on the real test
   ones, with its confusion matrix;
2. the run's EMA generator draws one image for each one-object test caption that names
   a shape; the attribute classifier (about 99% right on real images) reads the shape
   drawn, the probe reads what the DAMSM encoder sees;
3. `fooled`: of the fakes the classifier reads as another shape than the caption's, the
   fraction the probe reads as the caption's shape; `expected if real`: the same
   fraction for real images of the shapes the classifier read, from the probe's real
   confusion matrix (what an honest encoder would say of those fakes);
4. the DAMSM's own judgement, which is what the generator's DAMSM term follows: its
   matching logit gamma3 * (word relevance + sentence cosine) of each image against its
   caption and the caption's five shape swaps (`shapes_captions.swap_shapes`). `ranking`
   is how often the caption wins, on real images and on the fakes; `fooled (ranking)`
   the same on the fakes drawn with another shape (an honest DAMSM: near 0).

--damsm_dir scores with another DAMSM run's encoders (the fakes are still the run's):
do the fakes that fool the run's DAMSM fool a DAMSM they were not trained against?

Prints the numbers and, with --json, writes them.
"""

import argparse
import json
import os
import sys

from tf_t2i import console  # pylint: disable=g-import-not-at-top

console.import_tensorflow_quietly()  # one clear line on bad input, not TF's start-up block

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from tf_t2i import images as images_lib  # pylint: disable=g-import-not-at-top
from tf_t2i.data import shapes  # pylint: disable=g-import-not-at-top
from tf_t2i.data import shapes_captions  # pylint: disable=g-import-not-at-top
from tf_t2i.data import sources  # pylint: disable=g-import-not-at-top
from tf_t2i import config as config_lib  # pylint: disable=g-import-not-at-top
from tf_t2i.data import pipeline  # pylint: disable=g-import-not-at-top
from tf_t2i.data import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
from tf_t2i.eval import attributes as attributes_lib  # pylint: disable=g-import-not-at-top
from tf_t2i.losses import damsm as damsm_losses  # pylint: disable=g-import-not-at-top
from tf_t2i.models import trained_run  # pylint: disable=g-import-not-at-top
from tf_t2i.training import pretrain_lib  # pylint: disable=g-import-not-at-top
from tf_t2i.training import run_dirs  # pylint: disable=g-import-not-at-top
from tf_t2i.training import train_lib  # pylint: disable=g-import-not-at-top

NUM_SHAPES = len(shapes.SHAPES)


def image_codes(image_encoder, images: np.ndarray, batch_size: int = 200) -> np.ndarray:
    """The encoder's global codes [N, D] of uint8 images."""
    codes = []
    for i in range(0, len(images), batch_size):
        _, code = image_encoder(images_lib.from_uint8(images[i:i + batch_size]),
                                training=False)
        codes.append(np.asarray(tf.cast(code, tf.float32)))
    return np.concatenate(codes)


def one_object(source):
    """uint8 images and shape ids of a split's one-object images, with their indices."""
    index = np.nonzero(np.asarray(source.attributes["num_objects"]) == 1)[0]
    return source.images[index], np.asarray(source.attributes["shape"])[index, 0], index


class ShapeProbe:
    """Softmax regression from standardised codes to the shape id (full-batch gradient
    descent with a little weight decay: small, deterministic, no framework needed)."""

    def __init__(self, codes: np.ndarray, labels: np.ndarray, steps: int = 500,
                 learning_rate: float = 0.5, weight_decay: float = 1e-4):
        self.mean, self.std = codes.mean(0), codes.std(0) + 1e-6
        x = self._standard(codes)
        targets = np.eye(NUM_SHAPES)[labels]
        self.weights = np.zeros([x.shape[1], NUM_SHAPES])
        self.bias = np.zeros(NUM_SHAPES)
        for _ in range(steps):
            error = _softmax(x @ self.weights + self.bias) - targets    # d loss / d logits
            self.weights -= learning_rate * (x.T @ error / len(x) + weight_decay * self.weights)
            self.bias -= learning_rate * error.mean(0)

    def _standard(self, codes):
        return (codes - self.mean) / self.std

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        return (self._standard(codes) @ self.weights + self.bias).argmax(1)


def _softmax(logits):
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def confusion(true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Row-normalised confusion [true, predicted] (rows without examples stay 0)."""
    counts = np.zeros([NUM_SHAPES, NUM_SHAPES])
    np.add.at(counts, (true, predicted), 1.0)
    return counts / np.maximum(counts.sum(1, keepdims=True), 1.0)


def fooled_fractions(caption_shape, drawn_shape, probe_shape, real_confusion):
    """(fooled, expected if real, count) over the fakes drawn with another shape."""
    wrong = drawn_shape != caption_shape
    if not wrong.any():
        return 0.0, 0.0, 0
    fooled = float(np.mean(probe_shape[wrong] == caption_shape[wrong]))
    expected = float(np.mean(real_confusion[drawn_shape[wrong], caption_shape[wrong]]))
    return fooled, expected, int(wrong.sum())


def shape_captions(source, indices, limit):
    """The first caption naming exactly one shape of each listed image, with that shape
    and the image's place in `indices` (images without such a caption are skipped)."""
    captions, named_shapes, picked = [], [], []
    for k, i in enumerate(indices):
        for caption in source.captions[i]:
            named = shapes_captions.parse_caption(caption).shape
            if len(named) == 1:
                captions.append(caption)
                named_shapes.append(next(iter(named)))
                picked.append(k)
                break
        if len(captions) == limit:
            break
    return captions, np.array(named_shapes), np.array(picked, np.int64)


class DAMSMScorer:
    """A DAMSM's matching logit of images against captions (its encoders, vocabulary
    and gamma constants)."""

    def __init__(self, cfg, tokenizer, text_encoder, image_encoder):
        self.cfg, self.tokenizer = cfg, tokenizer
        self.text_encoder, self.image_encoder = text_encoder, image_encoder

    @classmethod
    def from_dir(cls, damsm_dir):
        cfg = config_lib.load_config(damsm_dir)
        tokenizer = tokenizer_lib.CaptionTokenizer.load(damsm_dir, cfg.data.max_caption_length)
        text_encoder, image_encoder = pretrain_lib.build_encoders(cfg, tokenizer.vocab_size)
        train_lib.restore_encoders(text_encoder, image_encoder, damsm_dir)
        return cls(cfg, tokenizer, text_encoder, image_encoder)

    def logits(self, images: np.ndarray, captions, batch_size: int = 200) -> np.ndarray:
        """[N] gamma3 * (R(image i, caption i) + cos(code i, sentence i)), uint8 images."""
        loss = self.cfg.loss
        out = []
        for i in range(0, len(images), batch_size):
            regions, code = self.image_encoder(
                images_lib.from_uint8(images[i:i + batch_size]), training=False)
            ids = tf.constant(self.tokenizer.encode(captions[i:i + batch_size],
                                                    self.cfg.data.max_caption_length))
            words, sentence = self.text_encoder(ids, training=False)
            relevance = damsm_losses.paired_word_relevance(
                words, pipeline.caption_mask(ids), regions, loss.gamma1, loss.gamma2)
            cosine = tf.reduce_sum(tf.math.l2_normalize(tf.cast(code, tf.float32), 1)
                                   * tf.math.l2_normalize(tf.cast(sentence, tf.float32), 1), 1)
            out.append(np.asarray(loss.gamma3 * (relevance + cosine)))
        return np.concatenate(out)


def swap_logits(scorer, images, captions) -> np.ndarray:
    """[N, 6] logits of each image against its caption (column 0) and the caption with
    its shapes moved by 1..5 along the list of shapes."""
    return np.stack([scorer.logits(images, [shapes_captions.swap_shapes(c, k) if k else c
                                            for c in captions]) for k in range(NUM_SHAPES)], 1)


def ranked_first(logits: np.ndarray) -> np.ndarray:
    """bool [N]: the caption (column 0) beats every shape swap."""
    return logits[:, 0] > logits[:, 1:].max(1)


def generate(run, captions, seed, batch_size=100):
    ids = run.tokenizer.encode(captions, run.cfg.data.max_caption_length)
    rng = np.random.default_rng(seed)
    images = []
    for i in range(0, len(captions), batch_size):
        batch = ids[i:i + batch_size]
        z = tf.constant(rng.standard_normal((batch.shape[0], run.cfg.generator.z_dim)),
                        tf.float32)
        images.append(np.asarray(images_lib.to_uint8(run.generate(batch, z))))
    return np.concatenate(images)


def drawn_shapes(reading) -> np.ndarray:
    """The shape the classifier reads in its most likely occupied slot of each image."""
    slot = reading.occupied.argmax(1)
    return reading.shape[np.arange(len(slot)), slot]


def per_shape(true, predicted):
    return {name: round(float(np.mean(predicted[true == k] == k)), 3)
            for k, name in enumerate(shapes.SHAPES) if (true == k).any()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="A shapes GAN run's model_dir.")
    parser.add_argument("--num_captions", type=int, default=900)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--damsm_dir", help="Probe and rank with this DAMSM run's encoders "
                        "instead of the run's own.")
    parser.add_argument("--json", help="Also write the numbers here.")
    args = parser.parse_args()

    if not os.path.isdir(args.run):
        sys.exit(f"error: --run={args.run} is not a run directory.")
    try:
        run = trained_run.load_run(args.run)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: --run={args.run}: {e}")
    if run.cfg.data.dataset != "shapes":
        sys.exit(f"error: --run={args.run} was trained on {run.cfg.data.dataset!r}; the probe "
                 "needs the shapes dataset's ground truth.")
    if args.damsm_dir:
        try:
            scorer = DAMSMScorer.from_dir(args.damsm_dir)
        except (FileNotFoundError, ValueError, run_dirs.DAMSMRunError) as e:
            sys.exit(f"error: --damsm_dir={args.damsm_dir}: {e}")
    else:
        scorer = DAMSMScorer(run.cfg, run.tokenizer, run.text_encoder, run.image_encoder)
    train, test = (sources.load_source(run.cfg.data, s) for s in ("train", "test"))
    train_images, train_shapes, _ = one_object(train)
    test_images, test_shapes, test_index = one_object(test)
    probe = ShapeProbe(image_codes(scorer.image_encoder, train_images), train_shapes)
    real_probe = probe(image_codes(scorer.image_encoder, test_images))
    real_confusion = confusion(test_shapes, real_probe)

    captions, caption_shape, picked = shape_captions(test, test_index, args.num_captions)
    fakes = generate(run, captions, args.seed)
    reading = attributes_lib.load_or_train_classifier(run.cfg.data)(fakes)
    drawn = drawn_shapes(reading)
    fake_probe = probe(image_codes(scorer.image_encoder, fakes))
    fooled, expected, count = fooled_fractions(caption_shape, drawn, fake_probe,
                                               real_confusion)
    real_ranked = ranked_first(swap_logits(scorer, test_images[picked], captions))
    fake_ranked = ranked_first(swap_logits(scorer, fakes, captions))
    wrong = drawn != caption_shape
    out = {
        "run": args.run, "step": run.step, "num_captions": len(captions),
        "damsm_dir": args.damsm_dir or run.cfg.runtime.damsm_dir,
        "real_probe_accuracy": float(np.mean(real_probe == test_shapes)),
        "real_probe_per_shape": per_shape(test_shapes, real_probe),
        "fake_drawn_accuracy": float(np.mean(drawn == caption_shape)),
        "fake_drawn_per_shape": per_shape(caption_shape, drawn),
        "fake_probe_accuracy": float(np.mean(fake_probe == caption_shape)),
        "fake_probe_per_shape": per_shape(caption_shape, fake_probe),
        "fooled": fooled, "fooled_expected_if_real": expected, "fooled_of": count,
        "real_ranking": float(np.mean(real_ranked)),
        "real_ranking_per_shape": per_shape(caption_shape,
                                            np.where(real_ranked, caption_shape, -1)),
        "fake_ranking": float(np.mean(fake_ranked)),
        "fake_ranking_per_shape": per_shape(caption_shape,
                                            np.where(fake_ranked, caption_shape, -1)),
        "fooled_ranking": float(np.mean(fake_ranked[wrong])) if wrong.any() else 0.0,
    }
    print(f"{args.run} (step {run.step}), {len(captions)} one-object captions naming a shape")
    print(f"  probe on real test images: {out['real_probe_accuracy']:.3f} "
          f"{out['real_probe_per_shape']}")
    print(f"  fakes showing the caption's shape (classifier): "
          f"{out['fake_drawn_accuracy']:.3f} {out['fake_drawn_per_shape']}")
    print(f"  fakes the DAMSM probe reads as the caption's shape: "
          f"{out['fake_probe_accuracy']:.3f}")
    print(f"  fooled: {fooled:.3f} of the {count} fakes drawn with another shape are read "
          f"as the caption's by the DAMSM probe (real images of the drawn shapes: "
          f"{expected:.3f})")
    print(f"  the DAMSM ranks the caption above its five shape swaps: real "
          f"{out['real_ranking']:.3f} {out['real_ranking_per_shape']}, fakes "
          f"{out['fake_ranking']:.3f}; fakes drawn with another shape: "
          f"{out['fooled_ranking']:.3f} (fooled, ranking)")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
