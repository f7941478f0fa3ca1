"""Atomic writes: content, overwrite, and nothing left behind when a write fails."""

import json
import os

import numpy as np
import tensorflow as tf

from tf_t2i.io import files


class _WriteFailed(Exception):
    pass


class AtomicWriteTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.create_tempdir().full_path

    def path(self, *names):
        return os.path.join(self.dir, *names)

    def test_text_bytes_and_json_round_trip_into_new_directories(self):
        text_path = self.path("a", "b", "notes.txt")
        self.assertEqual(files.atomic_write_text(text_path, "één\n"), text_path)
        with open(text_path, encoding="utf-8") as f:
            self.assertEqual(f.read(), "één\n")
        bytes_path = self.path("blob.bin")
        files.atomic_write_bytes(bytes_path, b"\x00\xff\x10")
        with open(bytes_path, "rb") as f:
            self.assertEqual(f.read(), b"\x00\xff\x10")
        json_path = self.path("c", "results.json")
        files.atomic_write_json(json_path, {"b": [1, 2.5], "a": None}, indent=2,
                                sort_keys=True)
        with open(json_path) as f:
            text = f.read()
        self.assertEqual(text, json.dumps({"a": None, "b": [1, 2.5]}, indent=2,
                                          sort_keys=True))
        self.assertEqual(sorted(os.listdir(self.dir)), ["a", "blob.bin", "c"])

    def test_overwrite_replaces_the_whole_file(self):
        path = self.path("config.json")
        files.atomic_write_text(path, "a much longer first version\n")
        files.atomic_write_text(path, "short\n")
        with open(path) as f:
            self.assertEqual(f.read(), "short\n")
        self.assertEqual(os.listdir(self.dir), ["config.json"])

    def test_failure_mid_write_keeps_the_old_file_and_no_temporary(self):
        path = self.path("results.json")
        files.atomic_write_text(path, "old")
        with self.assertRaises(_WriteFailed):
            with files.atomic_path(path) as tmp:
                with open(tmp, "w") as f:
                    f.write("half of the new")
                raise _WriteFailed()
        with open(path) as f:
            self.assertEqual(f.read(), "old")
        self.assertEqual(os.listdir(self.dir), ["results.json"])

    def test_failure_before_any_write_creates_nothing(self):
        path = self.path("new.json")
        with self.assertRaises(TypeError):
            files.atomic_write_json(path, {"not json": object()})
        self.assertEqual(os.listdir(self.dir), [])

    def test_temporary_path_keeps_the_extension_for_format_guessing_writers(self):
        path = self.path("stats.npz")
        with files.atomic_path(path) as tmp:
            self.assertTrue(tmp.endswith(".npz"))
            self.assertNotEqual(tmp, path)
            self.assertEqual(os.path.dirname(tmp), self.dir)
            # np.savez appends ".npz" to a name without it: the name must already end so.
            np.savez(tmp, mu=np.arange(3))
        self.assertEqual(os.listdir(self.dir), ["stats.npz"])
        with np.load(path) as data:
            self.assertAllEqual(data["mu"], [0, 1, 2])


if __name__ == "__main__":
    tf.test.main()


class InterprocessLockTest(tf.test.TestCase):

    def test_a_second_process_waits_for_the_first(self):
        import subprocess  # pylint: disable=g-import-not-at-top
        import sys  # pylint: disable=g-import-not-at-top
        tmp = self.create_tempdir().full_path
        lock, log = os.path.join(tmp, "sub", "x.lock"), os.path.join(tmp, "log.txt")
        # Each process appends "<name> in" and, 0.5 s later, "<name> out" while it holds
        # the lock; with the lock the two pairs cannot interleave.
        script = ("import sys, time\nfrom tf_t2i.io import files\n"
                  "with files.interprocess_lock(sys.argv[1]):\n"
                  "    open(sys.argv[2], 'a').write(sys.argv[3] + ' in\\n')\n"
                  "    time.sleep(0.5)\n"
                  "    open(sys.argv[2], 'a').write(sys.argv[3] + ' out\\n')\n")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        procs = [subprocess.Popen([sys.executable, "-c", script, lock, log, name], cwd=root)
                 for name in ("a", "b")]
        self.assertEqual([p.wait(timeout=60) for p in procs], [0, 0])
        with open(log) as f:
            lines = f.read().split()
        events = [" ".join(lines[i:i + 2]) for i in range(0, len(lines), 2)]
        self.assertLen(events, 4)
        for first in (0, 2):
            name = events[first].split()[0]
            self.assertEqual(events[first:first + 2], [f"{name} in", f"{name} out"])

    def test_without_waiting_a_held_lock_raises(self):
        import subprocess  # pylint: disable=g-import-not-at-top
        import sys  # pylint: disable=g-import-not-at-top
        import time  # pylint: disable=g-import-not-at-top
        tmp = self.create_tempdir().full_path
        lock, ready = os.path.join(tmp, "run.lock"), os.path.join(tmp, "ready")
        script = ("import sys, time\nfrom tf_t2i.io import files\n"
                  "with files.interprocess_lock(sys.argv[1]):\n"
                  "    open(sys.argv[2], 'w').close()\n"
                  "    time.sleep(3)\n")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        holder = subprocess.Popen([sys.executable, "-c", script, lock, ready], cwd=root)
        try:
            deadline = time.time() + 30
            while not os.path.exists(ready) and time.time() < deadline:
                time.sleep(0.05)
            with self.assertRaisesRegex(files.LockHeld, "held by another process"):
                with files.interprocess_lock(lock, wait=False):
                    pass
        finally:
            self.assertEqual(holder.wait(timeout=60), 0)
        with files.interprocess_lock(lock, wait=False):  # free again once it exits
            pass
