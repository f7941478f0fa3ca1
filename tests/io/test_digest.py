"""File digests, read in blocks."""

import hashlib
import os

import tensorflow as tf

from tf_t2i.io import digest


class FileDigestTest(tf.test.TestCase):

    def test_matches_hashlib_across_block_boundaries(self):
        # Three blocks and a bit: the digest must not depend on how the file is cut.
        data = os.urandom(3 * digest.BLOCK_BYTES + 17)
        path = os.path.join(self.create_tempdir().full_path, "blob")
        with open(path, "wb") as f:
            f.write(data)
        self.assertEqual(digest.file_digest(path), hashlib.sha256(data).hexdigest())
        self.assertEqual(digest.file_digest(path, "sha1"), hashlib.sha1(data).hexdigest())

    def test_empty_and_missing_files(self):
        path = os.path.join(self.create_tempdir().full_path, "empty")
        open(path, "wb").close()
        self.assertEqual(digest.file_digest(path), hashlib.sha256(b"").hexdigest())
        with self.assertRaises(FileNotFoundError):
            digest.file_digest(path + ".missing")
