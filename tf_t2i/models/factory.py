"""Config -> model constructors: the only module under models/ that reads config objects."""

from typing import List

from tf_t2i import config as config_lib
from tf_t2i.models import attngan_discriminator
from tf_t2i.models import attngan_generator
from tf_t2i.models import style_attngan_discriminator
from tf_t2i.models import style_attngan_generator
from tf_t2i.models.captioner import Captioner
from tf_t2i.models.image_encoder import DAMSMImageEncoder
from tf_t2i.models.ssagan_discriminator import SSAGANDiscriminator
from tf_t2i.models.ssagan_generator import SSAGANGenerator
from tf_t2i.models.text_encoder import DAMSMTextEncoder


def build_text_encoder(cfg: config_lib.ExperimentConfig, vocab_size: int) -> DAMSMTextEncoder:
    return DAMSMTextEncoder(vocab_size=vocab_size, embedding_dim=cfg.text.embedding_dim,
                            hidden_dim=cfg.text.hidden_dim, dropout=cfg.text.dropout,
                            name="text_encoder")


def build_image_encoder(cfg: config_lib.ExperimentConfig) -> DAMSMImageEncoder:
    return DAMSMImageEncoder(backbone=cfg.image_encoder.backbone,
                             embedding_dim=cfg.text.hidden_dim,
                             weights_path=cfg.image_encoder.weights_path or None,
                             small_cnn_width=cfg.image_encoder.small_cnn_width,
                             name="image_encoder")


def build_generator(cfg: config_lib.ExperimentConfig, name: str = "generator"):
    g = cfg.generator
    common = dict(ngf=g.ngf, z_dim=g.z_dim, sentence_dim=cfg.text.hidden_dim,
                  image_size=cfg.data.image_size, name=name)
    if g.arch == "ssagan":
        return SSAGANGenerator(residual_gate_init=g.residual_gate_init,
                               noise_in_affine=g.noise_in_affine,
                               sentence_in_fc=g.sentence_in_fc,
                               word_attention_max_size=g.word_attention_max_size,
                               word_attention_coords=g.word_attention_coords,
                               mask_channels=g.mask_channels, low_res_ngf=g.low_res_ngf,
                               low_res_max_size=g.low_res_max_size, **common)
    if g.arch == "attngan":
        return attngan_generator.AttnGANGenerator(condition_dim=g.condition_dim,
                                                  num_residual=g.residual_blocks, **common)
    style_class = {"style1_attngan": style_attngan_generator.Style1AttnGANGenerator,
                   "style2_attngan": style_attngan_generator.Style2AttnGANGenerator}[g.arch]
    # Style-AttnGAN: W_DIM = Z_DIM.
    return style_class(condition_dim=g.condition_dim, w_dim=g.z_dim,
                       mapping_layers=g.mapping_layers, mixing_probability=g.mixing_prob,
                       truncation_psi=g.truncation_psi, **common)


def build_discriminators(cfg: config_lib.ExperimentConfig) -> List:
    """The discriminators of the configured architecture: one (SSA-GAN) or one per stage."""
    ndf, dim, size = cfg.discriminator.ndf, cfg.text.hidden_dim, cfg.data.image_size
    arch = cfg.generator.arch
    if arch == "ssagan":
        return [SSAGANDiscriminator(ndf=ndf, sentence_dim=dim, image_size=size,
                                    residual_gate_init=cfg.discriminator.residual_gate_init,
                                    word_logits=cfg.discriminator.word_logits,
                                    word_region_size=cfg.discriminator.word_region_size,
                                    name="discriminator")]
    if arch == "attngan":
        return attngan_discriminator.build_attngan_discriminators(
            ndf=ndf, sentence_dim=dim, image_size=size)
    return style_attngan_discriminator.build_style_discriminators(
        ndf=ndf, sentence_dim=dim, image_size=size,
        style_version=1 if arch == "style1_attngan" else 2)


def adversarial_loss(cfg: config_lib.ExperimentConfig) -> str:
    """SSA-GAN trains with hinge + MA-GP; the AttnGAN family with AttnGAN's BCE."""
    return "hinge" if cfg.generator.arch == "ssagan" else "bce"


def build_captioner(cfg: config_lib.ExperimentConfig, vocab_size: int) -> Captioner:
    c = cfg.captioner
    return Captioner(vocab_size=vocab_size, max_length=cfg.data.max_caption_length,
                     backbone=c.backbone, embed_dim=c.embed_dim, num_layers=c.num_layers,
                     num_heads=c.num_heads, intermediate_dim=c.intermediate_dim,
                     dropout=c.dropout, small_cnn_width=c.small_cnn_width,
                     weights_path=cfg.image_encoder.weights_path or None, name="captioner")
