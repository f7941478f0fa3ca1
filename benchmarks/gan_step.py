"""Times SSA-GAN training steps on this machine, variants side by side in one run.

  python benchmarks/gan_step.py [--ngf=8 --ndf=16 --batch=24 --size=64 --steps=5]
  python benchmarks/gan_step.py --compare=losses    # each paper loss vs plain SSA-GAN
  python benchmarks/gan_step.py --compare=archs     # AttnGAN family vs SSA-GAN
  python benchmarks/gan_step.py --compare=callbacks # per-step host work the loop removed
  python benchmarks/gan_step.py --compare=noise     # z into every SSCBN vs fc only
  python benchmarks/gan_step.py --compare=words     # word attention in G blocks vs not
  python benchmarks/gan_step.py --compare=mode_seeking  # MSGAN on 4 pairs / every image
  python benchmarks/gan_step.py --compare=g_match   # the generator's matching term vs not
  python benchmarks/gan_step.py --compare=damsm_hard  # the DAMSM term's hard negative vs not
  python benchmarks/gan_step.py --compare=negatives  # D's negative images vs none
  python benchmarks/gan_step.py --compare=xla       # the step XLA-compiled vs a plain graph
  python benchmarks/gan_step.py --compare=widths    # the demo's step at ngf 8 / 4, ndf 16 / 8
  python benchmarks/gan_step.py --compare=widths_30min --mixed_precision=mixed_bfloat16
  python benchmarks/gan_step.py --compare=lazy_ma_gp --steps=8  # the demo's MA-GP every 1/2/4
  python benchmarks/gan_step.py --compare=mask_channels --ngf=4 --ndf=8 \
      --mixed_precision=mixed_bfloat16  # the mask predictors 100 / 32 / 16 wide
  python benchmarks/gan_step.py --compare=low_res --ngf=4 --ndf=8 --steps=8 \
      --mixed_precision=mixed_bfloat16  # the blocks up to 16 / 32 px at 8, the rest at 4
  python benchmarks/gan_step.py --compare=disc_words --ngf=4 --ndf=8 --steps=8 \
      --mixed_precision=mixed_bfloat16  # D scoring each word against its regions vs not
  python benchmarks/gan_step.py --compare=gen_words --ngf=4 --ndf=8 --steps=8 \
      --mixed_precision=mixed_bfloat16  # G's word attention up to 32 / 64 / 16 px / none

Random weights (no DAMSM or captioner run needed): builds the models exactly as
`tf_t2i.train` does, feeds one fixed batch, and reports seconds per step and images per
second. `--compare=ma_gp` (default) times MA-GP as a separate D step (the reference) and
joint (added to the hinge D loss); `--compare=losses` times the plain SSA-GAN step and
the step with each combination of the paper's terms (F2R, F2F, re-captioning), with
their ratio to the plain step; `--compare=archs` times each architecture at the widths
of its configs/shapes_*.cfg (SSA-GAN ngf 8 / ndf 16, AttnGAN 16 / 16, the style variants
8 / 8, with their DAMSM weights and Style2's R1 every 16 steps) against SSA-GAN;
`--compare=callbacks` times the bare step against the step with the per-step host work
the training loop did before the redesign: the EMA copy's BatchNorm statistics copied
every step, and the step variable and every logged value read on the host every step.
`--compare=noise` times the generator with z in every SSCBN (`--gen_noise_in_affine`,
configs/shapes_ssagan_30min.cfg) against the reference's z-in-fc-only, alternating the
two three times so that drift of the machine hits both. `--compare=words` times, the same
way, the generator of configs/shapes_ssagan_30min.cfg with and without word attention
(`--gen_word_attention_max_size`) in every block and in the blocks up to 32 px.
`--compare=mode_seeking` times, the same way, that config with word attention up to 32 px
(joint MA-GP, DAMSM weight 3) without mode seeking, with it on 4 pairs of new images a
step (`--loss_mode_seeking_examples=4`) and with a second image for every caption.
`--compare=g_match` times, the same way, that config without and with the generator's
matching term (`--loss_g_match_weight`). `--compare=damsm_hard` times, the same way, that
config without and with the mismatched caption as a hard negative of the DAMSM term
(`--loss_damsm_hard_negatives`). `--compare=negatives` times, the same way, that config
(DAMSM weight 1.5) without and with D's term on negative images
(`--loss_negative_images_weight`, one more D pass over a batch of images).
`--compare=xla` times, the same way, the step of configs/shapes_ssagan_30min.cfg as a plain
tf.function graph and XLA-compiled (`--jit_compile`; its compile time is in the warm-up).
`--compare=widths` times, the same way, the demo's step (configs/shapes_ssagan.cfg, with
`--jit_compile=auto`) at generator / discriminator widths 8 / 16, 4 / 16 and 4 / 8.
`--compare=widths_30min` times, the same way, the step of configs/shapes_ssagan_30min.cfg
at 8 / 16 (its widths until the twenty-fifth round) and 4 / 8 (the demo's, and the config's
since), both with the reference's 100-wide mask predictors.
`--compare=lazy_ma_gp` times, the same way, the demo's step with its joint MA-GP every
step, every second and every fourth (`--loss_ma_gp_interval`).
`--compare=mask_channels` times, the same way, the step of configs/shapes_ssagan_30min.cfg
at --ngf / --ndf with its mask predictors 100 (the reference), 32 and 16 wide
(`--gen_mask_channels`), with MA-GP every step as the twenty-fifth round measured it (the
config runs it every 4th since the twenty-sixth: `--compare=lazy_ma_gp`).
`--compare=low_res` times, the same way, the step of configs/shapes_ssagan_30min.cfg (MA-GP
every 4th step: give --steps a multiple of 4) with fc and the generator blocks up to 16 and
up to 32 px at base width 8 (`--gen_low_res_ngf=8 --gen_low_res_max_size=16|32`).
`--compare=disc_words` times, the same way, that step without and with the discriminator's
word-level logit (`--disc_word_logits`, models/word_match.py), and with the words attending
over D's 8x8 features (`--disc_word_region_size=8`). `--compare=gen_words` times, the same
way, that step with D reading the words and G's word attention in the blocks up to 32 px (the
config), in every block, up to 16 px, and nowhere (`--gen_word_attention_max_size=32|64|16|0`).
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from tf_t2i import config as config_lib  # pylint: disable=g-import-not-at-top
from tf_t2i.training import captioner_lib  # pylint: disable=g-import-not-at-top
from tf_t2i.training import runtime  # pylint: disable=g-import-not-at-top
from tf_t2i.training import train_lib  # pylint: disable=g-import-not-at-top


LOSS_VARIANTS = {
    "plain": {},
    "+f2r": {"f2r_weight": 0.2},
    "+f2f": {"f2f_weight": 0.2},
    "+f2r+f2f": {"f2r_weight": 0.2, "f2f_weight": 0.2},
    "+recap": {"recap_weight": 1.0},
    "+f2r+f2f+recap": {"f2r_weight": 0.2, "f2f_weight": 0.2, "recap_weight": 1.0},
}


# Widths and loss settings of configs/shapes_{ssagan,attngan,style1_attngan,style2_*}.cfg.
ARCH_VARIANTS = {
    "ssagan": ({"arch": "ssagan", "ngf": 8}, {"ndf": 16}, {}),
    "attngan": ({"arch": "attngan", "ngf": 16}, {"ndf": 16}, {"damsm_weight": 5.0}),
    "style1_attngan": ({"arch": "style1_attngan", "ngf": 8}, {"ndf": 8},
                       {"damsm_weight": 5.0}),
    "style2_attngan": ({"arch": "style2_attngan", "ngf": 8}, {"ndf": 8},
                       {"damsm_weight": 5.0, "r1_gamma": 10.0, "r1_interval": 16}),
}


def make_cfg(args, mode="separate_step", generator=None, discriminator=None, **loss):
    return config_lib.ExperimentConfig().replace(
        data={"image_size": args.size},
        image_encoder={"small_cnn_width": 64},
        captioner={"embed_dim": 128, "num_heads": 4, "intermediate_dim": 256,
                   "small_cnn_width": 32},
        generator=generator or {"ngf": args.ngf},
        discriminator=discriminator or {"ndf": args.ndf},
        train={"batch_size": args.batch, "task": "gan"},
        loss={"ma_gp_mode": mode, "damsm_weight": 0.05, "gamma1": 5.0, **loss},
        # The policy --mixed_precision set, so that --jit_compile=auto resolves as in training.
        runtime={"damsm_dir": "unused", "captioner_dir": "unused",
                 "mixed_precision": args.mixed_precision})


def _random_captioner(cfg, vocab_size):
    """Stands in for a pretrained captioner: the cost of a step does not depend on weights."""
    captioner = captioner_lib.build_captioner(cfg, vocab_size)
    captioner.trainable = False
    return captioner


class _PerStepHostWork(keras.callbacks.Callback):
    """What the loop's callbacks did on every step before they counted on the host."""

    def __init__(self, gan, sync_ema, read_logs):
        super().__init__()
        self.gan, self.sync_ema, self.read_logs = gan, sync_ema, read_logs

    def on_train_batch_end(self, batch, logs=None):
        if self.sync_ema:
            self.gan.sync_ema_buffers()
        if self.read_logs:
            for _ in range(4):  # checkpoint, stop, sample grid, evaluation
                int(self.gan.step.numpy())
            [float(v) for v in (logs or {}).values()]


CALLBACK_VARIANTS = {"bare step": (False, False), "+ EMA statistics every step": (True, False),
                     "+ host reads every step": (False, True),
                     "+ both (before the redesign)": (True, True)}


# configs/shapes_ssagan_30min.cfg's generator options (its widths apart), and its widths.
THIRTY_MINUTES = {"noise_in_affine": True, "sentence_in_fc": True, "residual_gate_init": 1.0,
                  "word_attention_max_size": 32}
THIRTY_MINUTE_WIDTHS = {"ngf": 4, "ndf": 8, "mask_channels": 32}
# Its lazy MA-GP (twenty-sixth round): time whole cycles of it.
THIRTY_MINUTE_MA_GP_INTERVAL = 4


def add_thirty_minute_flags(parser):
    """--ngf / --ndf / --mask_channels / --ma_gp_interval, by default the 30-minute config's
    (the twenty-fourth round measured 8 / 16 / 100 / 1, the config's settings then; the
    twenty-fifth 4 / 8 / 32 / 1)."""
    for name, value in THIRTY_MINUTE_WIDTHS.items():
        parser.add_argument(f"--{name}", type=int, default=value)
    parser.add_argument("--ma_gp_interval", type=int, default=THIRTY_MINUTE_MA_GP_INTERVAL,
                        help="MA-GP every this many steps (1: every step).")


def thirty_minute_cfg(args):
    """The step of configs/shapes_ssagan_30min.cfg at --ngf / --ndf / --mask_channels /
    --ma_gp_interval (the config's when absent): joint MA-GP, DAMSM weight 1.5,
    `--jit_compile=auto` (resolved with the benchmarked policy)."""
    mask_channels = getattr(args, "mask_channels", THIRTY_MINUTE_WIDTHS["mask_channels"])
    interval = getattr(args, "ma_gp_interval", THIRTY_MINUTE_MA_GP_INTERVAL)
    return make_cfg(args, "joint", generator={**THIRTY_MINUTES, "ngf": args.ngf,
                                              "mask_channels": mask_channels},
                    discriminator={"ndf": args.ndf},
                    damsm_weight=1.5, ma_gp_interval=interval).replace(
                        runtime={"jit_compile": "auto"})


def synthetic_batch(cfg, batch_size, vocab_size=64):
    """One random training batch of the shapes and dtypes the GAN step reads (seed 0)."""
    rng = np.random.default_rng(0)
    b, t, size = batch_size, cfg.data.max_caption_length, cfg.data.image_size
    return {
        "real_images": tf.constant(rng.uniform(-1, 1, (b, size, size, 3)), tf.float32),
        # Read only with --loss_negative_images_weight.
        "negative_images": tf.constant(rng.uniform(-1, 1, (b, size, size, 3)), tf.float32),
        "caption_ids": tf.constant(rng.integers(2, vocab_size, (b, t)), tf.int32),
        "mismatched_ids": tf.constant(rng.integers(2, vocab_size, (b, t)), tf.int32),
        "caption_ids_2": tf.constant(rng.integers(2, vocab_size, (b, t)), tf.int32),
        "z": tf.constant(rng.normal(size=(b, cfg.generator.z_dim)), tf.float32),
        "class_id": tf.fill([b], tf.constant(-1, tf.int64)),
        "image_id": tf.range(b, dtype=tf.int64),
    }


def time_variant(cfg, args, callback_variant=None):
    """Seconds per step. Without a callback variant the step is the model's own
    `train_step` compiled as `fit()` compiles it (XLA where `runtime.use_xla` says) and
    called directly: on the 2-core AVX2 EPYC `fit()` over this one-batch dataset ran
    some timings at exactly 1.279 s a step whatever the work (generator width 4 and 8
    alike), while direct calls gave 0.80 and 1.14 s. The callback variants time `fit()`,
    whose per-step host work is what they measure."""
    vocab = 64
    with tempfile.TemporaryDirectory() as tmp:
        parts = train_lib.GANComponents(cfg, vocab, tmp)
        batch = synthetic_batch(cfg, args.batch, vocab)
        if callback_variant is None:
            step = tf.function(parts.gan.train_step, jit_compile=runtime.use_xla(cfg))
            for _ in range(2):  # trace + warm up
                float(step(batch)["g_loss"])
            start = time.perf_counter()
            for _ in range(args.steps):
                logs = step(batch)
            float(logs["g_loss"])  # waits for the last step
            return (time.perf_counter() - start) / args.steps
        ds = tf.data.Dataset.from_tensors(batch).repeat()
        callbacks = [_PerStepHostWork(parts.gan, *CALLBACK_VARIANTS[callback_variant])]
        parts.gan.fit(ds, steps_per_epoch=2, epochs=1, verbose=0,   # trace + warm up
                      callbacks=callbacks)
        start = time.perf_counter()
        parts.gan.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=callbacks)
        return (time.perf_counter() - start) / args.steps


def _alternate(args, variants, mode="separate_step", **loss):
    """Times variants ({name: generator fields, or (generator fields, loss fields[,
    runtime fields[, discriminator fields]])}) three times in turn, so that drift of the
    machine hits each; prints each mean as a ratio to the first. A variant's own ngf and
    ndf win over --ngf and --ndf."""
    results = {}
    for _ in range(3):
        for name, fields in variants.items():
            if not isinstance(fields, tuple):
                fields = (fields,)
            generator, extra_loss, runtime_fields, discriminator = (fields + ({},) * 3)[:4]
            cfg = make_cfg(args, mode, generator={"ngf": args.ngf, **generator},
                           discriminator={"ndf": args.ndf, **discriminator},
                           **dict(loss, **extra_loss))
            cfg = cfg.replace(runtime=runtime_fields) if runtime_fields else cfg
            results.setdefault(name, []).append(time_variant(cfg, args))
    base = np.mean(next(iter(results.values())))
    for name, times in results.items():
        print(f"  {name:18s}: {np.mean(times):.4f} s/step (runs {np.round(times, 4)}), "
              f"x{np.mean(times) / base:.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ngf", type=int, default=8)
    parser.add_argument("--ndf", type=int, default=16)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--mixed_precision", default="none",
                        choices=["none", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--compare", default="ma_gp",
                        choices=["ma_gp", "losses", "archs", "callbacks", "noise", "words",
                                 "mode_seeking", "g_match", "damsm_hard", "negatives", "xla",
                                 "widths", "widths_30min", "lazy_ma_gp", "mask_channels",
                                 "low_res", "disc_words", "gen_words"])
    args = parser.parse_args()
    if args.mixed_precision != "none":
        keras.mixed_precision.set_global_policy(args.mixed_precision)
    print(f"SSA-GAN step, {args.size}px, ngf={args.ngf}, ndf={args.ndf}, batch {args.batch}, "
          f"{args.mixed_precision}, {os.cpu_count()} CPUs")
    results = {}
    if args.compare == "ma_gp":
        for mode in ("separate_step", "joint"):
            seconds = time_variant(make_cfg(args, mode), args)
            results[mode] = seconds
            print(f"  MA-GP {mode:13s}: {seconds:.4f} s/step, {args.batch / seconds:.1f} images/s")
        print(f"  ratio joint / separate_step: "
              f"{results['joint'] / results['separate_step']:.2f}")
        return
    if args.compare == "callbacks":
        for name in CALLBACK_VARIANTS:
            seconds = time_variant(make_cfg(args), args, callback_variant=name)
            results[name] = seconds
            print(f"  {name:30s}: {seconds:.4f} s/step, "
                  f"x{seconds / results['bare step']:.3f} of the bare step")
        return
    if args.compare == "noise":
        _alternate(args, {"z in fc only": {"noise_in_affine": False},
                          "z in every SSCBN": {"noise_in_affine": True}})
        return
    thirty_minutes = {"noise_in_affine": True, "sentence_in_fc": True,
                      "residual_gate_init": 1.0}
    if args.compare == "mode_seeking":
        words = dict(thirty_minutes, word_attention_max_size=32)
        _alternate(args, {
            "no mode seeking": words,
            "mode seeking, 4 pairs": (words, {"mode_seeking_weight": 1.0,
                                              "mode_seeking_examples": 4}),
            "mode seeking, every image": (words, {"mode_seeking_weight": 1.0})},
            mode="joint", damsm_weight=3.0)
        return
    if args.compare == "g_match":
        words = dict(thirty_minutes, word_attention_max_size=32)
        _alternate(args, {"without": words, "with g_match": (words, {"g_match_weight": 1.0})},
                   mode="joint", damsm_weight=3.0)
        return
    if args.compare == "damsm_hard":
        words = dict(thirty_minutes, word_attention_max_size=32)
        _alternate(args, {"without": words,
                          "with the hard negative": (words, {"damsm_hard_negatives": True})},
                   mode="joint", damsm_weight=3.0)
        return
    if args.compare == "negatives":
        words = dict(thirty_minutes, word_attention_max_size=32)
        _alternate(args, {"without": words,
                          "with negative images": (words, {"negative_images_weight": 0.5})},
                   mode="joint", damsm_weight=1.5)
        return
    if args.compare == "xla":
        words = dict(thirty_minutes, word_attention_max_size=32)
        _alternate(args, {"graph": words, "XLA": (words, {}, {"jit_compile": True})},
                   mode="joint", damsm_weight=1.5)
        return
    if args.compare == "widths":
        demo = {"sentence_in_fc": True, "residual_gate_init": 1.0}
        xla = {"jit_compile": "auto"}
        _alternate(args, {"ngf 8, ndf 16": ({**demo, "ngf": 8}, {}, xla, {"ndf": 16}),
                          "ngf 4, ndf 16": ({**demo, "ngf": 4}, {}, xla, {"ndf": 16}),
                          "ngf 4, ndf 8": ({**demo, "ngf": 4}, {}, xla, {"ndf": 8})},
                   mode="joint", damsm_weight=1.0)
        return
    if args.compare == "widths_30min":
        words = dict(thirty_minutes, word_attention_max_size=32)
        xla = {"jit_compile": "auto"}
        _alternate(args, {"ngf 8, ndf 16": ({**words, "ngf": 8}, {}, xla, {"ndf": 16}),
                          "ngf 4, ndf 8": ({**words, "ngf": 4}, {}, xla, {"ndf": 8})},
                   mode="joint", damsm_weight=1.5)
        return
    if args.compare == "mask_channels":
        words = dict(THIRTY_MINUTES, ngf=args.ngf)
        xla = {"jit_compile": "auto"}
        _alternate(args, {f"mask {k} wide": ({**words, "mask_channels": k}, {}, xla)
                          for k in (100, 32, 16)}, mode="joint", damsm_weight=1.5)
        return
    if args.compare == "low_res":
        config = dict(THIRTY_MINUTES, ngf=args.ngf,
                      mask_channels=THIRTY_MINUTE_WIDTHS["mask_channels"])
        xla = {"jit_compile": "auto"}
        variants = {"the config": (config, {}, xla)}
        for size in (16, 32):
            variants[f"8 up to {size} px"] = (
                dict(config, low_res_ngf=8, low_res_max_size=size), {}, xla)
        _alternate(args, variants, mode="joint", damsm_weight=1.5,
                   ma_gp_interval=THIRTY_MINUTE_MA_GP_INTERVAL)
        return
    if args.compare == "disc_words":
        config = dict(THIRTY_MINUTES, ngf=args.ngf,
                      mask_channels=THIRTY_MINUTE_WIDTHS["mask_channels"])
        xla = {"jit_compile": "auto"}
        _alternate(args, {"the config": (config, {}, xla),
                          "D reads the words": (config, {}, xla, {"word_logits": True}),
                          "at 8x8": (config, {}, xla, {"word_logits": True,
                                                       "word_region_size": 8})},
                   mode="joint", damsm_weight=1.5,
                   ma_gp_interval=THIRTY_MINUTE_MA_GP_INTERVAL)
        return
    if args.compare == "gen_words":
        # The config's step (D reads the words) with G's word attention in the blocks up to
        # 32 px (the config), in every block, up to 16 px, and none (the sentence alone).
        config = dict(THIRTY_MINUTES, ngf=args.ngf,
                      mask_channels=THIRTY_MINUTE_WIDTHS["mask_channels"])
        xla, reads = {"jit_compile": "auto"}, {"word_logits": True}
        _alternate(args, {f"G words up to {size} px" if size else "G sentence only":
                          (dict(config, word_attention_max_size=size), {}, xla, reads)
                          for size in (32, args.size, 16, 0)},
                   mode="joint", damsm_weight=1.5,
                   ma_gp_interval=THIRTY_MINUTE_MA_GP_INTERVAL)
        return
    if args.compare == "lazy_ma_gp":
        # The demo's step with its joint MA-GP every step, every 2nd and every 4th (steps
        # a multiple of 4, so each timing holds whole cycles).
        demo = {"sentence_in_fc": True, "residual_gate_init": 1.0, "ngf": 4}
        xla, ndf = {"jit_compile": "auto"}, {"ndf": 8}
        _alternate(args, {f"MA-GP every {k}": (demo, {"ma_gp_interval": k}, xla, ndf)
                          for k in (1, 2, 4)}, mode="joint", damsm_weight=1.0)
        return
    if args.compare == "words":
        _alternate(args, {
            "sentence only": thirty_minutes,
            "words, every block": dict(thirty_minutes, word_attention_max_size=args.size),
            "words, up to 32 px": dict(thirty_minutes, word_attention_max_size=32)})
        return
    if args.compare == "archs":
        for name, (generator, discriminator, loss) in ARCH_VARIANTS.items():
            seconds = time_variant(make_cfg(args, generator=generator,
                                            discriminator=discriminator, **loss), args)
            results[name] = seconds
            print(f"  {name:16s}: {seconds:.4f} s/step, {args.batch / seconds:.1f} images/s, "
                  f"x{seconds / results['ssagan']:.2f} of SSA-GAN")
        return
    captioner_lib.restore_captioner = _random_captioner
    for name, loss in LOSS_VARIANTS.items():
        seconds = time_variant(make_cfg(args, **loss), args)
        results[name] = seconds
        print(f"  {name:16s}: {seconds:.4f} s/step, {args.batch / seconds:.1f} images/s, "
              f"x{seconds / results['plain']:.2f} of plain")

if __name__ == "__main__":
    main()
