"""Captioner pretraining for the re-captioning loss, and its evaluation.

`python -m tf_t2i.pretrain --task=captioner --damsm_dir=... --model_dir=...` trains the
captioner on real images with teacher forcing (token cross-entropy), using the DAMSM
run's vocabulary so that GAN captions and captioner targets share ids. At the end it
reports, on the test split, the teacher-forced token accuracy and, on shapes, how often
the colour and shape words of greedy captions are true of the image.
"""

import json
import os
import shutil
import time
from typing import Dict

import keras
import numpy as np
import tensorflow as tf

from tf_t2i import config as config_lib
from tf_t2i.data import pipeline
from tf_t2i.data import shapes_captions
from tf_t2i.data import sources
from tf_t2i.data import tokenizer as tokenizer_lib
from tf_t2i.models import captioner as captioner_lib
from tf_t2i.models import factory
from tf_t2i.training import checkpoints
from tf_t2i.training import runtime

RESULTS_FILENAME = "captioner_eval.json"


class CaptionerTrainer(keras.Model):
    """Teacher-forced training of a `Captioner` on (real image, caption) pairs."""

    def __init__(self, captioner, **kwargs):
        super().__init__(**kwargs)
        self.captioner = captioner
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="token_accuracy")

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def _forward(self, batch, training):
        ids = batch["caption_ids"]
        logits = self.captioner(batch["real_images"],
                                captioner_lib.shift_right(ids, self.captioner.bos_id),
                                training=training)
        targets = captioner_lib.append_eos(ids, self.captioner.eos_id)
        return logits, targets

    def _track(self, per_example, logits, targets):
        mask = tf.not_equal(targets, 0)
        correct = tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                           tf.cast(targets, tf.int32))
        self.loss_tracker.update_state(per_example)
        self.accuracy_tracker.update_state(tf.cast(tf.boolean_mask(correct, mask), tf.float32))
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, batch):
        global_batch = tf.shape(batch["caption_ids"])[0] * runtime.num_replicas()
        with tf.GradientTape() as tape:
            logits, targets = self._forward(batch, training=True)
            per_example = captioner_lib.caption_cross_entropy(logits, targets)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
        variables = self.captioner.trainable_variables
        # The image encoder's global-code branch is unused here: it gets no gradient.
        pairs = [(g, v) for g, v in zip(tape.gradient(loss, variables), variables)
                 if g is not None]
        self.optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
        return self._track(per_example, logits, targets)

    def test_step(self, batch):
        logits, targets = self._forward(batch, training=False)
        return self._track(captioner_lib.caption_cross_entropy(logits, targets), logits,
                           targets)


def build_captioner(cfg: config_lib.ExperimentConfig, vocab_size: int):
    captioner = factory.build_captioner(cfg, vocab_size)
    size, t = cfg.data.image_size, cfg.data.max_caption_length
    captioner(tf.zeros([1, size, size, 3]), tf.zeros([1, t + 1], tf.int32), training=False)
    return captioner


def restore_captioner(cfg: config_lib.ExperimentConfig, vocab_size: int):
    """Builds the captioner of `cfg.runtime.captioner_dir` and loads its weights."""
    directory = cfg.runtime.captioner_dir
    path = tf.train.latest_checkpoint(os.path.join(directory, checkpoints.CHECKPOINT_SUBDIR))
    if path is None:
        raise FileNotFoundError(f"--captioner_dir={directory!r} has no checkpoint: run "
                                "`python -m tf_t2i.pretrain --task=captioner` first.")
    cap_cfg = config_lib.load_config(directory)
    captioner = build_captioner(cap_cfg, vocab_size)
    # Only the captioner is read (not its optimizer); every captioner weight must match.
    checkpoints.make_checkpoint(captioner=captioner).restore(path).expect_partial() \
        .assert_existing_objects_matched()
    captioner.trainable = False
    return captioner


def attribute_precision(captions, attributes) -> Dict[str, float]:
    """How often colour and shape words of generated captions are true of the image.

    A colour word within two words before "background" describes the background and is
    skipped.
    """
    table = shapes_captions.token_attributes()
    hits = {"color": [], "shape": []}
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


def evaluate_captioner(captioner, tok, source, cfg, max_images=1000) -> Dict[str, float]:
    """Teacher-forced token accuracy on the split; attribute precision on shapes."""
    bank = pipeline.CaptionBank(source, tok)
    ds = pipeline.make_eval_dataset(source, bank, batch_size=100,
                                    image_size=cfg.data.image_size,
                                    max_length=cfg.data.max_caption_length, seed=0)
    trainer = CaptionerTrainer(captioner)
    trainer.compile()
    results = trainer.evaluate(ds, verbose=0, return_dict=True)
    out = {"token_accuracy": float(results["token_accuracy"]),
           "loss": float(results["loss"])}
    if cfg.data.dataset == "shapes":
        n = min(max_images, len(source))
        images = tf.cast(source.images[:n], tf.float32) / 127.5 - 1.0
        if images.shape[1] != cfg.data.image_size:
            images = tf.image.resize(images, [cfg.data.image_size] * 2, antialias=True)
        decoded = []
        for start in range(0, n, 100):
            decoded.extend(tok.decode(captioner.greedy_decode(images[start:start + 100])))
        attributes = {k: source.attributes[k][:n] for k in ("color", "shape")}
        out.update(attribute_precision(decoded, attributes))
        out["examples"] = decoded[:5]
    return out


def run_captioner_pretraining(cfg: config_lib.ExperimentConfig, model_dir: str,
                              strategy=None, verbose: int = 1) -> Dict:
    """Trains (or resumes) the captioner to cfg.train.steps, then evaluates it."""
    strategy = strategy or runtime.make_strategy(cfg.runtime)
    runtime.set_precision(cfg.runtime)
    keras.utils.set_random_seed(cfg.train.seed)
    damsm_cfg = config_lib.load_config(cfg.runtime.damsm_dir)
    cfg = cfg.replace(data={"max_caption_length": damsm_cfg.data.max_caption_length})
    config_lib.save_config(cfg, model_dir)
    tok = tokenizer_lib.CaptionTokenizer.load(cfg.runtime.damsm_dir,
                                              cfg.data.max_caption_length)
    shutil.copy(os.path.join(cfg.runtime.damsm_dir, tokenizer_lib.VOCAB_FILENAME),
                os.path.join(model_dir, tokenizer_lib.VOCAB_FILENAME))
    started = time.time()
    train_source = sources.load_source(cfg.data, "train")
    test_source = sources.load_source(cfg.data, "test")
    bank = pipeline.CaptionBank(train_source, tok)

    with strategy.scope():
        captioner = build_captioner(cfg, tok.vocab_size)
        trainer = CaptionerTrainer(captioner)
        optimizer = keras.optimizers.Adam(cfg.captioner.learning_rate)
        trainer.compile(optimizer=optimizer, jit_compile=cfg.runtime.jit_compile)
        optimizer.build(captioner.trainable_variables)
        handle = checkpoints.CheckpointHandle(model_dir, cfg.train.max_checkpoints,
                                              captioner=captioner, optimizer=optimizer)
        restored = handle.restore_or_initialize()
    step_fn = lambda: int(optimizer.iterations.numpy())
    checkpoints.fit_to_total_steps(
        trainer, lambda start: pipeline.make_train_dataset(
            train_source, bank, batch_size=cfg.train.batch_size,
            image_size=cfg.data.image_size, max_length=cfg.data.max_caption_length,
            seed=cfg.train.seed, start_step=start),
        handle, step_fn, restored, total_steps=cfg.train.steps,
        steps_per_epoch=cfg.train.steps_per_epoch,
        checkpoint_every=cfg.train.checkpoint_every, max_seconds=cfg.train.max_seconds,
        log_dir=os.path.join(model_dir, "logs"), verbose=verbose)
    results = evaluate_captioner(captioner, tok, test_source, cfg)
    results.update({"split": "test", "step": step_fn(),
                    "train_seconds": round(time.time() - started, 1)})
    path = os.path.join(model_dir, RESULTS_FILENAME)
    with open(path + ".tmp", "w") as f:
        json.dump(results, f, indent=2)
    os.replace(path + ".tmp", path)
    runtime.log_info("Captioner on the test split: " + ", ".join(
        f"{k}={v:.4f}" for k, v in results.items() if isinstance(v, float)) + f" ({path})")
    return results
