r"""Converts the reference PyTorch checkpoints (.pth) into tf_t2i model directories.

  # DAMSM encoders (AttnGAN / DM-GAN / DF-GAN / SSA-GAN / T2I_CL) -> a --damsm_dir:
  python -m tf_t2i.convert --kind=damsm --text_input=DAMSMencoders/bird/text_encoder200.pth \
      --image_input=DAMSMencoders/bird/image_encoder200.pth \
      --captions_pickle=data/birds/captions.pickle --dataset=cub --output=runs/damsm_cub
  # or one encoder at a time into the same directory:
  python -m tf_t2i.convert --kind=damsm_text --input=text_encoder200.pth \
      --captions_pickle=data/birds/captions.pickle --dataset=cub --output=runs/damsm_cub
  python -m tf_t2i.convert --kind=damsm_image --input=image_encoder200.pth \
      --output=runs/damsm_cub
  # SSA-GAN's generator -> a GAN --model_dir for export, sample and evaluate:
  python -m tf_t2i.convert --kind=ssagan_generator --input=netG_550.pth \
      --damsm_dir=runs/damsm_cub --output=runs/ssagan_cub

Files are read without torch and without running code. The output is written under a
temporary name and renamed into place; a non-empty --output is refused unless
--overwrite (or unless it is a converted DAMSM directory missing the given encoder).
See docs/convert.md.
"""

import os

from absl import app
from absl import flags

from tf_t2i import config as config_lib
from tf_t2i import console
from tf_t2i import flags as t2i_flags

FLAGS = flags.FLAGS
# As convert_lib.KINDS, which is not imported before the flags are checked (TensorFlow).
KINDS = ("damsm", "damsm_text", "damsm_image", "ssagan_generator")


def define_flags() -> None:
    """Defines this binary's flags (once)."""
    t2i_flags.define_flags(with_config=False, with_model_dir=False)
    if "kind" in FLAGS:
        return
    flags.DEFINE_enum("kind", None, KINDS, "What --input holds: damsm_text (RNN_ENCODER), "
                      "damsm_image (CNN_ENCODER), ssagan_generator (NetG); damsm converts "
                      "--text_input and --image_input together.")
    flags.DEFINE_string("input", None, "The .pth state dict (damsm_text, damsm_image, "
                        "ssagan_generator).")
    flags.DEFINE_string("text_input", None, "--kind=damsm: the text encoder .pth.")
    flags.DEFINE_string("image_input", None, "--kind=damsm: the image encoder .pth.")
    flags.DEFINE_string("captions_pickle", None, "AttnGAN's captions.pickle, whose "
                        "vocabulary indexes the text encoder (damsm, damsm_text).")
    flags.DEFINE_enum("dataset", None, config_lib.DATASETS, "The dataset the DAMSM "
                      "encoders were trained on (damsm kinds; GAN runs check it).")
    flags.DEFINE_string("output", None, "The directory to write.")
    flags.DEFINE_boolean("overwrite", False, "Replace a non-empty --output.")
    flags.DEFINE_integer("ndf", 64, "ssagan_generator: width of the freshly initialised "
                         "discriminator (the file holds none).", lower_bound=1)
    if "damsm_dir" not in FLAGS:
        flags.DEFINE_string("damsm_dir", None, "ssagan_generator: the converted (or "
                            "pretrained) DAMSM directory whose text encoder drove --input.")


def load_converted(directory, kind=None):
    """The converted Keras model of a directory; see `convert_lib.load_converted`."""
    console.import_tensorflow_quietly()  # TF start-up lines held back
    from tf_t2i.training import convert_lib  # pylint: disable=g-import-not-at-top
    return convert_lib.load_converted(directory, kind)


def _check_flags():
    """Fails with one line on a missing or misplaced flag; returns the plan's text."""
    kind = FLAGS.kind
    if kind is None:
        t2i_flags.fail(f"--kind is required, one of {list(KINDS)}.")
    if not FLAGS.output:
        t2i_flags.fail("--output is required (the directory to write).")
    if kind == "damsm":
        if not (FLAGS.text_input and FLAGS.image_input):
            t2i_flags.fail("--kind=damsm needs --text_input and --image_input "
                           "(or use --kind=damsm_text / damsm_image with --input).")
        if FLAGS.input:
            t2i_flags.fail("--kind=damsm reads --text_input and --image_input, not --input.")
        inputs = [FLAGS.text_input, FLAGS.image_input]
    else:
        if not FLAGS.input:
            t2i_flags.fail(f"--kind={kind} needs --input (the .pth file).")
        if FLAGS.text_input or FLAGS.image_input:
            t2i_flags.fail(f"--text_input and --image_input are for --kind=damsm; "
                           f"--kind={kind} reads --input.")
        inputs = [FLAGS.input]
    if kind in ("damsm", "damsm_text") and not FLAGS.captions_pickle:
        t2i_flags.fail(f"--kind={kind} needs --captions_pickle: the text encoder's "
                       "embedding rows follow that file's vocabulary.")
    if kind in ("damsm_image", "ssagan_generator") and FLAGS.captions_pickle:
        t2i_flags.fail(f"--captions_pickle is not read by --kind={kind}.")
    if kind == "ssagan_generator":
        if not FLAGS.damsm_dir:
            t2i_flags.fail("--kind=ssagan_generator needs --damsm_dir: the DAMSM directory "
                           "(e.g. from --kind=damsm) whose text encoder drives the generator.")
        if FLAGS.dataset:
            t2i_flags.fail("--dataset is taken from --damsm_dir for ssagan_generator.")
    elif FLAGS.damsm_dir:
        t2i_flags.fail("--damsm_dir is only read by --kind=ssagan_generator.")
    return f"Converting {', '.join(inputs)} ({kind}) into {FLAGS.output}"


def main(argv):
    if len(argv) > 1:
        t2i_flags.fail(f"Unexpected arguments: {argv[1:]}")
    print(_check_flags(), flush=True)
    if FLAGS.dry_run:
        return
    # A missing input is refused before TensorFlow starts (convert_lib checks again).
    for path in (FLAGS.input, FLAGS.text_input, FLAGS.image_input, FLAGS.captions_pickle):
        if path and not os.path.isfile(path):
            t2i_flags.fail(f"No such file: {path}")
    console.import_tensorflow_quietly()  # TF start-up lines held back
    from tf_t2i.training import convert_lib  # pylint: disable=g-import-not-at-top
    kind = FLAGS.kind
    if kind == "ssagan_generator":
        result = t2i_flags.run_or_fail(
            convert_lib.convert_ssagan_generator, convert_lib.INPUT_ERRORS, FLAGS.input,
            FLAGS.output, FLAGS.damsm_dir, overwrite=FLAGS.overwrite, ndf=FLAGS.ndf)
    else:
        text_input = FLAGS.text_input or (FLAGS.input if kind == "damsm_text" else None)
        image_input = FLAGS.image_input or (FLAGS.input if kind == "damsm_image" else None)
        result = t2i_flags.run_or_fail(
            convert_lib.convert_damsm, convert_lib.INPUT_ERRORS, FLAGS.output,
            dataset=FLAGS.dataset, text_input=text_input, image_input=image_input,
            captions_pickle=FLAGS.captions_pickle, overwrite=FLAGS.overwrite)
    print(f"Wrote {result.output_dir} ({', '.join(result.kinds)}; {result.checkpoint})")
    if result.usable_as:
        print(f"Use it as {result.usable_as}={result.output_dir}")
    else:
        missing = sorted(set(convert_lib.DAMSM_KINDS) - set(result.kinds))[0]
        print(f"Not yet a --damsm_dir: add the other encoder with --kind={missing} "
              f"--output={result.output_dir}")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=t2i_flags.parse_flags_or_fail)
