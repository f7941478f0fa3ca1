"""The torch-free reader of TorchScript archives and torch.save files."""

import collections
import importlib.util
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.eval import torch_files
from tf_t2i.io import torchscript_reader

HAS_TORCH = importlib.util.find_spec("torch") is not None


def sample_state():
    rng = np.random.default_rng(0)
    return collections.OrderedDict(
        weight=rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        counts=np.arange(6, dtype=np.int64),
        transposed=rng.standard_normal((3, 5)).T,  # non-contiguous, float64
        half=rng.standard_normal(7).astype(np.float16))


class ReaderTest(tf.test.TestCase):

    def assert_same(self, got, expected):
        self.assertEqual(list(got), list(expected))
        for key, value in expected.items():
            self.assertEqual(got[key].dtype, value.dtype, key)
            self.assertAllEqual(got[key], value)

    def test_zip_state_dict(self):
        path = os.path.join(self.create_tempdir().full_path, "w.pth")
        torch_files.write_zip(path, sample_state())
        self.assert_same(torchscript_reader.load_state_dict(path), sample_state())

    def test_legacy_state_dict(self):
        path = os.path.join(self.create_tempdir().full_path, "w.pth")
        torch_files.write_legacy(path, sample_state())
        self.assert_same(torchscript_reader.load_state_dict(path), sample_state())

    def test_torchscript_module_tree(self):
        leaf = torch_files.FakeModule("__torch__.m.Leaf", weight=np.ones((2, 2), np.float32),
                                      stride=2, padding=[0, 3], training=False)
        root = torch_files.FakeModule("__torch__.m.Root", block=leaf,
                                      bias=np.zeros(3, np.float32))
        path = os.path.join(self.create_tempdir().full_path, "m.pt")
        torch_files.write_zip(path, root, prefix="m")
        module = torchscript_reader.load_torchscript(path)
        self.assertEqual(module.type_name, "__torch__.m.Root")
        self.assertEqual(list(torchscript_reader.named_tensors(module)),
                         ["block.weight", "bias"])
        block = torchscript_reader.named_modules(module)["block"]
        self.assertEqual(block.attributes["stride"], 2)
        self.assertEqual(block.attributes["padding"], [0, 3])

    def test_missing_truncated_and_foreign_files(self):
        tmp = self.create_tempdir().full_path
        with self.assertRaises(FileNotFoundError):
            torchscript_reader.load(os.path.join(tmp, "missing.pt"))
        path = torch_files.write_zip(os.path.join(tmp, "w.pth"), sample_state())
        data = open(path, "rb").read()
        for name, content in (("truncated.pth", data[:len(data) // 2]), ("empty.pth", b""),
                              ("text.pth", b"hello world, not a weights file")):
            bad = os.path.join(tmp, name)
            with open(bad, "wb") as f:
                f.write(content)
            with self.assertRaises(torchscript_reader.TorchFileError, msg=name):
                torchscript_reader.load(bad)
        legacy = torch_files.write_legacy(os.path.join(tmp, "legacy.pth"), sample_state())
        cut = os.path.join(tmp, "legacy_cut.pth")
        with open(cut, "wb") as f:
            f.write(open(legacy, "rb").read()[:-10])
        with self.assertRaisesRegex(torchscript_reader.TorchFileError, "truncated"):
            torchscript_reader.load(cut)

    def test_refuses_arbitrary_globals(self):
        import pickle  # pylint: disable=g-import-not-at-top
        import zipfile  # pylint: disable=g-import-not-at-top
        path = os.path.join(self.create_tempdir().full_path, "evil.pt")
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", pickle.dumps(os.system, protocol=2))
        with self.assertRaisesRegex(torchscript_reader.TorchFileError, "refusing"):
            torchscript_reader.load(path)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install torch==2.13.0)")
class TorchCompatibilityTest(tf.test.TestCase):
    """Files written by torch itself, and our files read by torch."""

    def test_torch_save_both_formats(self):
        import torch  # pylint: disable=g-import-not-at-top
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sample_state().items()}
        state["view"] = state["weight"][1:3, :, 1]  # a strided view with an offset
        tmp = self.create_tempdir().full_path
        for legacy in (False, True):
            path = os.path.join(tmp, f"t{legacy}.pth")
            torch.save(state, path, _use_new_zipfile_serialization=not legacy)
            got = torchscript_reader.load_state_dict(path)
            for key, value in state.items():
                self.assertAllEqual(got[key], value.numpy())

    def test_torch_jit_save(self):
        import torch  # pylint: disable=g-import-not-at-top
        torch.manual_seed(0)
        module = torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3),
                                                      torch.nn.BatchNorm2d(4)).eval())
        path = os.path.join(self.create_tempdir().full_path, "m.pt")
        module.save(path)
        got = torchscript_reader.named_tensors(torchscript_reader.load_torchscript(path))
        expected = dict(module.named_parameters())
        expected.update(dict(module.named_buffers()))
        for key, value in expected.items():
            self.assertAllEqual(got[key], value.detach().numpy())

    def test_torch_reads_our_files(self):
        import torch  # pylint: disable=g-import-not-at-top
        tmp = self.create_tempdir().full_path
        for writer in (torch_files.write_zip, torch_files.write_legacy):
            path = writer(os.path.join(tmp, writer.__name__ + ".pth"), sample_state())
            loaded = torch.load(path, weights_only=True)
            for key, value in sample_state().items():
                self.assertAllEqual(loaded[key].numpy(), value)
