"""DAMSM pretraining runs: training moves the encoders, outputs are written, resume continues.

Uses the shared tiny run of helpers.damsm_run() (DAMSM_STEPS = 2 steps; its encoders'
weights before training are recorded), and resumes a copy of it to 4 steps.
"""

import contextlib
import io
import json
import os
from unittest import mock

import numpy as np
import tensorflow as tf

from tests.training import helpers
from tf_t2i.data import shapes_captions
from tf_t2i.data import tokenizer as tokenizer_lib
from tf_t2i.io import checkpoints
from tf_t2i.losses import damsm as damsm_losses
from tf_t2i.training import loop
from tf_t2i.training import pretrain_lib


def _load_encoders(model_dir, cfg, checkpoint=None):
    """Fresh encoders with the weights of a run's checkpoint (latest unless given)."""
    tok = tokenizer_lib.CaptionTokenizer.load(model_dir, cfg.data.max_caption_length)
    text_encoder, image_encoder = pretrain_lib.build_encoders(cfg, tok.vocab_size)
    path = checkpoint or tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    ckpt = checkpoints.make_checkpoint(text_encoder=text_encoder, image_encoder=image_encoder)
    ckpt.restore(path).expect_partial().assert_existing_objects_matched()
    return [[v.numpy() for v in e.trainable_variables] for e in (text_encoder, image_encoder)]


def _max_diff(a, b):
    return max(helpers.max_abs_diff(x, y) for x, y in zip(a, b))


class PretrainingTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.run_dir = helpers.damsm_run()
        cls.cfg = helpers.tiny_damsm_config()

        # Resume a copy from step 2 to step 4, keeping its encoders and its log.
        cls.resumed_dir = helpers.copy_run(cls.run_dir, "damsm_resumed")
        cls.recorder = helpers.EncoderRecorder()
        out = io.StringIO()
        with cls.recorder.patch(), contextlib.redirect_stdout(out):
            cls.resumed_results = pretrain_lib.run_pretraining(
                cls.cfg.replace(train={"steps": 4}), cls.resumed_dir, verbose=0)
        cls.resumed_log = out.getvalue()

    def test_training_moves_the_encoders(self):
        initial = helpers.damsm_initial_weights()
        trained = _load_encoders(self.run_dir, self.cfg)
        for name, before, after in zip(("text", "image"), initial, trained):
            moved = [np.any(a != b) for a, b in zip(before, after)]
            print(f"pretraining: {name} encoder: {sum(moved)}/{len(moved)} weights moved, "
                  f"largest change {helpers.max_abs_diff(before, after):.3g}")
            self.assertGreater(sum(moved), len(moved) // 2, name)
        # Image encoder: every weight gets a gradient from the first step on.
        self.assertTrue(all(np.any(a != b) for a, b in zip(initial[1], trained[1])))

    def test_word_loss_matmuls_follow_the_bfloat16_policy(self):
        # Most of a shapes pretraining step is the word loss's two matmuls.
        for policy, expected in (("none", "float32"), ("mixed_bfloat16", "bfloat16"),
                                 ("mixed_float16", "float32")):
            cfg = self.cfg.replace(runtime={"mixed_precision": policy})
            parts = pretrain_lib.DAMSMComponents(
                cfg, vocab_size=12, model_dir=self.create_tempdir().full_path,
                steps_per_data_epoch=1)
            self.assertEqual(parts.pretrainer.word_matmul_dtype, expected, policy)
        # ...and the pretrainer hands it to the word loss, for both captions.
        seen = []
        real_loss = damsm_losses.damsm_word_loss

        def recording_loss(*args, **kwargs):
            seen.append(kwargs.get("matmul_dtype"))
            return real_loss(*args, **kwargs)

        parts.pretrainer.word_matmul_dtype = "bfloat16"
        batch = {"caption_ids": tf.constant([[3, 4, 0], [5, 0, 0]]),
                 "caption_ids_2": tf.constant([[6, 7, 8], [4, 0, 0]]),
                 "real_images": tf.zeros([2, cfg.data.image_size, cfg.data.image_size, 3]),
                 "class_id": tf.constant([-1, -1]), "image_id": tf.constant([0, 1])}
        with mock.patch.object(damsm_losses, "damsm_word_loss", recording_loss):
            parts.pretrainer.compute_losses(batch, training=False)
        self.assertEqual(seen, ["bfloat16", "bfloat16"])

    def test_outputs(self):
        for name in ("config.json", "vocab.txt", "r_precision.json"):
            self.assertTrue(os.path.isfile(os.path.join(self.run_dir, name)), name)
        self.assertEqual(os.path.basename(
            tf.train.latest_checkpoint(os.path.join(self.run_dir, "checkpoints"))),
            f"ckpt-{helpers.DAMSM_STEPS}")
        with open(os.path.join(self.run_dir, "r_precision.json")) as f:
            results = json.load(f)
        self.assertBetween(results["r_precision"], 0.0, 1.0)
        self.assertEqual(results["step"], helpers.DAMSM_STEPS)
        with open(os.path.join(self.run_dir, "config.json")) as f:
            self.assertEqual(json.load(f)["train"]["task"], "damsm")

    def test_resume_restores_step_2_and_ends_at_4(self):
        self.assertIn(f"Resuming from {self.resumed_dir}/checkpoints/ckpt-2 at step 2 of 4.",
                      self.resumed_log)
        self.assertEqual(self.resumed_results["step"], 4)
        ckpt_dir = os.path.join(self.resumed_dir, "checkpoints")
        self.assertEqual(os.path.basename(tf.train.latest_checkpoint(ckpt_dir)), "ckpt-4")
        with open(os.path.join(self.resumed_dir, "r_precision.json")) as f:
            self.assertEqual(json.load(f)["step"], 4)
        # The vocabulary is reused, not rebuilt.
        with open(os.path.join(self.run_dir, "vocab.txt")) as f, \
                open(os.path.join(self.resumed_dir, "vocab.txt")) as g:
            self.assertEqual(f.read(), g.read())

    def test_resumed_weights_are_restored_then_trained(self):
        at_2 = _load_encoders(self.resumed_dir, self.cfg,
                              os.path.join(self.resumed_dir, "checkpoints", "ckpt-2"))
        at_4 = _load_encoders(self.resumed_dir, self.cfg)
        final = [[v.numpy() for v in e.trainable_variables] for e in self.recorder.encoders]
        # The checkpoint holds exactly what the run ended with (every weight).
        self.assertEqual(_max_diff(at_4, final), 0.0)
        # Steps 3 and 4 moved the weights restored at step 2.
        self.assertGreater(_max_diff(at_4, at_2), 0.0)
        # Restoring replaced the freshly built weights of the resumed process.
        self.assertGreater(_max_diff(self.recorder.initial, at_2), 0.0)


class HardNegativesTest(tf.test.TestCase):
    """--data_shapes_hard_negatives in pretraining: the batch's mismatched caption joins
    both DAMSM terms as one more negative of its image."""

    def _parts(self, fraction):
        cfg = helpers.tiny_damsm_config(data={"shapes_hard_negatives": fraction})
        return cfg, pretrain_lib.DAMSMComponents(
            cfg, vocab_size=12, model_dir=self.create_tempdir().full_path,
            steps_per_data_epoch=1)

    def test_losses_add_the_mismatched_caption_to_each_images_softmax(self):
        cfg, parts = self._parts(1.0)
        self.assertTrue(parts.pretrainer.hard_negatives)
        size = cfg.data.image_size
        batch = {"caption_ids": tf.constant([[3, 4, 0], [5, 6, 0]]),
                 "caption_ids_2": tf.constant([[6, 7, 8], [4, 0, 0]]),
                 "mismatched_ids": tf.constant([[3, 9, 0], [5, 0, 0]]),
                 "real_images": tf.random.stateless_uniform([2, size, size, 3], [1, 2], -1, 1),
                 "class_id": tf.constant([-1, -1]), "image_id": tf.constant([0, 1])}
        terms = parts.pretrainer.compute_losses(batch, training=False)
        # Recomputed outside from the same encoders.
        pretrainer = parts.pretrainer
        regions, code = pretrainer.image_encoder(batch["real_images"], training=False)
        hard_words, hard_sentence = pretrainer.text_encoder(batch["mismatched_ids"],
                                                            training=False)
        hard_mask = tf.not_equal(batch["mismatched_ids"], 0)
        word, sentence = [], []
        for key in ("caption_ids", "caption_ids_2"):
            words, sent = pretrainer.text_encoder(batch[key], training=False)
            mask = tf.not_equal(batch[key], 0)
            word.append(damsm_losses.damsm_word_loss(
                words, mask, regions, tf.constant([-2, -3]),
                hard_negative=(hard_words, hard_mask))[0])
            sentence.append(damsm_losses.damsm_sentence_loss(
                sent, code, tf.constant([-2, -3]), hard_negative=hard_sentence))
            plain = damsm_losses.damsm_sentence_loss(sent, code, tf.constant([-2, -3]))
            self.assertAllGreater(sentence[-1] - plain, 0.0)
        self.assertAllClose(terms["w_loss"], word[0] + word[1], rtol=1e-5)
        self.assertAllClose(terms["s_loss"], sentence[0] + sentence[1], rtol=1e-5)

    def test_off_by_default_and_the_task_feeds_the_bank(self):
        _, parts = self._parts(0.0)
        self.assertFalse(parts.pretrainer.hard_negatives)
        cfg = helpers.tiny_damsm_config(data={"shapes_hard_negatives": 0.5})
        task = pretrain_lib.DAMSMTask(cfg)
        self.assertEqual(task.dataset_options(), {"hard_negative_fraction": 0.5})
        plain = pretrain_lib.DAMSMTask(helpers.tiny_damsm_config())
        self.assertEqual(plain.dataset_options(), {})
        # The bank holds each caption's shape swap (same colour words, another shape).
        source, _, tok = helpers._train_data()  # pylint: disable=protected-access
        bank = task.caption_bank(source, tok)
        self.assertIsNone(plain.caption_bank(source, tok).hard_negative_ids)
        self.assertEqual(bank.hard_negative_ids.shape[:2], bank.ids.shape[:2])
        swapped = shapes_captions.shape_swapped_captions(source.captions, cfg.train.seed)
        i, j = next((i, j) for i, caps in enumerate(swapped)
                    for j, c in enumerate(caps) if c is not None)
        self.assertNotEqual(swapped[i][j], source.captions[i][j])
        expected = tok.encode([swapped[i][j]], bank.hard_negative_ids.shape[2])[0]
        self.assertAllEqual(bank.hard_negative_ids[i, j], expected)
        # With --data_shapes_binding_negatives=1 a two-object caption's negative exchanges
        # its shapes instead.
        binding = pretrain_lib.DAMSMTask(helpers.tiny_damsm_config(
            data={"shapes_hard_negatives": 0.5, "shapes_binding_negatives": 1.0}))
        i, j = next((i, j) for i, caps in enumerate(source.captions)
                    for j, c in enumerate(caps) if shapes_captions.exchange_shapes(c))
        expected = tok.encode([shapes_captions.exchange_shapes(source.captions[i][j])],
                              bank.hard_negative_ids.shape[2])[0]
        self.assertAllEqual(binding.caption_bank(source, tok).hard_negative_ids[i, j], expected)
        self.assertNotAllEqual(bank.hard_negative_ids[i, j], expected)


class TwoObjectRepeatsTest(tf.test.TestCase):
    """--data_shapes_two_object_repeats: a task's training stream holds each two-object
    image that many times an epoch, each one-object image once."""

    def test_an_epoch_of_the_tasks_stream(self):
        source, bank, _ = helpers._train_data()  # pylint: disable=protected-access
        two = np.asarray(source.attributes["num_objects"]) == 2
        self.assertTrue(0 < two.sum() < len(source))
        task = pretrain_lib.DAMSMTask(helpers.tiny_damsm_config(
            data={"shapes_two_object_repeats": 3}, train={"batch_size": 1}))
        slots = len(source) + 2 * int(two.sum())
        ids = np.concatenate([b["image_id"].numpy() for b in
                              task.make_dataset(source, bank, 0).take(slots)])
        row = {int(image_id): i for i, image_id in enumerate(source.image_ids)}
        counts = np.bincount([row[int(i)] for i in ids], minlength=len(source))
        np.testing.assert_array_equal(counts, np.where(two, 3, 1))


class TimeBudgetTest(tf.test.TestCase):
    """--train_max_seconds ends a DAMSM pretraining as it ends a GAN run: the 10-minute
    shapes DAMSM (configs/shapes_damsm_10min.cfg) relies on it."""

    def test_the_budget_ends_the_run_before_its_steps_and_keeps_its_outputs(self):
        run_dir = helpers.copy_run(helpers.damsm_run(), "damsm_budgeted")
        ckpt_dir = os.path.join(run_dir, "checkpoints")
        spent = loop.read_clock(ckpt_dir)[str(helpers.DAMSM_STEPS)]
        self.assertGreater(spent, 0.0)
        # A budget a microsecond past what the first sitting spent: one more step, then stop.
        cfg = helpers.tiny_damsm_config().replace(
            train={"steps": 1000, "max_seconds": spent + 1e-6})
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            results = pretrain_lib.run_pretraining(cfg, run_dir, verbose=0)
        stopped = helpers.DAMSM_STEPS + 1
        self.assertIn(f"Time budget: {spent:.0f} of {spent + 1e-6:.0f} s spent.", out.getvalue())
        self.assertEqual(results["step"], stopped)
        self.assertEqual(os.path.basename(tf.train.latest_checkpoint(ckpt_dir)),
                         f"ckpt-{stopped}")
        self.assertGreater(loop.read_clock(ckpt_dir)[str(stopped)], spent)
        with open(os.path.join(run_dir, "r_precision.json")) as f:
            self.assertEqual(json.load(f)["step"], stopped)


if __name__ == "__main__":
    tf.test.main()
