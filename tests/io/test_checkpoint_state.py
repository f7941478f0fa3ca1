"""checkpoint_state.latest_checkpoint answers as tf.train.latest_checkpoint does, without
TensorFlow: on directories tf.train.CheckpointManager wrote, and on damaged ones."""

import os
import subprocess
import sys

import tensorflow as tf

from tests.training import helpers
from tf_t2i.data import tokenizer as tokenizer_lib
from tf_t2i.io import checkpoint_state
from tf_t2i.io import checkpoints
from tf_t2i.training import run_dirs


class LatestCheckpointTest(tf.test.TestCase):

    def _managed(self, saves=3, max_to_keep=2):
        """A directory of `saves` checkpoints of one variable, the newest `max_to_keep` kept."""
        directory = self.create_tempdir().full_path
        ckpt = tf.train.Checkpoint(v=tf.Variable(1.0))
        manager = tf.train.CheckpointManager(ckpt, directory, max_to_keep=max_to_keep)
        for _ in range(saves):
            manager.save()
        return directory

    def assertSameAnswer(self, directory):
        ours = checkpoint_state.latest_checkpoint(directory)
        self.assertEqual(ours, tf.train.latest_checkpoint(directory))
        return ours

    def test_the_newest_of_a_manager_written_directory(self):
        directory = self._managed(saves=3)
        self.assertEqual(self.assertSameAnswer(directory), os.path.join(directory, "ckpt-3"))

    def test_an_absolute_path_in_the_state_file(self):
        directory = self._managed(saves=1)
        state = os.path.join(directory, checkpoint_state.STATE_FILENAME)
        with open(state, "w") as f:
            f.write(f'model_checkpoint_path: "{directory}/ckpt-1"\n'
                    f'all_model_checkpoint_paths: "{directory}/ckpt-1"\n')
        self.assertEqual(self.assertSameAnswer(directory), os.path.join(directory, "ckpt-1"))

    def test_none_without_state_file_index_or_a_readable_state(self):
        self.assertIsNone(self.assertSameAnswer(self.create_tempdir().full_path))
        self.assertIsNone(self.assertSameAnswer("/no/such/directory"))
        directory = self._managed(saves=2)
        os.remove(os.path.join(directory, "ckpt-2.index"))  # named, but its index is gone
        self.assertIsNone(self.assertSameAnswer(directory))
        directory = self._managed(saves=1)
        with open(os.path.join(directory, checkpoint_state.STATE_FILENAME), "w") as f:
            f.write("model_checkpoint_path: \x00 not a proto {{{\n")
        self.assertIsNone(self.assertSameAnswer(directory))

    def test_a_run_directory_and_the_names_the_tensorflow_modules_use(self):
        self.assertEqual(checkpoint_state.CHECKPOINT_SUBDIR, checkpoints.CHECKPOINT_SUBDIR)
        self.assertEqual(run_dirs.VOCAB_FILENAME, tokenizer_lib.VOCAB_FILENAME)
        run = helpers.damsm_run()
        self.assertEqual(checkpoint_state.latest_run_checkpoint(run), tf.train.latest_checkpoint(
            os.path.join(run, checkpoints.CHECKPOINT_SUBDIR)))

    def test_reads_a_run_and_checks_it_without_importing_tensorflow(self):
        # run_dirs and resume run before TensorFlow starts in tf_t2i.train: importing it
        # there would cost the seconds the early checks are for.
        code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
                "from tf_t2i.io import checkpoint_state\n"
                "from tf_t2i.training import resume, run_dirs\n"
                "print(checkpoint_state.latest_run_checkpoint(sys.argv[1]))")
        out = subprocess.run([sys.executable, "-c", code, helpers.damsm_run()], cwd=helpers.ROOT,
                             capture_output=True, text=True, timeout=120, check=True)
        self.assertEqual(out.stdout.strip(), checkpoint_state.latest_run_checkpoint(
            helpers.damsm_run()))
