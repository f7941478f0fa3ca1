"""Reads the metadata pickles of the AttnGAN data release without running their code.

`filenames.pickle`, `class_info.pickle` and `captions.pickle` come from the internet,
and unpickling can call any importable function (a `GLOBAL` opcode names it, `REDUCE`
calls it). The unpickler here resolves no global at all, so only values that pickle
builds from its own opcodes can come out; a walk over the result then accepts only
lists, tuples, dicts, str, bytes, int, float, bool and None. Anything else, from
`os.system` to `collections.OrderedDict` or a numpy array, is refused before a single
object of that kind exists. (The one exception: the two globals Python 3 uses to
write `bytes` at protocols 0-2 resolve to stand-ins that only make bytes.)

Python 2 pickles (AttnGAN's are protocol 2) load too: their `str` values are read as
latin-1 text, which maps every byte to one character, so ASCII names come out intact.

Example:
  >>> names = safe_pickle.load("data/birds/train/filenames.pickle")
  >>> names = safe_pickle.string_list(names, "data/birds/train/filenames.pickle")
"""

import io
import os
import pickle
from typing import Any, List

# Types a pickle can produce without resolving a global, minus sets and bytearrays,
# which no AttnGAN file holds.
_ALLOWED_TYPES = (list, tuple, dict, str, bytes, int, float, bool, type(None))


class UnsafePickleError(ValueError):
    """A pickle holds something other than plain data (a class, a function, an array)."""


class PickleFormatError(ValueError):
    """A pickle is unreadable, or holds plain data of the wrong shape."""


class _PlainDataUnpickler(pickle.Unpickler):
    """Refuses every global lookup: the only door to code in the pickle format."""

    def __init__(self, file, path: str):
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module, name):
        # Python 3 writes bytes at protocols 0-2 as _codecs.encode(text, "latin1") (or
        # bytes() when empty); those two are stood in for by functions that can do
        # nothing else.
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) in (("builtins", "bytes"), ("__builtin__", "bytes")):
            return _empty_bytes
        raise UnsafePickleError(
            f"{self._path}: refused to load {module}.{name}; only lists, tuples, dicts, "
            "strings, bytes, numbers, bools and None are accepted in dataset pickles.")

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._path}: refused a persistent reference ({pid!r}).")


def _latin1_encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refused _codecs.encode({type(text).__name__}, {encoding!r}).")
    return text.encode("latin1")


def _empty_bytes(*args):
    if args:
        raise UnsafePickleError(f"refused bytes() with arguments {args!r:.60}.")
    return b""


def loads(data: bytes, path: str = "<bytes>") -> Any:
    """Unpickles plain data from bytes.

    Args:
      data: the pickle.
      path: names the data in error messages.

    Returns:
      The value, made only of the allowed types.

    Raises:
      UnsafePickleError: the pickle names a global or holds a disallowed type.
      PickleFormatError: the bytes are not a readable pickle.
    """
    try:
        value = _PlainDataUnpickler(io.BytesIO(data), path).load()
    except UnsafePickleError as e:
        if str(e).startswith(path):
            raise
        raise UnsafePickleError(f"{path}: {e}") from e
    except Exception as e:  # pickle raises many types on malformed input.
        raise PickleFormatError(f"{path}: not a readable pickle ({type(e).__name__}: {e}).") \
            from e
    _check_plain(value, path)
    return value


def load(path: str) -> Any:
    """Unpickles plain data from a file; see `loads`.

    Raises:
      FileNotFoundError: the file does not exist.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Missing pickle: {path}")
    with open(path, "rb") as f:
        return loads(f.read(), path)


def _check_plain(value: Any, path: str) -> None:
    # Iterative, so deeply nested (but plain) data cannot hit the recursion limit.
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) not in _ALLOWED_TYPES:  # Exact types: no subclasses.
            raise UnsafePickleError(
                f"{path}: holds a {type(item).__name__}; only lists, tuples, dicts, strings, "
                "bytes, numbers, bools and None are accepted in dataset pickles.")
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())


def as_str(value: Any, path: str, what: str) -> str:
    """A str from a str or (Python 2 / py3 bytes) bytes value, decoded as UTF-8.

    Raises:
      PickleFormatError: the value is neither, naming `what` and the file.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise PickleFormatError(f"{path}: expected {what} to be a string, got "
                            f"{type(value).__name__} {value!r:.60}.")


def string_list(value: Any, path: str, what: str = "the entries") -> List[str]:
    """Checks that a loaded pickle is a list (or tuple) of strings and returns them as str."""
    if not isinstance(value, (list, tuple)):
        raise PickleFormatError(f"{path}: expected a list of strings, got "
                                f"{type(value).__name__}.")
    return [as_str(v, path, what) for v in value]


def int_list(value: Any, path: str, what: str = "the entries") -> List[int]:
    """Checks that a loaded pickle is a list (or tuple) of ints (bools refused)."""
    if not isinstance(value, (list, tuple)):
        raise PickleFormatError(f"{path}: expected a list of integers, got "
                                f"{type(value).__name__}.")
    for v in value:
        if type(v) is not int:  # pylint: disable=unidiomatic-typecheck
            raise PickleFormatError(f"{path}: expected {what} to be integers, got "
                                    f"{type(v).__name__} {v!r:.60}.")
    return list(value)
