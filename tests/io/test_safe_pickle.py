"""The restricted unpickler: plain data loads, code and foreign types never do."""

import collections
import os
import pickle
import shlex

import numpy as np
import tensorflow as tf

from tf_t2i.io import safe_pickle


class _RunsShell:
    """Unpickling this calls os.system(command): what a malicious dataset file would do."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _Plain:
    pass


# Python 2.7's pickle.dumps(['001.Black/x_1', u'caf\xe9', '\xe9t\xe9', 7, 70000, {'k': 1}], 2):
# `str` as SHORT_BINSTRING (U), unicode as BINUNICODE (X), ints as BININT1/BININT, with
# the memo opcodes (q) Python 2 writes.
_PY2_PICKLE = (
    b"\x80\x02]q\x00(U\r001.Black/x_1q\x01X\x05\x00\x00\x00caf\xc3\xa9q\x02"
    b"U\x03\xe9t\xe9q\x03K\x07J\x70\x11\x01\x00}q\x04U\x01kK\x01se.")


class SafePickleTest(tf.test.TestCase):

    def _write(self, data: bytes, name="data.pickle") -> str:
        path = os.path.join(self.get_temp_dir(), name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_plain_data_round_trips_with_every_protocol(self):
        value = [["a", "b"], ("t", 1), {0: "<end>", 1: "bird", "x": [1.5, None, True]},
                 b"raw", -3, 2**70]
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            self.assertEqual(safe_pickle.loads(pickle.dumps(value, protocol)), value)

    def test_reduce_to_os_system_is_refused_and_nothing_runs(self):
        marker = os.path.join(self.get_temp_dir(), "pwned")
        command = f"touch {shlex.quote(marker)}"  # Under pytest-xdist the path holds "<...>".
        path = self._write(pickle.dumps([_RunsShell(command)], protocol=2))
        with self.assertRaisesRegex(safe_pickle.UnsafePickleError,
                                    r"data\.pickle.*(posix|os)\.system"):
            safe_pickle.load(path)
        self.assertFalse(os.path.exists(marker))
        # The same pickle through the standard unpickler would have run the command.
        pickle.loads(pickle.dumps(_RunsShell(command)))
        self.assertTrue(os.path.exists(marker))

    def test_foreign_types_are_refused(self):
        refused = {
            "OrderedDict": collections.OrderedDict(a=1),
            "ndarray": np.arange(3),
            "_Plain": _Plain(),
            "set": {1, 2},  # Built by opcodes (protocol 4), caught by the type walk.
            "nested ndarray": {"words": [np.int64(3)]},
        }
        for label, value in refused.items():
            with self.subTest(label):
                with self.assertRaises(safe_pickle.UnsafePickleError):
                    safe_pickle.loads(pickle.dumps(value, protocol=4), "x.pickle")

    def test_python2_pickle_with_byte_strings_loads(self):
        value = safe_pickle.load(self._write(_PY2_PICKLE))
        # Python 2 `str` comes back as latin-1 text: ASCII unchanged, every byte kept.
        self.assertEqual(value, ["001.Black/x_1", "caf\xe9", "\xe9t\xe9", 7, 70000, {"k": 1}])
        self.assertEqual(safe_pickle.string_list(value[:3], "p"),
                         ["001.Black/x_1", "caf\xe9", "\xe9t\xe9"])

    def test_string_list_decodes_bytes_and_rejects_other_types(self):
        self.assertEqual(safe_pickle.string_list([b"a/b", "c"], "f.pickle"), ["a/b", "c"])
        with self.assertRaisesRegex(safe_pickle.PickleFormatError, "f.pickle.*string"):
            safe_pickle.string_list(["a", 3], "f.pickle", "file names")
        with self.assertRaisesRegex(safe_pickle.PickleFormatError, "f.pickle.*list"):
            safe_pickle.string_list({"a": 1}, "f.pickle")

    def test_int_list_rejects_bools_and_strings(self):
        self.assertEqual(safe_pickle.int_list([1, 200], "c.pickle"), [1, 200])
        for bad in ([1, True], [1, "2"], [1.0]):
            with self.assertRaisesRegex(safe_pickle.PickleFormatError, "c.pickle"):
                safe_pickle.int_list(bad, "c.pickle")

    def test_garbage_and_missing_files_are_named(self):
        path = self._write(b"this is not a pickle", "broken.pickle")
        with self.assertRaisesRegex(safe_pickle.PickleFormatError, "broken.pickle"):
            safe_pickle.load(path)
        with self.assertRaisesRegex(safe_pickle.PickleFormatError, "broken.pickle"):
            safe_pickle.load(self._write(pickle.dumps([1, 2])[:-3], "broken.pickle"))
        with self.assertRaisesRegex(FileNotFoundError, "nowhere.pickle"):
            safe_pickle.load(os.path.join(self.get_temp_dir(), "nowhere.pickle"))

    def test_errors_are_one_line_input_errors(self):
        # The binaries print ValueErrors they are told about as one line (flags.run_or_fail).
        self.assertTrue(issubclass(safe_pickle.UnsafePickleError, ValueError))
        self.assertTrue(issubclass(safe_pickle.PickleFormatError, ValueError))

    def test_bytes_stand_in_only_makes_latin1_bytes(self):
        # GLOBAL _codecs.encode called with another codec: refused, naming the file.
        crafted = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R."
        with self.assertRaisesRegex(safe_pickle.UnsafePickleError, "^evil.pickle: .*rot13"):
            safe_pickle.loads(crafted, "evil.pickle")
        latin1 = crafted.replace(b"X\x05\x00\x00\x00rot13", b"X\x06\x00\x00\x00latin1")
        self.assertEqual(safe_pickle.loads(latin1), b"abc")
