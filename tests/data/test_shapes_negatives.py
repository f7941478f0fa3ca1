"""shapes_negatives: shapes images with objects added until they hold three."""

import numpy as np
from scipy import ndimage
import tensorflow as tf

from tf_t2i.data import shapes
from tf_t2i.data import shapes_negatives


def _examples(num, image_size):
    return [shapes.generate_example(i, image_size=image_size) for i in range(num)]


class ExtraObjectsTest(tf.test.TestCase):
    """`render_with_extra_objects`: the real image plus objects up to three."""

    def test_the_real_image_plus_one_added_object_per_missing_one(self):
        palette = np.array(shapes.COLOR_RGB, np.float32)
        counts, copies = [], 0
        render = shapes_negatives.render_with_extra_objects
        for example in _examples(60, 64):
            negative = render(example.image_id, image_size=64)
            self.assertEqual(negative.dtype, np.uint8)
            np.testing.assert_array_equal(negative, render(example.image_id, image_size=64))
            # Pixels the added objects do not cover keep the real image's bytes (the grain
            # included), so the changed pixels are the added objects.
            changed = np.abs(negative.astype(int) - example.image.astype(int)).max(-1) > 40
            labels, found = ndimage.label(ndimage.binary_opening(changed))
            attributes = example.attributes
            counts.append((found, shapes_negatives.EXTRA_OBJECTS_TOTAL - attributes.num_objects))
            own = {int(c) for c in attributes.color[:attributes.num_objects]}
            for k in range(1, found + 1):
                rgb = np.median(negative[labels == k].astype(np.float32), axis=0)
                distance = np.abs(palette - rgb).max(axis=1)
                self.assertLessEqual(distance.min(), 30, (example.image_id, rgb))
                copies += int(np.argmin(distance)) in own
        matched = np.mean([found == wanted for found, wanted in counts])
        # An added object may touch a real one of another colour; nearly all are apart.
        self.assertGreaterEqual(matched, 0.9, counts)
        self.assertBetween(copies, 15, 60)  # about half copy the image's own colours

    def test_differs_only_where_objects_were_added(self):
        for example in _examples(20, 32):
            negative = shapes_negatives.render_with_extra_objects(example.image_id, image_size=32)
            same = np.all(negative == example.image, axis=-1).mean()
            self.assertBetween(same, 0.5, 0.995, example.image_id)

    def test_bad_arguments_raise(self):
        with self.assertRaisesRegex(ValueError, "non-negative"):
            shapes_negatives.render_with_extra_objects(-1)


if __name__ == "__main__":
    tf.test.main()
