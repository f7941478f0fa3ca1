"""Tests for the `shapes_t2i` TFDS builder, on tiny configs."""

import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tf_t2i.data import shapes
from tf_t2i.data import shapes_tfds

_SIZE, _TRAIN, _TEST, _SEED = 32, 8, 4, 3


def _records(builder, split):
    """Returns the split's examples as numpy dicts sorted by image_id."""
    examples = list(tfds.as_numpy(builder.as_dataset(split=split)))
    return sorted(examples, key=lambda e: int(e["image_id"]))


class ShapesT2IDatasetTest(tfds.testing.DatasetBuilderTestCase):
    """TFDS' standard checks: registration, info, splits, dtypes and shapes."""

    DATASET_CLASS = shapes_tfds.ShapesT2I
    BUILDER_CONFIG_NAMES_TO_TEST = [
        shapes_tfds.ShapesT2IConfig(name="tiny", image_size=_SIZE, train_size=_TRAIN,
                                    test_size=_TEST, seed=_SEED)]
    SPLITS = {"train": _TRAIN, "test": _TEST}
    # Nothing is downloaded; the test case only needs the folder to exist.
    EXAMPLE_DIR = os.path.dirname(__file__)


class ShapesT2IBuilderTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        root = tf.compat.v1.test.get_temp_dir()
        cls.builder = shapes_tfds.make_builder(_SIZE, _TRAIN, _TEST, _SEED,
                                               data_dir=os.path.join(root, "first"))
        cls.rebuilt = shapes_tfds.make_builder(_SIZE, _TRAIN, _TEST, _SEED,
                                               data_dir=os.path.join(root, "second"))

    def test_features_and_splits(self):
        info = self.builder.info
        self.assertEqual(info.name, "shapes_t2i")
        self.assertEqual(self.builder.builder_config.name, "32px_train8_test4_seed3")
        self.assertEqual(info.splits["train"].num_examples, _TRAIN)
        self.assertEqual(info.splits["test"].num_examples, _TEST)
        records = _records(self.builder, "train")
        self.assertLen(records, _TRAIN)
        example = records[0]
        self.assertEqual(example["image"].shape, (_SIZE, _SIZE, 3))
        self.assertEqual(example["image"].dtype, np.uint8)
        self.assertEqual(example["captions"].shape, (shapes.NUM_CAPTIONS,))
        self.assertIsInstance(example["captions"][0], bytes)
        self.assertEqual(example["class_id"], shapes_tfds.NO_CLASS)
        for field in shapes.ATTRIBUTE_FIELDS:
            self.assertEqual(example["attributes"][field].shape, (shapes.MAX_OBJECTS,))
            self.assertEqual(example["attributes"][field].dtype, np.int64)

    def test_records_match_the_generator(self):
        for split in ("train", "test"):
            records = _records(self.builder, split)
            self.assertEqual([int(r["image_id"]) for r in records],
                             list(shapes.split_indices(split, len(records))))
            for record in records:
                expected = shapes.generate_example(int(record["image_id"]), _SIZE, _SEED)
                self.assertAllEqual(record["image"], expected.image)
                self.assertEqual([c.decode() for c in record["captions"]], list(expected.captions))
                self.assertAllEqual(record["attributes"]["color"], expected.attributes.color)
                self.assertEqual(record["attributes"]["num_objects"],
                                 expected.attributes.num_objects)

    def test_two_builds_give_the_same_records(self):
        self.assertNotEqual(self.builder.data_dir, self.rebuilt.data_dir)
        for split in ("train", "test"):
            for a, b in zip(_records(self.builder, split), _records(self.rebuilt, split),
                            strict=True):
                self.assertEqual(a["image_id"], b["image_id"])
                self.assertAllEqual(a["image"], b["image"])
                self.assertAllEqual(a["captions"], b["captions"])

    def test_load_by_name_with_a_custom_config(self):
        config = shapes_tfds.ShapesT2IConfig(name="tiny_load", image_size=16, train_size=3,
                                             test_size=2)
        data_dir = os.path.join(self.get_temp_dir(), "load")
        builder = tfds.builder("shapes_t2i", config=config, data_dir=data_dir)
        builder.download_and_prepare()
        images = [e["image"] for e in tfds.as_numpy(builder.as_dataset(split="test"))]
        self.assertLen(images, 2)
        self.assertEqual(images[0].shape, (16, 16, 3))

    def test_registered_configs(self):
        builder = tfds.builder("shapes_t2i/128px")
        self.assertEqual(builder.info.features["image"].shape, (128, 128, 3))
        self.assertEqual(builder.builder_config.train_size, shapes_tfds.DEFAULT_TRAIN_SIZE)
        self.assertEqual(str(builder.info.version), "1.0.0")
        self.assertEqual(sorted(shapes_tfds.ShapesT2I.builder_configs),
                         ["128px", "256px", "64px"])

    def test_config_names_spell_out_custom_parameters(self):
        self.assertEqual(shapes_tfds.config_name(64), "64px")
        self.assertEqual(shapes_tfds.config_name(64, seed=1), "64px_train10000_test2000_seed1")
        self.assertEqual(shapes_tfds.config_name(48), "48px_train10000_test2000_seed0")

    def test_bad_config_raises(self):
        with self.assertRaises(ValueError):
            shapes_tfds.ShapesT2IConfig(name="bad", image_size=8)
        with self.assertRaises(ValueError):
            shapes_tfds.ShapesT2IConfig(name="bad", train_size=0)


if __name__ == "__main__":
    tf.test.main()


class ConcurrentPrepareTest(tf.test.TestCase):

    def test_two_processes_prepare_one_new_dataset(self):
        # Two runs started at once on a fresh machine: without the lock the second to
        # finish fails to rename its incomplete.* folder into place.
        import subprocess  # pylint: disable=g-import-not-at-top
        import sys  # pylint: disable=g-import-not-at-top
        data_dir = self.create_tempdir().full_path
        script = ("import sys\nfrom tf_t2i.data import shapes_tfds\n"
                  "b = shapes_tfds.make_builder(image_size=64, train_size=24, test_size=8, "
                  "seed=7, data_dir=sys.argv[1])\n"
                  "print(b.info.splits['train'].num_examples)\n")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        procs = [subprocess.Popen([sys.executable, "-c", script, data_dir], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outputs = [p.communicate(timeout=300) for p in procs]
        for proc, (out, err) in zip(procs, outputs):
            self.assertEqual(proc.returncode, 0, err[-2000:])
            self.assertEqual(out.strip().splitlines()[-1], "24")
            self.assertNotIn("%|", err)  # one line instead of TFDS's progress bars
        # One process generates (and says so in two lines); the other finds it done.
        said = [out.count("Generating the shapes dataset 64px_train24_test8_seed7 (24 + 8 "
                          "images)") for out, _ in outputs]
        self.assertEqual(sorted(said), [0, 1])
        self.assertEqual(sum(out.count("Generated the shapes dataset in ") for out, _ in outputs),
                         1)
