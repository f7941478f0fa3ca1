"""What a GAN step shares between its parts, and the two kinds of parts.

A training step (`training/gan.py`) encodes the captions, generates once, and hands a
`StepRecord` of that to

* one `AdversarialScheme`: owns the discriminators, updates them (its D step) and gives
  the generator's adversarial terms (SSA-GAN's hinge + MA-GP, AttnGAN's per-stage BCE);
* any number of `GeneratorTerm`s: each adds `weight * value` to the generator loss (the
  paper's DAMSM, F2R, F2F and re-captioning terms, the mode-seeking regulariser).

Every value is per example, float32 [B]; the step reduces it with the global batch size.
Schemes and terms are registered by name (`objectives/registry.py`), so a new one is one
new module and one line in `objectives/__init__.py`.
"""

from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import tensorflow as tf

from tf_t2i.models import interface
from tf_t2i.training import loss_scaling


class EncodedCaption(NamedTuple):
    """A caption batch as the frozen DAMSM text encoder sees it.

    Attributes:
      ids: int32 [B, T] token ids, 0-padded.
      words: float32 [B, T, D] word features.
      sentence: float32 [B, D] sentence embeddings.
      mask: bool [B, T], True at real words.
    """
    ids: tf.Tensor
    words: tf.Tensor
    sentence: tf.Tensor
    mask: tf.Tensor


class StepRecord:
    """What one step generated, read by the adversarial scheme and every term.

    Attributes:
      batch: the input batch (real_images, z, caption ids, class ids ...).
      captions: the encoded captions the step generated from: the batch's caption, then
        a second caption of each image when a term asks for it (F2F).
      mismatched: the encoded mismatched caption of each image (D's wrong captions).
      generated: one `interface.Generated` per caption, from the same z.
      step: the global step before this update (G updates so far).
    """

    def __init__(self, batch: Dict[str, tf.Tensor], captions: Sequence[EncodedCaption],
                 mismatched: EncodedCaption, generated: Sequence[interface.Generated],
                 step: tf.Tensor, generator, image_encoder=None):
        self.batch = batch
        self.captions = list(captions)
        self.mismatched = mismatched
        self.generated = list(generated)
        self.step = step
        self._generator = generator
        self._image_encoder = image_encoder
        self._fake_features: Dict[int, Tuple[tf.Tensor, tf.Tensor]] = {}
        self._real_code: Optional[tf.Tensor] = None

    @property
    def real_images(self) -> tf.Tensor:
        return self.batch["real_images"]

    @property
    def z(self) -> tf.Tensor:
        return self.batch["z"]

    @property
    def fakes(self) -> List[tf.Tensor]:
        """The final image of each caption's generation."""
        return [g.final for g in self.generated]

    def fake_features(self, index: int = 0) -> Tuple[tf.Tensor, tf.Tensor]:
        """(regions, code) of the image encoder on fake `index`, computed once per step."""
        if index not in self._fake_features:
            self._fake_features[index] = self._image_encoder(self.fakes[index], training=False)
        return self._fake_features[index]

    def encode(self, images: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """(regions, code) of the image encoder on other images (moved fakes); not cached."""
        return self._image_encoder(images, training=False)

    def real_code(self) -> tf.Tensor:
        """The image encoder's code of the real images (no gradient), computed once."""
        if self._real_code is None:
            _, code = self._image_encoder(self.real_images, training=False)
            self._real_code = tf.stop_gradient(code)
        return self._real_code

    def generate(self, z: tf.Tensor, caption: EncodedCaption) -> interface.Generated:
        """Another generation in training mode, for terms that need more images."""
        return interface.generate(self._generator, z, caption.sentence, caption.words,
                                  caption.mask, training=True)


Average = Callable[[tf.Tensor], tf.Tensor]


class AdversarialScheme:
    """One GAN family's adversarial game: its discriminators, D step and G terms.

    Subclasses set `name` and `log_names` (the D-side and G-side keys they log, in order)
    and implement `discriminator_step` and `generator_terms`.
    """

    name: str = ""

    def __init__(self, discriminators: Sequence):
        self.discriminators = list(discriminators)

    @classmethod
    def from_config(cls, discriminators: Sequence, loss_cfg) -> "AdversarialScheme":
        """The scheme around `discriminators` with its constants from the loss config."""
        raise NotImplementedError

    @property
    def log_names(self) -> Tuple[List[str], List[str]]:
        """(D-side keys besides d_loss and d_adv, G-side keys besides g_loss)."""
        raise NotImplementedError

    @property
    def trainable_variables(self) -> List[tf.Variable]:
        return [v for d in self.discriminators for v in d.trainable_variables]

    def discriminator_step(self, record: StepRecord, optimizer, average: Average,
                           loss_scale: loss_scaling.LossScale = loss_scaling.NONE
                           ) -> Dict[str, tf.Tensor]:
        """Updates the discriminators through `loss_scale.minimize` (D's loss scale, also
        for the backward pass inside a gradient penalty); returns per-example "d_adv" and
        any penalty."""
        raise NotImplementedError

    def generator_terms(self, record: StepRecord) -> Dict[str, Tuple[float, tf.Tensor]]:
        """The generator's adversarial terms against the updated discriminators:
        {log key: (weight, per-example value)}; "g_adv" has weight 1."""
        raise NotImplementedError


class GeneratorTerm:
    """One weighted term of the generator loss, computed from the step's record.

    Subclasses set `name` (the log key, "g_..."), `weight_field` (the `LossConfig` field
    holding its weight) and `captions_needed` (2 when it compares two captions of one
    image), and implement `__call__`. `from_config` builds the term; a weight of 0 builds
    nothing, so the term costs nothing.
    """

    name: str = ""
    weight_field: str = ""
    captions_needed: int = 1
    needs_image_encoder: bool = False

    def __init__(self, weight: float):
        self.weight = weight

    @classmethod
    def from_config(cls, loss_cfg, models) -> "GeneratorTerm":
        """Builds the term from the loss config and the run's models (a namespace with
        image_encoder, captioner, projection_head; any may be None)."""
        return cls(getattr(loss_cfg, cls.weight_field))

    def current_weight(self):
        """This step's weight: the float, or the value of a schedule set in its place
        (`schedules.FallingWeight`, called inside the step)."""
        return self.weight() if callable(self.weight) else self.weight

    @property
    def trainable_variables(self) -> List[tf.Variable]:
        """Variables the G optimizer trains with the generator (a projection head)."""
        return []

    def __call__(self, record: StepRecord) -> tf.Tensor:
        raise NotImplementedError
