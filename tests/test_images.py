"""Float [-1, 1] <-> uint8 conversion: hand-computed values, rounding, and numpy as
the one conversion of the export path, training grids and evaluation."""

import numpy as np
import tensorflow as tf

from tf_t2i import images as images_lib


class ToUint8Test(tf.test.TestCase):

    def test_hand_computed_values(self):
        x = tf.constant([-1.5, -1.0, -0.996078431, 0.0, 0.5, 1.0, 1.7])
        # (x + 1) * 127.5: -63.75, 0, 0.5, 127.5, 191.25, 255, 344.25 -> round half
        # to even, clip.
        self.assertAllEqual(images_lib.to_uint8(x), [0, 0, 0, 128, 191, 255, 255])
        self.assertEqual(images_lib.to_uint8(x).dtype, tf.uint8)

    def test_matches_numpy_formula_and_keeps_shape(self):
        x = np.random.default_rng(0).uniform(-1.2, 1.2, (2, 4, 4, 3)).astype(np.float32)
        expected = np.clip(np.round((x.astype(np.float64) + 1.0) * 127.5), 0, 255)
        self.assertAllEqual(images_lib.to_uint8(x), expected.astype(np.uint8))

    def test_works_inside_tf_function(self):
        fn = tf.function(images_lib.to_uint8,
                         input_signature=[tf.TensorSpec([None], tf.float32)])
        self.assertAllEqual(fn(tf.constant([-1.0, 1.0])), [0, 255])

    def test_matches_numpy_on_a_fine_grid(self):
        # Served images, training grids and evaluation all convert here; numpy's
        # round-half-even on the same grid is the reference.
        x = np.concatenate([np.linspace(-1.2, 1.2, 1001), [-1.0, 1.0, 0.0, -0.996078431]])
        x = x.astype(np.float32)
        expected = np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)
        self.assertAllEqual(images_lib.to_uint8(x), expected)


class FromUint8Test(tf.test.TestCase):

    def test_hand_computed_values_and_round_trip(self):
        pixels = np.arange(256, dtype=np.uint8)
        x = images_lib.from_uint8(pixels)
        self.assertEqual(x.dtype, tf.float32)
        x = x.numpy()
        self.assertAllClose(x[[0, 255]], [-1.0, 1.0])
        self.assertAllClose(x[128], 128 / 127.5 - 1.0)
        self.assertAllEqual(images_lib.to_uint8(x), pixels)


if __name__ == "__main__":
    tf.test.main()
