"""Digests of files on disk, read in blocks so that a large file is never held whole.

Conversion records the sha256 of every PyTorch file it read (`conversion.json`); the FID
Inception weights are checked against a known sha1 before use.
"""

import hashlib

BLOCK_BYTES = 1 << 20


def file_digest(path: str, algorithm: str = "sha256") -> str:
    """The hex digest of the file at `path` (`hashlib.file_digest` before Python 3.11).

    Args:
      path: the file.
      algorithm: a `hashlib` algorithm name ("sha256", "sha1", ...).
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()
