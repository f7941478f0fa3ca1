"""Diversity over noise against real images that fit the same caption (shapes)."""

import numpy as np
import tensorflow as tf
from scipy.spatial import distance

from tf_t2i.data import shapes
from tf_t2i.data import shapes_captions
from tf_t2i.eval import attributes
from tf_t2i.eval import diversity

C, S, Z, P = shapes.COLORS.index, shapes.SHAPES.index, shapes.SIZES.index, shapes.POSITIONS.index


def attributes_of(objects):
    """Ground-truth arrays for images given as lists of (shape, colour, size, position)."""
    out = {f: np.full((len(objects), shapes.MAX_OBJECTS), -1, np.int64)
           for f in shapes.ATTRIBUTE_FIELDS}
    for i, image in enumerate(objects):
        for j, (shape, color, size, position) in enumerate(image):
            out["shape"][i, j], out["color"][i, j] = S(shape), C(color)
            out["size"][i, j], out["position"][i, j] = Z(size), P(position)
    return out


IMAGES = attributes_of([
    [("circle", "red", "small", "left")],
    [("circle", "red", "large", "center"), ("square", "blue", "small", "top")],
    [("square", "red", "large", "left")],
    [("circle", "blue", "small", "right"), ("star", "red", "large", "bottom")],
])


class DiversityTest(tf.test.TestCase):

    def test_mean_pairwise_distance_matches_scipy(self):
        x = np.random.default_rng(0).normal(size=(7, 5))
        self.assertAllClose(diversity.mean_pairwise_distance(x), distance.pdist(x).mean())
        self.assertEqual(diversity.mean_pairwise_distance(np.ones((4, 3))), 0.0)
        with self.assertRaisesRegex(ValueError, "at least 2"):
            diversity.mean_pairwise_distance(np.ones((1, 3)))

    def test_fitting_images_follow_the_judge(self):
        truth = diversity.ground_truth_reading(IMAGES)
        fit = lambda caption: diversity.fitting_images(shapes_captions.parse_caption(caption),
                                                       truth).tolist()
        self.assertEqual(fit("a red circle"), [0, 1])      # image 3: red star, blue circle
        self.assertEqual(fit("a red shape"), [0, 1, 2, 3])
        self.assertEqual(fit("a circle and a star"), [3])
        self.assertEqual(fit("a large red square on the left"), [2])
        self.assertEqual(fit("something on the left"), [0, 2])
        self.assertEqual(fit("a cyan cross"), [])
        # The same verdicts as attributes.judge on a reading equal to the ground truth.
        for caption in ("a red circle", "a small blue square at the top", "two shapes"):
            named = shapes_captions.parse_caption(caption)
            verdicts = attributes.judge(truth, [named] * 4)
            stacked = np.nan_to_num(np.stack([verdicts[k] for k in attributes.JUDGED], 1),
                                    nan=1.0)
            self.assertEqual(fit(caption), np.flatnonzero(np.all(stacked == 1, 1)).tolist())

    def test_border_colour(self):
        images = np.zeros((2, 64, 64, 3), np.uint8)
        images[0] = 255
        images[1, :, :, 2] = 51
        images[:, 20:40, 20:40] = 128       # an object inside the frame does not count
        self.assertAllClose(diversity.border_colour(images), [[1, 1, 1], [0, 0, 0.2]])

    def test_group_statistics_and_summary(self):
        truth = diversity.ground_truth_reading(IMAGES)
        reading = attributes.Reading(truth.occupied, truth.color, truth.shape, truth.size,
                                     features=np.eye(4, dtype=np.float32))
        images = np.zeros((4, 64, 64, 3), np.uint8)
        images[1:] = 255
        # "a red circle" names neither position nor size: the four images show the
        # positions left, center, top, left, right, bottom (5 distinct) and both sizes.
        named = shapes_captions.parse_caption("a red circle")
        stats = diversity.group_statistics(reading, images, named)
        self.assertAllClose(stats.feature_distance, np.sqrt(2))
        # Border colours (0,0,0) once and (1,1,1) three times: 3 of 6 pairs at sqrt(3).
        self.assertAllClose(stats.background_spread, np.sqrt(3) / 2)
        self.assertEqual(stats.distinct, {"position": 5.0, "size": 2.0})
        named_position = shapes_captions.parse_caption("a red circle on the left")
        self.assertIsNone(diversity.group_statistics(reading, images,
                                                     named_position).distinct["position"])

        collapsed = diversity.GroupStatistics(0.5, 0.1, {"position": 1.0, "size": None})
        varied = diversity.GroupStatistics(2.0, 0.4, {"position": 4.0, "size": 2.0})
        out = diversity.summarize([collapsed, varied], [varied, varied])
        self.assertAllClose(out["value"], 1.25 / 2.0)
        self.assertEqual(out["captions"], 2)
        self.assertAllClose(out["background_spread"]["ratio"], 0.25 / 0.4)
        self.assertEqual(out["open_attributes"]["position"],
                         {"captions": 2, "generated_distinct": 2.5, "real_distinct": 4.0})
        # Only the captions that leave the size open count for it.
        self.assertEqual(out["open_attributes"]["size"]["captions"], 1)
        with self.assertRaisesRegex(ValueError, "one real group"):
            diversity.summarize([collapsed], [])

    def test_choose_real_group(self):
        rng = np.random.default_rng(0)
        self.assertIsNone(diversity.choose_real_group(np.array([3]), 16, rng))
        group = diversity.choose_real_group(np.arange(100), 16, rng)
        self.assertLen(set(group.tolist()), 16)
        self.assertAllEqual(diversity.choose_real_group(np.array([5, 2]), 16, rng), [2, 5])
