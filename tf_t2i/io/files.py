"""Atomic file writes: a reader sees the old file or the new one, never a partial one.

Every writer goes through a temporary file beside the target, renamed over it only
once complete (`os.replace`, atomic on POSIX within one file system). When writing
fails the temporary file is removed and the target is left as it was.

The temporary name keeps the target's extension (`x.png` -> `x.png.tmp.png`), so
writers that pick a format from the file name (PIL, `np.savez`, Keras) write the
target's format.

Example:
    >>> atomic_write_json("/tmp/run/results.json", {"fid": 12.5}, indent=2)
    '/tmp/run/results.json'
    >>> with atomic_path("/tmp/run/grid.png") as tmp:
    ...     image.save(tmp)
"""

import contextlib
import json
import os
from typing import Any, Iterator


def _temporary_path(path: str) -> str:
    return path + ".tmp" + os.path.splitext(path)[1]


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yields a temporary path to write; on success it replaces `path`.

    The parent directory is created when missing. If the block raises, the temporary
    file is removed, `path` is unchanged and the exception propagates.

    Args:
        path: the file to write.

    Yields:
        The temporary path, beside `path` and with its extension.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = _temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.remove(tmp)
        raise


def atomic_write_bytes(path: str, data: bytes) -> str:
    """Writes `data` to `path` atomically; returns `path`."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return path


def atomic_write_text(path: str, text: str) -> str:
    """Writes `text` to `path` atomically (UTF-8); returns `path`."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return path


def atomic_write_json(path: str, value: Any, **dump_kwargs) -> str:
    """Writes `json.dump(value, **dump_kwargs)` to `path` atomically; returns `path`.

    The value is serialised before the file is opened, so a value JSON cannot encode
    leaves no file behind.
    """
    return atomic_write_text(path, json.dumps(value, **dump_kwargs))


class LockHeld(RuntimeError):
    """`interprocess_lock(..., wait=False)`: another process holds the lock."""


@contextlib.contextmanager
def interprocess_lock(path: str, wait: bool = True) -> Iterator[None]:
    """Holds an exclusive lock on the file `path` (created, with its folder) while inside.

    For work that two processes may start at once on one machine and that must happen
    once: preparing a TFDS dataset (TFDS renames its `incomplete.*` folder into place and
    the second process to finish fails), training the cached attribute classifier. The
    second process waits, then finds the work done. POSIX `flock`; released when the
    process dies, so a killed run never leaves a stale lock. With `wait=False` a lock
    held elsewhere raises `LockHeld` at once (work that another process is doing).
    """
    import fcntl  # pylint: disable=g-import-not-at-top
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockHeld(f"{path} is held by another process.") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
