"""The map sheet: inferno colours, the blend, which maps a row shows, tile placement."""

import numpy as np
import tensorflow as tf

from tf_t2i.serving import map_sheet


class HeatmapTest(tf.test.TestCase):

    def test_anchor_colours_and_interpolation(self):
        colours = map_sheet.heatmap(np.array([0.0, 0.5, 1.0, 0.125, -1.0, 2.0]))
        self.assertAllEqual(colours[:3], [[0, 0, 4], [188, 55, 84], [252, 255, 164]])
        # Halfway between the first two anchors (0 and 0.25).
        self.assertAllEqual(colours[3], [44, 8, 57])
        self.assertAllEqual(colours[4:], [[0, 0, 4], [252, 255, 164]])  # clipped

    def test_overlay_blends_with_the_heat_weight(self):
        image = np.full([2, 2, 3], 100, np.uint8)
        blended = map_sheet.overlay(image, np.zeros([2, 2]))
        expected = np.round(0.4 * 100 + 0.6 * np.array([0, 0, 4])).astype(np.uint8)
        self.assertAllEqual(blended, np.broadcast_to(expected, [2, 2, 3]))


class SheetTest(tf.test.TestCase):

    def test_padding_maps_are_left_out(self):
        labels = ["stage 2 (64x64): a", "stage 2 (64x64): red", "stage 2 (64x64): (padding)"]
        self.assertEqual(map_sheet.shown_maps(labels), [0, 1])
        self.assertEqual(map_sheet.shown_maps(["mask, block 0 (4x4)"]), [0])

    def test_tiles_hold_the_image_and_its_maps(self):
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, [2, 64, 64, 3], np.uint8)
        maps = rng.uniform(size=[2, 3, 64, 64]).astype(np.float32)
        labels = [["stage 2 (64x64): a", "stage 2 (64x64): circle",
                   "stage 2 (64x64): (padding)"]] * 2
        sheet = np.array(map_sheet.render_map_sheet(images, maps, labels, ["a circle"] * 2))
        # 64 px images are drawn at 128 px: the caption column, the image, two maps.
        self.assertEqual(sheet.shape[1], 180 + 3 * (128 + 4) + 4)
        image_tile = images[0].repeat(2, axis=0).repeat(2, axis=1)
        # The first row's image tile sits below the legend, right of the caption column.
        tops = [y for y in range(sheet.shape[0] - 127)
                if np.array_equal(sheet[y:y + 128, 180:308], image_tile)]
        self.assertLen(tops, 1)
        heat = sheet[tops[0]:tops[0] + 128, 312:440]
        expected = map_sheet.overlay(images[0], maps[0, 0]).repeat(2, axis=0).repeat(2, axis=1)
        self.assertAllEqual(heat, expected)

    def test_mismatched_inputs_are_refused(self):
        images = np.zeros([1, 8, 8, 3], np.uint8)
        with self.assertRaisesRegex(ValueError, "do not fit"):
            map_sheet.render_map_sheet(images, np.zeros([1, 2, 4, 4]), [["a", "b"]], ["t"])
        with self.assertRaisesRegex(ValueError, "2 labels"):
            map_sheet.render_map_sheet(images, np.zeros([1, 2, 8, 8]), [["a"]], ["t"])


if __name__ == "__main__":
    tf.test.main()
