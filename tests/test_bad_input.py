"""Bad input to every binary: exit status 2, one line on stderr naming the problem, no
traceback, and nothing written or changed in any existing directory.

Every case runs as a user would run it (`python -m tf_t2i.<binary> ...`), three at a
time; the run, export and DAMSM directories the cases point at are hashed before and
after. The cases a binary must refuse before TensorFlow starts (all but
`NEEDS_TENSORFLOW`) run with TensorFlow blocked. The server's bad gRPC and REST requests
are in tests/serving/test_server.py (test_bad_request, test_rest) and the Predict fuzz
test.
"""

import concurrent.futures
import os
import shutil
import subprocess
import sys

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tests.serving import helpers as serving_helpers
from tests.training import helpers as training_helpers

ROOT = training_helpers.ROOT

# (name, binary, arguments, what the one line must say). Placeholders in arguments:
# {run} a trained tiny GAN run, {export} its export base, {damsm} the DAMSM run,
# {corrupt} a run whose every checkpoint is truncated, {empty} an empty directory,
# {tmp} a scratch directory, {data} the tiny dataset's TFDS directory, {text_npz} /
# {small_npz} bad FID statistics files.
TINY = ("--flagfile=configs/tiny.cfg", "--data_data_dir={data}")
CASES = [
    # tf_t2i.train
    ("train_missing_flagfile", "train", ("--flagfile=configs/nope.cfg",),
     "cannot read flagfile"),
    ("train_unknown_gen_arch", "train", (*TINY, "--gen_arch=foo", "--model_dir={tmp}/r"),
     "--gen_arch=foo"),
    ("train_unknown_flag", "train", (*TINY, "--gen_archh=ssagan", "--model_dir={tmp}/r"),
     "gen_archh"),
    ("train_model_dir_parent_missing", "train",
     (*TINY, "--damsm_dir={damsm}", "--model_dir={tmp}/no/such/r"),
     "parent of --model_dir does not exist"),
    ("train_damsm_dir_missing", "train", (*TINY, "--damsm_dir={tmp}/nope", "--model_dir={tmp}/r"),
     "is not a directory"),
    ("train_damsm_dir_is_a_gan_run", "train",
     (*TINY, "--damsm_dir={run}", "--model_dir={tmp}/r"), "is a gan run, not a DAMSM"),
    ("train_other_architecture_on_a_run", "train",
     (*TINY, "--damsm_dir={damsm}", "--model_dir={run}", "--gen_arch=attngan"),
     "was trained with --gen_arch=ssagan; this command asks for --gen_arch=attngan"),
    ("train_other_seed_on_a_run", "train",
     (*TINY, "--damsm_dir={damsm}", "--model_dir={run}", "--train_seed=12345"),
     "this command asks for --train_seed=12345"),
    ("train_batch_not_divisible", "train",
     (*TINY, "--damsm_dir={damsm}", "--model_dir={tmp}/r", "--num_cpu_replicas=3"),
     "does not divide among the 3 replicas"),
    ("train_recap_without_captioner", "train",
     (*TINY, "--damsm_dir={damsm}", "--model_dir={tmp}/r", "--loss_recap_weight=1"),
     "needs --captioner_dir"),
    ("train_dry_run_captioner_missing", "train",
     (*TINY, "--damsm_dir={damsm}", "--loss_recap_weight=1", "--captioner_dir={empty}",
      "--dry_run"), "has no checkpoint"),
    ("train_damsm_dir_without_config", "train",
     (*TINY, "--damsm_dir={empty}", "--model_dir={tmp}/r"), "config.json"),
    ("train_recap_captioner_dir_empty", "train",
     (*TINY, "--damsm_dir={damsm}", "--model_dir={tmp}/r", "--loss_recap_weight=1",
      "--captioner_dir={empty}"), "has no checkpoint"),
    ("train_recap_captioner_dir_is_a_damsm_run", "train",
     (*TINY, "--damsm_dir={damsm}", "--model_dir={tmp}/r", "--loss_recap_weight=1",
      "--captioner_dir={damsm}"), "is a damsm run, not a captioner run"),
    ("train_negative_steps", "train",
     (*TINY, "--damsm_dir={damsm}", "--model_dir={tmp}/r", "--train_steps=-3"),
     "TrainConfig.steps must be > 0"),
    # tf_t2i.pretrain
    ("pretrain_unknown_task", "pretrain", (*TINY, "--train_task=foo", "--model_dir={tmp}/r"),
     "--train_task=foo"),
    ("pretrain_model_dir_parent_missing", "pretrain",
     (*TINY, "--model_dir={tmp}/no/such/r"), "parent of --model_dir does not exist"),
    ("pretrain_captioner_without_damsm", "pretrain",
     (*TINY, "--train_task=captioner", "--model_dir={tmp}/r"), "damsm_dir"),
    ("pretrain_other_image_size_on_a_run", "pretrain",
     (*TINY, "--model_dir={damsm}", "--data_image_size=128"),
     "this command asks for --data_image_size=128"),
    # tf_t2i.sample
    ("sample_empty_caption", "sample", ("--model_dir={run}", "--caption= ,. ",
                                        "--output={tmp}/g.png"), "Empty caption"),
    ("sample_zero_samples", "sample", ("--model_dir={run}", "--caption=a red circle",
                                       "--num_samples=0", "--output={tmp}/g.png"),
     "--num_samples must be >= 1"),
    ("sample_huge_grid", "sample", ("--model_dir={run}", "--caption=a red circle",
                                    "--num_samples=100000", "--output={tmp}/g.png"),
     "more than a grid holds"),
    ("sample_missing_model_dir", "sample", ("--model_dir={tmp}/nope", "--caption=a"),
     "does not exist"),
    ("sample_not_a_run", "sample", ("--model_dir={empty}", "--caption=a",
                                    "--output={tmp}/g.png"), "config.json"),
    ("sample_corrupt_checkpoints", "sample", ("--model_dir={corrupt}", "--caption=a",
                                              "--output={tmp}/g.png"),
     "No checkpoint in"),
    ("sample_bad_truncation", "sample", ("--model_dir={run}", "--caption=a",
                                         "--truncation_psi=2", "--output={tmp}/g.png"),
     "--truncation_psi must be in [0, 1]"),
    ("sample_huge_map_sheet", "sample", ("--model_dir={run}", "--caption=a red circle",
                                         "--with_maps", "--num_samples=65",
                                         "--output={tmp}/m.png"),
     "65 rows is more than a map sheet holds (at most 64)"),
    # tf_t2i.export
    ("export_missing_model_dir", "export", ("--model_dir={tmp}/nope",
                                            "--export_base={tmp}/e"), "does not exist"),
    ("export_not_a_run", "export", ("--model_dir={empty}", "--export_base={tmp}/e"),
     "config.json"),
    ("export_corrupt_checkpoints", "export", ("--model_dir={corrupt}",
                                              "--export_base={tmp}/e"), "No checkpoint in"),
    ("export_existing_version", "export", ("--model_dir={run}", "--export_base={export}",
                                           "--version=1"), "Version 1 already exists"),
    # tf_t2i.evaluate
    ("evaluate_unknown_metric", "evaluate", ("--model_dir={run}", "--metrics=foo"),
     "Unknown metric"),
    ("evaluate_too_few_images", "evaluate", ("--model_dir={run}", "--num_images=5"),
     "--num_images must be from 10"),
    ("evaluate_too_many_images", "evaluate", ("--model_dir={run}", "--num_images=10000000"),
     "--num_images must be from 10"),
    ("evaluate_zero_batch", "evaluate", ("--model_dir={run}", "--batch_size=0"),
     "--batch_size must be from 1"),
    ("evaluate_missing_real_stats", "evaluate", ("--model_dir={run}",
                                                 "--real_stats={tmp}/nope.npz"),
     "does not exist"),
    ("evaluate_real_stats_not_npz", "evaluate", ("--model_dir={run}",
                                                 "--real_stats={text_npz}"),
     "is not a .npz file"),
    ("evaluate_real_stats_wrong_size", "evaluate", ("--model_dir={run}",
                                                    "--real_stats={small_npz}"),
     "holds 5-d statistics"),
    ("evaluate_corrupt_checkpoints", "evaluate", ("--model_dir={corrupt}",
                                                  "--num_images=10"), "No checkpoint in"),
    # tf_t2i.serve
    ("serve_missing_model_base", "serve", ("--model_base={tmp}/nope",), "is not a directory"),
    ("serve_negative_port", "serve", ("--model_base={export}", "--port=-1"), "--port=-1"),
    ("serve_missing_config_file", "serve", ("--model_config_file={tmp}/nope.config",),
     "nope.config"),
    ("serve_bad_label", "serve", ("--model_base={export}", "--version_labels=stable"),
     "entries look like stable=3"),
    ("serve_unknown_policy", "serve", ("--model_base={export}", "--model_version_policy=some"),
     "--model_version_policy=some"),
    ("serve_page_without_rest", "serve", ("--model_base={export}", "--ui_port=0"),
     "--ui_port needs --rest_port"),
    # tf_t2i.client
    ("client_no_caption", "client", ("--output={tmp}/c.png",), "Give at least one --caption"),
    ("client_empty_caption", "client", ("--caption=", "--output={tmp}/c.png"), "Empty caption"),
    ("client_seed_out_of_range", "client",
     ("--caption=a", "--seed=99999999999999999999", "--output={tmp}/c.png"),
     "outside the seeds' int64 range"),
    ("client_version_and_label", "client",
     ("--caption=a", "--model_version=1", "--version_label=stable", "--output={tmp}/c.png"),
     "not both"),
    ("client_output_dir_missing", "client", ("--caption=a", "--output={tmp}/no/c.png"),
     "directory of --output does not exist"),
    # tf_t2i.convert
    ("convert_unknown_kind", "convert", ("--kind=foo", "--output={tmp}/c"), "--kind=foo"),
    ("convert_missing_input", "convert", ("--kind=damsm_image", "--input={tmp}/nope.pth",
                                          "--dataset=cub", "--output={tmp}/c"), "nope.pth"),
    ("convert_input_not_a_torch_file", "convert",
     ("--kind=ssagan_generator", "--input={text_npz}", "--damsm_dir={empty}",
      "--output={tmp}/c"), "not a readable torch.save file"),
]


# The cases a binary can only refuse once TensorFlow reads a checkpoint, a torch file or the
# devices. Every other case is refused from the flags and the files they name before
# TensorFlow starts, and runs with TensorFlow and Keras blocked: importing either fails it.
NEEDS_TENSORFLOW = {
    "train_batch_not_divisible", "sample_corrupt_checkpoints",
    "export_corrupt_checkpoints", "evaluate_corrupt_checkpoints",
    "convert_input_not_a_torch_file",
}
WITHOUT_TENSORFLOW = {name for name, _, _, _ in CASES} - NEEDS_TENSORFLOW
# `python -m <module> args` in a process where TensorFlow and Keras cannot be imported.
_BLOCKED_MAIN = ("import runpy, sys\n"
                 "sys.modules['tensorflow'] = sys.modules['keras'] = None\n"
                 "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)")


def _run(module, args, without_tensorflow=False):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    start = ["-c", _BLOCKED_MAIN] if without_tensorflow else ["-m"]
    return subprocess.run([sys.executable, *start, f"tf_t2i.{module}", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


class BadInputTest(parameterized.TestCase, tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        base = os.path.join(training_helpers.scratch_dir(), "bad_input")
        places = {"tmp": os.path.join(base, "tmp"), "empty": os.path.join(base, "empty"),
                  "run": os.path.join(base, "run"), "corrupt": os.path.join(base, "corrupt"),
                  "export": os.path.join(base, "export"), "damsm": training_helpers.damsm_run(),
                  "data": training_helpers.data_dir(),
                  "text_npz": os.path.join(base, "stats.npz"),
                  "small_npz": os.path.join(base, "small.npz")}
        for name in ("tmp", "empty"):
            os.makedirs(places[name])
        shutil.copytree(serving_helpers.trained_run(), places["run"])
        shutil.copytree(serving_helpers.trained_run(), places["corrupt"])
        shutil.copytree(serving_helpers.exported()["base"], places["export"])
        for name in os.listdir(os.path.join(places["corrupt"], "checkpoints")):
            if ".data-" in name:
                os.truncate(os.path.join(places["corrupt"], "checkpoints", name), 10)
        with open(places["text_npz"], "w") as f:
            f.write("mu sigma")
        np.savez(places["small_npz"], mu=np.zeros(5), sigma=np.eye(5))
        cls.places = places
        watched = ("run", "corrupt", "export", "damsm", "empty", "tmp")
        cls.before = {name: training_helpers.tree_digests(places[name]) for name in watched}
        jobs = {name: (module, [a.format(**places) for a in args], name in WITHOUT_TENSORFLOW)
                for name, module, args, _ in CASES}
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            futures = {name: pool.submit(_run, *job) for name, job in jobs.items()}
            cls.results = {name: f.result() for name, f in futures.items()}
        cls.after = {name: training_helpers.tree_digests(places[name]) for name in watched}

    def test_there_are_at_least_40_cases_over_eight_binaries(self):
        self.assertGreaterEqual(len(CASES), 40)
        self.assertLen({module for _, module, _, _ in CASES}, 8)
        self.assertLen({name for name, _, _, _ in CASES}, len(CASES))
        self.assertContainsSubset(NEEDS_TENSORFLOW, {name for name, _, _, _ in CASES})

    def test_a_case_that_needs_tensorflow_fails_where_it_is_blocked(self):
        # What makes WITHOUT_TENSORFLOW a check: the block holds through `python -m`.
        result = _run("sample", ["--model_dir=" + self.places["corrupt"], "--caption=a",
                                 "--output=" + os.path.join(self.places["tmp"], "g.png")],
                      without_tensorflow=True)
        self.assertNotEqual(result.returncode, 0)
        self.assertRegex(result.stderr, r"(?i)import of (tensorflow|keras) halted")

    @parameterized.named_parameters((name, name, expected) for name, _, _, expected in CASES)
    def test_case(self, name, expected):
        result = self.results[name]
        self.assertEqual(result.returncode, 2, f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
        lines = result.stderr.strip().splitlines()
        self.assertLen(lines, 1, result.stderr[-3000:])
        self.assertStartsWith(lines[0], "error: ")
        self.assertIn(expected, lines[0])
        self.assertNotIn("Traceback", result.stdout + result.stderr)

    def test_nothing_written_or_changed(self):
        for name, digests in self.before.items():
            self.assertEqual(self.after[name], digests, f"{name} ({self.places[name]}) changed")
