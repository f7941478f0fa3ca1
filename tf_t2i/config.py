"""Typed experiment configuration: frozen dataclasses with validation and JSON round trip.

Stdlib only (with `tf_t2i.config_fields` and `tf_t2i.io.files`, themselves stdlib only), so
every layer of the package (and tests) can import it cheaply. The binaries turn absl flags into an `ExperimentConfig` (see
`tf_t2i/flags.py`), write it to `<model_dir>/config.json`, and everything downstream
(evaluate, sample, export) rebuilds models from that file alone.

Each field's metadata may carry `choices` (validated, and turned into an enum flag) and
`help` (the flag's help text).
"""

import dataclasses
import json
import os
from typing import Any, Dict

# The field declaration, the value lists and the shared checks live in config_fields; their
# names stay reachable here (config_lib.ConfigError, config_lib.GEN_ARCHS, ...).
from tf_t2i.config_fields import (  # pylint: disable=unused-import
    ATTNGAN_FAMILY, DATASETS, GEN_ARCHS, IMAGE_BACKBONES, IMAGE_SIZES, MA_GP_MODES,
    MIXED_PRECISION, SSAGAN, STYLE_VARIANTS, TASKS, ConfigError)
from tf_t2i.config_fields import check_choices as _check_choices
from tf_t2i.config_fields import check_positive as _check_positive
from tf_t2i.config_fields import config_field as _field
from tf_t2i.io import files


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which dataset, at what size, and how the input pipeline behaves."""
    dataset: str = _field("shapes", "Dataset to train on.", DATASETS)
    data_dir: str = _field("", "TFDS data directory (prepared datasets). Empty: "
                           "~/tensorflow_datasets.")
    manual_dir: str = _field("", "Folder holding the raw CUB/COCO files (not used for shapes).")
    image_size: int = _field(64, "Image side in pixels.", IMAGE_SIZES)
    max_caption_length: int = _field(18, "Caption length T in tokens (AttnGAN WORDS_NUM).")
    shapes_train_size: int = _field(10000, "Number of training images of the shapes dataset.")
    shapes_test_size: int = _field(2000, "Number of test images of the shapes dataset.")
    shapes_seed: int = _field(0, "Seed that determines the shapes dataset's content.")
    shapes_hard_negatives: float = _field(
        0.0, "Shapes: share of mismatched captions that are the image's own with its shape "
        "words changed (same colours, sizes, positions), so matching takes reading the shape. "
        "GAN: D's mismatched captions (0: all from other images, the reference). DAMSM: > 0 "
        "adds each image's mismatched caption to its softmaxes as a negative (NegCLIP).")
    shapes_binding_negatives: float = _field(
        0.0, "Shapes: share of those hard negatives that, for a two-object caption, exchange "
        "the two shapes instead ('a red square and a blue circle' -> 'a red circle and a blue "
        "square'): the same words, so matching takes binding each shape to its colour.")
    shapes_two_object_repeats: int = _field(
        1, "Shapes: times each training image with two objects comes in an epoch (1: once, as "
        "the others; 2: two-object scenes are two thirds of the steps). The test split is as is.")
    shuffle_buffer: int = _field(2048, "tf.data shuffle buffer, in images.")
    cache: bool = _field(True, "Cache decoded images in memory (small datasets).")
    skip_corrupt_images: bool = _field(False, "CUB/COCO: skip unreadable or truncated images "
                                       "(counted and reported) instead of failing on the "
                                       "first one, naming it.")

    def validate(self):
        _check_choices(self)
        _check_positive(self, "max_caption_length", "shapes_train_size", "shapes_test_size",
                        "shuffle_buffer", "shapes_two_object_repeats")
        if not 0.0 <= self.shapes_hard_negatives <= 1.0:
            raise ConfigError(f"data.shapes_hard_negatives must be in [0, 1], got "
                              f"{self.shapes_hard_negatives}.")
        if not 0.0 <= self.shapes_binding_negatives <= 1.0 or (
                self.shapes_binding_negatives and not self.shapes_hard_negatives):
            raise ConfigError(f"data.shapes_binding_negatives must be in [0, 1] and needs "
                              f"data.shapes_hard_negatives > 0, got "
                              f"{self.shapes_binding_negatives}.")
        for name in ("shapes_hard_negatives", "shapes_two_object_repeats"):
            if getattr(self, name) != getattr(DataConfig, name) and self.dataset != "shapes":
                raise ConfigError(f"data.{name}={getattr(self, name)} applies to the shapes "
                                  f"dataset only, but data.dataset={self.dataset!r}.")
        if self.dataset in ("cub", "coco") and not self.manual_dir and not self.data_dir:
            raise ConfigError(f"data.dataset={self.dataset!r} needs --data_manual_dir (the raw "
                              "files) or --data_data_dir (an already prepared TFDS directory).")


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """DAMSM text encoder and vocabulary."""
    embedding_dim: int = _field(300, "Word embedding width (AttnGAN: 300).")
    hidden_dim: int = _field(256, "Bi-LSTM output width = sentence embedding width (256).")
    dropout: float = _field(0.5, "Dropout after the word embedding.")
    min_word_count: int = _field(1, "Words seen fewer times in training captions map to OOV.")

    def validate(self):
        _check_positive(self, "embedding_dim", "hidden_dim", "min_word_count")
        if self.hidden_dim % 2:
            raise ConfigError(f"text.hidden_dim must be even (two LSTM directions), got {self.hidden_dim}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"text.dropout must be in [0, 1), got {self.dropout}.")


@dataclasses.dataclass(frozen=True)
class ImageEncoderConfig:
    """DAMSM image encoder."""
    backbone: str = _field("small_cnn", "Image encoder backbone.", IMAGE_BACKBONES)
    weights_path: str = _field("", "Local ImageNet weights file: a Keras .h5 for inception_v3, "
                               "a torchvision .pth state dict for torchvision_inception_v3.")
    small_cnn_width: int = _field(64, "Base width of the small_cnn backbone.")

    def validate(self):
        _check_choices(self)
        _check_positive(self, "small_cnn_width")


@dataclasses.dataclass(frozen=True)
class CaptionerConfig:
    """Captioning model of the re-captioning loss (pretrained with --train_task=captioner)."""
    backbone: str = _field("small_cnn", "Captioner image encoder backbone.", IMAGE_BACKBONES)
    embed_dim: int = _field(256, "Captioner width.")
    num_layers: int = _field(2, "TransformerDecoder layers.")
    num_heads: int = _field(4, "Attention heads.")
    intermediate_dim: int = _field(512, "Feed-forward width.")
    dropout: float = _field(0.1, "Decoder dropout.")
    small_cnn_width: int = _field(64, "Width of the small_cnn backbone.")
    learning_rate: float = _field(1e-3, "Captioner pretraining Adam learning rate.")

    def validate(self):
        _check_choices(self)
        _check_positive(self, "embed_dim", "num_layers", "num_heads", "intermediate_dim",
                        "small_cnn_width", "learning_rate")
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"captioner.embed_dim={self.embed_dim} must be divisible by "
                              f"captioner.num_heads={self.num_heads}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"captioner.dropout must be in [0, 1), got {self.dropout}.")


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    arch: str = _field("ssagan", "Generator architecture (the discriminator follows it).",
                       GEN_ARCHS)
    z_dim: int = _field(100, "Noise dimension.")
    ngf: int = _field(64, "Generator base width (SSA-GAN: 64; AttnGAN GF_DIM: 32 CUB, 48 COCO).")
    condition_dim: int = _field(100, "AttnGAN family: conditioning augmentation output "
                                "(CONDITION_DIM).", applies_to=ATTNGAN_FAMILY)
    residual_blocks: int = _field(2, "AttnGAN: residual blocks per refinement stage "
                                  "(R_NUM: 2 CUB, 3 COCO).", applies_to=("attngan",))
    mapping_layers: int = _field(8, "Style variants: fully connected layers of the mapping "
                                 "network.", applies_to=STYLE_VARIANTS)
    mixing_prob: float = _field(0.9, "Style variants: probability of style mixing in "
                                "training.", applies_to=STYLE_VARIANTS)
    truncation_psi: float = _field(1.0, "Style variants: truncation toward the average W "
                                   "when sampling (1: none).", applies_to=STYLE_VARIANTS)
    residual_gate_init: float = _field(0.0, "SSA-GAN: initial value of each G block's residual "
                                       "gate (reference: 0, the block starts as its shortcut).",
                                       applies_to=SSAGAN)
    noise_in_affine: bool = _field(False, "SSA-GAN: every SSCBN reads [sentence, z], not the "
                                   "sentence alone (reference: false; z enters only by fc).",
                                   applies_to=SSAGAN)
    sentence_in_fc: bool = _field(False, "SSA-GAN: fc reads [z, sentence], not z alone, so the "
                                  "text can lay out the 4x4 map (reference: false).",
                                  applies_to=SSAGAN)
    word_attention_max_size: int = _field(
        0, "SSA-GAN: the G blocks at this resolution (px) and below attend over the words and "
        "their SSCBNs add a per-pixel affine from that context; 0: none (reference: the "
        "sentence alone).", applies_to=SSAGAN)
    word_attention_coords: bool = _field(False, "SSA-GAN: G's word attention also reads each "
                                         "pixel's (x, y) in its queries.", applies_to=SSAGAN)
    mask_channels: int = _field(100, "SSA-GAN: hidden width of the mask predictors "
                                "(reference: 100).", applies_to=SSAGAN)
    low_res_ngf: int = _field(0, "SSA-GAN: base width of fc and of the G blocks at "
                              "low_res_max_size px and below; 0: ngf (reference).",
                              applies_to=SSAGAN)
    low_res_max_size: int = _field(16, "SSA-GAN: the largest resolution (px) that "
                                   "low_res_ngf widens.", applies_to=SSAGAN)

    def validate(self):
        _check_choices(self)
        _check_positive(self, "z_dim", "ngf", "condition_dim", "mapping_layers",
                        "mask_channels")
        if self.low_res_ngf < 0:
            raise ConfigError(f"generator.low_res_ngf must be >= 0 (0: ngf): {self.low_res_ngf}.")
        if self.low_res_ngf and self.low_res_max_size < 4:
            raise ConfigError(f"generator.low_res_max_size must be >= 4 px (the first "
                              f"block's) with low_res_ngf, got {self.low_res_max_size}.")
        if self.word_attention_max_size and self.word_attention_max_size < 4:
            raise ConfigError(f"generator.word_attention_max_size must be 0 (none) or >= 4 px "
                              f"(the first block's), got {self.word_attention_max_size}.")
        if self.word_attention_coords and not self.word_attention_max_size:
            raise ConfigError("generator.word_attention_coords needs word_attention_max_size > 0.")
        if self.residual_blocks < 0:
            raise ConfigError(f"generator.residual_blocks must be >= 0: {self.residual_blocks}.")
        if not 0.0 <= self.mixing_prob <= 1.0:
            raise ConfigError(f"generator.mixing_prob must be in [0, 1], got {self.mixing_prob}.")
        if not 0.0 <= self.truncation_psi <= 1.0:
            raise ConfigError(f"generator.truncation_psi must be in [0, 1], got "
                              f"{self.truncation_psi}.")


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
    ndf: int = _field(64, "Discriminator base width (SSA-GAN: 64).")
    residual_gate_init: float = _field(0.0, "SSA-GAN: initial value of each D block's residual "
                                       "gate (reference: 0, the block starts as its shortcut).",
                                       applies_to=SSAGAN)
    word_logits: bool = _field(False, "SSA-GAN: add a word-level logit, each word scored "
                               "against the image regions it attends to "
                               "(models/word_match.py says why; the reference: false).",
                               applies_to=SSAGAN)
    word_region_size: int = _field(4, "SSA-GAN with word_logits: the side of D's feature map "
                                   "the words attend over, 4 (its last) or 8.", applies_to=SSAGAN)

    def validate(self):
        _check_positive(self, "ndf")
        if self.word_region_size not in ((4, 8) if self.word_logits else (4,)):
            raise ConfigError("discriminator.word_region_size must be 4, or 8 with word_logits;"
                              f" got {self.word_region_size}.")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Loss weights and constants. A weight of 0 removes the term and its computation."""
    damsm_weight: float = _field(0.05, "Weight of the generator's DAMSM term (SSA-GAN: 0.05).")
    damsm_weight_final: float = _field(-1.0, "DAMSM term's weight at the end of GAN training: "
                                       "from --train_lr_decay_start on it moves linearly "
                                       "from --loss_damsm_weight to this, with the rates "
                                       "(training/schedules.py says why); negative: "
                                       "constant, the reference.")
    damsm_augment_shift: float = _field(0.0, "DAMSM term: score each fake moved by up to "
                                        "this fraction of its side (0: unmoved, the "
                                        "reference); losses/augment.py says why.")
    damsm_augment_zoom: float = _field(0.0, "DAMSM term: and zoomed in by a window of "
                                       "(1 - this) to 1 times its side (0: no zoom).")
    damsm_hard_negatives: bool = _field(False, "DAMSM term: each fake is also scored "
                                        "against its image's mismatched caption (with "
                                        "--data_shapes_hard_negatives, its own caption with "
                                        "other shapes) as one more wrong candidate "
                                        "(NegCLIP; losses/damsm.py). False: the batch's "
                                        "other captions only, the reference.")
    f2r_weight: float = _field(0.0, "Weight of the fake-to-real NT-Xent term.")
    f2f_weight: float = _field(0.0, "Weight of the fake-to-fake NT-Xent term.")
    recap_weight: float = _field(0.0, "Weight of the re-captioning term.")
    mode_seeking_weight: float = _field(0.0, "Weight of the mode-seeking regulariser (MSGAN, "
                                        "Mao et al. 2019): a second image per caption from "
                                        "other noise; 0 (reference) computes neither.")
    mode_seeking_examples: int = _field(0, "Mode seeking: 0 compares each step image with a "
                                        "second one of its caption; N > 0 draws a pair of "
                                        "new images for each replica's first N captions "
                                        "instead, in one pass of 2N (2N / batch of a "
                                        "generator pass).")
    contrastive_temperature: float = _field(0.5, "NT-Xent temperature tau.")
    contrastive_projection_dim: int = _field(0, "F2R/F2F: width of a learned projection "
                                             "head on the image codes; 0 compares the frozen "
                                             "DAMSM codes directly (the default, as T2I_CL).")
    text_contrastive_weight: float = _field(1.0, "DAMSM pretraining: weight of the text "
                                            "NT-Xent between two captions (Ye et al. 2021).")
    # 4: reference DAMSM pretraining (AttnGAN / T2I_CL cfg/DAMSM/*.yml) and AttnGAN's GAN time
    # (bird_attn2.yml, coco_attn2.yml); SSA-GAN's GAN time: its code default 5 (*_ssagan set 5).
    gamma1: float = _field(4.0, "DAMSM attention sharpness over regions.")
    gamma2: float = _field(5.0, "DAMSM word-region matching exponent.")
    gamma3: float = _field(10.0, "DAMSM logit scale.")
    ma_gp_weight: float = _field(2.0, "SSA-GAN: MA-GP coefficient k.", applies_to=SSAGAN)
    ma_gp_power: float = _field(6.0, "SSA-GAN: MA-GP exponent p.", applies_to=SSAGAN)
    ma_gp_mode: str = _field("separate_step", "SSA-GAN: apply MA-GP as a second D update "
                             "(reference) or added to the hinge D loss.", MA_GP_MODES,
                             applies_to=SSAGAN)
    ma_gp_interval: int = _field(1, "SSA-GAN, joint MA-GP: lazy, every this many steps, scaled "
                                 "by it (1: every step, the reference).", applies_to=SSAGAN)
    g_match_weight: float = _field(0.0, "SSA-GAN: weight of the generator's matching term "
                                   "softplus(D(fake, s_mismatched) - D(fake, s)) "
                                   "(losses/adversarial.py); 0: off, the reference.",
                                   applies_to=SSAGAN)
    negative_images_weight: float = _field(0.0, "SSA-GAN, shapes: D's weight on real images "
        "with a third object added, as fakes (NDA, Sinha et al. 2021); 0: off.", applies_to=SSAGAN)
    kl_weight: float = _field(1.0, "AttnGAN family: weight of the conditioning "
                              "augmentation's KL term (AttnGAN: 1).", applies_to=ATTNGAN_FAMILY)
    r1_gamma: float = _field(0.0, "AttnGAN family: R1 penalty on real images (0: off; "
                             "StyleGAN2: 10).", applies_to=ATTNGAN_FAMILY)
    r1_interval: int = _field(16, "AttnGAN family: lazy regularisation, R1 every this many "
                              "steps, scaled by it (StyleGAN2: 16).", applies_to=ATTNGAN_FAMILY)

    def validate(self):
        _check_choices(self)
        for name in ("damsm_weight", "f2r_weight", "f2f_weight", "recap_weight", "kl_weight",
                     "text_contrastive_weight", "ma_gp_weight", "g_match_weight", "r1_gamma",
                     "mode_seeking_weight", "mode_seeking_examples", "negative_images_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name} must be >= 0, got {getattr(self, name)}.")
        if self.damsm_weight_final >= 0 and self.damsm_weight == 0:
            raise ConfigError("loss.damsm_weight_final needs loss.damsm_weight > 0: a weight "
                              "of 0 builds no DAMSM term.")
        if not 0.0 <= self.damsm_augment_shift < 0.5:
            raise ConfigError(f"loss.damsm_augment_shift must be in [0, 0.5), got "
                              f"{self.damsm_augment_shift}.")
        if not 0.0 <= self.damsm_augment_zoom < 1.0:
            raise ConfigError(f"loss.damsm_augment_zoom must be in [0, 1), got "
                              f"{self.damsm_augment_zoom}.")
        _check_positive(self, "contrastive_temperature", "gamma1", "gamma2", "gamma3",
                        "ma_gp_power", "r1_interval", "ma_gp_interval")
        if self.ma_gp_interval > 1 and self.ma_gp_mode != "joint":
            raise ConfigError("loss.ma_gp_interval > 1 needs loss.ma_gp_mode=joint.")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    task: str = _field("gan", "What the experiment trains.", TASKS)
    batch_size: int = _field(24, "Global batch size.")
    steps: int = _field(1000, "Total optimisation steps of the run.")
    max_seconds: float = _field(0.0, "Time budget of the run: it stops (and checkpoints) at "
                                "the first step after this many seconds of training steps in "
                                "all sittings (evaluations not counted); lr_decay_start reads "
                                "it as the run's length if it runs out before `steps`. 0: none.")
    steps_per_epoch: int = _field(100, "Steps per Keras epoch (progress bar, logging granularity).")
    seed: int = _field(100, "Seed for weights, data order and noise (SSA-GAN: 100).")
    g_learning_rate: float = _field(1e-4, "Generator Adam learning rate.")
    d_learning_rate: float = _field(4e-4, "Discriminator Adam learning rate.")
    beta1: float = _field(0.0, "Adam beta1 for G and D.")
    beta2: float = _field(0.9, "Adam beta2 for G and D.")
    lr_decay_start: float = _field(1.0, "GAN training: from this fraction of `steps` on, both "
                                   "learning rates fall linearly to 0 at `steps` (pix2pix's "
                                   "schedule); 1.0 keeps them constant (the reference).")
    ema_decay: float = _field(0.999, "EMA decay of the generator copy; 0 disables the EMA copy.")
    damsm_learning_rate: float = _field(0.002, "DAMSM pretraining Adam learning rate.")
    damsm_beta1: float = _field(0.5, "DAMSM pretraining Adam beta1.")
    damsm_beta2: float = _field(0.999, "DAMSM pretraining Adam beta2.")
    damsm_lr_decay: float = _field(0.98, "DAMSM pretraining lr factor per epoch (floor lr/10).")
    text_grad_clip: float = _field(0.25, "Gradient norm clip on the text encoder (DAMSM).")
    checkpoint_every: int = _field(500, "Steps between checkpoints.")
    sample_every: int = _field(500, "Steps between TensorBoard sample grids.")
    max_checkpoints: int = _field(3, "Checkpoints kept.")
    eval_folds: int = _field(10, "R-precision folds after pretraining.")
    eval_candidates: int = _field(100, "Captions per R-precision query (1 true + 99).")

    def validate(self):
        _check_choices(self)
        _check_positive(self, "batch_size", "steps", "steps_per_epoch", "checkpoint_every",
                        "sample_every", "max_checkpoints", "eval_folds", "eval_candidates",
                        "g_learning_rate", "d_learning_rate", "damsm_learning_rate")
        for name in ("beta1", "beta2", "damsm_beta1", "damsm_beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"train.{name} must be in [0, 1), got {getattr(self, name)}.")
        if not 0.0 <= self.lr_decay_start <= 1.0:
            raise ConfigError(f"train.lr_decay_start must be in [0, 1], got "
                              f"{self.lr_decay_start}.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}.")
        if self.max_seconds < 0:
            raise ConfigError(f"train.max_seconds must be >= 0, got {self.max_seconds}.")


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """How and where the run executes; not part of the model's identity."""
    num_cpu_replicas: int = _field(0, "Mirror over N logical CPU devices (tests, try-outs); "
                                   "0 = all GPUs or the default strategy.")
    mixed_precision: str = _field("none", "Keras dtype policy; auto: mixed_bfloat16 where "
                                  "native, else none; mixed_float16 adds loss scaling, which "
                                  "a run without it cannot take up on resume.", MIXED_PRECISION)
    jit_compile: Any = _field(False, "XLA-compile the train step; auto: where measured faster "
                              "(the GAN step in float32 on a CPU).", (False, True, "auto"))
    damsm_dir: str = _field("", "Model dir of a DAMSM pretraining run (GAN training).")
    captioner_dir: str = _field("", "Model dir of a captioner pretraining run.")

    def validate(self):
        _check_choices(self)
        if self.num_cpu_replicas < 0:
            raise ConfigError(f"runtime.num_cpu_replicas must be >= 0, got {self.num_cpu_replicas}.")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    name: str = _field("experiment", "Experiment name (for logs).")
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    text: TextConfig = dataclasses.field(default_factory=TextConfig)
    image_encoder: ImageEncoderConfig = dataclasses.field(default_factory=ImageEncoderConfig)
    captioner: CaptionerConfig = dataclasses.field(default_factory=CaptionerConfig)
    generator: GeneratorConfig = dataclasses.field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = dataclasses.field(default_factory=DiscriminatorConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)

    def validate(self) -> "ExperimentConfig":
        for section in SECTIONS:
            getattr(self, section).validate()
        _check_applies_to_arch(self)
        if self.train.task == "captioner" and not self.runtime.damsm_dir:
            raise ConfigError("Captioner pretraining needs --damsm_dir: the DAMSM run whose "
                              "vocabulary the captions are tokenized with.")
        if self.train.task == "gan" and self.loss.recap_weight > 0 and not self.runtime.captioner_dir:
            raise ConfigError("loss.recap_weight > 0 needs --captioner_dir: a captioner run "
                              "(`python -m tf_t2i.pretrain --train_task=captioner ...`).")
        if (self.train.task == "gan" and self.loss.damsm_hard_negatives
                and not self.data.shapes_hard_negatives):
            raise ConfigError("loss.damsm_hard_negatives needs data.shapes_hard_negatives > 0: "
                              "without it the mismatched caption is another image's, which "
                              "the DAMSM term already scores as a negative.")
        if self.loss.damsm_weight_final >= 0 and self.train.lr_decay_start >= 1.0:
            raise ConfigError("loss.damsm_weight_final needs train.lr_decay_start < 1: the "
                              "weight falls with the learning rates.")
        if self.loss.negative_images_weight and self.data.dataset != "shapes":
            raise ConfigError("loss.negative_images_weight > 0 needs --data_dataset=shapes.")
        if self.train.task == "gan" and not self.runtime.damsm_dir:
            raise ConfigError("GAN training needs --damsm_dir: the model_dir of a DAMSM "
                              "pretraining run (`python -m tf_t2i.pretrain ...`), whose text "
                              "encoder conditions the generator.")
        return self

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "ExperimentConfig":
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in values:
                continue
            if f.name in SECTIONS:
                section_cls = SECTION_CLASSES[f.name]
                known = {g.name for g in dataclasses.fields(section_cls)}
                unknown = set(values[f.name]) - known
                if unknown:
                    raise ConfigError(f"Unknown keys in config section {f.name!r}: {sorted(unknown)}.")
                kwargs[f.name] = section_cls(**values[f.name])
            else:
                kwargs[f.name] = values[f.name]
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> "ExperimentConfig":
        return cls.from_dict(json.loads(text))

    def replace(self, **sections) -> "ExperimentConfig":
        """Returns a copy with whole sections or section fields replaced.

        `cfg.replace(train={"steps": 2})` updates one field of a section.
        """
        updated = {}
        for name, value in sections.items():
            if name in SECTIONS and isinstance(value, dict):
                updated[name] = dataclasses.replace(getattr(self, name), **value)
            else:
                updated[name] = value
        return dataclasses.replace(self, **updated)


SECTION_CLASSES = {
    "data": DataConfig, "text": TextConfig, "image_encoder": ImageEncoderConfig,
    "captioner": CaptionerConfig, "generator": GeneratorConfig,
    "discriminator": DiscriminatorConfig, "loss": LossConfig, "train": TrainConfig,
    "runtime": RuntimeConfig}
SECTIONS = tuple(SECTION_CLASSES)

CONFIG_FILENAME = "config.json"

# Flag `--<prefix>_<field>` sets `<section>.<field>` (tf_t2i.flags defines them).
FLAG_PREFIXES = dict({name: name for name in SECTIONS}, generator="gen", discriminator="disc",
                     runtime="")


def flag_name(section: str, field: str) -> str:
    """The command-line flag (without --) of config field `section.field`."""
    prefix = FLAG_PREFIXES[section]
    return f"{prefix}_{field}" if prefix else field


def save_config(config: ExperimentConfig, model_dir: str) -> str:
    """Writes `config.json` into model_dir atomically; returns its path."""
    return files.atomic_write_text(os.path.join(model_dir, CONFIG_FILENAME), config.to_json())


def load_config(model_dir: str) -> ExperimentConfig:
    path = os.path.join(model_dir, CONFIG_FILENAME)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No {CONFIG_FILENAME} in {model_dir!r}: is it the model_dir of "
                                "a tf_t2i training run?")
    with open(path) as f:
        return ExperimentConfig.from_json(f.read())


def architecture_options(section, arch: str) -> Dict[str, Any]:
    """The fields of a section that `arch` reads, by name (the architecture's one-of
    view of a flat section: what its builder may look at)."""
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section)
            if arch in f.metadata.get("applies_to", (arch,))}


def _check_applies_to_arch(cfg: ExperimentConfig) -> None:
    """A field that the configured architecture does not read must stay at its default:
    flags and config files stay flat, but setting `--loss_kl_weight` for SSA-GAN or
    `--gen_mapping_layers` for AttnGAN is an error instead of doing nothing."""
    arch = cfg.generator.arch
    for name in SECTIONS:
        section = getattr(cfg, name)
        defaults = type(section)()
        for f in dataclasses.fields(section):
            applies = f.metadata.get("applies_to")
            if applies and arch not in applies and \
                    getattr(section, f.name) != getattr(defaults, f.name):
                raise ConfigError(
                    f"{name}.{f.name}={getattr(section, f.name)!r} applies to "
                    f"{', '.join(applies)} only, but generator.arch={arch!r}; leave it at its "
                    f"default ({getattr(defaults, f.name)!r}).")
