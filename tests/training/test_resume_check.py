"""resume.check_can_continue: which settings an existing run may be continued with."""

import os

import tensorflow as tf

from tests.training import helpers
from tf_t2i import config as config_lib
from tf_t2i.training import resume


class CheckCanContinueTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.cfg = helpers.config_from_flagfile().replace(
            train={"task": "gan", "steps": 2}, runtime={"damsm_dir": "/runs/damsm"})
        self.run_dir = self.create_tempdir().full_path
        config_lib.save_config(self.cfg, self.run_dir)

    def test_new_run_and_same_settings_continue_silently(self):
        self.assertEqual(resume.check_can_continue(self.create_tempdir().full_path, self.cfg),
                         [])
        self.assertEqual(resume.check_can_continue(self.run_dir, self.cfg), [])

    def test_bookkeeping_rates_and_weights_may_change_and_are_listed(self):
        changed = self.cfg.replace(train={"steps": 6, "g_learning_rate": 5e-5},
                                   loss={"damsm_weight": 3.0},
                                   runtime={"damsm_dir": "/elsewhere/damsm"},
                                   data={"data_dir": "/data"}, name="renamed")
        self.assertEqual(resume.check_can_continue(self.run_dir, changed), [
            f"--data_data_dir: {self.cfg.data.data_dir} -> /data",
            f"--loss_damsm_weight: {self.cfg.loss.damsm_weight} -> 3.0",
            f"--experiment_name: {self.cfg.name} -> renamed",
            "--damsm_dir: /runs/damsm -> /elsewhere/damsm",
            f"--train_g_learning_rate: {self.cfg.train.g_learning_rate} -> 5e-05",
            "--train_steps: 2 -> 6",
        ])

    def test_architecture_seed_batch_and_data_are_refused_in_one_line(self):
        cases = [
            (self.cfg.replace(generator={"arch": "attngan"}),
             "was trained with --gen_arch=ssagan; this command asks for --gen_arch=attngan."),
            (self.cfg.replace(train={"seed": 7}),
             f"--train_seed={self.cfg.train.seed}; this command asks for --train_seed=7."),
            (self.cfg.replace(train={"batch_size": 3}), "--train_batch_size=3"),
            (self.cfg.replace(data={"image_size": 128}), "--data_image_size=128"),
            (self.cfg.replace(loss={"contrastive_projection_dim": 16}),
             "--loss_contrastive_projection_dim=16"),
            (self.cfg.replace(train={"task": "damsm"}), "--train_task=damsm"),
        ]
        for cfg, expected in cases:
            with self.assertRaises(resume.RunMismatchError) as raised:
                resume.check_can_continue(self.run_dir, cfg)
            message = str(raised.exception)
            self.assertIn(expected, message)
            self.assertStartsWith(message, f"{self.run_dir} was trained with --")
            self.assertNotIn("\n", message)

    def test_precision_may_change_except_to_float16(self):
        # A float16 run checkpoints its loss scales; a run trained without has none.
        to_float16 = self.cfg.replace(runtime={"mixed_precision": "mixed_float16"})
        with self.assertRaises(resume.RunMismatchError) as raised:
            resume.check_can_continue(self.run_dir, to_float16)
        self.assertEqual(
            str(raised.exception),
            f"{self.run_dir} was trained with --mixed_precision=none; this command asks for "
            "--mixed_precision=mixed_float16 (its checkpoints hold no float16 loss scale). "
            "Nothing was changed: use a new --model_dir, or the run's own settings.")
        to_bfloat16 = self.cfg.replace(runtime={"mixed_precision": "mixed_bfloat16"})
        self.assertEqual(resume.check_can_continue(self.run_dir, to_bfloat16),
                         ["--mixed_precision: none -> mixed_bfloat16"])
        float16_run = self.create_tempdir().full_path
        config_lib.save_config(to_float16, float16_run)
        self.assertEqual(resume.check_can_continue(float16_run, self.cfg),
                         ["--mixed_precision: mixed_float16 -> none"])

    def test_several_differences_are_counted(self):
        cfg = self.cfg.replace(generator={"arch": "attngan", "ngf": 5}, discriminator={"ndf": 3},
                               train={"steps": 9})
        with self.assertRaisesRegex(resume.RunMismatchError,
                                    r"--disc_ndf=3 \(and 2 more: --gen_arch, --gen_ngf\)"):
            resume.check_can_continue(self.run_dir, cfg)

    def test_unreadable_config_is_one_error(self):
        with open(os.path.join(self.run_dir, config_lib.CONFIG_FILENAME), "w") as f:
            f.write("{not json")
        with self.assertRaisesRegex(resume.RunMismatchError, "config.json cannot be read"):
            resume.check_can_continue(self.run_dir, self.cfg)
