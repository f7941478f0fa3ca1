"""One MirroredStrategy over the two logical CPU devices, shared by every test.

Each MirroredStrategy numbers its collective ops from the same starting key, and the
process-wide collective executor remembers them: a second strategy in the same pytest
process can then collide with the first ("Collective instance 100 expected type 2 ...
but got type 0"). Sharing one strategy object keeps the keys unique.
"""

import functools

import tensorflow as tf


@functools.lru_cache(maxsize=None)
def two_cpu_replicas() -> tf.distribute.MirroredStrategy:
    """MirroredStrategy over /cpu:0 and /cpu:1 (tests/conftest.py creates them)."""
    devices = [d.name for d in tf.config.list_logical_devices("CPU")[:2]]
    if len(devices) < 2:
        raise RuntimeError("Two logical CPU devices are needed (tests/conftest.py).")
    return tf.distribute.MirroredStrategy(devices)
