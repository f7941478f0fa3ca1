"""Config dataclasses, flags and every file in configs/ (the absl-import boundary is in
test_layering.py)."""

import glob
import json
import os
import subprocess
import sys

from absl import flags
from absl.testing import parameterized
import tensorflow as tf

from tf_t2i import config as config_lib
from tf_t2i import flags as t2i_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(glob.glob(os.path.join(ROOT, "configs", "*.cfg")))
COMMON = os.path.join(ROOT, "configs", "common.cfg")
# Lines that repeat their base on purpose: the 30-minute results were measured with
# these values, and the demo (shapes_ssagan.cfg) may change its own.
PINNED = {"shapes_ssagan_30min.cfg": {"gen_ngf", "disc_ndf", "gen_mask_channels",
                                      "loss_ma_gp_interval", "train_batch_size"}}


def parse_flagfile(path, *extra):
    """The config of a flagfile (a relative path is taken from the repository root)."""
    return parse_args(f"--flagfile={os.path.join(ROOT, path)}", *extra)


def parse_args(*args):
    """The config that `args` give, as a binary's flag parsing builds it."""
    t2i_flags.define_flags()
    reset_flags()
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS(t2i_flags.expand_flagfiles(["prog", *args]))
        return t2i_flags.config_from_flags(validate=False)
    finally:
        reset_flags()


def own_lines(path):
    """(the file's base flagfile or None, the other flags it sets), by its own lines."""
    base, own = None, []
    for line in open(path).read().splitlines():
        if not line.startswith("-"):
            continue
        name, _, value = line.lstrip("-").partition("=")
        if name == "flagfile":
            base = os.path.normpath(os.path.join(os.path.dirname(path), value))
        else:
            own.append((name, value))
    return base, own


def reset_flags():
    # Back to defaults but "parsed", so absl-based test helpers keep working.
    flags.FLAGS.unparse_flags()
    flags.FLAGS.mark_as_parsed()


class ConfigTest(parameterized.TestCase, tf.test.TestCase):

    def test_json_round_trip(self):
        cfg = config_lib.ExperimentConfig().replace(train={"steps": 7}, loss={"f2f_weight": 0.2})
        again = config_lib.ExperimentConfig.from_json(cfg.to_json())
        self.assertEqual(cfg, again)
        self.assertEqual(again.train.steps, 7)

    def test_save_and_load(self):
        d = self.create_tempdir().full_path
        cfg = config_lib.ExperimentConfig(name="x")
        config_lib.save_config(cfg, d)
        self.assertEqual(config_lib.load_config(d), cfg)

    def test_unknown_key_is_rejected(self):
        values = config_lib.ExperimentConfig().to_dict()
        values["train"]["stepz"] = 3
        with self.assertRaisesRegex(config_lib.ConfigError, "stepz"):
            config_lib.ExperimentConfig.from_dict(values)

    @parameterized.parameters(
        (dict(data={"image_size": 100}), "image_size"),
        (dict(train={"batch_size": 0}), "batch_size"),
        (dict(train={"max_seconds": -1.0}), "max_seconds"),
        (dict(loss={"f2r_weight": -1.0}), "f2r_weight"),
        (dict(loss={"mode_seeking_examples": -1}), "mode_seeking_examples"),
        (dict(text={"hidden_dim": 255}), "hidden_dim"),
        (dict(loss={"ma_gp_mode": "bogus"}), "ma_gp_mode"),
        (dict(loss={"ma_gp_interval": 0}), "ma_gp_interval must be > 0"),
        (dict(loss={"ma_gp_interval": 4}), "ma_gp_interval > 1 needs loss.ma_gp_mode=joint"),
        (dict(data={"shapes_hard_negatives": 1.5}), "shapes_hard_negatives"),
        (dict(data={"shapes_binding_negatives": 0.5}), "needs data.shapes_hard_negatives"),
        (dict(data={"shapes_hard_negatives": 1.0, "shapes_binding_negatives": -0.1}),
         "shapes_binding_negatives must be in"),
        (dict(loss={"damsm_augment_shift": 0.5}), "damsm_augment_shift"),
        (dict(loss={"damsm_augment_zoom": -0.1}), "damsm_augment_zoom"),
        (dict(generator={"word_attention_max_size": 2}), "word_attention_max_size"),
        (dict(generator={"word_attention_coords": True}),
         "word_attention_coords needs word_attention_max_size > 0"),
        (dict(generator={"mask_channels": 0}), "mask_channels must be > 0"),
        (dict(data={"dataset": "cub", "manual_dir": "x", "shapes_hard_negatives": 0.5}),
         "shapes_hard_negatives=0.5 applies to the shapes dataset only"),
        (dict(loss={"negative_images_weight": -0.5}), "negative_images_weight must be >= 0"),
        (dict(data={"dataset": "cub", "manual_dir": "x"}, loss={"negative_images_weight": 0.5}),
         "negative_images_weight > 0 needs --data_dataset=shapes"),
        (dict(data={"shapes_two_object_repeats": 0}), "shapes_two_object_repeats"),
        (dict(data={"dataset": "cub", "manual_dir": "x", "shapes_two_object_repeats": 2}),
         "shapes_two_object_repeats=2 applies to the shapes dataset only"),
        (dict(discriminator={"word_region_size": 8}),
         "word_region_size must be 4, or 8 with word_logits; got 8"),
        (dict(discriminator={"word_logits": True, "word_region_size": 2}),
         "word_region_size must be 4, or 8 with word_logits; got 2"),
    )
    def test_validate_names_the_field(self, change, field):
        cfg = config_lib.ExperimentConfig().replace(train={"task": "damsm"}).replace(**change)
        with self.assertRaisesRegex(config_lib.ConfigError, field):
            cfg.validate()

    def test_gan_needs_damsm_dir(self):
        cfg = config_lib.ExperimentConfig().replace(train={"task": "gan"})
        with self.assertRaisesRegex(config_lib.ConfigError, "damsm_dir"):
            cfg.validate()

    @parameterized.parameters(
        ("ssagan", {"loss": {"kl_weight": 0.5}}, "loss.kl_weight=0.5 applies to attngan"),
        ("ssagan", {"generator": {"mapping_layers": 4}}, "generator.mapping_layers=4 applies "
         "to style1_attngan, style2_attngan only"),
        ("attngan", {"loss": {"ma_gp_mode": "joint"}}, "loss.ma_gp_mode='joint' applies to "
         "ssagan only, but generator.arch='attngan'"),
        ("style2_attngan", {"generator": {"residual_blocks": 3}}, "residual_blocks"),
        ("attngan", {"discriminator": {"residual_gate_init": 1.0}}, "residual_gate_init"),
        ("style1_attngan", {"discriminator": {"word_logits": True}}, "word_logits"),
        ("attngan", {"generator": {"noise_in_affine": True}}, "noise_in_affine"),
        ("style1_attngan", {"generator": {"sentence_in_fc": True}}, "sentence_in_fc"),
        ("attngan", {"generator": {"word_attention_max_size": 32}},
         "word_attention_max_size"),
        ("attngan", {"generator": {"mask_channels": 16}}, "mask_channels"))
    def test_field_of_another_architecture_cannot_be_set(self, arch, change, message):
        cfg = config_lib.ExperimentConfig().replace(generator={"arch": arch}).replace(**change)
        with self.assertRaisesRegex(config_lib.ConfigError, message):
            cfg.validate()

    def test_fields_of_the_architecture_can_be_set(self):
        cfg = config_lib.ExperimentConfig().replace(
            generator={"arch": "style2_attngan", "mapping_layers": 4, "condition_dim": 50},
            loss={"kl_weight": 0.5, "r1_gamma": 10.0}, runtime={"damsm_dir": "runs/damsm"})
        cfg.validate()  # no error
        self.assertEqual(config_lib.architecture_options(cfg.generator, "style2_attngan"),
                         {"arch": "style2_attngan", "z_dim": 100, "ngf": 64,
                          "condition_dim": 50, "mapping_layers": 4, "mixing_prob": 0.9,
                          "truncation_psi": 1.0})
        self.assertEqual(set(config_lib.architecture_options(cfg.loss, "ssagan"))
                         & {"kl_weight", "r1_gamma", "r1_interval", "ma_gp_mode"},
                         {"ma_gp_mode"})

    def test_missing_config_json(self):
        with self.assertRaisesRegex(FileNotFoundError, "config.json"):
            config_lib.load_config(self.create_tempdir().full_path)


class FlagsTest(parameterized.TestCase, tf.test.TestCase):

    def test_there_are_config_files(self):
        names = {os.path.basename(p) for p in CONFIG_FILES}
        self.assertContainsSubset({"common.cfg", "tiny.cfg", "shapes_damsm.cfg"}, names)

    @parameterized.parameters(*CONFIG_FILES)
    def test_every_config_file_parses_and_validates(self, path):
        cfg = parse_flagfile(path)
        if cfg.train.task in ("gan", "captioner"):
            cfg = cfg.replace(runtime={"damsm_dir": "/some/damsm/run"})
        if cfg.loss.recap_weight > 0:
            cfg = cfg.replace(runtime={"captioner_dir": "/some/captioner/run"})
        if cfg.data.dataset in ("cub", "coco"):
            cfg = cfg.replace(data={"manual_dir": "/some/raw/data"})
        cfg.validate()

    @parameterized.parameters(*[p for p in CONFIG_FILES if p != COMMON])
    def test_every_config_file_chains_a_base_and_repeats_none_of_it(self, path):
        base, own = own_lines(path)
        self.assertIsNotNone(base, "every config starts from common.cfg or a baseline")
        flag_lines = [l for l in open(path).read().splitlines() if l.startswith("-")]
        self.assertTrue(flag_lines[0].startswith("--flagfile="), "the base comes first")
        self.assertLen([l for l in flag_lines if "flagfile" in l], 1)
        base_flags = dict(a[2:].split("=", 1)
                          for a in t2i_flags.expand_flagfiles(["p", f"--flagfile={base}"])[1:])
        pinned = PINNED.get(os.path.basename(path), set())
        repeated = [n for n, v in own if base_flags.get(n) == v and n not in pinned]
        self.assertEqual(repeated, [], f"already set by {os.path.basename(base)}")

    @parameterized.parameters(*[p for p in CONFIG_FILES if own_lines(p)[0] not in (None, COMMON)])
    def test_variant_is_its_base_plus_its_own_lines(self, path):
        base, own = own_lines(path)
        base_cfg = parse_flagfile(base)
        # The file's own lines alone, parsed on top of the base's config.
        t2i_flags.define_flags()
        reset_flags()
        flags.FLAGS.unparse_flags()
        try:
            flags.FLAGS(["prog", *(f"--{n}={v}" for n, v in own)])
            expected = t2i_flags.config_from_flags(base=base_cfg, validate=False)
        finally:
            reset_flags()
        self.assertEqual(parse_flagfile(path), expected)
        self.assertNotEqual(expected, base_cfg)

    def test_nested_flagfiles_resolve_from_any_directory(self):
        variant = os.path.join(ROOT, "configs", "shapes_ssagan_cl_f2f.cfg")
        from_root = parse_flagfile(variant)
        cwd = os.getcwd()
        os.chdir(self.create_tempdir().full_path)
        try:
            elsewhere = parse_args(f"--flagfile={variant}")
        finally:
            os.chdir(cwd)
        self.assertEqual(elsewhere, from_root)
        self.assertEqual(elsewhere.loss.f2f_weight, 0.2)  # its own line
        # From shapes_ssagan_30min.cfg, two files up the chain (not the default).
        base = parse_flagfile(os.path.join(ROOT, "configs", "shapes_ssagan_30min.cfg"))
        self.assertEqual(elsewhere.train.steps, base.train.steps)
        self.assertNotEqual(base.train.steps, config_lib.TrainConfig().steps)
        self.assertEqual(elsewhere.generator.residual_gate_init, 1.0)  # from shapes_ssagan.cfg
        self.assertEqual(elsewhere.text.embedding_dim, 300)  # from common.cfg

    def test_expand_flagfiles_keeps_order_and_comments_out(self):
        d = self.create_tempdir()
        d.create_file("sub/base.cfg", "# a comment\n// another\n\n--train_steps=3\n"
                      "--train_batch_size=5\n")
        variant = d.create_file("variant.cfg", "--flagfile=sub/base.cfg\n--train_steps=4\n")
        argv = t2i_flags.expand_flagfiles(
            ["prog", "--train_seed=1", "--flagfile", variant.full_path, "--train_steps=6"])
        self.assertEqual(argv, ["prog", "--train_seed=1", "--train_steps=3",
                                "--train_batch_size=5", "--train_steps=4", "--train_steps=6"])

    def test_missing_nested_flagfile_names_both_files(self):
        d = self.create_tempdir()
        variant = d.create_file("variant.cfg", "--flagfile=configs/common.cfg\n")
        missing = os.path.join(d.full_path, "configs", "common.cfg")
        with self.assertRaisesRegex(flags.CantOpenFlagFileError,
                                    f"{missing}.*named in {variant.full_path}"):
            t2i_flags.expand_flagfiles(["prog", f"--flagfile={variant.full_path}"])

    def test_flagfile_that_includes_itself_fails(self):
        d = self.create_tempdir()
        d.create_file("b.cfg", "--flagfile=a.cfg\n")
        a = d.create_file("a.cfg", "--flagfile=b.cfg\n")
        with self.assertRaisesRegex(flags.Error, "includes itself"):
            t2i_flags.expand_flagfiles(["prog", f"--flagfile={a.full_path}"])

    def test_flags_override_config_file(self):
        cfg = parse_flagfile("configs/tiny.cfg", "--train_steps=5", "--loss_f2f_weight=0.2")
        self.assertEqual(cfg.train.steps, 5)
        self.assertEqual(cfg.loss.f2f_weight, 0.2)
        self.assertEqual(cfg.train.batch_size, 4)  # from tiny.cfg
        self.assertEqual(cfg.text.embedding_dim, 16)

    def test_unknown_enum_value_fails_at_parse(self):
        t2i_flags.define_flags()
        with self.assertRaises(flags.IllegalFlagValueError):
            flags.FLAGS(["prog", "--data_dataset=imagenet"])
        reset_flags()


class BinaryFlagsTest(tf.test.TestCase):
    """The binaries' flag handling in a subprocess; each fails before any heavy import."""

    def _run(self, module, *args):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
        result = subprocess.run([sys.executable, "-m", module, *args],
                                cwd=self.create_tempdir().full_path, env=env,
                                capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertLen(result.stderr.splitlines(), 1, result.stderr)
        return result.stderr

    def test_missing_flagfile_is_one_line_naming_it(self):
        missing = os.path.join(ROOT, "configs", "no_such.cfg")
        error = self._run("tf_t2i.train", f"--flagfile={missing}")
        self.assertStartsWith(error, f"error: cannot read flagfile {missing}:")

    def test_train_refuses_a_pretraining_config_from_any_directory(self):
        # The temp working directory also checks that common.cfg is found beside it.
        error = self._run("tf_t2i.train",
                          f"--flagfile={os.path.join(ROOT, 'configs', 'shapes_damsm.cfg')}")
        self.assertIn("--train_task=damsm is not trained by this binary", error)
        self.assertIn("tf_t2i.pretrain", error)

    def test_pretrain_refuses_a_gan_config(self):
        error = self._run("tf_t2i.pretrain",
                          f"--flagfile={os.path.join(ROOT, 'configs', 'cub_ssagan.cfg')}")
        self.assertIn("--train_task=gan is not trained by this binary", error)
        self.assertIn("tf_t2i.train", error)
