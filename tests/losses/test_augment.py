"""The random moves of fakes before the DAMSM term scores them (losses/augment.py)."""

import types

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tf_t2i import config as config_lib
from tf_t2i.losses import augment
from tf_t2i.models import interface
from tf_t2i.training.objectives import base
from tf_t2i.training.objectives import damsm_term

SIZE = 32


def seeds(n, start=0):
    return tf.constant(np.arange(start, start + 2 * n).reshape(n, 2), tf.int32)


def dot_image(y, x):
    image = np.zeros([1, SIZE, SIZE, 1], np.float32)
    image[0, y, x, 0] = 1.0
    return image


def centroid(image):
    ys, xs = np.mgrid[:SIZE, :SIZE]
    mass = image.sum()
    return (ys * image).sum() / mass, (xs * image).sum() / mass


class ShiftAndZoomTest(parameterized.TestCase, tf.test.TestCase):

    def test_no_move_returns_the_images(self):
        images = tf.random.stateless_uniform([3, SIZE, SIZE, 3], [1, 2], -1.0, 1.0)
        self.assertAllEqual(augment.shift_and_zoom(images, seeds(3), 0.0, 0.0), images)

    def test_shift_moves_content_by_at_most_max_shift_both_ways(self):
        max_shift = 0.125                                  # 4 px at 32
        moves = []
        for k in range(40):
            moved = augment.shift_and_zoom(tf.constant(dot_image(16, 16)), seeds(1, 2 * k),
                                           max_shift, 0.0).numpy()[0, ..., 0]
            self.assertAllClose(moved.sum(), 1.0, atol=1e-5)   # a move, not a blur or a loss
            moves.append(np.subtract(centroid(moved), (16, 16)))
        moves = np.array(moves)
        self.assertLessEqual(np.abs(moves).max(), max_shift * SIZE + 1e-4)
        # Both directions on both axes, and not only whole pixels.
        self.assertLess(moves.min(axis=0).max(), -1.0)
        self.assertGreater(moves.max(axis=0).min(), 1.0)
        self.assertGreater(np.abs(moves - np.round(moves)).max(), 0.05)

    def test_zoom_enlarges_a_centred_object_within_bounds(self):
        image = np.zeros([1, SIZE, SIZE, 1], np.float32)
        image[0, 12:20, 12:20, 0] = 1.0                      # an 8 px square at the centre
        max_zoom = 0.2
        areas = []
        for k in range(20):
            moved = augment.shift_and_zoom(tf.constant(image), seeds(1, 2 * k), 0.0,
                                           max_zoom).numpy()[0, ..., 0]
            self.assertAllClose(centroid(moved), (15.5, 15.5), atol=0.05)  # stays centred
            areas.append(moved.sum())
        # Area grows by the square of the zoom: between 1 and 1 / (1 - max_zoom)^2 times.
        self.assertGreaterEqual(min(areas), 64.0 - 1e-3)
        self.assertLessEqual(max(areas), 64.0 / (1.0 - max_zoom) ** 2 + 1e-3)
        self.assertGreater(max(areas) - min(areas), 10.0)

    def test_uniform_background_stays_uniform(self):
        images = tf.fill([2, SIZE, SIZE, 3], 0.3)
        moved = augment.shift_and_zoom(images, seeds(2), 0.2, 0.3)
        self.assertAllClose(moved, images, atol=1e-6)

    def test_each_image_moves_by_its_own_seed_and_salt(self):
        images = tf.random.stateless_uniform([4, SIZE, SIZE, 3], [3, 4], -1.0, 1.0)
        moved = augment.shift_and_zoom(images, seeds(4), 0.1, 0.1)
        # The same seed moves an image the same way in any batch.
        self.assertAllClose(augment.shift_and_zoom(images[2:], seeds(4)[2:], 0.1, 0.1),
                            moved[2:])
        # Another salt, another move.
        other = augment.shift_and_zoom(images, seeds(4), 0.1, 0.1, salt=1)
        self.assertGreater(float(tf.reduce_min(tf.reduce_mean(tf.abs(other - moved),
                                                               [1, 2, 3]))), 1e-3)

    def test_differentiable_and_keeps_dtype(self):
        images = tf.random.stateless_uniform([2, SIZE, SIZE, 3], [5, 6], -1.0, 1.0)
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_sum(augment.shift_and_zoom(images, seeds(2), 0.1, 0.1) ** 2)
        self.assertGreater(float(tf.reduce_sum(tf.abs(tape.gradient(loss, images)))), 0.0)
        moved = augment.shift_and_zoom(tf.cast(images, tf.bfloat16), seeds(2), 0.1, 0.1)
        self.assertEqual(moved.dtype, tf.bfloat16)

    @parameterized.parameters((0.5, 0.0), (-0.1, 0.0), (0.0, 1.0))
    def test_out_of_range_is_an_error(self, shift, zoom):
        with self.assertRaisesRegex(ValueError, "max_shift"):
            augment.shift_and_zoom(tf.zeros([1, SIZE, SIZE, 3]), seeds(1), shift, zoom)


class DAMSMTermFeaturesTest(tf.test.TestCase):
    """The term scores moved fakes only when asked to, with the move of augment."""

    def record(self):
        fakes = [tf.random.stateless_uniform([3, SIZE, SIZE, 3], [7, i], -1.0, 1.0)
                 for i in range(2)]
        encode = lambda images: (images * 2.0, tf.reduce_mean(images, [1, 2]))
        return types.SimpleNamespace(
            z=tf.random.stateless_normal([3, 8], [9, 9]), fakes=fakes, encode=encode,
            fake_features=lambda i: ("shared", i))

    def test_unmoved_uses_the_shared_features(self):
        term = damsm_term.DAMSMTerm(1.0, 5.0, 5.0, 10.0)
        self.assertEqual(term.features(self.record(), 1), ("shared", 1))

    def test_moved_fakes_are_encoded_with_each_examples_move(self):
        term = damsm_term.DAMSMTerm(1.0, 5.0, 5.0, 10.0, augment_shift=0.1, augment_zoom=0.2)
        record = self.record()
        for index in range(2):
            regions, code = term.features(record, index)
            expected = augment.shift_and_zoom(record.fakes[index],
                                              interface.noise_seeds_from(record.z), 0.1, 0.2,
                                              salt=index)
            self.assertAllClose(regions, expected * 2.0)
            self.assertAllClose(code, tf.reduce_mean(expected, [1, 2]))
            self.assertNotAllClose(regions, record.fakes[index] * 2.0)

    def test_config_sets_the_move(self):
        loss_cfg = config_lib.LossConfig(damsm_weight=2.0, damsm_augment_shift=0.05,
                                         damsm_augment_zoom=0.15)
        term = damsm_term.DAMSMTerm.from_config(loss_cfg, models=None)
        self.assertEqual((term.weight, term.augment_shift, term.augment_zoom),
                         (2.0, 0.05, 0.15))

    def test_the_term_scores_the_moved_fakes(self):
        record = self.record()
        ids = tf.constant([[3, 4, 0], [5, 6, 7], [8, 0, 0]], tf.int32)
        caption = base.EncodedCaption(
            ids=ids, words=tf.random.stateless_normal([3, 3, 3], [1, 1]),
            sentence=tf.random.stateless_normal([3, 3], [2, 2]), mask=ids > 0)
        record.captions = [caption]
        record.batch = {"class_id": tf.constant([-1, -1, -1], tf.int64),
                        "image_id": tf.constant([0, 1, 2], tf.int64)}
        class_ids = damsm_term.class_ids_for_masking(record.batch)
        moved_term = damsm_term.DAMSMTerm(1.0, 5.0, 5.0, 10.0, augment_shift=0.1)
        unmoved = record.encode(record.fakes[0])
        moved = moved_term.features(record, 0)
        self.assertAllClose(moved_term(record), moved_term.loss(moved, caption, class_ids))
        self.assertNotAllClose(moved_term(record), moved_term.loss(unmoved, caption, class_ids))
