"""Config -> model constructors: the only module under models/ that reads config objects."""

from tf_t2i import config as config_lib
from tf_t2i.models.captioner import Captioner
from tf_t2i.models.image_encoder import DAMSMImageEncoder
from tf_t2i.models.ssagan import SSAGANDiscriminator, SSAGANGenerator
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


def build_generator(cfg: config_lib.ExperimentConfig, name: str = "generator") -> SSAGANGenerator:
    return SSAGANGenerator(ngf=cfg.generator.ngf, z_dim=cfg.generator.z_dim,
                           sentence_dim=cfg.text.hidden_dim, image_size=cfg.data.image_size,
                           name=name)


def build_discriminator(cfg: config_lib.ExperimentConfig) -> SSAGANDiscriminator:
    return SSAGANDiscriminator(ndf=cfg.discriminator.ndf, sentence_dim=cfg.text.hidden_dim,
                               image_size=cfg.data.image_size, name="discriminator")


def build_captioner(cfg: config_lib.ExperimentConfig, vocab_size: int) -> Captioner:
    c = cfg.captioner
    return Captioner(vocab_size=vocab_size, max_length=cfg.data.max_caption_length,
                     backbone=c.backbone, embed_dim=c.embed_dim, num_layers=c.num_layers,
                     num_heads=c.num_heads, intermediate_dim=c.intermediate_dim,
                     dropout=c.dropout, small_cnn_width=c.small_cnn_width,
                     weights_path=cfg.image_encoder.weights_path or None, name="captioner")
