"""The CUB-200-2011 reader (AttnGAN layout) on the fake birds/ folder in dummy_data."""

import os
import pickle
import shutil

import numpy as np
import tensorflow as tf
from PIL import Image

from tf_t2i.data import cub
from tf_t2i.data import raw_files
from tf_t2i.data import tokenizer as tokenizer_lib
from tf_t2i.io import safe_pickle

DUMMY = os.path.join(os.path.dirname(cub.__file__), "dummy_data", "cub")
ALBATROSS_1 = "001.Black_footed_Albatross/Black_Footed_Albatross_0001_1"


class _RunsShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class CUBReaderTest(tf.test.TestCase):

    def _copy(self, parent="copy"):
        """A writable copy of the fake birds/ folder; returns its path."""
        root = os.path.join(self.create_tempdir().full_path, parent)
        shutil.copytree(DUMMY, root)
        return root

    def test_crop_box_matches_hand_computation(self):
        # bbox (60, 27, 325, 304) in a 500x375 image:
        # r = int(325 * 0.75) = 243, cx = int((120 + 325) / 2) = 222, cy = int((54 + 304) / 2) = 179
        # x1 = max(0, -21) = 0, y1 = max(0, -64) = 0, x2 = min(500, 465) = 465, y2 = min(375, 422).
        self.assertEqual(cub.crop_box((60, 27, 325, 304), 500, 375), (0, 0, 465, 375))
        # Inside the image: r = 30, centre (120, 110).
        self.assertEqual(cub.crop_box((100, 100, 40, 20), 500, 500), (90, 80, 150, 140))
        # Odd sums truncate: cx = int(205 / 2) = 102, cy = int(47 / 2) = 23, r = int(8.25) = 8.
        self.assertEqual(cub.crop_box((100, 18, 5, 11), 300, 200), (94, 15, 110, 31))

    def test_crop_to_bbox_cuts_those_pixels(self):
        pixels = np.random.default_rng(0).integers(0, 256, (375, 500, 3), np.uint8)
        cropped = np.asarray(cub.crop_to_bbox(Image.fromarray(pixels), (60, 27, 325, 304)))
        self.assertAllEqual(cropped, pixels[0:375, 0:465])

    def test_split_reads_names_ids_classes_boxes_in_file_list_order(self):
        examples = cub.read_split(cub.find_root(DUMMY), "train")
        with open(os.path.join(DUMMY, "train", "filenames.pickle"), "rb") as f:
            names = [n.decode() for n in pickle.load(f, encoding="bytes")]
        self.assertEqual([e.name for e in examples], names)
        self.assertEqual([e.image_id for e in examples], [1, 2, 3, 4])
        # class_info.pickle holds 1-based ids [1, 1, 2, 2].
        self.assertEqual([e.class_id for e in examples], [0, 0, 1, 1])
        self.assertEqual(examples[1].bbox, (20, 10, 10, 12))
        self.assertTrue(examples[0].image_path.endswith(
            os.path.join("CUB_200_2011", "images", ALBATROSS_1 + ".jpg")))
        test = cub.read_split(cub.find_root(DUMMY), "test")
        self.assertEqual([e.class_id for e in test], [2, 2])

    def test_captions_are_cleaned_as_attngan_does(self):
        example = cub.read_split(DUMMY, "train")[0]
        with open(os.path.join(DUMMY, "text", ALBATROSS_1 + ".txt"), encoding="utf-8") as f:
            lines = f.read().split("\n")
        # The file has a blank 4th line, a "\ufffd\ufffd" pair and 11 captions.
        self.assertEqual(lines[3], "")
        self.assertIn("\ufffd\ufffd", lines[4])
        self.assertLen([line for line in lines if line], 11)
        non_empty = [line for line in lines if line]
        expected = non_empty[:3] + [non_empty[3].replace("\ufffd\ufffd", " ")] + non_empty[4:10]
        self.assertEqual(list(example.captions), expected)

    def test_clean_caption(self):
        self.assertEqual(raw_files.clean_caption("This Bird's wings\ufffd\ufffdare RED, naïve."),
                         "this bird s wings are red nave")
        self.assertIsNone(raw_files.clean_caption("  ... !!"))

    def test_class_ids_fall_back_to_the_class_folder_number(self):
        root = self._copy()
        os.remove(os.path.join(root, "test", "class_info.pickle"))
        self.assertEqual([e.class_id for e in cub.read_split(root, "test")], [2, 2])

    def test_vocabulary_ids_are_pickle_indices_plus_one(self):
        words = cub.read_vocabulary(DUMMY)
        with open(os.path.join(DUMMY, "captions.pickle"), "rb") as f:
            train_caps, _, ixtoword, wordtoix = pickle.load(f)
        self.assertEqual(words[0], ixtoword[1])
        tok = tokenizer_lib.CaptionTokenizer(words, max_length=20)
        for word, index in wordtoix.items():
            if index:
                self.assertEqual(tok.encode([word]).numpy()[0, 0], index + 1)
        # A whole caption: our ids are the pickle's word indices shifted by one.
        first = cub.read_split(DUMMY, "train")[0].captions[0]
        ids = tok.encode([first]).numpy()[0]
        self.assertAllEqual(ids[ids > 0], np.asarray(train_caps[0]) + 1)

    def test_manual_dir_may_hold_birds(self):
        parent = os.path.dirname(self._copy("birds"))
        self.assertEqual(cub.find_root(parent), os.path.join(parent, "birds"))

    def test_missing_files_list_the_expected_tree_and_sources(self):
        root = self._copy()
        os.remove(os.path.join(root, "CUB_200_2011", "bounding_boxes.txt"))
        shutil.rmtree(os.path.join(root, "text"))
        with self.assertRaises(raw_files.MissingFilesError) as caught:
            cub.find_root(root)
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        for expected in ("CUB_200_2011/bounding_boxes.txt", "text/", "images.txt",
                         "filenames.pickle", "birds.zip", "CUB_200_2011.tgz", root):
            self.assertIn(expected, message)
        self.assertIsInstance(caught.exception, FileNotFoundError)
        with self.assertRaisesRegex(raw_files.MissingFilesError, "does not exist.*birds.zip"):
            cub.find_root(os.path.join(root, "nowhere"))

    def test_missing_image_listed_in_filenames_is_named(self):
        root = self._copy()
        os.remove(os.path.join(root, "CUB_200_2011", "images", ALBATROSS_1 + ".jpg"))
        with self.assertRaisesRegex(raw_files.MissingFilesError,
                                    "image .*Black_Footed_Albatross_0001_1.jpg is missing"):
            cub.read_split(root, "train")

    def test_short_caption_file_is_named(self):
        root = self._copy()
        path = os.path.join(root, "text", ALBATROSS_1 + ".txt")
        with open(path, encoding="utf-8") as f:
            lines = [line for line in f.read().split("\n") if line]
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines[:7]) + "\n\n\n")
        with self.assertRaises(raw_files.CaptionCountError) as caught:
            cub.read_split(root, "train")
        self.assertIn(path + " (7)", str(caught.exception))
        self.assertIn("10", str(caught.exception))
        self.assertIsInstance(caught.exception, ValueError)

    def test_malicious_class_info_is_refused_and_nothing_runs(self):
        root = self._copy()
        marker = os.path.join(root, "pwned")
        path = os.path.join(root, "train", "class_info.pickle")
        with open(path, "wb") as f:
            pickle.dump(_RunsShell(f"touch {marker}"), f, protocol=2)
        with self.assertRaisesRegex(safe_pickle.UnsafePickleError, "class_info.pickle"):
            cub.read_split(root, "train")
        self.assertFalse(os.path.exists(marker))

    def test_class_info_length_must_match_file_names(self):
        root = self._copy()
        with open(os.path.join(root, "train", "class_info.pickle"), "wb") as f:
            pickle.dump([1, 2], f, protocol=2)
        with self.assertRaisesRegex(safe_pickle.PickleFormatError, "2 class ids for 4"):
            cub.read_split(root, "train")
