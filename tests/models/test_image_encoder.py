"""Tests for tf_t2i.models.image_encoder."""

import os
import tempfile
import unittest
import warnings

import h5py
import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from keras.src.legacy.saving import legacy_h5_format

from tf_t2i.models import torch_import
from tf_t2i.models.image_encoder import DAMSMImageEncoder

try:  # torch is a test-only dependency: it provides the reference network.
    import torch
    from tests import convert_torch_reference
except ImportError:  # pragma: no cover
    torch = None


def _small_encoder(**kwargs):
    kwargs.setdefault("embedding_dim", 8)
    kwargs.setdefault("small_cnn_width", 8)
    return DAMSMImageEncoder("small_cnn", **kwargs)


def _images(rng, batch, size):
    return rng.uniform(-1, 1, size=(batch, size, size, 3)).astype(np.float32)


class SmallCNNTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(0)
        self.rng = np.random.default_rng(0)

    @parameterized.named_parameters(("32px", 32), ("64px", 64), ("128px", 128))
    def test_accepts_any_input_size(self, size):
        encoder = _small_encoder()
        regions, code = encoder(_images(self.rng, 2, size), training=True)
        # Internal size 64: regions at 64 / 8, code of embedding_dim.
        self.assertEqual(regions.shape, (2, 8, 8, 8))
        self.assertEqual(code.shape, (2, 8))
        self.assertEqual(regions.dtype, tf.float32)
        self.assertEqual(code.dtype, tf.float32)

    @parameterized.named_parameters(("32", 32, 4), ("128", 128, 16))
    def test_input_size_sets_region_grid(self, input_size, grid):
        encoder = _small_encoder(input_size=input_size)
        regions, code = encoder(_images(self.rng, 1, 64))
        self.assertEqual(regions.shape, (1, grid, grid, 8))
        self.assertEqual(code.shape, (1, 8))

    def test_integer_downscale_is_area_average(self):
        # Each 4x4 block of the 256 px image averages to one 64 px pixel but
        # its middle 2x2 (what bilinear sampling reads) and any single pixel
        # (nearest) do not, so only area resampling encodes both alike.
        encoder = _small_encoder()
        small = 0.5 * _images(self.rng, 2, 64)
        pattern = np.full((4, 4), 0.1, np.float32)
        pattern[1:3, 1:3] = -0.3  # zero mean over the block
        large = (np.repeat(np.repeat(small, 4, axis=1), 4, axis=2)
                 + np.tile(pattern, (64, 64))[np.newaxis, :, :, np.newaxis])
        for got, want in zip(encoder(large), encoder(small)):
            self.assertAllClose(got, want, atol=1e-5, rtol=0)

    def test_every_layer_is_trainable(self):
        encoder = _small_encoder()
        encoder(_images(self.rng, 1, 64))
        non_trainable = {v.path for v in encoder.non_trainable_weights}
        # Only BatchNorm moving statistics: 5 blocks x (mean, variance).
        self.assertLen(non_trainable, 10)
        self.assertTrue(all("moving" in path for path in non_trainable))
        # 5 x (conv kernel, gamma, beta) + region kernel + dense kernel, bias.
        self.assertLen(encoder.trainable_weights, 18)

    def test_region_features_know_their_position(self):
        # A uniform image still gives position-dependent region features,
        # thanks to the coordinate channels.
        encoder = _small_encoder()
        regions, _ = encoder(np.zeros((1, 64, 64, 3), np.float32))
        regions = regions.numpy()[0]
        interior = regions[1:-1, 1:-1].reshape(-1, 8)
        self.assertGreater(np.abs(interior - interior[0]).max(), 1e-4)

    def test_global_code_sees_position(self):
        encoder = _small_encoder()
        left = -np.ones((1, 64, 64, 3), np.float32)
        right = left.copy()
        left[:, 24:40, 4:20] = 1.0
        right[:, 24:40, 44:60] = 1.0
        _, code_left = encoder(left)
        _, code_right = encoder(right)
        self.assertGreater(np.abs(code_left - code_right).max(), 1e-4)

    def test_training_updates_batchnorm_statistics(self):
        encoder = _small_encoder()
        images = _images(self.rng, 4, 64)
        encoder(images, training=False)
        before = [v.numpy() for v in encoder.non_trainable_weights]
        encoder(images, training=True)
        after = [v.numpy() for v in encoder.non_trainable_weights]
        self.assertTrue(any(np.abs(a - b).max() > 0 for a, b in zip(after, before)))

    def test_gradients_reach_images_inside_tf_function(self):
        encoder = _small_encoder()

        @tf.function
        def gradients(images):
            with tf.GradientTape() as tape:
                tape.watch(images)
                regions, code = encoder(images, training=True)
                loss = tf.reduce_sum(regions) + tf.reduce_sum(code)
            return tape.gradient(loss, [images] + encoder.trainable_variables)

        grads = gradients(tf.constant(_images(self.rng, 2, 128)))
        self.assertEqual(grads[0].shape, (2, 128, 128, 3))
        for grad in grads:
            self.assertIsNotNone(grad)
            self.assertTrue(np.all(np.isfinite(grad.numpy())))
        self.assertGreater(np.abs(grads[0].numpy()).max(), 0)

    @parameterized.named_parameters(("float16", "mixed_float16"),
                                    ("bfloat16", "mixed_bfloat16"))
    def test_mixed_precision_returns_float32(self, policy):
        encoder = _small_encoder(dtype=policy)
        regions, code = tf.function(lambda x: encoder(x, training=True))(
            _images(self.rng, 2, 64))
        compute_dtype = keras.DTypePolicy(policy).compute_dtype
        self.assertEqual(encoder.backbone.layers[1].compute_dtype, compute_dtype)
        self.assertEqual(encoder.region_projection.compute_dtype, compute_dtype)
        self.assertEqual(encoder.region_projection.kernel.dtype, "float32")
        self.assertEqual(regions.dtype, tf.float32)
        self.assertEqual(code.dtype, tf.float32)

    @parameterized.named_parameters(
        ("bad_backbone", {"backbone": "resnet"}, "backbone"),
        ("weights_for_small_cnn", {"weights_path": "x.h5"}, "weights_path"),
        ("size_not_multiple_of_16", {"input_size": 40}, "divisible by 16"),
        ("odd_width", {"small_cnn_width": 7}, "small_cnn_width"),
        ("tiny_inception", {"backbone": "inception_v3", "input_size": 64}, ">= 75"),
    )
    def test_bad_arguments_raise(self, kwargs, message):
        with self.assertRaisesRegex(ValueError, message):
            DAMSMImageEncoder(**kwargs)

    def test_config_round_trip(self):
        encoder = _small_encoder(input_size=32, embedding_dim=6)
        config = encoder.get_config()
        for key, value in {"backbone": "small_cnn", "embedding_dim": 6,
                           "weights_path": None, "small_cnn_width": 8,
                           "input_size": 32}.items():
            self.assertEqual(config[key], value)
        restored = DAMSMImageEncoder.from_config(config)
        self.assertEqual(restored.get_config(), config)

    def test_save_and_load(self):
        encoder = _small_encoder(input_size=32)
        images = _images(self.rng, 2, 32)
        encoder(images, training=True)  # moves the BatchNorm statistics
        expected = encoder(images)
        path = os.path.join(tempfile.mkdtemp(dir=self.get_temp_dir()),
                            "image_encoder.keras")
        encoder.save(path)
        restored = keras.saving.load_model(path)
        for got, want in zip(restored(images), expected):
            self.assertAllClose(got, want, atol=1e-6, rtol=0)


class InceptionV3Test(tf.test.TestCase):
    """InceptionV3 at 299 px is 22M weights: built few times, batch 1."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        keras.utils.set_random_seed(1)
        cls.temp_dir = tempfile.mkdtemp()
        cls.reference = keras.applications.InceptionV3(
            include_top=False, weights=None, input_shape=(299, 299, 3))
        cls.weights_path = os.path.join(cls.temp_dir, "inception.weights.h5")
        cls.reference.save_weights(cls.weights_path)

    @classmethod
    def tearDownClass(cls):
        for name in os.listdir(cls.temp_dir):
            os.remove(os.path.join(cls.temp_dir, name))
        os.rmdir(cls.temp_dir)
        super().tearDownClass()

    def _assert_backbone_matches_reference(self, encoder):
        # Same architecture, so the same weight order; layer names differ
        # between instances (Keras numbers unnamed layers).
        reference = self.reference.weights
        loaded = encoder.backbone.weights
        self.assertLen(loaded, len(reference))
        for want, got in zip(reference, loaded):
            self.assertEqual(got.shape, want.shape)
            self.assertAllEqual(got.numpy(), want.numpy(), msg=want.path)

    def test_loads_weights_and_matches_reference_features(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a given file must not warn
            encoder = DAMSMImageEncoder("inception_v3",
                                        weights_path=self.weights_path)
        self._assert_backbone_matches_reference(encoder)

        image = np.random.default_rng(0).uniform(
            -1, 1, size=(1, 128, 128, 3)).astype(np.float32)
        regions, code = encoder(image, training=True)
        self.assertEqual(regions.shape, (1, 17, 17, 256))
        self.assertEqual(code.shape, (1, 256))
        self.assertEqual(regions.dtype, tf.float32)

        # Independent path: bilinear resize to 299, reference mixed7 / mixed10,
        # then the projections as plain numpy algebra.
        features = keras.Model(
            self.reference.inputs,
            [self.reference.get_layer("mixed7").output,
             self.reference.get_layer("mixed10").output])
        resized = tf.image.resize(image, (299, 299), method="bilinear")
        mixed7, mixed10 = [f.numpy() for f in features(resized, training=False)]
        self.assertEqual(mixed7.shape, (1, 17, 17, 768))
        self.assertEqual(mixed10.shape, (1, 8, 8, 2048))
        conv_kernel = encoder.region_projection.kernel.numpy()[0, 0]
        dense_kernel, dense_bias = [w.numpy() for w in
                                    encoder.global_projection.weights]
        self.assertAllClose(regions, mixed7 @ conv_kernel, atol=1e-4, rtol=1e-4)
        self.assertAllClose(code, mixed10.mean(axis=(1, 2)) @ dense_kernel
                            + dense_bias, atol=1e-4, rtol=1e-4)

        # Frozen backbone: only the two projections train, 721,152 weights
        # as in the reference's emb_features + emb_cnn_code.
        self.assertEqual(
            sorted(w.path.split("/", 1)[1] for w in encoder.trainable_weights),
            ["global_projection/bias", "global_projection/kernel",
             "region_projection/kernel"])
        self.assertEqual(
            sum(int(np.prod(w.shape)) for w in encoder.trainable_weights),
            768 * 256 + 2048 * 256 + 256)
        self.assertEqual(sum(int(np.prod(w.shape)) for w in encoder.trainable_weights),
                         721_152)
        self.assertLessEqual(np.abs(conv_kernel).max(), 0.1)
        self.assertLessEqual(np.abs(dense_kernel).max(), 0.1)

        # BatchNorm stays in inference mode even with training=True.
        again = encoder(image, training=True)
        self.assertAllClose(again[0], regions, atol=1e-6, rtol=0)

        config = encoder.get_config()
        self.assertEqual(config["weights_path"], self.weights_path)
        self.assertEqual(config["backbone"], "inception_v3")
        restored = DAMSMImageEncoder.from_config(config)
        self.assertEqual(restored.get_config(), config)
        self._assert_backbone_matches_reference(restored)

    def test_loads_legacy_h5_weights(self):
        # The ImageNet file keras.applications publishes is in the legacy
        # (Keras 2) HDF5 layout; write one the same way.
        legacy_path = os.path.join(self.temp_dir, "inception_legacy.h5")
        with h5py.File(legacy_path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, self.reference)
        encoder = DAMSMImageEncoder("inception_v3", embedding_dim=4,
                                    weights_path=legacy_path)
        self._assert_backbone_matches_reference(encoder)
        os.remove(legacy_path)

    def test_random_backbone_warns(self):
        with self.assertWarnsRegex(UserWarning, "R-precision"):
            encoder = DAMSMImageEncoder("inception_v3", embedding_dim=4)
        self.assertFalse(encoder.backbone.trainable)

    def test_missing_weights_file_raises(self):
        missing = os.path.join(self.temp_dir, "no_such_inception.h5")
        with self.assertRaisesRegex(FileNotFoundError, "no_such_inception.h5"):
            DAMSMImageEncoder("inception_v3", weights_path=missing)


@unittest.skipIf(torch is None, "needs torch for the reference network")
class TorchvisionInceptionTest(tf.test.TestCase):
    """The torchvision port, loaded from a torchvision-style ImageNet state dict."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.temp_dir = tempfile.mkdtemp()
        cls.module = convert_torch_reference.randomize(
            convert_torch_reference.CNNEncoder(), seed=21)
        # torchvision's ImageNet file: the trunk plus heads the encoder does not use.
        state = {k: v for k, v in cls.module.state_dict().items()
                 if not k.startswith("emb_")}
        state["AuxLogits.conv0.conv.weight"] = torch.zeros(128, 768, 1, 1)
        state["fc.weight"] = torch.zeros(1000, 2048)
        state["fc.bias"] = torch.zeros(1000)
        cls.weights_path = os.path.join(cls.temp_dir, "inception_v3_google.pth")
        torch.save(state, cls.weights_path)
        cls.image = np.random.default_rng(3).uniform(
            -1, 1, size=(1, 299, 299, 3)).astype(np.float32)
        with torch.no_grad():
            mixed_6e, mixed_7c = cls.module.trunk(
                torch.from_numpy(cls.image.transpose(0, 3, 1, 2)))
        cls.want = [mixed_6e.numpy().transpose(0, 2, 3, 1),
                    mixed_7c.numpy().transpose(0, 2, 3, 1)]

    @classmethod
    def tearDownClass(cls):
        for name in os.listdir(cls.temp_dir):
            os.remove(os.path.join(cls.temp_dir, name))
        os.rmdir(cls.temp_dir)
        super().tearDownClass()

    def test_imagenet_weights_give_torchvision_features(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a given file must not warn
            encoder = DAMSMImageEncoder("torchvision_inception_v3",
                                        weights_path=self.weights_path)
        got = encoder.backbone(self.image, training=False)
        for name, g, w in zip(("Mixed_6e", "Mixed_7c"), got, self.want):
            self.assertEqual(g.shape, w.shape)
            error = convert_torch_reference.relative_error(g, w)
            self.assertLess(error, 1e-4, f"{name}: relative error {error:.2e}")

        # The encoder around it: frozen trunk, inference mode, the reference's heads.
        regions, code = encoder(self.image, training=True)
        self.assertEqual(regions.shape, (1, 17, 17, 256))
        self.assertEqual(code.shape, (1, 256))
        self.assertAllClose(code, self.want[1].mean(axis=(1, 2))
                            @ encoder.global_projection.kernel.numpy()
                            + encoder.global_projection.bias.numpy(), atol=1e-4, rtol=1e-4)
        self.assertEqual(
            sorted(w.path.split("/", 1)[1] for w in encoder.trainable_weights),
            ["global_projection/bias", "global_projection/kernel",
             "region_projection/kernel"])
        self.assertEqual(sum(int(np.prod(w.shape)) for w in encoder.trainable_weights),
                         721_152)

        config = encoder.get_config()
        self.assertEqual(config["backbone"], "torchvision_inception_v3")
        self.assertEqual(config["weights_path"], self.weights_path)
        restored = DAMSMImageEncoder.from_config(config)
        for a, b in zip(restored.backbone.weights, encoder.backbone.weights):
            self.assertAllEqual(a.numpy(), b.numpy(), msg=a.path)

    def test_layers_carry_torchvision_names(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            encoder = DAMSMImageEncoder("torchvision_inception_v3", embedding_dim=4)
        names = {layer.name for layer in encoder.backbone.layers}
        self.assertContainsSubset(
            {"Conv2d_1a_3x3.conv", "Conv2d_1a_3x3.bn", "Mixed_6e.branch7x7dbl_5.conv",
             "Mixed_7c.branch3x3dbl_3b.bn", "Mixed_7c.branch_pool.conv"}, names)
        keys = {key for a in torch_import.by_layer_name(encoder.backbone)
                for key, _ in a.sources}
        want = {k for k in self.module.state_dict()
                if not k.startswith("emb_") and not k.endswith("num_batches_tracked")}
        self.assertEqual(keys, want)

    def test_wrong_file_names_the_first_mismatch(self):
        text_path = os.path.join(self.temp_dir, "text_encoder200.pth")
        torch.save(convert_torch_reference.RNNEncoder(5).state_dict(), text_path)
        with self.assertRaisesRegex(ValueError, r"missing Conv2d_1a_3x3\.conv\.weight"):
            DAMSMImageEncoder("torchvision_inception_v3", weights_path=text_path)
        not_torch = os.path.join(self.temp_dir, "keras.weights.h5")
        with open(not_torch, "wb") as f:
            f.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
        with self.assertRaisesRegex(ValueError, "torchvision Inception-v3 state dict"):
            DAMSMImageEncoder("torchvision_inception_v3", weights_path=not_torch)

    def test_bad_arguments_raise(self):
        with self.assertRaisesRegex(ValueError, ">= 75"):
            DAMSMImageEncoder("torchvision_inception_v3", input_size=64)
        with self.assertRaisesRegex(FileNotFoundError, "no_such.pth"):
            DAMSMImageEncoder("torchvision_inception_v3",
                              weights_path=os.path.join(self.temp_dir, "no_such.pth"))


if __name__ == "__main__":
    tf.test.main()
