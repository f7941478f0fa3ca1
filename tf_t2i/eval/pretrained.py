"""Evaluation of the pretrained networks: DAMSM encoders and the captioner, on real images.

`tf_t2i.pretrain` ends each run with one of these on the test split:

* DAMSM (`evaluate_retrieval`): real-image R-precision, each image's global code
  against its own caption and `train.eval_candidates - 1` mismatched ones
  (`tf_t2i.eval.r_precision`), written to `r_precision.json`;
* captioner (`evaluate_captioner`): teacher-forced token accuracy and loss and, on
  shapes, how often the colour and shape words of greedy captions are true of the
  image, written to `captioner_eval.json`.

Generated images are scored by `tf_t2i.eval.eval_lib`, not here.
"""

from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tf_t2i import config as config_lib
from tf_t2i import images as images_lib
from tf_t2i.data import pipeline
from tf_t2i.data import shapes_captions
from tf_t2i.data import tokenizer as tokenizer_lib
from tf_t2i.eval import r_precision as r_precision_lib
from tf_t2i.models import captioner as captioner_lib


# --- DAMSM encoders. ------------------------------------------------------------------
def encode_split(text_encoder, image_encoder, source: pipeline.ImageCaptionSource,
                 bank: pipeline.CaptionBank, cfg: config_lib.ExperimentConfig,
                 batch_size: int = 100, caption_index=None, seed: int = 0
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """(global codes [N,D], sentence embeddings [N,D]) of a split, one caption per image."""
    ds = pipeline.make_eval_dataset(source, bank, batch_size=batch_size,
                                    image_size=cfg.data.image_size,
                                    max_length=cfg.data.max_caption_length, seed=seed,
                                    caption_index=caption_index)

    @tf.function
    def encode(batch):
        _, sentence = text_encoder(batch["caption_ids"], training=False)
        _, code = image_encoder(batch["real_images"], training=False)
        return code, sentence

    codes, sentences = [], []
    for batch in ds:
        c, s = encode(batch)
        codes.append(c.numpy())
        sentences.append(s.numpy())
    return np.concatenate(codes), np.concatenate(sentences)


def evaluate_retrieval(text_encoder, image_encoder, source: pipeline.ImageCaptionSource,
                       tokenizer: tokenizer_lib.CaptionTokenizer,
                       cfg: config_lib.ExperimentConfig, seed: int = 0) -> Dict:
    """Real-image R-precision of a split: one caption per image against mismatched ones.

    Returns:
      {"r_precision": mean, "r_precision_std": std over folds, "num_images": N}.
    """
    bank = pipeline.CaptionBank(source, tokenizer)
    codes, sentences = encode_split(text_encoder, image_encoder, source, bank, cfg, seed=seed)
    groups = r_precision_lib.mismatched_groups(source.class_ids, source.image_ids)
    mismatched = r_precision_lib.sample_mismatched(groups, cfg.train.eval_candidates - 1,
                                                   np.random.default_rng(seed))
    mean, std = r_precision_lib.r_precision_indexed(codes, sentences, mismatched,
                                                    folds=cfg.train.eval_folds)
    return {"r_precision": mean, "r_precision_std": std, "num_images": int(len(codes))}


# --- Captioner. -----------------------------------------------------------------------
def teacher_forced_metrics(captioner, dataset: tf.data.Dataset) -> Dict[str, float]:
    """Mean per-caption cross-entropy and token accuracy over a dataset, teacher-forced.

    The loss is `caption_cross_entropy` averaged over captions; the accuracy counts
    every real target token (EOS included, padding not) of the whole dataset alike.
    """

    @tf.function
    def sums(batch):
        ids = batch["caption_ids"]
        inputs = captioner_lib.shift_right(ids, captioner.bos_id)
        logits = captioner(batch["real_images"], inputs, training=False)
        targets = captioner_lib.append_eos(ids, captioner.eos_id)
        per_example = captioner_lib.caption_cross_entropy(logits, targets)
        real = tf.not_equal(targets, 0)
        hits = tf.logical_and(real, tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                                             tf.cast(targets, tf.int32)))
        return (tf.reduce_sum(per_example), tf.size(per_example),
                tf.reduce_sum(tf.cast(hits, tf.int32)), tf.reduce_sum(tf.cast(real, tf.int32)))

    loss, captions, correct, tokens = 0.0, 0, 0, 0
    for batch in dataset:
        batch_loss, batch_captions, batch_correct, batch_tokens = sums(batch)
        loss += float(batch_loss)
        captions += int(batch_captions)
        correct += int(batch_correct)
        tokens += int(batch_tokens)
    return {"token_accuracy": correct / max(tokens, 1), "loss": loss / max(captions, 1)}


def attribute_precision(captions: Sequence[str],
                        attributes: Mapping[str, Sequence[np.ndarray]]) -> Dict[str, float]:
    """How often colour and shape words of generated captions are true of the image.

    A colour word within two words before "background" describes the background and is
    skipped.

    Args:
      captions: one decoded caption per image.
      attributes: {"color": ..., "shape": ...}, per image the ids of its objects.

    Returns:
      {"color_word_precision", "shape_word_precision"}: 0.0 where no such word occurs.
    """
    table = shapes_captions.token_attributes()
    hits: Dict[str, List[bool]] = {"color": [], "shape": []}
    for i, caption in enumerate(captions):
        words = caption.split()
        for j, word in enumerate(words):
            if word not in table:
                continue
            kind, value = table[word]
            if kind == "color" and "background" in words[j + 1:j + 3]:
                continue
            hits[kind].append(value in set(attributes[kind][i].tolist()))
    return {f"{k}_word_precision": float(np.mean(v)) if v else 0.0 for k, v in hits.items()}


def evaluate_captioner(captioner, tok: tokenizer_lib.CaptionTokenizer,
                       source: pipeline.ImageCaptionSource, cfg: config_lib.ExperimentConfig,
                       max_images: int = 1000) -> Dict:
    """Teacher-forced token accuracy on the split; attribute precision on shapes."""
    bank = pipeline.CaptionBank(source, tok)
    ds = pipeline.make_eval_dataset(source, bank, batch_size=100,
                                    image_size=cfg.data.image_size,
                                    max_length=cfg.data.max_caption_length, seed=0)
    out = teacher_forced_metrics(captioner, ds)
    if cfg.data.dataset == "shapes":
        n = min(max_images, len(source))
        images = images_lib.from_uint8(source.images[:n])
        if images.shape[1] != cfg.data.image_size:
            images = tf.image.resize(images, [cfg.data.image_size] * 2, antialias=True)
        decoded = []
        for start in range(0, n, 100):
            decoded.extend(tok.decode(captioner.greedy_decode(images[start:start + 100])))
        attributes = {k: source.attributes[k][:n] for k in ("color", "shape")}
        out.update(attribute_precision(decoded, attributes))
        out["examples"] = decoded[:5]
    return out
