r"""Exports a trained run as a SavedModel version that TF Serving (or tf_t2i.serve) loads.

  python -m tf_t2i.export --model_dir=runs/ssagan --export_base=export/t2i
  python -m tf_t2i.export --model_dir=runs/ssagan --export_base=export/t2i --version=3 \
      --nouse_ema --write_model_config=serving/models.local.config

Writes `<export_base>/<version>/` (the next free number unless --version is given)
atomically, with signatures `serving_default(captions, seeds)`,
`generate_unseeded(captions)`, `generate_with_maps(captions, seeds)` and
`caption_words(captions)` (see `tf_t2i.serving.signatures`) and TF Serving warmup
requests. Everything comes from `<model_dir>/config.json`, its vocabulary and its last
checkpoint.
"""

import os

from absl import app
from absl import flags

from tf_t2i import console
from tf_t2i import flags as t2i_flags

FLAGS = flags.FLAGS
flags.DEFINE_string("export_base", "export/t2i", "The model's base path: versions are its "
                    "numeric subdirectories.")
flags.DEFINE_integer("version", None, "Version number to write (default: one more than the "
                     "largest present).", lower_bound=0)
flags.DEFINE_boolean("use_ema", True, "Export the EMA generator (when the run has one); "
                     "--nouse_ema exports the raw generator.")
flags.DEFINE_string("model_name", "t2i", "Served model name (warmup requests and the config "
                    "snippet).")
flags.DEFINE_list("warmup_batch_sizes", ["1", "8"], "One serving_default warmup request per "
                  "batch size (plus one of batch 1 for each explainability signature).")
flags.DEFINE_string("write_model_config", None, "Also write a TF Serving models.config "
                    "snippet for this model to this file.")
flags.DEFINE_string("model_config_base_path", None, "base_path in that snippet (default: the "
                    "absolute --export_base; e.g. /models/t2i inside the serving container).")


def main(argv):
    if len(argv) > 1:
        t2i_flags.fail(f"Unexpected arguments: {argv[1:]}")
    model_dir = t2i_flags.require_model_dir(must_exist=True)
    t2i_flags.require_gan_run(model_dir)
    try:
        batch_sizes = [int(b) for b in FLAGS.warmup_batch_sizes]
    except ValueError:
        t2i_flags.fail(f"--warmup_batch_sizes must be integers, got {FLAGS.warmup_batch_sizes}.")
    if any(b < 1 for b in batch_sizes):
        t2i_flags.fail(f"--warmup_batch_sizes must be >= 1, got {batch_sizes}.")
    export_base = os.path.abspath(FLAGS.export_base)
    if os.path.exists(export_base) and not os.path.isdir(export_base):
        t2i_flags.fail(f"--export_base={export_base} is not a directory.")
    if FLAGS.version is not None and os.path.exists(os.path.join(export_base,
                                                                 str(FLAGS.version))):
        t2i_flags.fail(f"Version {FLAGS.version} already exists in {export_base}.")
    which = "EMA" if FLAGS.use_ema else "raw"
    target = FLAGS.version if FLAGS.version is not None else "next"
    print(f"Exporting the {which} generator of {model_dir} to {export_base}/<{target}> "
          f"as model {FLAGS.model_name!r}", flush=True)
    if FLAGS.dry_run:
        return
    console.import_tensorflow_quietly()  # TF start-up lines held back
    from tf_t2i.serving import export_lib  # pylint: disable=g-import-not-at-top
    from tf_t2i.io import checkpoints  # pylint: disable=g-import-not-at-top
    result = t2i_flags.run_or_fail(
        export_lib.export_run, (export_lib.ExportError, checkpoints.CheckpointMismatchError),
        model_dir, export_base,
        version=FLAGS.version, use_ema=FLAGS.use_ema, model_name=FLAGS.model_name,
        warmup_batch_sizes=batch_sizes, write_model_config=FLAGS.write_model_config,
        model_config_base_path=FLAGS.model_config_base_path)
    print(f"Wrote version {result.version}: {result.path} (from {result.checkpoint})")
    if result.model_config_path:
        print(f"Wrote the model config snippet {result.model_config_path}")


if __name__ == "__main__":
    t2i_flags.define_flags(with_config=False)
    app.run(main, flags_parser=t2i_flags.parse_flags_or_fail)
