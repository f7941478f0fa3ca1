"""pytest setup shared by all tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

# tf.test.TestCase helpers (create_tempdir) read absl flags, which pytest never parses.
if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()

# Two logical CPU devices for the whole session, so that tests of MirroredStrategy can run
# in the same process as the rest (device layout is fixed once TensorFlow initialises).
# Single-device code runs on the first one, as usual.
_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:
    pass


def pytest_collection_modifyitems(config, items):
    """Drops tf.test.TestCase's `test_session` placeholder (a method every TestCase
    inherits and skips as "Not a test."), so that "skipped" counts only real skips."""
    del config  # unused
    items[:] = [item for item in items if item.name != "test_session"]
