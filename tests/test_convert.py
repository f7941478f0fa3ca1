"""tf_t2i.convert: reference .pth files -> Keras models and model directories.

Each kind is checked against a PyTorch module with the reference's parameter names
(tests/convert_torch_reference.py), random weights and random BatchNorm statistics: the
converted Keras model must give the same outputs (eval mode) within 1e-4 relative.
"""

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import warnings

from absl.testing import parameterized
import keras
import numpy as np
import pytest
import tensorflow as tf

torch = pytest.importorskip("torch")

from tests import convert_torch_reference as ref  # pylint: disable=g-import-not-at-top
from tf_t2i import config as config_lib  # pylint: disable=g-import-not-at-top
from tf_t2i import convert  # pylint: disable=g-import-not-at-top
from tf_t2i import images as images_lib  # pylint: disable=g-import-not-at-top
from tf_t2i.data import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
from tf_t2i.models import factory  # pylint: disable=g-import-not-at-top
from tf_t2i.models import torch_import  # pylint: disable=g-import-not-at-top
from tf_t2i.models import trained_run  # pylint: disable=g-import-not-at-top
from tf_t2i.models.ssagan_generator import SSAGANGenerator  # pylint: disable=g-import-not-at-top
from tf_t2i.training import convert_lib  # pylint: disable=g-import-not-at-top
from tf_t2i.models.text_encoder import DAMSMTextEncoder  # pylint: disable=g-import-not-at-top
from tf_t2i.serving import export_lib  # pylint: disable=g-import-not-at-top
from tf_t2i.training import run_dirs  # pylint: disable=g-import-not-at-top
from tf_t2i.training import train_lib  # pylint: disable=g-import-not-at-top

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-4  # relative to the output's largest magnitude
WORDS = ["a", "bird", "with", "red", "wings", "and", "small", "beak", "blue", "tail"]
# Pickle ids (0 = <end> = padding), right-padded; lengths 6, 3, 1 and the full 7.
CAPTIONS = np.array([[1, 2, 3, 4, 5, 6, 0],
                     [7, 2, 8, 0, 0, 0, 0],
                     [10, 0, 0, 0, 0, 0, 0],
                     [1, 9, 2, 3, 4, 10, 5]], np.int64)


def write_captions_pickle(path, words=WORDS):
    """AttnGAN's layout: [train captions, test captions, ixtoword, wordtoix], protocol 2."""
    ixtoword = {0: "<end>", **{i + 1: w for i, w in enumerate(words)}}
    wordtoix = {w: i for i, w in ixtoword.items()}
    with open(path, "wb") as f:
        pickle.dump([[[1, 2, 3]], [[2, 1]], ixtoword, wordtoix], f, protocol=2)
    return path


def torch_text_outputs(module, captions=CAPTIONS):
    """Words [B, T, D] and sentence [B, D] of the reference encoder, as numpy."""
    ids = torch.from_numpy(captions)
    lengths = (ids != 0).sum(1)
    with torch.no_grad():
        words, sentence = module(ids, lengths)
    return words.numpy().transpose(0, 2, 1), sentence.numpy()


def our_ids(captions=CAPTIONS):
    """Pickle ids -> tf_t2i ids: every word moves up by one (1 is our OOV id)."""
    return np.where(captions > 0, captions + 1, 0).astype(np.int32)


def torch_image_outputs(module, images):
    with torch.no_grad():
        regions, code = module(torch.from_numpy(images.transpose(0, 3, 1, 2)))
    return regions.numpy().transpose(0, 2, 3, 1), code.numpy()


def reference_netg(ngf, num_blocks, seed, mask_channels=100):
    """A random NetG with BatchNorm statistics measured on random inputs (see calibrate)."""
    module = ref.randomize(ref.NetG(ngf=ngf, nz=100, num_blocks=num_blocks,
                                    mask_channels=mask_channels), seed=seed)
    inputs = torch.Generator().manual_seed(seed)
    return ref.calibrate_batch_norm(module, torch.randn(8, 100, generator=inputs),
                                    torch.randn(8, 256, generator=inputs), seed=seed)


def torch_generator_outputs(module, z, sentence):
    with torch.no_grad():
        images, masks = module(torch.from_numpy(z), torch.from_numpy(sentence))
    return (images.numpy().transpose(0, 2, 3, 1),
            [m.numpy().transpose(0, 2, 3, 1) for m in masks])


class RelativeErrorMixin:

    def assertMatches(self, got, want, what):
        error = ref.relative_error(got, want)
        self.assertLess(error, TOLERANCE, f"{what}: relative error {error:.2e}")
        return error


class TextEncoderMappingTest(RelativeErrorMixin, tf.test.TestCase):

    def test_matches_pytorch_rnn_encoder(self):
        module = ref.randomize(ref.RNNEncoder(len(WORDS) + 1), seed=3)
        state = {k: v.numpy() for k, v in module.state_dict().items()}
        encoder = DAMSMTextEncoder(vocab_size=len(WORDS) + 2)
        encoder(tf.zeros([1, 7], tf.int32))
        count = torch_import.assign(torch_import.text_encoder_assignments(encoder), state,
                                    "text.pth")
        self.assertEqual(count, 9)  # embedding + 2 directions x (W_ih, W_hh, b_ih, b_hh)

        words, sentence = encoder(our_ids(), training=False)
        want_words, want_sentence = torch_text_outputs(module)
        self.assertMatches(words, want_words, "word features")
        self.assertMatches(sentence, want_sentence, "sentence embedding")
        # Padding stays exactly zero; our OOV row (id 1) is zero, the rest shifted.
        self.assertAllEqual(words[2, 1:], np.zeros_like(words[2, 1:]))
        table = encoder.embedding.embeddings.numpy()
        self.assertAllEqual(table[1], np.zeros(300))
        self.assertAllClose(table[2:], state["encoder.weight"][1:], rtol=0, atol=0)


class GeneratorMappingTest(RelativeErrorMixin, parameterized.TestCase, tf.test.TestCase):

    @parameterized.named_parameters(
        # The reference architecture itself (7 blocks, 256 px) at a small width, the
        # 64 px truncation our configs use, with nn.DataParallel's prefix, and narrower
        # mask predictors (--gen_mask_channels).
        ("reference_256px", 7, 4, ""),
        ("truncated_64px_data_parallel", 5, 8, "module."),
        ("narrow_mask_predictors", 5, 4, "", 16))
    def test_matches_pytorch_netg(self, num_blocks, ngf, prefix, mask_channels=100):
        module = reference_netg(ngf, num_blocks, seed=5, mask_channels=mask_channels)
        path = os.path.join(self.create_tempdir().full_path, "netG_550.pth")
        ref.save_state_dict(module, path, prefix=prefix)
        state = convert_lib.read_state_dict(path)
        sizes = torch_import.generator_hyperparameters(state, path)
        self.assertEqual(sizes, {"ngf": ngf, "z_dim": 100, "sentence_dim": 256,
                                 "mask_channels": mask_channels,
                                 "image_size": 4 * 2 ** (num_blocks - 1)})
        generator = SSAGANGenerator(ngf=ngf, z_dim=100, image_size=sizes["image_size"],
                                    mask_channels=mask_channels)
        generator.build()
        torch_import.assign(torch_import.generator_assignments(generator), state, path)

        rng = np.random.default_rng(0)
        z = rng.standard_normal([2, 100]).astype(np.float32)
        sentence = rng.standard_normal([2, 256]).astype(np.float32)
        images, masks = generator(z, sentence, training=False)
        want_images, want_masks = torch_generator_outputs(module, z, sentence)
        self.assertEqual(images.shape, want_images.shape)
        self.assertMatches(images, want_images, "images")
        self.assertLen(masks, num_blocks)
        for got, want in zip(masks, want_masks):
            self.assertMatches(got, want, f"mask {want.shape}")
        # The comparison is not vacuous: residuals and masks vary across pixels.
        self.assertGreater(float(np.std(want_images)), 0.05)


class MismatchMessagesTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.generator = SSAGANGenerator(ngf=4, image_size=64)
        cls.generator.build()
        module = ref.randomize(ref.NetG(ngf=4, num_blocks=5), seed=1)
        cls.state = {k: v.numpy() for k, v in module.state_dict().items()}

    def check(self, state):
        torch_import.check(torch_import.generator_assignments(self.generator), state,
                           "netG.pth")

    def test_matching_state_passes(self):
        self.check(self.state)

    def test_shape_mismatch_names_tensor_and_shapes(self):
        state = dict(self.state, **{"block1.c1.weight": np.zeros([32, 16, 3, 3], np.float32)})
        with self.assertRaisesRegex(torch_import.StateDictMismatchError,
                                    r"expected \[32, 32, 3, 3\] for block1\.c1\.weight, "
                                    r"got \[32, 16, 3, 3\]"):
            self.check(state)

    def test_missing_key_is_named(self):
        state = dict(self.state)
        del state["block2.affine2.fc_beta.linear2.bias"]
        with self.assertRaisesRegex(torch_import.StateDictMismatchError,
                                    r"missing block2\.affine2\.fc_beta\.linear2\.bias"):
            self.check(state)

    def test_unexpected_key_is_named(self):
        state = dict(self.state, **{"block4.conv_mask.0.weight": np.zeros([100, 32, 3, 3])})
        with self.assertRaisesRegex(torch_import.StateDictMismatchError,
                                    r"unexpected key block4\.conv_mask\.0\.weight"):
            self.check(state)

    def test_wrong_kind_says_what_the_file_looks_like(self):
        text_state = {k: v.numpy() for k, v in ref.RNNEncoder(5).state_dict().items()}
        with self.assertRaisesRegex(torch_import.StateDictMismatchError,
                                    r"missing fc\.weight.*text encoder.*damsm_text"):
            torch_import.generator_hyperparameters(text_state, "text_encoder200.pth")

    def test_no_kind_hint_when_the_kind_is_right(self):
        state = dict(self.state, **{"fc.weight": np.zeros([256, 100], np.float32)})
        with self.assertRaises(torch_import.StateDictMismatchError) as caught:
            self.check(state)
        self.assertIn("expected [512, 100] for fc.weight", str(caught.exception))
        self.assertNotIn("look like", str(caught.exception))

    def test_image_projection_shape_mismatch(self):
        # Checked on the projections alone: the message names emb_features.weight.
        layer = keras.layers.Conv2D(256, 1, use_bias=False)
        layer.build((None, 17, 17, 768))
        assignment = torch_import.conv(layer.kernel, "emb_features.weight")
        with self.assertRaisesRegex(torch_import.StateDictMismatchError,
                                    r"expected \[256, 768, 1, 1\] for emb_features\.weight, "
                                    r"got \[256, 512, 1, 1\]"):
            torch_import.check([assignment], {"emb_features.weight": np.zeros([256, 512, 1, 1])},
                               "image_encoder200.pth")

    def test_data_parallel_prefix_is_stripped_only_when_everywhere(self):
        self.assertEqual(list(torch_import.strip_data_parallel_prefix(
            {"module.fc.weight": 1, "module.fc.bias": 2})), ["fc.weight", "fc.bias"])
        self.assertEqual(list(torch_import.strip_data_parallel_prefix(
            {"module.fc.weight": 1, "fc.bias": 2})), ["module.fc.weight", "fc.bias"])

    def test_nothing_is_assigned_when_a_tensor_mismatches(self):
        before = self.generator.fc.kernel.numpy()
        state = dict(self.state)
        del state["conv_img.2.bias"]  # the last tensor checked
        with self.assertRaises(torch_import.StateDictMismatchError):
            torch_import.assign(torch_import.generator_assignments(self.generator), state,
                                "netG.pth")
        self.assertAllEqual(self.generator.fc.kernel.numpy(), before)


class CaptionsPickleTest(tf.test.TestCase):

    def test_vocabulary_shift(self):
        path = write_captions_pickle(os.path.join(self.get_temp_dir(), "captions.pickle"))
        vocabulary = convert_lib.read_captions_vocabulary(path)
        self.assertEqual(vocabulary, WORDS)
        tok = tokenizer_lib.CaptionTokenizer(vocabulary, max_length=4)
        # Pickle id k is our id k + 1; unknown words are our OOV id 1.
        self.assertAllEqual(tok.encode(["bird red zebra"]).numpy(), [[3, 5, 1, 0]])

    def test_refuses_code_in_pickle(self):
        path = os.path.join(self.get_temp_dir(), "evil.pickle")
        with open(path, "wb") as f:
            pickle.dump([[], [], {0: "<end>"}, os.system], f, protocol=2)
        with self.assertRaisesRegex(ValueError, "refused"):
            convert_lib.read_captions_vocabulary(path)

    def test_rejects_other_layouts(self):
        path = os.path.join(self.get_temp_dir(), "other.pickle")
        with open(path, "wb") as f:
            pickle.dump({"words": WORDS}, f)
        with self.assertRaisesRegex(convert_lib.ConversionError, "ixtoword"):
            convert_lib.read_captions_vocabulary(path)


class ConvertedDirectoriesTest(RelativeErrorMixin, tf.test.TestCase):
    """Whole conversions: files -> directories -> the code paths that read them."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.captions = write_captions_pickle(os.path.join(cls.root, "captions.pickle"))
        cls.text_module = ref.randomize(ref.RNNEncoder(len(WORDS) + 1), seed=11)
        cls.text_pth = ref.save_state_dict(cls.text_module,
                                           os.path.join(cls.root, "text_encoder200.pth"))
        cls.image_module = ref.randomize(ref.CNNEncoder(), seed=12)
        cls.image_pth = ref.save_state_dict(cls.image_module,
                                            os.path.join(cls.root, "image_encoder200.pth"))
        cls.netg_module = reference_netg(ngf=8, num_blocks=5, seed=13)
        cls.netg_pth = ref.save_state_dict(cls.netg_module, os.path.join(cls.root, "netG.pth"),
                                           prefix="module.")
        cls.images = np.random.default_rng(1).uniform(-1, 1, [1, 64, 64, 3]).astype(np.float32)
        cls.want_regions, cls.want_code = torch_image_outputs(cls.image_module, cls.images)
        cls.want_words, cls.want_sentence = torch_text_outputs(cls.text_module)
        cls.damsm_dir = os.path.join(cls.root, "damsm")
        cls.damsm_result = convert_lib.convert_damsm(
            cls.damsm_dir, dataset="cub", text_input=cls.text_pth, image_input=cls.image_pth,
            captions_pickle=cls.captions)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def out(self, name):
        return os.path.join(self.create_tempdir().full_path, name)

    def test_damsm_directory_layout(self):
        result = self.damsm_result
        self.assertEqual(result.kinds, ("damsm_image", "damsm_text"))
        self.assertEqual(result.usable_as, "--damsm_dir")
        cfg = config_lib.load_config(self.damsm_dir)
        self.assertEqual(cfg.image_encoder.backbone, "torchvision_inception_v3")
        self.assertEqual((cfg.text.embedding_dim, cfg.text.hidden_dim), (300, 256))
        self.assertEqual(cfg.data.dataset, "cub")
        self.assertEqual(tokenizer_lib.CaptionTokenizer.load(self.damsm_dir).vocabulary, WORDS)
        manifest = convert_lib.read_manifest(self.damsm_dir)
        self.assertTrue(manifest["complete"])
        self.assertEqual(manifest["kinds"]["damsm_text"]["source"], self.text_pth)
        siblings = os.listdir(self.root)
        self.assertEqual([n for n in siblings if n.startswith(".")], [])  # no temp dirs left

    def test_load_converted_matches_pytorch(self):
        text_encoder = convert.load_converted(self.damsm_dir, "damsm_text")
        words, sentence = text_encoder(our_ids(), training=False)
        self.assertMatches(words, self.want_words, "damsm_text words")
        self.assertMatches(sentence, self.want_sentence, "damsm_text sentence")
        image_encoder = convert.load_converted(self.damsm_dir, "damsm_image")
        regions, code = image_encoder(self.images, training=False)
        self.assertEqual(regions.shape, (1, 17, 17, 256))
        self.assertMatches(regions, self.want_regions, "damsm_image regions")
        self.assertMatches(code, self.want_code, "damsm_image code")
        with self.assertRaisesRegex(convert_lib.ConversionError, "pass kind="):
            convert.load_converted(self.damsm_dir)

    def test_training_accepts_the_damsm_directory(self):
        gan_cfg = config_lib.ExperimentConfig().replace(
            data={"dataset": "cub"}, runtime={"damsm_dir": self.damsm_dir})
        cfg = run_dirs.adopt_damsm_config(gan_cfg)
        self.assertEqual(cfg.image_encoder.backbone, "torchvision_inception_v3")
        text_encoder = factory.build_text_encoder(cfg, len(WORDS) + 2)
        text_encoder(tf.zeros([1, 18], tf.int32))
        with self.assertWarns(UserWarning):  # no ImageNet file: the checkpoint provides it
            image_encoder = factory.build_image_encoder(cfg)
        image_encoder(tf.zeros([1, 64, 64, 3]))
        train_lib.restore_encoders(text_encoder, image_encoder, self.damsm_dir)
        _, sentence = text_encoder(our_ids(), training=False)
        self.assertMatches(sentence, self.want_sentence, "restored sentence")
        _, code = image_encoder(self.images, training=False)
        self.assertMatches(code, self.want_code, "restored code")

    def test_encoders_one_at_a_time_into_one_directory(self):
        output = self.out("damsm_two_steps")
        first = convert_lib.convert_damsm(output, dataset="cub", text_input=self.text_pth,
                                          captions_pickle=self.captions)
        self.assertEqual((first.kinds, first.usable_as), (("damsm_text",), ""))
        probe = config_lib.ExperimentConfig().replace(
            data={"dataset": "cub"}, runtime={"damsm_dir": output})
        text_encoder = convert.load_converted(output)  # the only kind so far
        with self.assertRaisesRegex(run_dirs.DAMSMRunError,
                                    "holds only the converted damsm_text: convert the other"):
            run_dirs.adopt_damsm_config(probe)
        with self.assertWarns(UserWarning):
            image_encoder = factory.build_image_encoder(config_lib.load_config(output))
        image_encoder(tf.zeros([1, 64, 64, 3]))
        with self.assertRaises(run_dirs.DAMSMRunError):  # no image encoder yet
            train_lib.restore_encoders(text_encoder, image_encoder, output)

        second = convert_lib.convert_damsm(output, image_input=self.image_pth)
        self.assertEqual((second.kinds, second.usable_as),
                         (("damsm_image", "damsm_text"), "--damsm_dir"))
        train_lib.restore_encoders(text_encoder, image_encoder, output)
        _, code = image_encoder(self.images, training=False)
        self.assertMatches(code, self.want_code, "two-step code")
        _, sentence = convert.load_converted(output, "damsm_text")(our_ids())
        self.assertMatches(sentence, self.want_sentence, "two-step sentence")

    def test_refuses_non_empty_output_and_overwrites_on_request(self):
        output = self.out("busy")
        os.makedirs(output)
        with open(os.path.join(output, "notes.txt"), "w") as f:
            f.write("mine")
        with self.assertRaisesRegex(convert_lib.ConversionError, "not empty.*--overwrite"):
            convert_lib.convert_damsm(output, dataset="cub", text_input=self.text_pth,
                                      captions_pickle=self.captions)
        self.assertEqual(os.listdir(output), ["notes.txt"])
        convert_lib.convert_damsm(output, dataset="cub", text_input=self.text_pth,
                                  captions_pickle=self.captions, overwrite=True)
        self.assertNotIn("notes.txt", os.listdir(output))
        with self.assertRaisesRegex(convert_lib.ConversionError, "already holds"):
            convert_lib.convert_damsm(output, text_input=self.text_pth,
                                      captions_pickle=self.captions)

    def test_failed_conversion_leaves_output_untouched(self):
        output = self.out("kept")
        convert_lib.convert_damsm(output, dataset="cub", text_input=self.text_pth,
                                  captions_pickle=self.captions)
        before = sorted(os.listdir(output))
        short_pickle = write_captions_pickle(self.out("short.pickle"), WORDS[:4])
        with self.assertRaisesRegex(convert_lib.ConversionError, "11 token ids.*has 5"):
            convert_lib.convert_damsm(output, text_input=self.text_pth,
                                      captions_pickle=short_pickle, overwrite=True)
        with self.assertRaisesRegex(torch_import.StateDictMismatchError,
                                    "missing emb_features.weight.*text encoder"):
            convert_lib.convert_damsm(output, image_input=self.text_pth)
        self.assertEqual(sorted(os.listdir(output)), before)
        parent = os.path.dirname(output)
        self.assertEqual([n for n in os.listdir(parent) if n.startswith(".")], [])

    def test_text_encoder_needs_captions_pickle(self):
        with self.assertRaisesRegex(convert_lib.ConversionError, "captions_pickle"):
            convert_lib.convert_damsm(self.out("x"), dataset="cub", text_input=self.text_pth)

    @pytest.mark.slow
    def test_generator_directory_loads_for_export(self):
        output = self.out("ssagan")
        result = convert_lib.convert_ssagan_generator(self.netg_pth, output, self.damsm_dir,
                                                      ndf=8)
        self.assertEqual(result.usable_as, "--model_dir")
        rng = np.random.default_rng(2)
        z = rng.standard_normal([2, 100]).astype(np.float32)
        sentence = rng.standard_normal([2, 256]).astype(np.float32)
        want_images, _ = torch_generator_outputs(self.netg_module, z, sentence)

        generator = convert.load_converted(output)
        images, _ = generator(z, sentence, training=False)
        self.assertEqual(images.shape, (2, 64, 64, 3))
        self.assertMatches(images, want_images, "ssagan_generator images")

        # What `tf_t2i.export --model_dir` rebuilds: config, vocabulary, every variable.
        with warnings.catch_warnings():  # the Inception weights come from the checkpoint
            warnings.simplefilter("ignore", UserWarning)
            parts = trained_run.load_run(output)
        cfg, tok = parts.cfg, parts.tokenizer
        self.assertEqual((cfg.generator.ngf, cfg.generator.mask_channels, cfg.data.image_size),
                         (8, 100, 64))
        self.assertEqual(tok.vocabulary, WORDS)
        for model in (parts.generator, parts.ema_generator):
            images, _ = model(z, sentence, training=False)
            self.assertMatches(images, want_images, model.name)
        _, converted_sentence = parts.text_encoder(our_ids(), training=False)
        self.assertMatches(converted_sentence, self.want_sentence, "run text encoder")

    @pytest.mark.slow
    def test_generator_directory_keeps_the_files_mask_width(self):
        # A NetG whose mask predictors are 16 wide (--gen_mask_channels): the run's config
        # must say 16, or the directory would rebuild 100-wide predictors and fail to load.
        module = reference_netg(ngf=4, num_blocks=5, seed=14, mask_channels=16)
        path = ref.save_state_dict(module, self.out("netG16.pth"))
        output = self.out("ssagan16")
        convert_lib.convert_ssagan_generator(path, output, self.damsm_dir, ndf=8)
        cfg = config_lib.load_config(output)
        self.assertEqual((cfg.generator.ngf, cfg.generator.mask_channels), (4, 16))
        rng = np.random.default_rng(3)
        z = rng.standard_normal([2, 100]).astype(np.float32)
        sentence = rng.standard_normal([2, 256]).astype(np.float32)
        want_images, want_masks = torch_generator_outputs(module, z, sentence)
        images, masks = convert.load_converted(output)(z, sentence, training=False)
        self.assertMatches(images, want_images, "16-wide ssagan_generator images")
        self.assertMatches(masks[-1], want_masks[-1], "16-wide last mask")

    @pytest.mark.slow
    def test_exported_generator_reproduces_pytorch(self):
        # PyTorch text encoder + NetG -> convert -> tf_t2i.export -> SavedModel images.
        output = self.out("ssagan_export")
        convert_lib.convert_ssagan_generator(self.netg_pth, output, self.damsm_dir, ndf=8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result = export_lib.export_run(output, self.out("export"), warmup_batch_sizes=[1])
        served = tf.saved_model.load(result.path).signatures["serving_default"]
        captions = ["a bird with red wings and a small beak", "blue tail"]
        seeds = tf.constant([3, 4], tf.int64)
        images = served(captions=tf.constant(captions), seeds=seeds)["images"].numpy()

        ids = tokenizer_lib.CaptionTokenizer.load(output).encode(captions).numpy()
        _, sentence = torch_text_outputs(self.text_module, np.where(ids > 1, ids - 1, 0))
        z = export_lib.noise_from_seeds(seeds, 100).numpy()
        want, _ = torch_generator_outputs(self.netg_module, z, sentence)
        want = images_lib.to_uint8(want).numpy().astype(int)
        # uint8 rounding may flip a value sitting on a .5 boundary.
        self.assertLessEqual(np.abs(images.astype(int) - want).max(), 1)
        self.assertGreater(np.std(want), 10)

    def test_generator_needs_a_matching_damsm_directory(self):
        with self.assertRaises(run_dirs.DAMSMRunError):
            convert_lib.convert_ssagan_generator(self.netg_pth, self.out("g"), self.out("none"))
        with self.assertRaisesRegex(torch_import.StateDictMismatchError, "missing fc.weight"):
            convert_lib.convert_ssagan_generator(self.image_pth, self.out("g"), self.damsm_dir)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tf_t2i.convert", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


class CommandLineTest(tf.test.TestCase):

    def test_binary_kinds_match_library(self):
        self.assertEqual(convert.KINDS, convert_lib.KINDS)

    def test_flag_errors_are_one_line(self):
        result = run_cli("--kind=damsm_text", "--input=x.pth", "--output=/tmp/unused")
        self.assertEqual(result.returncode, 2)
        self.assertIn("error: --kind=damsm_text needs --captions_pickle", result.stderr)
        result = run_cli("--kind=ssagan_generator", "--input=x.pth", "--output=/tmp/unused")
        self.assertEqual(result.returncode, 2)
        self.assertIn("needs --damsm_dir", result.stderr)

    @pytest.mark.slow
    def test_end_to_end(self):
        root = self.create_tempdir().full_path
        captions = write_captions_pickle(os.path.join(root, "captions.pickle"))
        text_pth = ref.save_state_dict(ref.randomize(ref.RNNEncoder(len(WORDS) + 1)),
                                       os.path.join(root, "text.pth"))
        output = os.path.join(root, "damsm")
        result = run_cli("--kind=damsm_text", f"--input={text_pth}", "--dataset=cub",
                         f"--captions_pickle={captions}", f"--output={output}")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("Not yet a --damsm_dir: add the other encoder with --kind=damsm_image",
                      result.stdout)
        self.assertEqual(convert_lib.read_manifest(output)["kinds"].keys(), {"damsm_text"})
        again = run_cli("--kind=damsm_text", f"--input={text_pth}", "--dataset=cub",
                        f"--captions_pickle={captions}", f"--output={output}")
        self.assertEqual(again.returncode, 2)
        self.assertIn("already holds ['damsm_text']", again.stderr)
        wrong = run_cli("--kind=damsm_image", f"--input={text_pth}", f"--output={output}")
        self.assertEqual(wrong.returncode, 2)
        self.assertIn("missing emb_features.weight", wrong.stderr)


if __name__ == "__main__":
    tf.test.main()
