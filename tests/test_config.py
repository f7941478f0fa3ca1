"""Config dataclasses, flags and every file in configs/ (the absl-import boundary is in
test_layering.py)."""

import glob
import json
import os

from absl import flags
from absl.testing import parameterized
import tensorflow as tf

from tf_t2i import config as config_lib
from tf_t2i import flags as t2i_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(glob.glob(os.path.join(ROOT, "configs", "*.cfg")))


def parse_flagfile(path, *extra):
    t2i_flags.define_flags()
    reset_flags()
    flags.FLAGS.unparse_flags()
    cwd = os.getcwd()
    os.chdir(ROOT)  # nested --flagfile paths are relative to the repository root
    try:
        flags.FLAGS(["prog", f"--flagfile={path}", *extra])
    finally:
        os.chdir(cwd)
    try:
        return t2i_flags.config_from_flags(validate=False)
    finally:
        reset_flags()


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
        (dict(text={"hidden_dim": 255}), "hidden_dim"),
        (dict(loss={"ma_gp_mode": "bogus"}), "ma_gp_mode"),
    )
    def test_validate_names_the_field(self, change, field):
        cfg = config_lib.ExperimentConfig().replace(train={"task": "damsm"}).replace(**change)
        with self.assertRaisesRegex(config_lib.ConfigError, field):
            cfg.validate()

    def test_gan_needs_damsm_dir(self):
        cfg = config_lib.ExperimentConfig().replace(train={"task": "gan"})
        with self.assertRaisesRegex(config_lib.ConfigError, "damsm_dir"):
            cfg.validate()

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
