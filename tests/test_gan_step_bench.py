"""benchmarks/gan_step.py: its configs resolve --jit_compile=auto as training does."""

import argparse
import os
import sys

import tensorflow as tf

from tf_t2i import ablate
from tf_t2i.training import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import gan_step as bench  # pylint: disable=g-import-not-at-top,wrong-import-position


def _args(policy):
    return argparse.Namespace(size=64, batch=24, ngf=4, ndf=8, steps=1,
                              mixed_precision=policy)


class GanStepBenchConfigTest(tf.test.TestCase):

    def test_auto_xla_follows_the_benchmarked_policy(self):
        # The benchmark used to leave the config's policy at float32 while it ran the step
        # in bfloat16, so `auto` compiled the bfloat16 step with XLA, which training never
        # does: 1.18 s a step instead of the 0.57 s of the graph training runs.
        if tf.config.list_physical_devices("GPU"):
            self.skipTest("auto resolves by the GPU's compute capability there")
        for policy, xla in (("none", True), ("mixed_bfloat16", False)):
            cfg = bench.make_cfg(_args(policy), "joint").replace(runtime={"jit_compile": "auto"})
            self.assertEqual(cfg.runtime.mixed_precision, policy)
            self.assertIs(runtime.use_xla(cfg), xla, policy)

    def test_thirty_minute_step_has_the_configs_settings(self):
        # benchmarks/batch_norm.py and tools/profile_gan_step.py time this step as the
        # config's: it must follow the config file.
        os.chdir(ROOT)
        flags = ablate.row_settings("configs/shapes_ssagan_30min.cfg")
        cfg = bench.thirty_minute_cfg(_args("mixed_bfloat16"))
        for section, name in (("generator", "noise_in_affine"), ("generator", "sentence_in_fc"),
                              ("generator", "residual_gate_init"),
                              ("generator", "word_attention_max_size"),
                              ("loss", "damsm_weight"), ("loss", "ma_gp_mode"),
                              ("loss", "ma_gp_interval")):
            flag = flags[f"{'gen' if section == 'generator' else 'loss'}_{name}"]
            value = getattr(getattr(cfg, section), name)
            self.assertEqual(str(value).lower(), flag.lower(), name) if isinstance(
                value, (bool, str)) else self.assertEqual(float(value), float(flag), name)
        # The tools' default widths are the config's.
        self.assertEqual(bench.THIRTY_MINUTE_WIDTHS,
                         {"ngf": int(flags["gen_ngf"]), "ndf": int(flags["disc_ndf"]),
                          "mask_channels": int(flags["gen_mask_channels"])})
        self.assertEqual(bench.THIRTY_MINUTE_MA_GP_INTERVAL, int(flags["loss_ma_gp_interval"]))
        parser = argparse.ArgumentParser()
        bench.add_thirty_minute_flags(parser)
        cfg = bench.thirty_minute_cfg(parser.parse_args([], argparse.Namespace(
            size=64, batch=24, steps=1, mixed_precision="mixed_bfloat16")))
        self.assertEqual((cfg.generator.ngf, cfg.discriminator.ndf, cfg.generator.mask_channels,
                          cfg.loss.ma_gp_interval), (4, 8, 32, 4))
        # The earlier rounds' step: MA-GP every step.
        cfg = bench.thirty_minute_cfg(parser.parse_args(["--ma_gp_interval=1"], argparse.Namespace(
            size=64, batch=24, steps=1, mixed_precision="mixed_bfloat16")))
        self.assertEqual(cfg.loss.ma_gp_interval, 1)


if __name__ == "__main__":
    tf.test.main()
