"""Tests for tf_t2i.data.shapes: determinism, attributes, caption truth, rendering."""

import re

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tf_t2i.data import shapes

# Enough examples to meet one- and two-object images, every background and
# most templates, while the whole file runs in about a second.
_NUM_CHECKED = 150


def _examples(num=_NUM_CHECKED, image_size=32, seed=0):
    return [shapes.generate_example(i, image_size=image_size, seed=seed) for i in range(num)]


def _find(words, text):
    """Whether any of `words` occurs in `text` as whole words."""
    pattern = r"(?<![\w-])(?:" + "|".join(re.escape(w) for w in words) + r")(?![\w-])"
    return re.search(pattern, text) is not None


def _shape_words(shape_id):
    nouns = shapes.SHAPE_SYNONYMS[shape_id]
    plurals = [n + ("es" if n.endswith(("s", "x")) else "s") for n in nouns]
    return set(nouns) | set(plurals) | set(shapes.SHAPE_ADJECTIVES[shape_id])


def _without_background(caption, background_id):
    """Lower-cases the caption and drops "<background word> background"."""
    text = caption.lower().rstrip(".")
    for word in shapes.BACKGROUND_SYNONYMS[background_id]:
        text = re.sub(rf"\b{re.escape(word)} background\b", " ", text)
    return text


def _present(attributes, field):
    return {int(v) for v in getattr(attributes, field)[:attributes.num_objects]}


class DeterminismTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(32, 64)
    def test_same_seed_and_index_give_same_bytes(self, image_size):
        for index in (0, 7, 123456):
            a = shapes.generate_example(index, image_size=image_size, seed=5)
            b = shapes.generate_example(index, image_size=image_size, seed=5)
            self.assertEqual(a.image.tobytes(), b.image.tobytes())
            self.assertEqual(a.captions, b.captions)
            self.assertAllEqual(shapes.attributes_to_array(a.attributes),
                                shapes.attributes_to_array(b.attributes))
            self.assertEqual(a.image_id, index)

    def test_different_index_or_seed_differs(self):
        base = shapes.generate_example(3, image_size=32, seed=0)
        for other in (shapes.generate_example(4, image_size=32, seed=0),
                      shapes.generate_example(3, image_size=32, seed=1)):
            self.assertNotEqual(base.image.tobytes(), other.image.tobytes())
            self.assertNotEqual(base.captions, other.captions)

    def test_attributes_and_captions_do_not_depend_on_image_size(self):
        for index in range(20):
            small = shapes.generate_example(index, image_size=32)
            large = shapes.generate_example(index, image_size=96)
            self.assertEqual(small.captions, large.captions)
            self.assertAllEqual(shapes.attributes_to_array(small.attributes),
                                shapes.attributes_to_array(large.attributes))
            self.assertEqual(small.attributes.background, large.attributes.background)
            self.assertEqual(large.image.shape, (96, 96, 3))
            self.assertEqual(large.image.dtype, np.uint8)

    def test_splits_are_disjoint_and_follow_generate_example(self):
        train = list(shapes.generate_split("train", 25, image_size=32, seed=2))
        test = list(shapes.generate_split("test", 25, image_size=32, seed=2))
        self.assertLen(train, 25)
        self.assertEmpty({e.image_id for e in train} & {e.image_id for e in test})
        self.assertEmpty({e.image.tobytes() for e in train} & {e.image.tobytes() for e in test})
        expected = shapes.generate_example(test[4].image_id, image_size=32, seed=2)
        self.assertEqual(test[4].image.tobytes(), expected.image.tobytes())
        self.assertEqual([e.image_id for e in train], list(range(25)))

    def test_bad_arguments_raise(self):
        with self.assertRaises(ValueError):
            shapes.split_indices("validation", 3)
        with self.assertRaises(ValueError):
            shapes.split_indices("train", shapes.SPLIT_CAPACITY + 1)
        with self.assertRaises(ValueError):
            shapes.generate_example(-1)
        with self.assertRaises(ValueError):
            shapes.generate_example(0, image_size=8)


class AttributesTest(tf.test.TestCase):

    def test_ranges_and_padding(self):
        seen_counts, seen_backgrounds = set(), set()
        for example in _examples():
            attributes = example.attributes
            n = attributes.num_objects
            seen_counts.add(n)
            seen_backgrounds.add(attributes.background)
            self.assertIn(n, (1, 2))
            self.assertBetween(attributes.background, 0, len(shapes.BACKGROUNDS) - 1)
            array = shapes.attributes_to_array(attributes)
            self.assertEqual(array.shape, (shapes.MAX_OBJECTS, 4))
            self.assertAllEqual(array[n:], -np.ones_like(array[n:]))
            vocab_sizes = [len(shapes.SHAPES), len(shapes.COLORS), len(shapes.SIZES),
                           len(shapes.POSITIONS)]
            for row in array[:n]:
                for value, vocab_size in zip(row, vocab_sizes):
                    self.assertBetween(value, 0, vocab_size - 1)
            # Two objects: different colours and positions, no colour of the background family.
            self.assertLen(_present(attributes, "color"), n)
            self.assertLen(_present(attributes, "position"), n)
            excluded = shapes.EXCLUDED_COLORS[attributes.background]
            for color in _present(attributes, "color"):
                self.assertNotIn(shapes.COLORS[color], excluded)
        self.assertEqual(seen_counts, {1, 2})
        self.assertLen(seen_backgrounds, len(shapes.BACKGROUNDS))

    def test_two_objects_keep_apart(self):
        for example in _examples():
            attributes = example.attributes
            if attributes.num_objects < 2:
                continue
            centres = np.array([shapes.POSITION_CENTERS[p] for p in attributes.position])
            radii = [shapes.SIZE_RADII[s] for s in attributes.size]
            self.assertGreaterEqual(np.linalg.norm(centres[0] - centres[1]), sum(radii) - 1e-9)

    def test_to_dict_matches_fields(self):
        attributes = shapes.generate_example(1).attributes
        as_dict = attributes.to_dict()
        self.assertEqual(set(as_dict),
                         set(shapes.ATTRIBUTE_FIELDS) | {"num_objects", "background"})
        self.assertEqual(as_dict["shape"].dtype, np.int64)
        self.assertAllEqual(as_dict["position"], attributes.position)

    def test_canonical_caption_names_every_attribute(self):
        for example in _examples(20):
            attributes = example.attributes
            text = shapes.canonical_caption(attributes)
            for i in range(attributes.num_objects):
                for field, vocab in (("shape", shapes.SHAPES), ("color", shapes.COLORS),
                                     ("size", shapes.SIZES)):
                    self.assertIn(vocab[getattr(attributes, field)[i]], text)


class CaptionsTest(tf.test.TestCase):

    def test_count_length_and_variety(self):
        for example in _examples():
            self.assertLen(example.captions, shapes.NUM_CAPTIONS)
            for caption in example.captions:
                self.assertIsInstance(caption, str)
                self.assertNotEmpty(caption.strip())
                self.assertLessEqual(len(caption.split()), shapes.MAX_CAPTION_WORDS, caption)
            distinct = {c.lower().rstrip(".") for c in example.captions}
            self.assertGreaterEqual(len(distinct), 5, example.captions)

    def test_no_wrong_colour_shape_or_background(self):
        for example in _examples():
            attributes = example.attributes
            colors, shape_ids = _present(attributes, "color"), _present(attributes, "shape")
            for caption in example.captions:
                for named in re.findall(r"([\w-]+) background", caption.lower()):
                    self.assertTrue(_find([named], " ".join(
                        shapes.BACKGROUND_SYNONYMS[attributes.background])), caption)
                text = _without_background(caption, attributes.background)
                for color_id, words in enumerate(shapes.COLOR_SYNONYMS):
                    if _find(words, text):
                        self.assertIn(color_id, colors, f"{caption!r}: {shapes.COLORS[color_id]}")
                for shape_id in range(len(shapes.SHAPES)):
                    if _find(_shape_words(shape_id), text):
                        self.assertIn(shape_id, shape_ids,
                                      f"{caption!r}: {shapes.SHAPES[shape_id]}")

    def test_single_object_size_and_position_words_are_true(self):
        all_position_words = {w for words in shapes.POSITION_KEYWORDS for w in words}
        for example in _examples():
            attributes = example.attributes
            if attributes.num_objects != 1:
                continue
            size, position = attributes.size[0], attributes.position[0]
            for caption in example.captions:
                text = caption.lower()
                for size_id, words in enumerate(shapes.SIZE_SYNONYMS):
                    if _find(words, text):
                        self.assertEqual(size_id, size, caption)
                used = {w for w in all_position_words if _find([w], text)}
                self.assertContainsSubset(used, set(shapes.POSITION_KEYWORDS[position]), caption)

    def test_captions_carry_colour_or_shape_and_mostly_both_of_main_object(self):
        for example in _examples():
            attributes = example.attributes
            main_colour = shapes.COLOR_SYNONYMS[attributes.color[0]]
            main_shape = _shape_words(attributes.shape[0])
            all_colours = [w for words in shapes.COLOR_SYNONYMS for w in words]
            all_shapes = set().union(*(_shape_words(s) for s in range(len(shapes.SHAPES))))
            both = 0
            for caption in example.captions:
                text = _without_background(caption, attributes.background)
                self.assertTrue(_find(all_colours, text) or _find(all_shapes, text), caption)
                both += _find(main_colour, text) and _find(main_shape, text)
            self.assertGreaterEqual(both, 7, example.captions)

    def test_two_object_images_get_captions_about_both(self):
        mentions_second = 0
        for example in _examples():
            attributes = example.attributes
            if attributes.num_objects != 2:
                continue
            second = shapes.COLOR_SYNONYMS[attributes.color[1]]
            mentions_second += sum(_find(second, c.lower()) for c in example.captions)
        self.assertGreater(mentions_second, 0)


class RenderingTest(tf.test.TestCase):

    def test_large_object_centre_has_its_colour(self):
        size, checked = 128, 0
        palette = np.array(shapes.COLOR_RGB, np.float32)
        for example in _examples(60, image_size=size):
            attributes = example.attributes
            for i in range(attributes.num_objects):
                if shapes.SIZES[attributes.size[i]] != "large":
                    continue
                x, y = (np.array(shapes.POSITION_CENTERS[attributes.position[i]])
                        * size).astype(int)
                patch = example.image[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).astype(np.float32)
                rgb = patch.mean(axis=0)
                nearest = np.argmin(np.abs(palette - rgb).sum(axis=1))
                self.assertEqual(nearest, attributes.color[i], (example.image_id, rgb))
                self.assertAllClose(rgb, palette[attributes.color[i]], atol=30)
                checked += 1
        self.assertGreater(checked, 10)

    def test_empty_corner_shows_background(self):
        size, checked = 64, 0
        for example in _examples(60, image_size=size):
            attributes = example.attributes
            corner = shapes.POSITIONS.index("top left")
            # Objects at the left, top or centre could reach close to the corner too.
            near = {corner, shapes.POSITIONS.index("left"), shapes.POSITIONS.index("top")}
            if near & _present(attributes, "position"):
                continue
            rgb = example.image[:3, :3].reshape(-1, 3).mean(axis=0)
            self.assertAllClose(rgb, shapes.BACKGROUND_RGB[attributes.background], atol=45)
            checked += 1
        self.assertGreater(checked, 10)


if __name__ == "__main__":
    tf.test.main()
