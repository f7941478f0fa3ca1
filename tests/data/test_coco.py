"""The COCO-2014 reader: AttnGAN and official layouts, detection, errors."""

import json
import os
import shutil

import tensorflow as tf

from tf_t2i.data import coco
from tf_t2i.data import raw_files

DUMMY = os.path.join(os.path.dirname(coco.__file__), "dummy_data")
ATTNGAN_DIR = os.path.join(DUMMY, "coco_attngan")
OFFICIAL_DIR = os.path.join(DUMMY, "coco_official")
TRAIN_NAMES = ["COCO_train2014_000000000009", "COCO_train2014_000000000025",
               "COCO_train2014_000000000030"]


class COCOReaderTest(tf.test.TestCase):

    def _copy(self, source, name="coco"):
        root = os.path.join(self.create_tempdir().full_path, name)
        shutil.copytree(source, root)
        return root

    def test_both_layouts_are_detected_and_read(self):
        for folder, layout in ((ATTNGAN_DIR, coco.ATTNGAN), (OFFICIAL_DIR, coco.OFFICIAL)):
            with self.subTest(layout):
                root, found = coco.find_root(folder)
                self.assertEqual((root, found), (folder, layout))
                train = coco.read_split(root, layout, "train")
                test = coco.read_split(root, layout, "test")
                self.assertEqual([e.name for e in train], TRAIN_NAMES)
                self.assertEqual([e.image_id for e in train], [9, 25, 30])
                self.assertEqual([e.image_id for e in test], [42, 73])
                for example in train + test:
                    self.assertEqual(example.class_id, coco.NO_CLASS)
                    self.assertIsNone(example.bbox)
                    self.assertLen(example.captions, coco.CAPTIONS_PER_IMAGE)
                    self.assertTrue(os.path.isfile(example.image_path))

    def test_official_layout_keeps_first_five_captions_in_annotation_order(self):
        path = os.path.join(OFFICIAL_DIR, "annotations", "captions_train2014.json")
        with open(path) as f:
            annotations = json.load(f)["annotations"]
        raw = [a["caption"] for a in annotations if a["image_id"] == 9]
        self.assertLen(raw, 6)   # The fake file gives image 9 six captions.
        example = coco.read_split(OFFICIAL_DIR, coco.OFFICIAL, "train")[0]
        self.assertEqual(list(example.captions), [raw_files.clean_caption(c) for c in raw[:5]])
        # Cleaned as AttnGAN cleans: lower case, no punctuation.
        self.assertEqual(example.captions[0], raw[0].lower().rstrip("."))

    def test_layouts_give_the_same_captions(self):
        attngan = coco.read_split(ATTNGAN_DIR, coco.ATTNGAN, "test")
        official = coco.read_split(OFFICIAL_DIR, coco.OFFICIAL, "test")
        self.assertEqual([e.captions for e in attngan], [e.captions for e in official])

    def test_vocabulary_only_for_the_attngan_layout(self):
        self.assertIsNone(coco.read_vocabulary(OFFICIAL_DIR, coco.OFFICIAL))
        words = coco.read_vocabulary(ATTNGAN_DIR, coco.ATTNGAN)
        self.assertIn("bird", words)
        self.assertNotIn("<end>", words)

    def test_attngan_layout_wins_when_both_are_present(self):
        root = self._copy(OFFICIAL_DIR)
        shutil.copytree(ATTNGAN_DIR, root, dirs_exist_ok=True)
        self.assertEqual(coco.find_root(root), (root, coco.ATTNGAN))

    def test_manual_dir_may_hold_coco(self):
        parent = os.path.dirname(self._copy(OFFICIAL_DIR, "coco"))
        self.assertEqual(coco.find_root(parent), (os.path.join(parent, "coco"), coco.OFFICIAL))

    def test_missing_files_list_both_layouts_and_sources(self):
        root = self._copy(OFFICIAL_DIR)
        os.remove(os.path.join(root, "annotations", "captions_val2014.json"))
        with self.assertRaises(raw_files.MissingFilesError) as caught:
            coco.find_root(root)
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        for expected in ("lacks annotations/captions_val2014.json", "official", "filenames.pickle",
                         "cocodataset.org", "coco.zip", root):
            self.assertIn(expected, message)
        with self.assertRaisesRegex(raw_files.MissingFilesError, "does not exist"):
            coco.find_root(os.path.join(root, "nowhere"))

    def test_official_image_with_too_few_captions_is_named(self):
        root = self._copy(OFFICIAL_DIR)
        path = os.path.join(root, "annotations", "captions_val2014.json")
        with open(path) as f:
            data = json.load(f)
        kept, dropped = [], 0
        for a in data["annotations"]:
            if a["image_id"] == 73 and dropped < 2:
                dropped += 1
                continue
            kept.append(a)
        data["annotations"] = kept
        with open(path, "w") as f:
            json.dump(data, f)
        with self.assertRaisesRegex(raw_files.CaptionCountError,
                                    r"COCO_val2014_000000000073.jpg \(id 73\) \(3\)"):
            coco.read_split(root, coco.OFFICIAL, "test")

    def test_official_missing_image_is_named(self):
        root = self._copy(OFFICIAL_DIR)
        os.remove(os.path.join(root, "train2014", "COCO_train2014_000000000025.jpg"))
        with self.assertRaisesRegex(raw_files.MissingFilesError,
                                    "1 image.*COCO_train2014_000000000025.jpg"):
            coco.read_split(root, coco.OFFICIAL, "train")

    def test_attngan_short_caption_file_is_named(self):
        root = self._copy(ATTNGAN_DIR)
        path = os.path.join(root, "text", TRAIN_NAMES[2] + ".txt")
        with open(path, "w") as f:
            f.write("a cat\n\n?!\na dog\n")
        with self.assertRaisesRegex(raw_files.CaptionCountError, path + r" \(2\)"):
            coco.read_split(root, coco.ATTNGAN, "train")

    def test_broken_annotation_file_is_named(self):
        root = self._copy(OFFICIAL_DIR)
        path = os.path.join(root, "annotations", "captions_train2014.json")
        with open(path, "w") as f:
            f.write('{"images": [')
        with self.assertRaisesRegex(raw_files.DatasetFormatError, "captions_train2014.json"):
            coco.read_split(root, coco.OFFICIAL, "train")
