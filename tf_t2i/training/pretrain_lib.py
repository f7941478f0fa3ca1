"""DAMSM pretraining run: data, encoders, fit with checkpoints, then retrieval evaluation.

Library code (no flags): `tf_t2i/pretrain.py` turns flags into the config and calls
`run_pretraining`.
"""

import os
from typing import Dict

import keras
import tensorflow as tf

from tf_t2i import config as config_lib
from tf_t2i.data import pipeline
from tf_t2i.data import sources
from tf_t2i.data import tokenizer as tokenizer_lib
from tf_t2i.eval.pretrained import evaluate_retrieval
from tf_t2i.io import checkpoints
from tf_t2i.models import factory
from tf_t2i.models import params
from tf_t2i.training import damsm
from tf_t2i.training import runner
from tf_t2i.training import runtime

RESULTS_FILENAME = "r_precision.json"


def load_or_build_tokenizer(cfg: config_lib.ExperimentConfig, model_dir: str,
                            train_source: pipeline.ImageCaptionSource):
    """The run's vocabulary: reused when resuming, so token ids never shift.

    A new run takes the dataset's own vocabulary when the source has one (CUB and
    COCO in the AttnGAN layout: the words of captions.pickle, so a word's id is its
    AttnGAN index + 1 and reference DAMSM embeddings line up; `text.min_word_count`
    does not apply), and otherwise builds one from the training captions.
    """
    if os.path.exists(os.path.join(model_dir, tokenizer_lib.VOCAB_FILENAME)):
        return tokenizer_lib.CaptionTokenizer.load(model_dir, cfg.data.max_caption_length)
    tok = new_tokenizer(cfg, train_source)
    tok.save(model_dir)
    return tok


def new_tokenizer(cfg: config_lib.ExperimentConfig,
                  train_source: pipeline.ImageCaptionSource) -> tokenizer_lib.CaptionTokenizer:
    """The dataset's own vocabulary when it has one, else one built from its captions."""
    if train_source.vocabulary:
        return tokenizer_lib.CaptionTokenizer(train_source.vocabulary,
                                              cfg.data.max_caption_length)
    return tokenizer_lib.CaptionTokenizer.build(train_source.all_captions(),
                                                cfg.data.max_caption_length,
                                                cfg.text.min_word_count)


def build_encoders(cfg: config_lib.ExperimentConfig, vocab_size: int):
    """Builds both encoders and runs them once so their weights exist."""
    text_encoder = factory.build_text_encoder(cfg, vocab_size)
    image_encoder = factory.build_image_encoder(cfg)
    size = cfg.data.image_size
    text_encoder(tf.zeros([1, cfg.data.max_caption_length], tf.int32), training=False)
    image_encoder(tf.zeros([1, size, size, 3]), training=False)
    return text_encoder, image_encoder


def describe(cfg: config_lib.ExperimentConfig, vocab_size: int) -> Dict[str, int]:
    """Trainable parameter counts of the models this run would build (for --dry_run)."""
    text_encoder, image_encoder = build_encoders(cfg, vocab_size)
    return {"text_encoder": params.count_trainable_parameters(text_encoder),
            "image_encoder": params.count_trainable_parameters(image_encoder)}


class DAMSMComponents:
    """The encoders, their pretrainer and optimizer, and the run's checkpoint."""

    def __init__(self, cfg: config_lib.ExperimentConfig, vocab_size: int, model_dir: str,
                 steps_per_data_epoch: int):
        self.text_encoder, self.image_encoder = build_encoders(cfg, vocab_size)
        self.pretrainer = damsm.DAMSMPretrainer(
            self.text_encoder, self.image_encoder, gamma1=cfg.loss.gamma1,
            gamma2=cfg.loss.gamma2, gamma3=cfg.loss.gamma3,
            text_contrastive_weight=cfg.loss.text_contrastive_weight,
            temperature=cfg.loss.contrastive_temperature,
            text_grad_clip=cfg.train.text_grad_clip,
            word_matmul_dtype=("bfloat16" if cfg.runtime.mixed_precision == "mixed_bfloat16"
                               else "float32"),
            hard_negatives=cfg.data.shapes_hard_negatives > 0)
        schedule = damsm.StepDecay(cfg.train.damsm_learning_rate, steps_per_data_epoch,
                                   cfg.train.damsm_lr_decay)
        self.optimizer = keras.optimizers.Adam(schedule, beta_1=cfg.train.damsm_beta1,
                                               beta_2=cfg.train.damsm_beta2)
        self.pretrainer.compile(optimizer=self.optimizer, jit_compile=runtime.use_xla(cfg))
        self.optimizer.build(self.text_encoder.trainable_variables
                             + self.image_encoder.trainable_variables)
        self.checkpoint = checkpoints.CheckpointHandle(
            model_dir, cfg.train.max_checkpoints, text_encoder=self.text_encoder,
            image_encoder=self.image_encoder, optimizer=self.optimizer)

    def parameter_counts(self) -> Dict[str, int]:
        return {"text_encoder": params.count_trainable_parameters(self.text_encoder),
                "image_encoder": params.count_trainable_parameters(self.image_encoder)}


class DAMSMTask(runner.Task):
    """DAMSM pretraining (+ the text contrastive loss), then real-image R-precision."""

    name = "DAMSM"
    results_filename = RESULTS_FILENAME
    reads_hard_negatives = True

    def prepare(self, model_dir, train_source):
        self._images_per_epoch = len(train_source)
        return load_or_build_tokenizer(self.cfg, model_dir, train_source)

    def build(self, vocab_size, model_dir):
        steps_per_data_epoch = max(1, self._images_per_epoch // self.cfg.train.batch_size)
        parts = DAMSMComponents(self.cfg, vocab_size, model_dir, steps_per_data_epoch)
        return runner.Built(parts.pretrainer, parts.optimizer.iterations, parts.checkpoint,
                            parts)

    def evaluate(self, built, tokenizer):
        cfg = self.cfg
        test_source = sources.load_source(cfg.data, "test")
        results = evaluate_retrieval(built.parts.text_encoder, built.parts.image_encoder,
                                     test_source, tokenizer, cfg, seed=cfg.train.seed)
        results.update({"num_candidates": cfg.train.eval_candidates,
                        "folds": cfg.train.eval_folds})
        runtime.log_info(f"Real-image R-precision on the test split: "
                         f"{results['r_precision']:.4f} +- {results['r_precision_std']:.4f}.")
        return results


def run_pretraining(cfg: config_lib.ExperimentConfig, model_dir: str,
                    strategy: tf.distribute.Strategy = None, verbose: int = 1) -> Dict:
    """Trains (or resumes) DAMSM encoders to cfg.train.steps, then evaluates R-precision.

    Returns:
      The results dict also written to `<model_dir>/r_precision.json`.
    """
    return runner.run(DAMSMTask(cfg), model_dir, strategy, verbose).results
