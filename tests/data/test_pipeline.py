"""The training/eval tf.data pipeline on a small synthetic in-memory source."""

import numpy as np
import tensorflow as tf

from tf_t2i.data import pipeline
from tf_t2i.data import tokenizer as tokenizer_lib

WORDS = ["w%d" % i for i in range(40)]


def make_source(n=12, c=4, size=8, classes=None, long_captions=False):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    # Caption j of image i is made of words unique to (i, j), so ids identify their caption.
    length = 25 if long_captions else 3
    captions = [[" ".join(f"i{i}c{j}t{k}" for k in range(length)) for j in range(c)]
                for i in range(n)]
    class_ids = np.asarray(classes if classes is not None else [-1] * n, np.int64)
    return pipeline.ImageCaptionSource(images=images, captions=captions,
                                       image_ids=np.arange(100, 100 + n), class_ids=class_ids,
                                       attributes={"a": np.arange(n)}, name="synthetic")


def setup(source, max_length=18):
    tok = tokenizer_lib.CaptionTokenizer.build(source.all_captions(), max_length=max_length)
    return tok, pipeline.CaptionBank(source, tok)


def take(ds, k):
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds.take(k)]


def owner(tok, ids_row):
    """(image, caption) that produced a row of token ids."""
    word = tok.decode([ids_row])[0].split()[0]
    i, rest = word[1:].split("c")
    return int(i), int(rest.split("t")[0])


class PipelineTest(tf.test.TestCase):

    def test_shapes_dtypes_and_ranges(self):
        source = make_source()
        tok, bank = setup(source)
        batch = take(pipeline.make_train_dataset(source, bank, batch_size=4, image_size=8,
                                                 noise_dim=5), 1)[0]
        self.assertEqual(batch["real_images"].shape, (4, 8, 8, 3))
        self.assertEqual(batch["real_images"].dtype, np.float32)
        self.assertBetween(batch["real_images"].min(), -1.0, 1.0)
        self.assertBetween(batch["real_images"].max(), -1.0, 1.0)
        for key in ("caption_ids", "caption_ids_2", "mismatched_ids"):
            self.assertEqual(batch[key].shape, (4, 18))
            self.assertEqual(batch[key].dtype, np.int32)
        self.assertEqual(batch["z"].shape, (4, 5))
        self.assertEqual(batch["attributes"]["a"].shape, (4,))
        # Images are the source images of the ids, scaled to [-1, 1].
        for b in range(4):
            i = batch["image_id"][b] - 100
            np.testing.assert_allclose(batch["real_images"][b], source.images[i] / 127.5 - 1.0,
                                       atol=1e-6)
            self.assertEqual(batch["attributes"]["a"][b], i)

    def test_captions_belong_to_the_right_images(self):
        source = make_source()
        tok, bank = setup(source)
        for batch in take(pipeline.make_train_dataset(source, bank, batch_size=6, image_size=8), 4):
            for b in range(6):
                image = batch["image_id"][b] - 100
                i1, c1 = owner(tok, batch["caption_ids"][b])
                i2, c2 = owner(tok, batch["caption_ids_2"][b])
                im, _ = owner(tok, batch["mismatched_ids"][b])
                self.assertEqual(i1, image)
                self.assertEqual(i2, image)
                self.assertNotEqual(c1, c2)          # a different caption of the same image
                self.assertNotEqual(im, image)       # a caption of another image
                self.assertEqual(im, batch["mismatched_image_id"][b] - 100)

    def test_mismatch_comes_from_another_class(self):
        classes = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
        source = make_source(classes=classes)
        tok, bank = setup(source)
        for batch in take(pipeline.make_train_dataset(source, bank, batch_size=6, image_size=8), 6):
            for b in range(6):
                im, _ = owner(tok, batch["mismatched_ids"][b])
                self.assertNotEqual(classes[im], batch["class_id"][b])

    def test_hard_negatives_replace_the_given_share_of_mismatched_captions(self):
        source = make_source(n=12, c=4)
        tok = tokenizer_lib.CaptionTokenizer.build(source.all_captions(), max_length=18)
        # Caption j of image i's hard negative is caption (j + 1) % 4 of the same image;
        # image 0 has none, so it always keeps a caption of another image.
        hard = [[None] * 4] + [[caps[(j + 1) % 4] for j in range(4)]
                               for caps in source.captions[1:]]
        bank = pipeline.CaptionBank(source, tok, hard_negatives=hard)
        kw = dict(batch_size=6, image_size=8, noise_dim=2, seed=3)
        plain = take(pipeline.make_train_dataset(source, bank, **kw), 20)
        mixed = take(pipeline.make_train_dataset(source, bank, hard_negative_fraction=0.5, **kw),
                     20)
        hard_count = 0
        for a, b in zip(plain, mixed):
            # Everything but the mismatched pair is as without hard negatives.
            for key in ("caption_ids", "caption_ids_2", "image_id", "z"):
                np.testing.assert_array_equal(a[key], b[key])
            for row in range(6):
                image = b["image_id"][row] - 100
                _, matched = owner(tok, b["caption_ids"][row])
                other, other_caption = owner(tok, b["mismatched_ids"][row])
                if other == image:
                    hard_count += 1
                    self.assertNotEqual(image, 0)
                    self.assertEqual(other_caption, (matched + 1) % 4)
                else:
                    np.testing.assert_array_equal(b["mismatched_ids"][row],
                                                  a["mismatched_ids"][row])
                self.assertEqual(other, b["mismatched_image_id"][row] - 100)
        self.assertBetween(hard_count, 30, 80)   # about half of 120, less image 0's
        with self.assertRaisesRegex(ValueError, "hard_negatives"):
            pipeline.make_train_dataset(source, pipeline.CaptionBank(source, tok),
                                        hard_negative_fraction=0.5, **kw)
        with self.assertRaisesRegex(ValueError, "one entry per caption"):
            pipeline.CaptionBank(source, tok, hard_negatives=hard[1:])

    def test_negative_images_come_with_their_own_image(self):
        source = make_source(n=12, c=4)
        _, bank = setup(source)
        # Image i's negative is its inverse, so each row's pair can be checked by hand.
        negatives = 255 - source.images
        kw = dict(batch_size=6, image_size=8, noise_dim=2, seed=3)
        plain = take(pipeline.make_train_dataset(source, bank, **kw), 4)
        with_negatives = take(pipeline.make_train_dataset(source, bank,
                                                          negative_images=negatives, **kw), 4)
        for a, b in zip(plain, with_negatives):
            self.assertNotIn("negative_images", a)
            for key in ("real_images", "caption_ids", "mismatched_ids", "image_id", "z"):
                np.testing.assert_array_equal(a[key], b[key])
            np.testing.assert_allclose(b["negative_images"], -b["real_images"], atol=1e-6)
        # Resized like the real images when the model's size differs.
        resized = take(pipeline.make_train_dataset(
            source, bank, negative_images=negatives, **{**kw, "image_size": 4}), 1)[0]
        np.testing.assert_allclose(resized["negative_images"], -resized["real_images"],
                                   atol=1e-5)
        for bad in (negatives[1:], negatives.astype(np.float32), negatives[..., :1]):
            with self.assertRaisesRegex(ValueError, "negative_images must be uint8"):
                pipeline.make_train_dataset(source, bank, negative_images=bad, **kw)

    def test_epoch_visits_every_image_once(self):
        source = make_source(n=12)
        _, bank = setup(source)
        batches = take(pipeline.make_train_dataset(source, bank, batch_size=4, image_size=8), 6)
        first = np.concatenate([b["image_id"] for b in batches[:3]])
        second = np.concatenate([b["image_id"] for b in batches[3:]])
        self.assertCountEqual(first, np.arange(100, 112))
        self.assertCountEqual(second, np.arange(100, 112))
        self.assertNotAllEqual(first, second)    # reshuffled each epoch

    def test_epoch_repeats_give_each_image_its_count_of_an_epoch(self):
        source = make_source(n=12)
        _, bank = setup(source)
        repeats = np.where(np.arange(12) % 3 == 0, 3, 1)   # images 0, 3, 6, 9 three times
        kw = dict(batch_size=4, image_size=8, seed=5, epoch_repeats=repeats)
        batches = take(pipeline.make_train_dataset(source, bank, **kw), 10)
        ids = np.concatenate([b["image_id"] for b in batches]) - 100
        for epoch in (ids[:20], ids[20:40]):               # 12 + 2 * 4 = 20 slots an epoch
            np.testing.assert_array_equal(np.bincount(epoch, minlength=12), repeats)
        self.assertNotAllEqual(ids[:20], ids[20:40])
        resumed = take(pipeline.make_train_dataset(source, bank, start_step=6, **kw), 4)
        for a, b in zip(batches[6:], resumed):
            tf.nest.map_structure(np.testing.assert_array_equal, a, b)
        # All ones is the plain stream, draw for draw.
        plain = take(pipeline.make_train_dataset(source, bank, batch_size=4, image_size=8,
                                                 seed=5), 3)
        ones = take(pipeline.make_train_dataset(source, bank, **{**kw, "epoch_repeats":
                                                                 np.ones(12, int)}), 3)
        for a, b in zip(plain, ones):
            tf.nest.map_structure(np.testing.assert_array_equal, a, b)
        with self.assertRaisesRegex(ValueError, "epoch_repeats must be \\[12\\] ints >= 1"):
            pipeline.make_train_dataset(source, bank, **{**kw, "epoch_repeats": np.zeros(12, int)})
        with self.assertRaisesRegex(ValueError, "epoch_repeats must be \\[12\\] ints >= 1"):
            pipeline.make_train_dataset(source, bank, **{**kw, "epoch_repeats": np.full(12, 1.5)})

    def test_deterministic_under_seed_and_resumable(self):
        source = make_source()
        _, bank = setup(source)
        kw = dict(batch_size=4, image_size=8, noise_dim=3, seed=7)
        run1 = take(pipeline.make_train_dataset(source, bank, **kw), 5)
        run2 = take(pipeline.make_train_dataset(source, bank, **kw), 5)
        resumed = take(pipeline.make_train_dataset(source, bank, start_step=3, **kw), 2)
        other_seed = take(pipeline.make_train_dataset(source, bank, **{**kw, "seed": 8}), 1)
        for a, b in zip(run1, run2):
            tf.nest.map_structure(np.testing.assert_array_equal, a, b)
        for a, b in zip(run1[3:], resumed):
            tf.nest.map_structure(np.testing.assert_array_equal, a, b)
        self.assertFalse(np.array_equal(run1[0]["z"], other_seed[0]["z"]))

    def test_long_captions_keep_random_positions_in_order(self):
        source = make_source(long_captions=True)
        tok, bank = setup(source, max_length=18)
        batch = take(pipeline.make_train_dataset(source, bank, batch_size=4, image_size=8), 1)[0]
        for row in batch["caption_ids"]:
            words = tok.decode([row])[0].split()
            self.assertLen(words, 18)
            positions = [int(w.split("t")[-1]) for w in words]
            self.assertEqual(positions, sorted(positions))
            self.assertLen(set(positions), 18)
            self.assertNotEqual(positions, list(range(18)))   # not simply the prefix

    def test_select_words_short_caption_is_padded_unchanged(self):
        out = pipeline.select_words(tf.constant([5, 6, 7, 0, 0], tf.int32), tf.constant(3), 4,
                                    tf.constant([1, 2], tf.int64))
        np.testing.assert_array_equal(out.numpy(), [5, 6, 7, 0])

    def test_eval_dataset_one_pass_in_order(self):
        source = make_source(n=10)
        tok, bank = setup(source)
        batches = take(pipeline.make_eval_dataset(source, bank, batch_size=4, image_size=8,
                                                  caption_index=2), 10)
        self.assertLen(batches, 3)
        ids = np.concatenate([b["image_id"] for b in batches])
        np.testing.assert_array_equal(ids, np.arange(100, 110))
        self.assertEqual(owner(tok, batches[0]["caption_ids"][1]), (1, 2))

    def test_resize_when_source_size_differs(self):
        source = make_source(size=16)
        _, bank = setup(source)
        batch = take(pipeline.make_train_dataset(source, bank, batch_size=2, image_size=8), 1)[0]
        self.assertEqual(batch["real_images"].shape, (2, 8, 8, 3))

    def test_bad_sources_are_rejected(self):
        with self.assertRaisesRegex(ValueError, "empty"):
            pipeline.ImageCaptionSource(np.zeros((0, 4, 4, 3), np.uint8), [], np.zeros(0),
                                        np.zeros(0))
        with self.assertRaisesRegex(ValueError, "uint8"):
            pipeline.ImageCaptionSource(np.zeros((1, 4, 4, 3), np.float32), [["a"]], np.zeros(1),
                                        np.zeros(1))


# --- Encoded (JPEG) sources: real datasets are decoded per element in the graph. --------
def make_encoded_source(n=8, c=3, shapes=((20, 30), (30, 20), (24, 24), (40, 16))):
    """n JPEGs of the given (H, W) shapes in turn; caption words as in make_source."""
    import io  # pylint: disable=g-import-not-at-top
    from PIL import Image  # pylint: disable=g-import-not-at-top
    rng = np.random.default_rng(1)
    encoded = np.empty(n, dtype=object)
    decoded = []
    for i in range(n):
        h, w = shapes[i % len(shapes)]
        # Smooth content so JPEG keeps it recognisable; crops differ visibly.
        yy, xx = np.mgrid[0:h, 0:w]
        pixels = np.stack([xx * 255 // w, yy * 255 // h, np.full((h, w), rng.integers(256))],
                          -1).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
        encoded[i] = buffer.getvalue()
        decoded.append(tf.io.decode_jpeg(encoded[i], channels=3,
                                         dct_method="INTEGER_ACCURATE").numpy())
    captions = [[f"i{i}c{j}t0 i{i}c{j}t1" for j in range(c)] for i in range(n)]
    source = pipeline.ImageCaptionSource(
        images=None, encoded_images=encoded, captions=captions,
        image_ids=np.arange(100, 100 + n), class_ids=np.asarray([i % 2 for i in range(n)]),
        name="encoded")
    return source, decoded


def resized_by_hand(pixels, load_size):
    """Shorter side -> load_size, aspect kept (torchvision Resize(int)), float 0..255."""
    h, w = pixels.shape[:2]
    new_h, new_w = (load_size, load_size * w // h) if h <= w else (load_size * h // w, load_size)
    return tf.image.resize(tf.cast(pixels, tf.float32), [new_h, new_w], antialias=True).numpy()


def find_crop(image, resized, size):
    """(top, left, flipped) such that `image` is that crop of `resized`, or None."""
    for flipped in (False, True):
        base = resized[:, ::-1] if flipped else resized
        for top in range(base.shape[0] - size + 1):
            for left in range(base.shape[1] - size + 1):
                if np.allclose(base[top:top + size, left:left + size], image, atol=1e-2):
                    left_in_original = base.shape[1] - size - left if flipped else left
                    return top, left_in_original, flipped
    return None


class EncodedPipelineTest(tf.test.TestCase):

    def test_train_images_are_random_crops_and_flips_of_the_resized_image(self):
        source, decoded = make_encoded_source()
        _, bank = setup(source)
        size = 8
        load = source.load_size(size)
        self.assertEqual(load, 9)                                 # int(8 * 76 / 64)
        self.assertEqual(source.load_size(256), 304)
        seen = set()
        for batch in take(pipeline.make_train_dataset(source, bank, batch_size=4,
                                                      image_size=size, seed=3), 6):
            self.assertEqual(batch["real_images"].shape, (4, size, size, 3))
            self.assertEqual(batch["real_images"].dtype, np.float32)
            self.assertBetween(batch["real_images"].min(), -1.0, 1.0)
            self.assertBetween(batch["real_images"].max(), -1.0, 1.0)
            for b in range(4):
                i = batch["image_id"][b] - 100
                resized = resized_by_hand(decoded[i], load)
                self.assertEqual(min(resized.shape[:2]), load)
                found = find_crop((batch["real_images"][b] + 1.0) * 127.5, resized, size)
                self.assertIsNotNone(found, f"image {i} is not a crop of its resized image")
                seen.add((i,) + found)
        flips = {f for *_, f in seen}
        self.assertEqual(flips, {False, True})
        self.assertGreater(len({(t, l) for _, t, l, _ in seen}), 3)   # offsets vary

    def test_encoded_stream_is_deterministic_and_resumable(self):
        source, _ = make_encoded_source()
        _, bank = setup(source)
        kw = dict(batch_size=3, image_size=8, seed=5)
        run1 = take(pipeline.make_train_dataset(source, bank, **kw), 5)
        run2 = take(pipeline.make_train_dataset(source, bank, **kw), 5)
        resumed = take(pipeline.make_train_dataset(source, bank, start_step=3, **kw), 2)
        other = take(pipeline.make_train_dataset(source, bank, **{**kw, "seed": 6}), 1)
        for a, b in zip(run1, run2):
            tf.nest.map_structure(np.testing.assert_array_equal, a, b)
        for a, b in zip(run1[3:], resumed):
            tf.nest.map_structure(np.testing.assert_array_equal, a, b)
        self.assertFalse(np.array_equal(run1[0]["real_images"], other[0]["real_images"]))

    def test_eval_images_are_centre_crops_without_flip(self):
        source, decoded = make_encoded_source(n=4)
        _, bank = setup(source)
        size = 8
        batches = take(pipeline.make_eval_dataset(source, bank, batch_size=3, image_size=size,
                                                  caption_index=0), 5)
        images = np.concatenate([b["real_images"] for b in batches])
        self.assertAllEqual(np.concatenate([b["image_id"] for b in batches]), [100, 101, 102, 103])
        for i in range(4):
            resized = resized_by_hand(decoded[i], source.load_size(size))
            top = (resized.shape[0] - size) // 2
            left = (resized.shape[1] - size) // 2
            self.assertAllClose((images[i] + 1.0) * 127.5,
                                resized[top:top + size, left:left + size], atol=1e-2)
        again = take(pipeline.make_eval_dataset(source, bank, batch_size=3, image_size=size,
                                                caption_index=0), 5)
        self.assertAllEqual(images, np.concatenate([b["real_images"] for b in again]))

    def test_no_flip_when_disabled(self):
        source, decoded = make_encoded_source(n=4, shapes=((24, 24),))
        source.random_flip = False
        _, bank = setup(source)
        for batch in take(pipeline.make_train_dataset(source, bank, batch_size=4,
                                                      image_size=8, seed=1), 3):
            for b in range(4):
                resized = resized_by_hand(decoded[batch["image_id"][b] - 100], 9)
                self.assertFalse(find_crop((batch["real_images"][b] + 1.0) * 127.5,
                                           resized, 8)[2])

    def test_encoded_sources_are_validated(self):
        source, _ = make_encoded_source(n=2)
        with self.assertRaisesRegex(ValueError, "exactly one of images and encoded_images"):
            pipeline.ImageCaptionSource(np.zeros((2, 4, 4, 3), np.uint8), source.captions,
                                        source.image_ids, source.class_ids,
                                        encoded_images=source.encoded_images)
        with self.assertRaisesRegex(ValueError, "exactly one"):
            pipeline.ImageCaptionSource(None, source.captions, source.image_ids,
                                        source.class_ids)
        with self.assertRaisesRegex(ValueError, "load_scale"):
            pipeline.ImageCaptionSource(None, source.captions, source.image_ids,
                                        source.class_ids, encoded_images=source.encoded_images,
                                        load_scale=0.5)
        self.assertTrue(source.is_encoded)
        self.assertLen(source, 2)
