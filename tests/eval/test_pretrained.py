"""Evaluations of the pretrained networks: DAMSM retrieval and the captioner."""

import json
import os

import numpy as np
import tensorflow as tf

from tests.eval import helpers
from tf_t2i.eval import pretrained
from tf_t2i.models import captioner as captioner_model
from tf_t2i.training import captioner_lib


class PretrainRetrievalTest(tf.test.TestCase):
    """`evaluate_retrieval` after the R-precision API change (DAMSM pretraining)."""

    def test_r_precision_json(self):
        damsm_dir, _ = helpers.tiny_runs()
        results = json.load(open(os.path.join(damsm_dir, "r_precision.json")))
        self.assertBetween(results["r_precision"], 0.0, 1.0)
        self.assertGreaterEqual(results["r_precision_std"], 0.0)
        self.assertEqual(results["num_images"], 32)


class CaptionerEvaluationTest(tf.test.TestCase):

    def test_attribute_precision_by_hand(self):
        captions = ["a red circle on a blue background", "a crimson box and a plus sign"]
        attributes = {"color": [np.array([0]), np.array([1])],
                      "shape": [np.array([0]), np.array([1, 5])]}
        # Colours: red (true), blue (background: skipped), crimson = red (false): 1/2.
        # Shapes: circle, box = square, plus = cross: all true.
        self.assertEqual(pretrained.attribute_precision(captions, attributes),
                         {"color_word_precision": 0.5, "shape_word_precision": 1.0})
        self.assertEqual(pretrained.attribute_precision(["nothing here"], attributes),
                         {"color_word_precision": 0.0, "shape_word_precision": 0.0})

    def test_teacher_forced_metrics_match_the_training_model(self):
        captioner = captioner_model.Captioner(vocab_size=6, max_length=3, embed_dim=8,
                                              num_heads=2, intermediate_dim=8,
                                              small_cnn_width=8)
        rng = np.random.default_rng(0)
        # Batches of 3 and 2 captions of different lengths: the means weigh every
        # caption (loss) and every real token (accuracy) alike across batches.
        batches = [{"real_images": rng.uniform(-1, 1, [n, 64, 64, 3]).astype(np.float32),
                    "caption_ids": np.array(ids, np.int32)}
                   for n, ids in ((3, [[2, 3, 0], [4, 5, 2], [5, 0, 0]]),
                                  (2, [[3, 3, 3], [2, 4, 0]]))]
        ds = tf.data.Dataset.from_generator(
            lambda: iter(batches), output_signature={
                "real_images": tf.TensorSpec([None, 64, 64, 3], tf.float32),
                "caption_ids": tf.TensorSpec([None, 3], tf.int32)})
        trainer = captioner_lib.CaptionerTrainer(captioner)
        trainer.compile()
        expected = trainer.evaluate(ds, verbose=0, return_dict=True)
        got = pretrained.teacher_forced_metrics(captioner, ds)
        self.assertAllClose(got["loss"], expected["loss"], rtol=1e-5)
        self.assertAllClose(got["token_accuracy"], expected["token_accuracy"], rtol=1e-6)
        self.assertBetween(got["token_accuracy"], 0.0, 1.0)
