"""Writes PyTorch-format files without torch, for tests of the torch-free reader.

`write_zip` produces what `torch.jit.save` / `torch.save` write (a zip of data.pkl and
raw storages), `write_legacy` what torch < 1.6 wrote. Module objects are `FakeModule`s
whose class name is written as a `__torch__...` global, tensors are numpy arrays
rebuilt by `torch._utils._rebuild_tensor_v2`, as in real files. Also builds a fake FID
Inception archive with the real architecture and random weights.
"""

import collections
import functools
import io
import pickle
import struct
import zipfile

import numpy as np

_STORAGE_NAMES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
                  np.dtype(np.int64): "LongStorage", np.dtype(np.int32): "IntStorage",
                  np.dtype(np.float16): "HalfStorage", np.dtype(np.uint8): "ByteStorage"}


class FakeModule:
    """A module to pickle as the TorchScript class `type_name` with these attributes."""

    def __init__(self, type_name, **attributes):
        self.type_name = type_name
        self.attributes = attributes


@functools.lru_cache(maxsize=None)
def _global(module, name):
    """A class that pickles as GLOBAL 'module name'."""
    return type(name, (), {"_pickle_global": (module, name)})


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class _Pickler(pickle._Pickler):  # pylint: disable=protected-access
    """Protocol-2 pickler that writes torch's globals and persistent storage ids."""

    def __init__(self, file, legacy=False):
        super().__init__(file, protocol=2)
        self.storages = []
        self.legacy = legacy

    def save_global(self, obj, name=None):
        if hasattr(obj, "_pickle_global"):
            module, name = obj._pickle_global  # pylint: disable=protected-access
            self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode("utf-8"))
            self.memoize(obj)
            return
        super().save_global(obj, name)

    # Classes go through save_global, whatever another library (dill) registered for type.
    dispatch = dict(pickle._Pickler.dispatch)  # pylint: disable=protected-access
    dispatch[type] = lambda self, obj: self.save_global(obj)

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            storage_type = _global("torch", _STORAGE_NAMES[obj.array.dtype])
            pid = ("storage", storage_type, obj.key, "cpu", int(obj.array.size))
            return pid + (None,) if self.legacy else pid
        return None

    def reducer_override(self, obj):
        if isinstance(obj, np.ndarray):
            array = np.ascontiguousarray(obj)
            storage = _Storage(str(len(self.storages)), array.reshape(-1))
            self.storages.append(storage)
            strides = tuple(s // array.itemsize for s in array.strides)
            return (_global("torch._utils", "_rebuild_tensor_v2"),
                    (storage, 0, tuple(array.shape), strides, False,
                     collections.OrderedDict()))
        if isinstance(obj, FakeModule):
            module, _, name = obj.type_name.rpartition(".")
            return (_global(module, name), (), dict(obj.attributes))
        return NotImplemented


def write_zip(path, obj, prefix="archive"):
    """Writes `obj` as torch.save (new format) / torch.jit.save would."""
    buffer = io.BytesIO()
    pickler = _Pickler(buffer)
    pickler.dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{prefix}/data.pkl", buffer.getvalue())
        for storage in pickler.storages:
            archive.writestr(f"{prefix}/data/{storage.key}", storage.array.astype(
                storage.array.dtype.newbyteorder("<")).tobytes())
        archive.writestr(f"{prefix}/version", "3\n")
    return path


def write_legacy(path, obj):
    """Writes `obj` as torch.save(..., _use_new_zipfile_serialization=False) would."""
    buffer = io.BytesIO()
    pickler = _Pickler(buffer, legacy=True)
    pickler.dump(obj)
    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001,
                       {"protocol_version": 1001, "little_endian": True,
                        "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(header, f, protocol=2)
        f.write(buffer.getvalue())
        pickle.dump([s.key for s in pickler.storages], f, protocol=2)
        for storage in pickler.storages:
            f.write(struct.pack("<q", storage.array.size))
            f.write(storage.array.tobytes())
    return path


@functools.lru_cache(maxsize=None)
def _inception_kernel_shapes():
    from tf_t2i.eval import inception  # pylint: disable=g-import-not-at-top
    _, convs = inception.build_model()
    return {name: tuple(layer.kernel.shape) for name, layer in convs.items()}


def fake_inception_tree(seed=0, change=None):
    """The module tree of fid-helper's default_1.pt with random weights.

    Args:
      seed: weights seed.
      change: optional (conv path, new output channels) to make it another network.
    """
    from tf_t2i.eval import inception  # pylint: disable=g-import-not-at-top
    rng = np.random.default_rng(seed)
    root = FakeModule("__torch__.torch.nn.modules.container.___torch_mangle_9.Sequential")

    def container(path):
        node = root
        for part in path:
            child = node.attributes.get(part)
            if child is None:
                child = FakeModule("__torch__.torch.nn.modules.container.Sequential")
                node.attributes[part] = child
            node = child
        return node

    shapes = _inception_kernel_shapes()
    for name, filters, kh, kw, stride, padded in inception.CONV_SPECS:
        _, _, cin, _ = shapes[name]
        if change and change[0] == name:
            filters = change[1]
        *parents, leaf = name.split(".")
        std = np.sqrt(2.0 / (cin * kh * kw))
        padding = [(kh - 1) // 2, (kw - 1) // 2] if padded else [0, 0]
        container(parents).attributes[leaf] = FakeModule(
            "__torch__.inceptionv3.Conv2dLayer",
            weight=(rng.standard_normal((filters, cin, kh, kw)) * std).astype(np.float32),
            beta=(rng.standard_normal(filters) * 0.1).astype(np.float32),
            mean=(rng.standard_normal(filters) * 0.1).astype(np.float32),
            var=rng.uniform(0.5, 1.5, filters).astype(np.float32),
            stride=stride, padding=padding[0] if padding[0] == padding[1] else padding,
            training=False)
    for name, kind in inception.POOL_KINDS.items():
        *parents, leaf = name.split(".")
        container(parents).attributes[leaf] = FakeModule(
            f"__torch__.torch.nn.modules.pooling.{kind}", training=False)
    net = FakeModule("__torch__.inceptionv3.InceptionV3", layers=root, training=False)
    return FakeModule("__torch__.wrap_net.WrapNet", net=net, training=False)


def write_fake_inception(path, seed=0, change=None):
    """A TorchScript-format archive shaped like the FID Inception file (random weights)."""
    return write_zip(path, fake_inception_tree(seed, change), prefix="out_jit_module")
