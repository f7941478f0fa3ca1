"""TFDS builder for the procedural captioned shapes (`shapes_t2i`).

Nothing is downloaded: the examples come from `tf_t2i.data.shapes`, a pure
function of the seed and the example index, so the same config always gives
the same records. Importing this module registers the builder:

  import tensorflow_datasets as tfds
  import tf_t2i.data.shapes_tfds  # Registers "shapes_t2i".

  ds = tfds.load("shapes_t2i/64px", split="train", data_dir="/tmp/tfds")

Configs `64px`, `128px` and `256px` hold 10,000 train and 2,000 test examples
with seed 0. Other sizes or seeds go through `make_builder`, which names a
custom config after its parameters so two settings never share a directory.

Shapes have no classes: `class_id` is always -1, which the data pipeline reads
as "no class" (a mismatched caption then only needs another image).
"""

import dataclasses
import io
import os
import time

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import tqdm_utils
from PIL import Image

from tf_t2i.data import shapes
from tf_t2i.io import files

VERSION = tfds.core.Version("1.0.0")
NO_CLASS = -1
STANDARD_IMAGE_SIZES = (64, 128, 256)
DEFAULT_TRAIN_SIZE = 10_000
DEFAULT_TEST_SIZE = 2_000
DEFAULT_SEED = 0
# zlib level 1 makes files ~10% larger than level 6 but encodes several times
# faster, and PNG stays lossless either way.
_PNG_COMPRESS_LEVEL = 1


@dataclasses.dataclass(eq=False)
class ShapesT2IConfig(tfds.core.BuilderConfig):
    """Builder config for `shapes_t2i`.

    Attributes:
      image_size: side of the square images in pixels (at least 16).
      train_size: number of train examples.
      test_size: number of test examples.
      seed: dataset seed; with the sizes it fixes every record.
    """
    image_size: int = 64
    train_size: int = DEFAULT_TRAIN_SIZE
    test_size: int = DEFAULT_TEST_SIZE
    seed: int = DEFAULT_SEED

    def __post_init__(self):
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16, got {self.image_size}.")
        for field in ("train_size", "test_size"):
            value = getattr(self, field)
            if not 0 < value <= shapes.SPLIT_CAPACITY:
                raise ValueError(f"{field} must be in [1, {shapes.SPLIT_CAPACITY}], got {value}.")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}.")
        if self.version is None:
            self.version = VERSION


def _describe(image_size: int, train_size: int, test_size: int, seed: int) -> str:
    return (f"{image_size}x{image_size} px, {train_size} train and {test_size} test "
            f"examples, seed {seed}.")


class ShapesT2I(tfds.core.GeneratorBasedBuilder):
    """Procedural captioned shapes: 1-2 coloured shapes per image, 10 captions each."""

    name = "shapes_t2i"
    VERSION = VERSION
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        ShapesT2IConfig(name=f"{size}px", image_size=size, version=VERSION,
                        description=_describe(size, DEFAULT_TRAIN_SIZE, DEFAULT_TEST_SIZE,
                                              DEFAULT_SEED))
        for size in STANDARD_IMAGE_SIZES
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        per_object = tfds.features.Tensor(shape=(shapes.MAX_OBJECTS,), dtype=np.int64)
        attributes = {field: per_object for field in shapes.ATTRIBUTE_FIELDS}
        attributes["num_objects"] = np.int64
        attributes["background"] = np.int64
        return self.dataset_info_from_configs(
            description=(
                "Procedural text-to-image data: one or two objects with a shape, colour, "
                "size and position on a textured background, and 10 captions per image "
                "from varied templates and synonyms. Attribute ids index SHAPES, COLORS, "
                "SIZES, POSITIONS and BACKGROUNDS in tf_t2i.data.shapes; -1 marks an "
                "absent second object. class_id is always -1 (no classes)."),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 3), dtype=np.uint8,
                                             encoding_format="png"),
                "captions": tfds.features.Sequence(tfds.features.Text(),
                                                   length=shapes.NUM_CAPTIONS),
                "image_id": np.int64,
                "class_id": np.int64,
                "attributes": tfds.features.FeaturesDict(attributes),
            }),
            supervised_keys=None,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Procedural: nothing to download.
        config = self.builder_config
        return {
            "train": self._generate_examples("train", config.train_size),
            "test": self._generate_examples("test", config.test_size),
        }

    def _generate_examples(self, split: str, num_examples: int):
        config = self.builder_config
        for example in shapes.generate_split(split, num_examples, image_size=config.image_size,
                                             seed=config.seed):
            # PIL's PNG encoder is faster than TFDS' TF-graph encoder for small images.
            buffer = io.BytesIO()
            Image.fromarray(example.image).save(buffer, format="PNG",
                                                compress_level=_PNG_COMPRESS_LEVEL)
            yield str(example.image_id), {
                "image": buffer.getvalue(),
                "captions": list(example.captions),
                "image_id": example.image_id,
                "class_id": NO_CLASS,
                "attributes": example.attributes.to_dict(),
            }


def config_name(image_size: int, train_size: int = DEFAULT_TRAIN_SIZE,
                test_size: int = DEFAULT_TEST_SIZE, seed: int = DEFAULT_SEED) -> str:
    """Returns the config name for these parameters.

    Standard parameters give the registered names (`64px`, `128px`, `256px`);
    anything else gives a name that spells out every parameter, such as
    `32px_train20_test10_seed3`.
    """
    if (image_size in STANDARD_IMAGE_SIZES and train_size == DEFAULT_TRAIN_SIZE
        and test_size == DEFAULT_TEST_SIZE and seed == DEFAULT_SEED):
        return f"{image_size}px"
    return f"{image_size}px_train{train_size}_test{test_size}_seed{seed}"


def make_builder(image_size: int = 64, train_size: int = DEFAULT_TRAIN_SIZE,
                 test_size: int = DEFAULT_TEST_SIZE, seed: int = DEFAULT_SEED,
                 data_dir: str | None = None, prepare: bool = True) -> ShapesT2I:
    """Returns a `shapes_t2i` builder for these parameters, prepared by default.

    Preparing an already prepared dataset only reads its metadata, so this is
    cheap to call on every run.

    Args:
      image_size: side of the square images in pixels.
      train_size: number of train examples.
      test_size: number of test examples.
      seed: dataset seed.
      data_dir: TFDS data directory; None for TFDS' default (~/tensorflow_datasets).
      prepare: whether to generate the records if they are not there yet.

    Returns:
      The builder; read it with `builder.as_dataset(split="train")`.
    """
    name = config_name(image_size, train_size, test_size, seed)
    if name in ShapesT2I.builder_configs:
        config = name
    else:
        config = ShapesT2IConfig(name=name, image_size=image_size, train_size=train_size,
                                 test_size=test_size, seed=seed,
                                 description=_describe(image_size, train_size, test_size, seed))
    builder = ShapesT2I(config=config, data_dir=data_dir)
    if prepare:
        # Two runs started at once on a fresh machine would both generate the records,
        # and the second to finish would fail to move its copy into place.
        with files.interprocess_lock(os.path.join(os.path.dirname(builder.data_dir),
                                                  ".prepare.lock")):
            # Made again under the lock: a builder reads what is on disk when it is made,
            # and another process may have written the records meanwhile.
            builder = ShapesT2I(config=config, data_dir=data_dir)
            if os.path.exists(os.path.join(builder.data_dir, "dataset_info.json")):
                return builder  # prepared already: nothing to say
            print(f"Generating the shapes dataset {name} ({train_size:,} + {test_size:,} "
                  f"images) into {builder.data_dir} (first use only)...", flush=True)
            started = time.time()
            # One line instead of TFDS's progress bars (a dozen bars for a few seconds).
            was_active = getattr(tqdm_utils, "_active", True)
            tfds.display_progress_bar(False)
            try:
                builder.download_and_prepare()
            finally:
                tfds.display_progress_bar(was_active)
            print(f"Generated the shapes dataset in {time.time() - started:.0f}s.", flush=True)
    return builder
