"""Can the SSA-GAN discriminator's backbone tell the shapes apart? Trains it as a classifier.

  python tools/probe_discriminator.py --ndf=16 --residual_gate_init=0 --steps=1500
  python tools/probe_discriminator.py --ndf=16 --residual_gate_init=1 --steps=1500

A GAN can only teach its generator what its discriminator can see. This trains the
discriminator's image backbone (`SSAGANDiscriminator`, as `configs/shapes_ssagan.cfg`
builds it) plus one linear layer, supervised, to name the shape of single-object shapes
images, and prints the test accuracy (chance: 1/6) and where its residual gates ended.
It chose the shapes config's discriminator gates (README, "Shapes: what the models
learn"): at ndf 16 and 1,500 steps, gates starting at 0 (the reference) reach about 0.96,
gates starting at 1 stay at chance.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from tf_t2i import config as config_lib  # pylint: disable=g-import-not-at-top
from tf_t2i.data import sources  # pylint: disable=g-import-not-at-top
from tf_t2i.models import ssagan_discriminator  # pylint: disable=g-import-not-at-top


def single_object_shapes(source):
    """Images in [-1, 1] and shape labels of the one-object images of a split."""
    single = np.asarray(source.attributes["num_objects"]) == 1
    images = source.images[single].astype(np.float32) / 127.5 - 1.0
    return images, np.asarray(source.attributes["shape"])[single, 0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ndf", type=int, default=16)
    parser.add_argument("--residual_gate_init", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch_size", type=int, default=48)
    parser.add_argument("--learning_rate", type=float, default=2e-3,
                        help="Adam (beta1 0, beta2 0.9), the shapes config's D rate.")
    args = parser.parse_args()

    data = config_lib.ExperimentConfig().data  # the built-in shapes dataset at 64 px
    x_train, y_train = single_object_shapes(sources.load_source(data, "train"))
    x_test, y_test = single_object_shapes(sources.load_source(data, "test"))
    keras.utils.set_random_seed(0)
    backbone = ssagan_discriminator.SSAGANDiscriminator(
        ndf=args.ndf, image_size=data.image_size, residual_gate_init=args.residual_gate_init)
    backbone.build()
    features = int(np.prod(backbone(x_train[:1]).shape[1:]))
    head = keras.layers.Dense(6)
    head.build([None, features])
    variables = backbone.trainable_variables + head.trainable_variables
    optimizer = keras.optimizers.Adam(args.learning_rate, beta_1=0.0, beta_2=0.9)

    def logits(images):
        return head(tf.reshape(backbone(images), [tf.shape(images)[0], features]))

    @tf.function
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                labels, logits(images), from_logits=True))
        grads = tape.gradient(loss, variables)
        # Unused branches (the sentence path of D's head) get no gradient.
        optimizer.apply(*zip(*[(g, v) for g, v in zip(grads, variables) if g is not None]))
        return loss

    rng = np.random.default_rng(0)
    started = time.time()
    for _ in range(args.steps):
        batch = rng.integers(0, len(x_train), args.batch_size)
        train_step(x_train[batch], y_train[batch])
    predictions = np.concatenate([logits(x_test[i:i + 200]).numpy().argmax(1)
                                  for i in range(0, len(x_test), 200)])
    gates = [round(float(block.gamma.numpy()), 3) for block in backbone.blocks]
    print(f"ndf={args.ndf} residual_gate_init={args.residual_gate_init} steps={args.steps}: "
          f"shape test accuracy {(predictions == y_test).mean():.3f} (chance 0.167) on "
          f"{len(y_test)} one-object test images; gates at the end {gates}; "
          f"{time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
