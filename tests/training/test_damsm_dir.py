"""--damsm_dir must be a finished DAMSM pretraining run (run_dirs.adopt_damsm_config)."""

import os
import shutil

import tensorflow as tf

from tests.training import helpers
from tf_t2i import config as config_lib
from tf_t2i.training import run_dirs


class DAMSMDirTest(tf.test.TestCase):

    def _copy_with(self, **sections):
        """A copy of the tiny DAMSM run whose config.json has the given sections changed."""
        target = os.path.join(self.create_tempdir().full_path, "damsm")
        shutil.copytree(helpers.damsm_run(), target)
        cfg = config_lib.load_config(target)
        config_lib.save_config(cfg.replace(**sections), target)
        return target

    def _adopt(self, damsm_dir):
        return run_dirs.adopt_damsm_config(helpers.tiny_config(
            train={"task": "gan"}, runtime={"damsm_dir": damsm_dir}))

    def test_finished_run_is_adopted(self):
        cfg = self._adopt(helpers.damsm_run())
        self.assertEqual(cfg.text, config_lib.load_config(helpers.damsm_run()).text)

    def test_run_stopped_part_way_is_refused(self):
        steps = helpers.DAMSM_STEPS
        damsm_dir = self._copy_with(train={"steps": steps + 5})
        with self.assertRaisesRegex(run_dirs.DAMSMRunError,
                                    f"stopped at step {steps} of {steps + 5}: finish the "
                                    "pretraining first"):
            self._adopt(damsm_dir)

    def test_a_gan_run_is_refused(self):
        damsm_dir = self._copy_with(train={"task": "gan"}, runtime={"damsm_dir": "/elsewhere"})
        with self.assertRaisesRegex(run_dirs.DAMSMRunError,
                                    "is a gan run, not a DAMSM pretraining run"):
            self._adopt(damsm_dir)
