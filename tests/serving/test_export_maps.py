"""The explainability signatures of an export: `generate_with_maps` and `caption_words`.

Tiny untrained SSA-GAN (64 px) and AttnGAN (128 px, so one attending stage) models are
exported in memory (no training run needed), with warmup, reloaded, and compared with
the in-memory module and with `serving_default`.
"""

import io
import os
import shutil
import tempfile

import numpy as np
from PIL import Image
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tf_t2i import api
from tf_t2i.data import tokenizer as tokenizer_lib
from tf_t2i.models import attngan_generator
from tf_t2i.models import interface
from tf_t2i.models import ssagan_generator
from tf_t2i.models import text_encoder as text_encoder_lib
from tf_t2i.serving import export_lib

Z_DIM, TEXT_DIM, MAX_WORDS = 8, 16, 6
VOCABULARY_CAPTIONS = ("a large red circle in the center", "a small blue square on the left")
# "zebra" is out of vocabulary; the first caption has more than MAX_WORDS words.
CAPTIONS = ["a large red circle in the center", "a blue zebra square", "red"]
SEEDS = [0, 1, 12345678901]


def _tiny_module(family: str) -> export_lib.TextToImageExport:
    tokenizer = tokenizer_lib.CaptionTokenizer.build(VOCABULARY_CAPTIONS, max_length=MAX_WORDS)
    text_encoder = text_encoder_lib.DAMSMTextEncoder(tokenizer.vocab_size, embedding_dim=8,
                                                     hidden_dim=TEXT_DIM)
    text_encoder(tf.zeros([1, MAX_WORDS], tf.int32))
    if family.startswith("ssagan"):
        image_size = 64
        words = family == "ssagan_words"
        generator = ssagan_generator.SSAGANGenerator(
            ngf=4, z_dim=Z_DIM, sentence_dim=TEXT_DIM, image_size=image_size, mask_channels=8,
            word_attention_max_size=32 if words else 0, word_attention_coords=words,
            residual_gate_init=1.0 if words else 0.0)
    else:
        image_size = 128
        generator = attngan_generator.AttnGANGenerator(
            ngf=4, z_dim=Z_DIM, condition_dim=8, sentence_dim=TEXT_DIM, num_residual=1,
            image_size=image_size)
    interface.build_generator(generator, Z_DIM, TEXT_DIM, MAX_WORDS)
    if family == "ssagan_words":  # the per-pixel word affines start at zero: open them
        rng = np.random.default_rng(0)
        for var in generator.trainable_variables:
            if var.path.endswith(("gamma_word/kernel", "beta_word/kernel")):
                var.assign(rng.standard_normal(var.shape) * 0.3)
    return export_lib.TextToImageExport(generator, text_encoder, tokenizer, Z_DIM, image_size)


class _WithoutExplainability(export_lib.TextToImageExport):
    """The export as it was before the explainability signatures."""

    def endpoints(self):
        endpoints = super().endpoints()
        return {name: endpoints[name]
                for name in (export_lib.SERVING_DEFAULT, export_lib.GENERATE_UNSEEDED)}


def _decode_png(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)))


class _MapsExportChecks:
    """Checks shared by both families; subclasses set `family`, `image_size`, `num_maps`."""

    family = image_size = num_maps = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.module = _tiny_module(cls.family)
        cls.base = tempfile.mkdtemp(prefix=f"maps_{cls.family}_")
        cls.version_dir, _ = export_lib.export_modules(cls.module, os.path.join(cls.base, "t2i"))
        cls.loaded = tf.saved_model.load(cls.version_dir)
        cls.out = {k: v.numpy() for k, v in cls._call(export_lib.GENERATE_WITH_MAPS).items()}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.base, ignore_errors=True)
        super().tearDownClass()

    @classmethod
    def _call(cls, name, captions=CAPTIONS, seeds=SEEDS):
        inputs = {"captions": tf.constant(captions, tf.string)}
        if name != export_lib.CAPTION_WORDS:
            inputs["seeds"] = tf.constant(seeds, tf.int64)
        return cls.loaded.signatures[name](**inputs)

    def test_images_are_serving_defaults(self):
        default = self._call(export_lib.SERVING_DEFAULT)
        self.assertAllEqual(self.out[export_lib.IMAGES], default[export_lib.IMAGES])
        self.assertAllEqual(self.out[export_lib.PNG_BYTES], default[export_lib.PNG_BYTES])

    def test_shapes_dtypes_and_range(self):
        size, count, batch = self.image_size, self.num_maps, len(CAPTIONS)
        self.assertEqual(self.out[export_lib.MAPS].shape, (batch, count, size, size))
        self.assertEqual(self.out[export_lib.MAPS].dtype, np.float32)
        self.assertAllInRange(self.out[export_lib.MAPS], 0.0, 1.0)
        for key in (export_lib.MAP_PNG_BYTES, export_lib.MAP_LABELS, export_lib.MAP_WORDS):
            self.assertEqual(self.out[key].shape, (batch, count), key)
        signature = self.loaded.signatures[export_lib.GENERATE_WITH_MAPS]
        for spec in signature.structured_outputs.values():
            self.assertIsNone(spec.shape[0])  # batch first, for TF Serving's batching
        self.assertEqual(signature.structured_outputs[export_lib.MAPS].shape[1:],
                         (count, size, size))  # M is fixed per export

    def test_map_pngs_are_the_maps_in_grey(self):
        for b in range(len(CAPTIONS)):
            for m in range(self.num_maps):
                pixels = _decode_png(self.out[export_lib.MAP_PNG_BYTES][b, m])
                self.assertEqual(pixels.shape, (self.image_size, self.image_size))
                self.assertAllEqual(pixels, np.round(self.out[export_lib.MAPS][b, m] * 255))

    def test_equal_to_the_in_memory_module(self):
        expected = self.module.with_maps(CAPTIONS, SEEDS)
        self.assertAllEqual(self.out[export_lib.IMAGES], expected[export_lib.IMAGES])
        self.assertAllClose(self.out[export_lib.MAPS], expected[export_lib.MAPS], atol=1e-5)
        for key in (export_lib.MAP_LABELS, export_lib.MAP_WORDS):
            self.assertAllEqual(self.out[key], expected[key])

    def test_caption_words(self):
        out = self._call(export_lib.CAPTION_WORDS, ["a blue zebra square", "RED, circle!", " "])
        self.assertAllEqual(out[export_lib.WORDS],
                            [[b"a", b"blue", b"zebra", b"square", b"", b""],
                             [b"red", b"circle", b"", b"", b"", b""], [b""] * MAX_WORDS])
        self.assertAllEqual(out[export_lib.IN_VOCABULARY],
                            [[True, True, False, True, False, False],
                             [True, True] + [False] * 4, [False] * MAX_WORDS])
        self.assertAllEqual(out[export_lib.NUM_WORDS], [4, 2, 0])
        self.assertEqual(out[export_lib.NUM_WORDS].dtype, tf.int32)
        long = self._call(export_lib.CAPTION_WORDS, CAPTIONS[:1])
        self.assertAllEqual(long[export_lib.NUM_WORDS], [MAX_WORDS])  # what the model reads

    def test_empty_request_and_empty_caption(self):
        out = self._call(export_lib.GENERATE_WITH_MAPS, [], [])
        self.assertEqual(out[export_lib.MAPS].shape,
                         (0, self.num_maps, self.image_size, self.image_size))
        self.assertEqual(out[export_lib.MAP_LABELS].shape, (0, self.num_maps))
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "Empty caption"):
            self._call(export_lib.GENERATE_WITH_MAPS, ["a red circle", "?!"], [0, 1])

    def test_warmup_covers_the_new_signatures_and_ops_are_core(self):
        path = os.path.join(self.version_dir, "assets.extra", "tf_serving_warmup_requests")
        names = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
                 .predict_log.request.model_spec.signature_name
                 for r in tf.data.TFRecordDataset(path)]
        self.assertEqual(names, ["serving_default", "serving_default", "generate_with_maps",
                                 "caption_words"])
        self.assertEqual(export_lib.unregistered_ops(self.version_dir), [])

    def test_python_api_from_export_writes_a_sheet(self):
        model = api.TextToImage.from_export(os.path.join(self.base, "t2i"))
        out = model.generate_with_maps(CAPTIONS, SEEDS)
        self.assertAllEqual(out["images"], self.out[export_lib.IMAGES])
        self.assertEqual(out["map_words"].tolist(),
                         [[w.decode() for w in row] for row in self.out[export_lib.MAP_WORDS]])
        path = model.save_map_sheet(CAPTIONS[1:], os.path.join(self.base, "sheet.png"))
        self.assertEqual(_decode_png(open(path, "rb").read()).shape[2], 3)


class SSAGANMapsExportTest(_MapsExportChecks, tf.test.TestCase):

    family, image_size, num_maps = "ssagan", 64, 5

    def test_masks_are_labelled_by_block_and_tied_to_no_word(self):
        labels = ["mask, block 0 (4x4)", "mask, block 1 (8x8)", "mask, block 2 (16x16)",
                  "mask, block 3 (32x32)", "mask, block 4 (64x64)"]
        self.assertAllEqual(self.out[export_lib.MAP_LABELS],
                            [[label.encode() for label in labels]] * len(CAPTIONS))
        self.assertAllEqual(self.out[export_lib.MAP_WORDS], [[b""] * 5] * len(CAPTIONS))

    def test_serving_default_graph_is_unchanged(self):
        before = os.path.join(self.base, "without_maps")
        _WithoutExplainability(self.module.generator, self.module.text_encoder,
                               self.module.tokenizer, Z_DIM, self.image_size).save(before)
        self.assertEqual(export_lib.signature_ops(self.version_dir, "serving_default"),
                         export_lib.signature_ops(before, "serving_default"))
        # ... while the maps signature runs more (its resizes, normalisation, PNGs).
        maps_ops = export_lib.signature_ops(self.version_dir, "generate_with_maps")
        default_ops = export_lib.signature_ops(self.version_dir, "serving_default")
        self.assertGreater(maps_ops["ResizeBilinear"], default_ops["ResizeBilinear"])


class SSAGANWordAttentionMapsExportTest(_MapsExportChecks, tf.test.TestCase):
    """SSA-GAN with word attention up to 32 px (--gen_word_attention_max_size), whose queries
    read the pixel coordinates (--gen_word_attention_coords, a constant grid with its own
    query kernel): its call takes words, its maps are still masks."""

    family, image_size, num_maps = "ssagan_words", 64, 5

    def test_images_depend_on_the_words(self):
        # A caption sets both the words and the sentence; here the sentence stays and only
        # the word features change.
        generator, z = self.module.generator, tf.random.normal([1, Z_DIM])
        sentence = tf.random.normal([1, TEXT_DIM])
        mask = tf.ones([1, MAX_WORDS], tf.bool)
        images = [interface.generate_images(generator, z, sentence,
                                            tf.random.normal([1, MAX_WORDS, TEXT_DIM]), mask)
                  for _ in range(2)]
        self.assertGreater(float(tf.reduce_max(tf.abs(images[0] - images[1]))), 1e-3)


class AttnGANMapsExportTest(_MapsExportChecks, tf.test.TestCase):

    family, image_size, num_maps = "attngan", 128, MAX_WORDS

    def test_maps_belong_to_the_caption_words(self):
        words = self._call(export_lib.CAPTION_WORDS)[export_lib.WORDS].numpy()
        self.assertAllEqual(self.out[export_lib.MAP_WORDS], words)  # one stage: map t = word t
        expected_labels = [[b"stage 2 (64x64): " + (w if w else b"(padding)") for w in row]
                           for row in words]
        self.assertAllEqual(self.out[export_lib.MAP_LABELS], expected_labels)
        peaks = self.out[export_lib.MAPS].max(axis=(2, 3))
        self.assertAllClose(peaks, (words != b"").astype(np.float32))  # normalised; padding 0


if __name__ == "__main__":
    tf.test.main()
