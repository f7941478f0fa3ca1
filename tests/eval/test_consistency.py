"""F2F consistency: hand-made readings with known agreement, and the registered metric."""

import os
import types
from unittest import mock

import numpy as np
import tensorflow as tf

from tests.eval import helpers
from tf_t2i.data import shapes
from tf_t2i.data import shapes_captions
from tf_t2i.eval import attributes
from tf_t2i.eval import consistency
from tf_t2i.eval import context as eval_context
from tf_t2i.eval import eval_lib
from tf_t2i.models import trained_run

C, S, Z, P = shapes.COLORS.index, shapes.SHAPES.index, shapes.SIZES.index, shapes.POSITIONS.index


def reading_of(images, features=None):
    """A Reading of images given as lists of (shape, colour, size, position) objects."""
    n = len(images)
    occupied = np.zeros((n, attributes.NUM_SLOTS), bool)
    values = {k: np.zeros((n, attributes.NUM_SLOTS), np.int64)
              for k in ("color", "shape", "size")}
    for i, objects in enumerate(images):
        for shape, color, size, position in objects:
            slot = P(position)
            occupied[i, slot] = True
            values["shape"][i, slot], values["color"][i, slot] = S(shape), C(color)
            values["size"][i, slot] = Z(size)
    if features is None:
        features = np.zeros((n, 4), np.float32)
    return attributes.Reading(occupied, values["color"], values["shape"], values["size"],
                              np.asarray(features, np.float32))


def named(*captions):
    return [shapes_captions.parse_caption(c) for c in captions]


class ConsistencyMathTest(tf.test.TestCase):

    def test_shown_values(self):
        shown = consistency.shown_values(reading_of([
            [("circle", "red", "small", "left"), ("star", "blue", "large", "top")], []]))
        self.assertEqual(np.flatnonzero(shown["color"][0]).tolist(), [C("red"), C("blue")])
        self.assertEqual(np.flatnonzero(shown["shape"][0]).tolist(),
                         sorted([S("circle"), S("star")]))
        self.assertEqual(np.flatnonzero(shown["size"][0]).tolist(), [0, 1])
        self.assertEqual(np.flatnonzero(shown["position"][0]).tolist(),
                         sorted([P("left"), P("top")]))
        # An empty slot's (zero) colour is not shown.
        self.assertFalse(any(shown[k][1].any() for k in shown))

    def test_agreement_on_the_values_both_captions_name(self):
        first = reading_of([
            [("circle", "red", "small", "left")],
            [("circle", "red", "small", "left")],
            [("circle", "red", "small", "left"), ("square", "blue", "large", "right")],
            [("circle", "green", "large", "top")],
        ])
        second = reading_of([
            [("circle", "red", "small", "left")],      # the same scene
            [("square", "red", "large", "right")],     # moved, resized, another shape
            [("circle", "red", "small", "left")],      # drew only the first object
            [("circle", "yellow", "large", "top")],    # both miss "red": still agree
        ])
        agreement = consistency.pair_agreement(
            first, second,
            named("a small red circle on the left", "a small red circle on the left",
                  "a red circle and a blue square", "a red circle"),
            named("a small red circle in the left", "a red circle",
                  "a red circle on the left", "a red circle at the top"))
        nan = np.nan
        # Pair 1: the second caption names neither size nor position: only colour and
        # shape are compared, and the shape differs. Pair 2: only red and circle are
        # named by both; the blue square the second caption omits does not count.
        # Pair 3: the first caption names no position.
        self.assertAllEqual(agreement["color"], [1, 1, 1, 1])
        self.assertAllEqual(agreement["shape"], [1, 0, 1, 1])
        self.assertAllEqual(agreement["size"], [1, nan, nan, nan])
        self.assertAllEqual(agreement["position"], [1, nan, nan, nan])
        self.assertAllEqual(consistency.identical_scenes(first, second),
                            [True, False, False, False])
        out = consistency.summarize(agreement, consistency.identical_scenes(first, second),
                                    np.array([0.0, 2.0, 1.0, 1.0]), np.array([4.0] * 4))
        # 9 of the 10 compared (pair, type) cases agree.
        self.assertAllClose(out["value"], 0.9)
        self.assertAllClose(out["per_attribute"],
                            {"color": 1.0, "shape": 0.75, "size": 1.0, "position": 1.0})
        self.assertEqual(out["compared"], {"color": 4, "shape": 4, "size": 1, "position": 1})
        self.assertEqual(out["pairs"], 4)
        self.assertAllClose(out["identical_scenes"], 0.25)
        self.assertAllClose([out["pair_distance"], out["unrelated_distance"],
                             out["distance_ratio"]], [1.0, 4.0, 0.25])

    def test_named_values_are_compared_as_shown_or_not(self):
        # Both name red and blue; the second image shows only red: the colours disagree.
        first = reading_of([[("circle", "red", "small", "left"),
                             ("square", "blue", "small", "right")]])
        second = reading_of([[("circle", "red", "small", "left"),
                              ("square", "green", "small", "right")]])
        captions = named("a red circle and a blue square")
        agreement = consistency.pair_agreement(first, second, captions, captions)
        self.assertAllEqual(agreement["color"], [0])
        self.assertAllEqual(agreement["shape"], [1])
        # Identical scenes differ in the colour of an object however the captions read.
        self.assertAllEqual(consistency.identical_scenes(first, second), [False])

    def test_nothing_compared(self):
        empty = reading_of([[]])
        agreement = consistency.pair_agreement(empty, empty, named("a red circle"),
                                               named("a blue square"))
        self.assertTrue(all(np.isnan(v).all() for v in agreement.values()))
        out = consistency.summarize(agreement, np.array([True]), np.zeros(1), np.zeros(1))
        self.assertTrue(np.isnan(out["value"]))
        self.assertTrue(np.isnan(out["distance_ratio"]))
        self.assertEqual(out["compared"]["color"], 0)
        with self.assertRaisesRegex(ValueError, "one reading and one caption"):
            consistency.pair_agreement(empty, empty, named("a", "b"), named("c", "d"))

    def test_pair_distances(self):
        first = np.array([[0.0, 0.0], [1.0, 1.0], [3.0, 0.0]])
        second = np.array([[3.0, 4.0], [1.0, 1.0], [0.0, 4.0]])
        self.assertAllClose(consistency.pair_distances(first, second), [5.0, 0.0, 5.0])
        with self.assertRaisesRegex(ValueError, "one shape"):
            consistency.pair_distances(first, second[:2])

    def test_draw_pairs(self):
        drawn = consistency.draw_pairs(5, 3, 12, np.random.default_rng(0))
        self.assertEqual(sorted(drawn["image"][:5].tolist()), [0, 1, 2, 3, 4])
        self.assertAllEqual(drawn["image"][5:10], drawn["image"][:5])
        self.assertTrue(np.all(drawn["first"] != drawn["second"]))
        self.assertTrue(np.all(drawn["other_image"] != drawn["image"]))
        for key in ("first", "second", "other_caption"):
            self.assertBetween(drawn[key].min(), 0, 2)
            self.assertBetween(drawn[key].max(), 0, 2)
        self.assertBetween(drawn["other_image"].max(), 0, 4)
        with self.assertRaisesRegex(ValueError, "2 captions"):
            consistency.draw_pairs(5, 1, 4, np.random.default_rng(0))


class F2FConsistencyMetricTest(tf.test.TestCase):

    def test_only_on_shapes(self):
        ctx = types.SimpleNamespace(resources={}, cfg=types.SimpleNamespace(
            data=types.SimpleNamespace(dataset="cub")))
        with self.assertRaisesRegex(eval_context.MetricUnavailableError, "shapes"):
            eval_context.METRICS["f2f_consistency"].prepare(ctx)

    def test_evaluated_on_a_tiny_run(self):
        _, gan_dir = helpers.tiny_runs()
        run = trained_run.load_run(gan_dir)
        with mock.patch.dict(os.environ, {"TF_T2I_CACHE": helpers.cache_dir()}):
            ctx = eval_context.EvalContext(
                run.cfg, run.tokenizer, run,
                eval_context.EvalOptions(num_images=10, batch_size=6, f2f_pairs=8),
                log=lambda *_: None)
            names, skipped = eval_lib.available_metrics(ctx, ["f2f_consistency"],
                                                        required=True)
            self.assertEqual((names, skipped), (["f2f_consistency"], {}))
            rows = eval_lib.evaluate(ctx, names, progress=False)
            again = eval_lib.evaluate(ctx, names, progress=False)
        row = rows[0]
        self.assertEqual(row["metric"], "f2f_consistency8")
        self.assertEqual(row["pairs"], 8)
        self.assertIsNone(row["std"])
        self.assertBetween(row["value"], 0.0, 1.0)
        self.assertBetween(row["identical_scenes"], 0.0, 1.0)
        self.assertEqual(set(row["per_attribute"]), set(consistency.COMPARED))
        for name in consistency.COMPARED:
            self.assertBetween(row["compared"][name], 0, 8)
            if row["compared"][name]:
                self.assertBetween(row["per_attribute"][name], 0.0, 1.0)
        # Every caption of a shapes image names a colour or a shape.
        self.assertGreater(row["compared"]["color"] + row["compared"]["shape"], 0)
        self.assertGreaterEqual(row["pair_distance"], 0.0)
        # A 2-step generator may draw every caption alike (the ratio is then NaN).
        self.assertGreaterEqual(row["unrelated_distance"], 0.0)
        if row["unrelated_distance"] > 0:
            self.assertAllClose(row["distance_ratio"],
                                row["pair_distance"] / row["unrelated_distance"])
        else:
            self.assertTrue(np.isnan(row["distance_ratio"]))
        # Seeded: the same pairs, noise and numbers.
        self.assertAllClose(again[0]["value"], row["value"])
        self.assertAllClose(again[0]["pair_distance"], row["pair_distance"])
        self.assertIn("pair / unrelated distance", eval_lib.format_table(rows))

    def test_pairs_share_image_and_noise(self):
        """With a fake generator that draws a caption's test image index and its noise,
        the two images of a pair coincide and the unrelated one differs."""
        _, gan_dir = helpers.tiny_runs()
        run = trained_run.load_run(gan_dir)
        ctx = eval_context.EvalContext(run.cfg, run.tokenizer, run,
                                       eval_context.EvalOptions(batch_size=7, f2f_pairs=10),
                                       log=lambda *_: None)
        n_test, per_image = len(ctx.test_source), ctx.bank.captions_per_image
        images = np.repeat(np.arange(n_test), per_image)
        ids = eval_context.caption_ids(ctx, images, np.tile(np.arange(per_image), n_test))
        image_of = {row.tobytes(): i for row, i in zip(ids.numpy(), images)}

        def make_generate_fn(_):
            def generate(z, caption_ids):
                index = [image_of[row.tobytes()] for row in caption_ids.numpy()]
                noise = np.round(np.clip(z.numpy()[:, 0] * 20 + 128, 0, 255))
                pixels = np.zeros((len(index), 8, 8, 3), np.uint8)
                pixels[..., 0] = np.asarray(index, np.uint8)[:, None, None]
                pixels[..., 1] = noise.astype(np.uint8)[:, None, None]
                return tf.constant(pixels), None
            return generate

        def classifier(pixels):
            n = len(pixels)
            empty = np.zeros((n, attributes.NUM_SLOTS), np.int64)
            return attributes.Reading(empty > 0, empty, empty, empty,
                                      pixels.astype(np.float32).mean(axis=(1, 2)))

        ctx.resources["attribute_classifier"] = classifier
        with mock.patch.object(eval_context, "make_generate_fn", make_generate_fn):
            row = eval_context.METRICS["f2f_consistency"].compute(ctx)
        self.assertEqual(row["pairs"], 10)
        self.assertEqual(row["pair_distance"], 0.0)
        # Another test image, the same noise: at least 1 apart in the first channel.
        self.assertGreaterEqual(row["unrelated_distance"], 1.0)
        self.assertEqual(row["distance_ratio"], 0.0)
        self.assertEqual(row["identical_scenes"], 1.0)
