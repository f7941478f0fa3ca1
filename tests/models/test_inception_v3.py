"""The shared Inception-v3 topology and its two variants (torchvision trunk, FID graph)."""

import keras
import numpy as np
import tensorflow as tf

from tf_t2i.models import inception_v3


def layers_of_type(model, cls):
    return [layer for layer in model.layers if type(layer) is cls]


class InceptionV3VariantsTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.trunk = inception_v3.build_trunk(299)
        cls.fid, cls.fid_convs = inception_v3.build_fid_trunk()

    def test_both_variants_have_the_same_convolutions(self):
        trunk_convs = {layer.name: tuple(layer.kernel.shape)
                       for layer in layers_of_type(self.trunk, keras.layers.Conv2D)}
        fid_convs = {f"{name}.conv": tuple(layer.kernel.shape)
                     for name, layer in self.fid_convs.items()}
        self.assertLen(trunk_convs, len(inception_v3.CONV_SPECS))
        self.assertEqual(trunk_convs, fid_convs)
        self.assertEqual(self.fid.output.shape, (None, inception_v3.GLOBAL_CHANNELS))

    def test_variants_differ_in_batch_norm_and_pooling_only(self):
        # torchvision: conv without bias + BatchNorm with scale; FID: batch norm folded.
        self.assertLen(layers_of_type(self.trunk, keras.layers.BatchNormalization), 94)
        self.assertEmpty(layers_of_type(self.fid, keras.layers.BatchNormalization))
        self.assertTrue(all(c.use_bias for c in self.fid_convs.values()))
        # torchvision pads its 9 tower average pools explicitly (count_include_pad=True).
        self.assertLen(layers_of_type(self.trunk, keras.layers.ZeroPadding2D), 9)
        self.assertEmpty(layers_of_type(self.fid, keras.layers.ZeroPadding2D))
        self.assertEqual([p.padding for p in layers_of_type(
            self.fid, keras.layers.AveragePooling2D)], ["same"] * 8)
        # The FID graph's Mixed_7c pools with max.
        self.assertIsInstance(self.fid.get_layer("Mixed_7c.max_pool"),
                              keras.layers.MaxPooling2D)
        self.assertIsInstance(self.trunk.get_layer("Mixed_7c.avg_pool"),
                              keras.layers.AveragePooling2D)

    def test_torchvision_average_pool_counts_the_padding(self):
        block = inception_v3._Builder(inception_v3.TORCHVISION)  # pylint: disable=protected-access
        fid_block = inception_v3._Builder(inception_v3.FID)  # pylint: disable=protected-access
        ones = keras.Input((3, 3, 1))
        counted = keras.Model(ones, block.avg_pool(ones, "b"))(np.ones([1, 3, 3, 1]))
        excluded = keras.Model(ones, fid_block.avg_pool(ones, "b"))(np.ones([1, 3, 3, 1]))
        # A corner sees 4 of 9 pixels: 4/9 when the padding counts, 1 when it does not.
        self.assertAllClose(np.asarray(counted)[0, 0, 0, 0], 4.0 / 9.0)
        self.assertAllClose(np.asarray(excluded)[0, :, :, 0], np.ones([3, 3]))
