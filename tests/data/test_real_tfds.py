"""The `cub_t2i` and `coco_t2i` TFDS builders and `sources.load_source` on the fake folders."""

import io
import os
import shutil
from unittest import mock

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from tf_t2i import config as config_lib
from tf_t2i.data import coco
from tf_t2i.data import cub
from tf_t2i.data import pipeline
from tf_t2i.data import raw_files
from tf_t2i.data import real_tfds
from tf_t2i.data import sources
from tf_t2i.data import tokenizer as tokenizer_lib

DUMMY = os.path.join(os.path.dirname(real_tfds.__file__), "dummy_data")
CUB_DIR = os.path.join(DUMMY, "cub")


class CUBT2IDatasetTest(tfds.testing.DatasetBuilderTestCase):
    """TFDS' standard checks: registration, info, splits, features."""
    DATASET_CLASS = real_tfds.CUBT2I
    SPLITS = {"train": 4, "test": 2}
    EXAMPLE_DIR = CUB_DIR


class COCOT2IAttnGANLayoutTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = real_tfds.COCOT2I
    SPLITS = {"train": 3, "test": 2}
    EXAMPLE_DIR = os.path.join(DUMMY, "coco_attngan")


class COCOT2IOfficialLayoutTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = real_tfds.COCOT2I
    SPLITS = {"train": 3, "test": 2}
    EXAMPLE_DIR = os.path.join(DUMMY, "coco_official")


def _decode(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def _records(builder, split):
    ds = builder.as_dataset(split=split, shuffle_files=False,
                            decoders={"image": tfds.decode.SkipDecoding()})
    return list(tfds.as_numpy(ds))


class RealBuildersTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tf.compat.v1.test.get_temp_dir()
        cls.tfds_dir = os.path.join(cls.root, "tfds")
        cls.cub = real_tfds.make_builder("cub", data_dir=cls.tfds_dir)
        real_tfds.prepare(cls.cub, CUB_DIR)

    def _data(self, dataset, manual_dir, data_dir=None, **kw):
        return config_lib.DataConfig(dataset=dataset, manual_dir=manual_dir,
                                     data_dir=data_dir or self.create_tempdir().full_path, **kw)

    def test_builders_are_registered_by_importing_the_package(self):
        for name, cls in (("cub_t2i", real_tfds.CUBT2I), ("coco_t2i", real_tfds.COCOT2I)):
            self.assertIsInstance(tfds.builder(name, data_dir=self.get_temp_dir()), cls)
            self.assertIn("manual_dir", cls.MANUAL_DOWNLOAD_INSTRUCTIONS)

    def test_cub_records_follow_the_file_list_with_cropped_images(self):
        examples = cub.read_split(CUB_DIR, "train")
        records = _records(self.cub, "train")
        self.assertEqual([r["file_name"].decode() for r in records], [e.name for e in examples])
        for record, example in zip(records, examples):
            original = Image.open(example.image_path).convert("RGB")
            x1, y1, x2, y2 = cub.crop_box(example.bbox, original.width, original.height)
            stored = _decode(record["image"])
            self.assertEqual(stored.shape, (y2 - y1, x2 - x1, 3))
            expected = np.asarray(original)[y1:y2, x1:x2].astype(np.float32)
            # Only JPEG re-encoding separates them.
            self.assertLess(np.abs(stored - expected).mean(), 4.0)
            self.assertEqual(record["class_id"], example.class_id)
            self.assertEqual(record["image_id"], example.image_id)
            self.assertEqual([c.decode() for c in record["captions"]], list(example.captions))

    def test_metadata_keeps_the_vocabulary_and_later_runs_only_read(self):
        self.assertEqual(real_tfds.vocabulary(self.cub), cub.read_vocabulary(CUB_DIR))
        self.assertEqual(real_tfds.skipped_images(self.cub, "train"), [])
        # A new builder on the same data_dir needs no manual_dir: the records are there.
        again = real_tfds.make_builder("cub", data_dir=self.tfds_dir)
        self.assertTrue(again.is_prepared())
        real_tfds.prepare(again, None)
        self.assertEqual(real_tfds.vocabulary(again), real_tfds.vocabulary(self.cub))
        self.assertEqual(again.info.metadata["layout"], "attngan")

    def test_not_prepared_without_manual_dir_lists_what_to_get(self):
        builder = real_tfds.make_builder("coco", data_dir=self.create_tempdir().full_path)
        with self.assertRaises(raw_files.MissingFilesError) as caught:
            real_tfds.prepare(builder, None)
        for expected in ("not prepared", "--data_manual_dir", "train2014", "cocodataset.org"):
            self.assertIn(expected, str(caught.exception))
        with self.assertRaisesRegex(raw_files.MissingFilesError, "does not exist"):
            real_tfds.prepare(builder, os.path.join(self.get_temp_dir(), "no_such_dir"))

    def test_corrupt_image_fails_naming_it_or_is_skipped_and_counted(self):
        manual = os.path.join(self.create_tempdir().full_path, "birds")
        shutil.copytree(CUB_DIR, manual)
        name = "002.Laysan_Albatross/Laysan_Albatross_0003_3"
        path = os.path.join(manual, "CUB_200_2011", "images", name + ".jpg")
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:len(data) // 2])      # Truncated mid-scan.

        strict = self._data("cub", manual)
        with self.assertRaisesRegex(raw_files.CorruptImageError, "Laysan_Albatross_0003_3.jpg"):
            sources.load_source(strict, "train")

        lenient = self._data("cub", manual, skip_corrupt_images=True)
        with mock.patch.object(sources.logging, "warning") as warning:
            source = sources.load_source(lenient, "train")
        self.assertLen(source, 3)
        self.assertNotIn(name, source.file_names)
        message = warning.call_args[0][0]
        self.assertIn("skipped 1 corrupt", message)
        self.assertIn(name, message)
        builder = sources.real_builder(lenient, prepare=False)
        self.assertEqual(real_tfds.skipped_images(builder, "train"), [name])
        self.assertEqual(real_tfds.skipped_images(builder, "test"), [])

    def test_cub_source_feeds_a_deterministic_resumable_train_stream(self):
        data = self._data("cub", CUB_DIR, data_dir=self.tfds_dir)
        source = sources.load_source(data, "train")
        self.assertTrue(source.is_encoded)
        self.assertIsNone(source.images)
        self.assertAllEqual(source.class_ids, [0, 0, 1, 1])
        self.assertEqual(source.vocabulary, cub.read_vocabulary(CUB_DIR))
        tok = tokenizer_lib.CaptionTokenizer(source.vocabulary, max_length=18)
        bank = pipeline.CaptionBank(source, tok)
        kw = dict(batch_size=2, image_size=16, seed=4)
        take = lambda ds, k: [tf.nest.map_structure(lambda t: t.numpy(), b)  # noqa: E731
                              for b in ds.take(k)]
        run = take(pipeline.make_train_dataset(source, bank, **kw), 4)
        again = take(pipeline.make_train_dataset(source, bank, **kw), 4)
        resumed = take(pipeline.make_train_dataset(source, bank, start_step=2, **kw), 2)
        for batch in run:
            self.assertEqual(batch["real_images"].shape, (2, 16, 16, 3))
            self.assertEqual(batch["real_images"].dtype, np.float32)
            self.assertBetween(batch["real_images"].min(), -1.0, 1.0)
            self.assertBetween(batch["real_images"].max(), -1.0, 1.0)
            # Mismatched captions come from another class.
            self.assertTrue(np.all(source.class_ids[batch["mismatched_image_id"] - 1]
                                   != batch["class_id"]))
        for a, b in zip(run, again):
            tf.nest.map_structure(np.testing.assert_array_equal, a, b)
        for a, b in zip(run[2:], resumed):
            tf.nest.map_structure(np.testing.assert_array_equal, a, b)

    def test_coco_sources_from_both_layouts(self):
        for folder, has_vocabulary in (("coco_attngan", True), ("coco_official", False)):
            with self.subTest(folder):
                data = self._data("coco", os.path.join(DUMMY, folder))
                train = sources.load_source(data, "train")
                test = sources.load_source(data, "test")
                self.assertAllEqual(train.image_ids, [9, 25, 30])
                self.assertAllEqual(test.image_ids, [42, 73])
                self.assertAllEqual(train.class_ids, [-1, -1, -1])
                self.assertEqual(train.captions_per_image, coco.CAPTIONS_PER_IMAGE)
                self.assertEqual(train.vocabulary is not None, has_vocabulary)
                for jpeg in train.encoded_images:
                    self.assertEqual(_decode(jpeg).shape, (24, 32, 3))
                if folder == "coco_official":
                    # RGB JPEGs are stored byte for byte; the grayscale one re-encoded as RGB.
                    with open(os.path.join(DUMMY, folder, "train2014",
                                           "COCO_train2014_000000000009.jpg"), "rb") as f:
                        self.assertEqual(train.encoded_images[0], f.read())
                    gray = tf.io.decode_jpeg(train.encoded_images[1])
                    self.assertEqual(gray.shape[-1], 3)

    def test_tokenizer_takes_the_dataset_vocabulary(self):
        from tf_t2i.training import pretrain_lib  # pylint: disable=g-import-not-at-top
        data = self._data("cub", CUB_DIR, data_dir=self.tfds_dir)
        source = sources.load_source(data, "train")
        cfg = config_lib.ExperimentConfig(data=data)
        model_dir = self.create_tempdir().full_path
        tok = pretrain_lib.load_or_build_tokenizer(cfg, model_dir, source)
        self.assertEqual(tok.vocabulary, source.vocabulary)
        self.assertEqual(tokenizer_lib.CaptionTokenizer.load(model_dir).vocabulary,
                         source.vocabulary)
        # Without a dataset vocabulary it is built from the captions (frequency order).
        source.vocabulary = None
        built = pretrain_lib.load_or_build_tokenizer(cfg, self.create_tempdir().full_path,
                                                     source)
        self.assertNotEqual(built.vocabulary, tok.vocabulary)
        self.assertCountEqual(built.vocabulary,
                              {w for c in source.all_captions() for w in c.split()})
