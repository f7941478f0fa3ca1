"""DAMSM pretraining of the text and image encoders, with the text contrastive loss.

Loss per batch (Xu et al. 2018 for DAMSM; Ye et al. 2021, T2I_CL, for the contrastive
term):

    L = DAMSM(c1) + DAMSM(c2) + w * NT-Xent(s(c1), s(c2))        (w = 1)
    DAMSM(c) = word loss (both directions) + sentence loss (both directions)

where c1, c2 are two different captions of each image. With w = 0 only DAMSM(c1) is
computed (plain AttnGAN pretraining). With hard negatives each image's mismatched
caption (for shapes, its own caption with the shapes changed:
`--data_shapes_hard_negatives`) is one more wrong candidate in both DAMSM terms' image-to-
caption softmax (NegCLIP's hard negatives; `losses/damsm.py`).
"""

from typing import Dict

import keras
import tensorflow as tf

from tf_t2i.data import pipeline
from tf_t2i.losses import contrastive
from tf_t2i.losses import damsm as damsm_losses
from tf_t2i.training import runtime


class DAMSMPretrainer(keras.Model):
    """Trains a DAMSM text encoder and image encoder together.

    Args:
      text_encoder: maps caption_ids [B,T] to (word_features [B,T,D], sentence [B,D]).
      image_encoder: maps images [B,S,S,3] to (region_features [B,h,w,D], global_code [B,D]).
      gamma1, gamma2, gamma3: DAMSM constants.
      text_contrastive_weight: weight of NT-Xent between the two captions' sentences.
      temperature: NT-Xent temperature.
      text_grad_clip: global-norm clip on the text encoder's gradient (AttnGAN: 0.25).
      use_class_ids: mask same-class pairs out of the DAMSM negatives (CUB).
      word_matmul_dtype: dtype of the word loss's two big matmuls (bfloat16 under the
        mixed_bfloat16 policy: the word loss, computed for both captions, is most of a
        shapes pretraining step; `damsm_losses.damsm_word_loss`).
      hard_negatives: add each image's `mismatched_ids` caption to its softmaxes.
    """

    def __init__(self, text_encoder, image_encoder, *, gamma1=4.0, gamma2=5.0, gamma3=10.0,
                 text_contrastive_weight=1.0, temperature=0.5, text_grad_clip=0.25,
                 use_class_ids=True, word_matmul_dtype="float32", hard_negatives=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.text_encoder = text_encoder
        self.image_encoder = image_encoder
        self.gamma1, self.gamma2, self.gamma3 = gamma1, gamma2, gamma3
        self.text_contrastive_weight = text_contrastive_weight
        self.temperature = temperature
        self.text_grad_clip = text_grad_clip
        self.use_class_ids = use_class_ids
        self.word_matmul_dtype = word_matmul_dtype
        self.hard_negatives = hard_negatives
        names = ["loss", "w_loss", "s_loss"]
        if text_contrastive_weight > 0:
            names.append("t_cl")
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}

    def compile(self, optimizer, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        words, sentence = self.text_encoder(inputs["caption_ids"], training=training)
        regions, code = self.image_encoder(inputs["real_images"], training=training)
        return words, sentence, regions, code

    def _damsm(self, caption_ids, regions, code, class_ids, training, hard=None):
        """hard: None, or the hard negatives' ((words, mask), sentence)."""
        words, sentence = self.text_encoder(caption_ids, training=training)
        mask = pipeline.caption_mask(caption_ids)
        hard_words, hard_sentence = hard if hard is not None else (None, None)
        w_loss, _ = damsm_losses.damsm_word_loss(
            words, mask, regions, class_ids, self.gamma1, self.gamma2, self.gamma3,
            matmul_dtype=self.word_matmul_dtype, hard_negative=hard_words)
        s_loss = damsm_losses.damsm_sentence_loss(sentence, code, class_ids, self.gamma3,
                                                  hard_negative=hard_sentence)
        return w_loss, s_loss, sentence

    def compute_losses(self, batch, training: bool) -> Dict[str, tf.Tensor]:
        """Per-example loss terms [B] (summed over both captions where both are used)."""
        class_ids = batch["class_id"] if self.use_class_ids else None
        if class_ids is not None:
            # Classless datasets (id -1) must not mask every other image as "same class".
            class_ids = tf.where(class_ids < 0, -2 - batch["image_id"], class_ids)
        regions, code = self.image_encoder(batch["real_images"], training=training)
        hard = None
        if self.hard_negatives:
            hard_words, hard_sentence = self.text_encoder(batch["mismatched_ids"],
                                                          training=training)
            hard = ((hard_words, pipeline.caption_mask(batch["mismatched_ids"])), hard_sentence)
        w1, s1, sent1 = self._damsm(batch["caption_ids"], regions, code, class_ids, training,
                                    hard)
        terms = {"w_loss": w1, "s_loss": s1}
        if self.text_contrastive_weight > 0:
            w2, s2, sent2 = self._damsm(batch["caption_ids_2"], regions, code, class_ids,
                                        training, hard)
            terms["w_loss"] = w1 + w2
            terms["s_loss"] = s1 + s2
            terms["t_cl"] = contrastive.nt_xent_per_example(sent1, sent2, self.temperature)
        total = terms["w_loss"] + terms["s_loss"]
        if "t_cl" in terms:
            total = total + self.text_contrastive_weight * terms["t_cl"]
        terms["loss"] = total
        return terms

    def train_step(self, batch):
        global_batch = tf.shape(batch["caption_ids"])[0] * runtime.num_replicas()
        with tf.GradientTape() as tape:
            terms = self.compute_losses(batch, training=True)
            loss = tf.nn.compute_average_loss(terms["loss"], global_batch_size=global_batch)
        text_vars = self.text_encoder.trainable_variables
        image_vars = self.image_encoder.trainable_variables
        grads = tape.gradient(loss, text_vars + image_vars)
        text_grads = runtime.clip_by_global_norm_across_replicas(
            grads[:len(text_vars)], self.text_grad_clip)
        self.optimizer.apply(text_grads + grads[len(text_vars):], text_vars + image_vars)
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name])
        return runtime.fit_logs({name: tracker.result() for name, tracker in self.trackers.items()})

    def test_step(self, batch):
        terms = self.compute_losses(batch, training=False)
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name])
        return runtime.fit_logs({name: tracker.result() for name, tracker in self.trackers.items()})


class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """AttnGAN's DAMSM schedule: lr x decay per epoch while it stays above lr / 10.

    Args:
      initial: lr at step 0.
      steps_per_epoch: optimiser steps per pass over the training images.
      decay: per-epoch factor (0.98).
    """

    def __init__(self, initial, steps_per_epoch, decay=0.98):
        self.initial = float(initial)
        self.steps_per_epoch = int(steps_per_epoch)
        self.decay = float(decay)

    def __call__(self, step):
        epoch = tf.cast(step // self.steps_per_epoch, tf.float32)
        return tf.maximum(self.initial * tf.pow(self.decay, epoch), self.initial / 10.0)

    def get_config(self):
        return {"initial": self.initial, "steps_per_epoch": self.steps_per_epoch,
                "decay": self.decay}
