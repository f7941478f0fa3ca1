"""Sample-grid captions come from the run's own dataset."""

import numpy as np
import tensorflow as tf

from tf_t2i.data import pipeline
from tf_t2i.training import callbacks


def _source(n):
    return pipeline.ImageCaptionSource(
        images=np.zeros([n, 4, 4, 3], np.uint8),
        captions=[[f"bird {i} first", f"bird {i} second"] for i in range(n)],
        image_ids=np.arange(n), class_ids=np.zeros([n], np.int64), name="cub/test")


class GridCaptionsTest(tf.test.TestCase):

    def test_real_data_uses_first_captions_spread_over_the_split(self):
        # 11 images, 6 picks: linspace(0, 10, 6) = 0, 2, 4, 6, 8, 10.
        self.assertEqual(callbacks.grid_captions("cub", _source(11)),
                         [f"bird {i} first" for i in (0, 2, 4, 6, 8, 10)])

    def test_small_split_gives_each_image_once(self):
        self.assertEqual(callbacks.grid_captions("coco", _source(2)),
                         ["bird 0 first", "bird 1 first"])

    def test_shapes_keeps_the_curated_captions(self):
        self.assertEqual(callbacks.grid_captions("shapes", _source(11)),
                         list(callbacks.DEFAULT_CAPTIONS))


if __name__ == "__main__":
    tf.test.main()
