"""Shapes attribute accuracy: judging parsed captions, the cached slot classifier."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tf_t2i import config as config_lib
from tf_t2i.data import shapes
from tf_t2i.data import shapes_captions
from tf_t2i.eval import attributes

C, S, Z, P = shapes.COLORS.index, shapes.SHAPES.index, shapes.SIZES.index, shapes.POSITIONS.index


def oracle_reading(attrs):
    """A reading that is exactly the ground truth."""
    t = attributes.slot_targets(attrs)
    return attributes.Reading(occupied=t["occupancy"] > 0.5, color=np.maximum(t["color"], 0),
                              shape=np.maximum(t["shape"], 0), size=np.maximum(t["size"], 0),
                              features=np.zeros((len(t["color"]), 2), np.float32))


def stack_attributes(examples):
    return {f: np.stack([np.asarray(getattr(e.attributes, f)) for e in examples])
            for f in shapes.ATTRIBUTE_FIELDS}


class ParseCaptionTest(tf.test.TestCase):

    def test_captions_never_contradict_their_images(self):
        # Judged against the ground truth, every caption of the dataset is fully shown,
        # so the parser never reads an attribute the caption did not mean.
        examples = [shapes.generate_example(i, image_size=16) for i in range(400)]
        reading = oracle_reading(stack_attributes(examples))
        index = np.repeat(np.arange(len(examples)), shapes.NUM_CAPTIONS)
        named = [shapes_captions.parse_caption(c) for e in examples for c in e.captions]
        drawn = attributes.Reading(*[getattr(reading, f)[index] for f in
                                     ("occupied", "color", "shape", "size", "features")])
        summary = attributes.summarize_judgements(attributes.judge(drawn, named))
        self.assertEqual(summary["all_named"], 1.0)
        for name in attributes.JUDGED:
            self.assertEqual(summary[name], 1.0, name)
        # And most captions name colours and shapes.
        self.assertGreater(np.mean([bool(n.color) for n in named]), 0.85)
        self.assertGreater(np.mean([bool(n.shape) for n in named]), 0.85)


class JudgeTest(tf.test.TestCase):

    def test_judge_and_summary(self):
        # One image: a large red circle at the center, a small blue square on the left.
        attrs = {"shape": np.array([[S("circle"), S("square")]]),
                 "color": np.array([[C("red"), C("blue")]]),
                 "size": np.array([[Z("large"), Z("small")]]),
                 "position": np.array([[P("center"), P("left")]])}
        reading = oracle_reading(attrs)
        reading = attributes.Reading(*[np.repeat(getattr(reading, f), 3, axis=0) for f in
                                       ("occupied", "color", "shape", "size", "features")])
        named = [shapes_captions.parse_caption("a red circle and a small blue square on the left"),
                 shapes_captions.parse_caption("a blue circle at the top"),  # wrong pair, position
                 shapes_captions.parse_caption("a green shape")]             # wrong colour
        judged = attributes.judge(reading, named)
        self.assertAllEqual(judged["color"], [1, 1, 0])
        self.assertAllEqual(judged["shape"], [1, 1, np.nan])
        self.assertAllEqual(judged["color_shape"], [1, 0, np.nan])
        self.assertAllEqual(judged["position"], [1, 0, np.nan])
        summary = attributes.summarize_judgements(judged)
        self.assertAllClose(summary["color"], 2 / 3)
        self.assertAllClose(summary["all_named"], 1 / 3)
        self.assertAllClose(summary["attribute_accuracy"],
                            np.mean([2 / 3, 1.0, 1.0, 0.5]))

    def test_breakdown_by_objects_and_shape(self):
        # Image 0 has two objects (red circle centre, blue square left); image 1 one object
        # (a green star at the top). Captions: 0 names both objects, right; 1 names a
        # "blue circle at the top", wrong pair and position; 2 names the star, right.
        attrs = {"shape": np.array([[S("circle"), S("square")], [S("star"), -1]]),
                 "color": np.array([[C("red"), C("blue")], [C("green"), -1]]),
                 "size": np.array([[Z("large"), Z("small")], [Z("small"), -1]]),
                 "position": np.array([[P("center"), P("left")], [P("top"), -1]])}
        reading = oracle_reading(attrs).take([0, 0, 1])
        named = [shapes_captions.parse_caption("a red circle and a small blue square on the left"),
                 shapes_captions.parse_caption("a blue circle at the top"),
                 shapes_captions.parse_caption("a small green star at the top")]
        judged = attributes.judge(reading, named)
        out = attributes.breakdown(judged, named, np.array([2, 2, 1]), reading)
        self.assertEqual(sorted(out["by_objects"]), ["1", "2"])
        self.assertAllClose(out["by_objects"]["2"]["all_named"], 0.5)
        self.assertAllClose(out["by_objects"]["2"]["position"], 0.5)
        self.assertAllClose(out["by_objects"]["1"]["all_named"], 1.0)
        # Only captions naming exactly one shape count: the circle (right, caption 1)
        # and the star (right, caption 2); caption 0 names two shapes.
        self.assertEqual(out["shape_accuracy"], {"circle": 1.0, "star": 1.0})
        self.assertAllClose(out["objects_drawn"], {"1": 1 / 3, "2": 2 / 3})
        lines = attributes.format_breakdown(out)
        self.assertIn("  2-object images: color 1.000, shape 1.000, size 1.000, "
                      "position 0.500, all_named 0.500", lines)
        self.assertIn("  shape, by name: circle 1.00, star 1.00", lines)
        self.assertEqual(attributes.format_breakdown({}), [])

    def test_slot_targets_and_accuracy(self):
        examples = [shapes.generate_example(i, image_size=16) for i in range(50)]
        attrs = stack_attributes(examples)
        targets = attributes.slot_targets(attrs)
        self.assertAllEqual(targets["occupancy"].sum(1), [e.attributes.num_objects
                                                          for e in examples])
        reading = oracle_reading(attrs)
        self.assertEqual(attributes.classifier_accuracy(reading, attrs),
                         {"position": 1.0, "color": 1.0, "shape": 1.0, "size": 1.0, "all": 1.0})
        first = int(np.flatnonzero(targets["occupancy"][0])[0])
        reading.color[0, first] = (reading.color[0, first] + 1) % len(shapes.COLORS)
        accuracy = attributes.classifier_accuracy(reading, attrs)
        self.assertAllClose(accuracy["color"], 1 - 1 / targets["occupancy"].sum())
        self.assertAllClose(accuracy["all"], 1 - 1 / 50)

    def test_flip_permutation(self):
        self.assertEqual([shapes.POSITIONS[i] for i in attributes.FLIP_SLOTS],
                         ["center", "right", "left", "top", "bottom", "top right", "top left",
                          "bottom right", "bottom left"])


class ClassifierCacheTest(tf.test.TestCase):

    def test_trains_once_then_loads_from_the_cache(self):
        from tf_t2i.data import pipeline  # pylint: disable=g-import-not-at-top
        examples = [shapes.generate_example(i, image_size=64) for i in range(40)]

        def source(items):
            return pipeline.ImageCaptionSource(
                images=np.stack([e.image for e in items]), captions=[list(e.captions)
                                                                     for e in items],
                image_ids=np.arange(len(items)), class_ids=np.full(len(items), -1),
                attributes=stack_attributes(items))

        data = config_lib.DataConfig(shapes_train_size=32, shapes_test_size=8)
        root = self.create_tempdir().full_path
        logs = []
        classifier = attributes.load_or_train_classifier(
            data, source(examples[:32]), source(examples[32:]), cache_root=root, epochs=1,
            extra_images=16, verbose=0, log=logs.append)
        path = attributes.classifier_path(data, root)
        self.assertTrue(os.path.exists(path))
        meta = json.load(open(path[:-len(".keras")] + ".json"))
        self.assertEqual(meta["train_images"], 48)
        self.assertEqual(set(meta["test_accuracy"]),
                         {"position", "color", "shape", "size", "all"})
        self.assertIn("Training the shapes attribute classifier", logs[0])

        images = np.stack([e.image for e in examples[:5]])
        before = classifier(images)
        original = attributes.train_classifier
        attributes.train_classifier = lambda *a, **k: self.fail("trained again")
        try:
            again = attributes.load_or_train_classifier(data, cache_root=root)
        finally:
            attributes.train_classifier = original
        after = again(images)
        self.assertAllClose(after.features, before.features, rtol=1e-5, atol=1e-5)
        self.assertEqual(after.features.shape, (5, attributes.FEATURE_DIM))
        self.assertEqual(again.accuracy, meta["test_accuracy"])

    def test_other_datasets_are_refused(self):
        with self.assertRaisesRegex(ValueError, "shapes dataset"):
            attributes.load_or_train_classifier(config_lib.DataConfig(dataset="cub"))


@pytest.mark.slow
class DemoClassifierAccuracyTest(tf.test.TestCase):
    """The classifier of the demo's dataset (configs/shapes_*.cfg) reaches 98% per attribute.

    Trains it into the user cache when it is not there yet (minutes on 2 cores), so that
    `tf_t2i.evaluate` on the demo run finds it.
    """

    def test_demo_classifier_accuracy(self):
        data = config_lib.DataConfig(dataset="shapes", image_size=64)
        classifier = attributes.load_or_train_classifier(data, verbose=2)
        for name in attributes.ATTRIBUTE_TYPES:
            self.assertGreaterEqual(classifier.accuracy[name], attributes.REQUIRED_ACCURACY,
                                    name)
