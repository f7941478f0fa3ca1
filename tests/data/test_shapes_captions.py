"""Shapes caption readers: hand-written captions and token tables."""

import numpy as np
import tensorflow as tf

from tf_t2i.data import shapes
from tf_t2i.data import shapes_captions

C, S, Z, P = shapes.COLORS.index, shapes.SHAPES.index, shapes.SIZES.index, shapes.POSITIONS.index


class ParseCaptionTest(tf.test.TestCase):

    def test_hand_written_captions(self):
        cases = {
            "A small crimson disc in the top left corner.": shapes_captions.NamedAttributes(
                color={C("red")}, shape={S("circle")}, size={Z("small")},
                position={P("top left")}, color_shape={(C("red"), S("circle"))}),
            # The background's colour is not an object's; "to the left of" is no position.
            "a white star to the left of a golden box on a white background":
                shapes_captions.NamedAttributes(
                    color={C("white"), C("yellow")}, shape={S("star"), S("square")},
                    color_shape={(C("white"), S("star")), (C("yellow"), S("square"))}),
            "two plus signs, one violet and one aqua": shapes_captions.NamedAttributes(
                color={C("purple"), C("cyan")}, shape={S("cross")}),
            "a rhombus painted emerald near the bottom edge of the picture":
                shapes_captions.NamedAttributes(color={C("green")}, shape={S("diamond")},
                                           position={P("bottom")},
                                           color_shape={(C("green"), S("diamond"))}),
            "An aqua square shape in the lower right corner of the image.":
                shapes_captions.NamedAttributes(color={C("cyan")}, shape={S("square")},
                                           position={P("bottom right")},
                                           color_shape={(C("cyan"), S("square"))}),
            "a huge tangerine five-pointed star in the middle on a dark olive background":
                shapes_captions.NamedAttributes(color={C("orange")}, shape={S("star")},
                                           size={Z("large")}, position={P("center")},
                                           color_shape={(C("orange"), S("star"))}),
            "a lone triangle on a snow-white background": shapes_captions.NamedAttributes(
                shape={S("triangle")}),
        }
        for caption, expected in cases.items():
            self.assertEqual(shapes_captions.parse_caption(caption), expected, caption)


class TokenAttributesTest(tf.test.TestCase):

    def test_tokens_name_colours_and_shapes(self):
        table = shapes_captions.token_attributes()
        self.assertEqual(table["crimson"], ("color", C("red")))
        self.assertEqual(table["aqua"], ("color", C("cyan")))
        self.assertEqual(table["disc"], ("shape", S("circle")))
        self.assertEqual(table["lozenge"], ("shape", S("diamond")))
        # "snow-white" and "five-pointed star" count by their last token.
        self.assertEqual(table["white"], ("color", C("white")))
        self.assertEqual(table["star"], ("shape", S("star")))
        # "plus sign": "plus" stands for the cross, "sign" alone names nothing.
        self.assertEqual(table["plus"], ("shape", S("cross")))
        self.assertNotIn("sign", table)
        # Only colour and shape nouns: no sizes, adjectives, plurals or backgrounds.
        for word in ("small", "round", "circles", "snow", "five", "pointed", "grey"):
            self.assertNotIn(word, table)
        self.assertLen(table, 32)


class SwapShapesTest(tf.test.TestCase):

    def test_every_shape_word_changes_and_nothing_else(self):
        cases = {
            ("a small crimson disc in the top left corner", 1):
                "a small crimson square in the top left corner",
            # Multi-word names and plurals; one offset for both objects.
            ("a red disc and two blue five-pointed stars", 2):
                "a red triangle and two blue crosses",
            ("a pair of plus signs: a red one and a blue one", 1):
                "a pair of circles: a red one and a blue one",
            # Adjectives stay adjectives; "square" is read as the shape.
            ("a red round shape", 2): "a red triangular shape",
            ("a cyan square object near the top", 5): "a cyan circle object near the top",
        }
        for (caption, offset), expected in cases.items():
            self.assertEqual(shapes_captions.swap_shapes(caption, offset), expected, caption)
        self.assertIsNone(shapes_captions.swap_shapes("a red object on the left", 1))
        with self.assertRaisesRegex(ValueError, "itself"):
            shapes_captions.swap_shapes("a red disc", 6)

    def test_exchange_swaps_the_two_shapes_only_where_that_makes_it_false(self):
        cases = {
            "a red disc and a blue five-pointed star": "a red star and a blue circle",
            # Adjectives stay adjectives, in their own places.
            "a cyan round shape and an orange triangular shape":
                "a cyan triangular shape and an orange round shape",
            "we see a tiny blue rhombus and a large green cross":
                "we see a tiny blue cross and a large green diamond",
        }
        for caption, expected in cases.items():
            self.assertEqual(shapes_captions.exchange_shapes(caption), expected, caption)
        for caption in ("a red disc",                        # one shape
                        "a red disc and a blue disc",        # the same shape twice
                        "a red disc and a red star",         # same colour: still true
                        "a disc on the left and a star",     # no colour-shape pair named
                        "a red disc, a blue star and a green cross"):  # three shapes
            self.assertIsNone(shapes_captions.exchange_shapes(caption), caption)

    def test_exchanged_negatives_are_drawn_on_top_of_the_same_swaps(self):
        captions = [list(shapes.generate_example(i, image_size=32).captions) for i in range(30)]
        plain = shapes_captions.shape_swapped_captions(captions, seed=1)
        half = shapes_captions.shape_swapped_captions(captions, seed=1, exchange=0.5)
        every = shapes_captions.shape_swapped_captions(captions, seed=1, exchange=1.0)
        changed = 0
        for caps, p_caps, h_caps, e_caps in zip(captions, plain, half, every):
            for caption, p, h, e in zip(caps, p_caps, h_caps, e_caps):
                exchanged = shapes_captions.exchange_shapes(caption)
                self.assertEqual(e, exchanged if exchanged is not None else p, caption)
                self.assertIn(h, (p, e), caption)
                changed += h != p
                if exchanged is not None:
                    before = shapes_captions.parse_caption(caption)
                    after = shapes_captions.parse_caption(exchanged)
                    self.assertEqual((after.color, after.shape, after.size, after.position),
                                     (before.color, before.shape, before.size,
                                      before.position), exchanged)
                    self.assertNotEqual(after.color_shape, before.color_shape, exchanged)
        exchangeable = sum(e != p for e_caps, p_caps in zip(every, plain)
                           for e, p in zip(e_caps, p_caps))
        self.assertGreater(exchangeable, 10)
        self.assertBetween(changed, 1, exchangeable - 1)
        with self.assertRaisesRegex(ValueError, "exchange"):
            shapes_captions.shape_swapped_captions(captions, seed=1, exchange=1.5)

    def test_swapped_captions_name_other_shapes_and_keep_the_rest(self):
        captions = [list(shapes.generate_example(i, image_size=32).captions) for i in range(30)]
        swapped = shapes_captions.shape_swapped_captions(captions, seed=1)
        named = 0
        for caps, swaps in zip(captions, swapped):
            for caption, swap in zip(caps, swaps):
                before = shapes_captions.parse_caption(caption)
                if not before.shape:
                    self.assertIsNone(swap)
                    continue
                named += 1
                after = shapes_captions.parse_caption(swap)
                self.assertEqual((after.color, after.size, after.position),
                                 (before.color, before.size, before.position), swap)
                self.assertEqual(len(after.shape), len(before.shape), swap)
                # Each object gets another shape (two objects may trade theirs).
                if before.color_shape:
                    self.assertTrue(after.color_shape.isdisjoint(before.color_shape), swap)
                if len(before.shape) == 1:
                    self.assertTrue(after.shape.isdisjoint(before.shape), swap)
        self.assertGreater(named, 100)


if __name__ == "__main__":
    tf.test.main()
