"""Captioner pretraining for the re-captioning loss, and its evaluation.

`python -m tf_t2i.pretrain --train_task=captioner --damsm_dir=... --model_dir=...` trains the
captioner on real images with teacher forcing (token cross-entropy), using the DAMSM
run's vocabulary so that GAN captions and captioner targets share ids. At the end it
reports, on the test split, the teacher-forced token accuracy and, on shapes, how often
the colour and shape words of greedy captions are true of the image.
"""

from typing import Dict

import keras
import tensorflow as tf

from tf_t2i import config as config_lib
from tf_t2i.data import sources
from tf_t2i.eval.pretrained import evaluate_captioner
from tf_t2i.io import checkpoints
from tf_t2i.models import captioner as captioner_lib
from tf_t2i.models import factory
from tf_t2i.models import params
from tf_t2i.training import run_dirs
from tf_t2i.training import runner
from tf_t2i.training import runtime

RESULTS_FILENAME = "captioner_eval.json"


class CaptionerTrainer(keras.Model):
    """Teacher-forced training of a `Captioner` on (real image, caption) pairs."""

    def __init__(self, captioner, **kwargs):
        super().__init__(**kwargs)
        self.captioner = captioner
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="token_accuracy")

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def _forward(self, batch, training):
        ids = batch["caption_ids"]
        logits = self.captioner(batch["real_images"],
                                captioner_lib.shift_right(ids, self.captioner.bos_id),
                                training=training)
        targets = captioner_lib.append_eos(ids, self.captioner.eos_id)
        return logits, targets

    def _track(self, per_example, logits, targets):
        mask = tf.not_equal(targets, 0)
        correct = tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                           tf.cast(targets, tf.int32))
        self.loss_tracker.update_state(per_example)
        self.accuracy_tracker.update_state(tf.cast(tf.boolean_mask(correct, mask), tf.float32))
        return runtime.fit_logs({m.name: m.result() for m in self.metrics})

    def train_step(self, batch):
        global_batch = tf.shape(batch["caption_ids"])[0] * runtime.num_replicas()
        with tf.GradientTape() as tape:
            logits, targets = self._forward(batch, training=True)
            per_example = captioner_lib.caption_cross_entropy(logits, targets)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
        variables = self.captioner.trainable_variables
        # The image encoder's global-code branch is unused here: it gets no gradient.
        pairs = [(g, v) for g, v in zip(tape.gradient(loss, variables), variables)
                 if g is not None]
        self.optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
        return self._track(per_example, logits, targets)

    def test_step(self, batch):
        logits, targets = self._forward(batch, training=False)
        return self._track(captioner_lib.caption_cross_entropy(logits, targets), logits,
                           targets)


def build_captioner(cfg: config_lib.ExperimentConfig, vocab_size: int):
    captioner = factory.build_captioner(cfg, vocab_size)
    size, t = cfg.data.image_size, cfg.data.max_caption_length
    captioner(tf.zeros([1, size, size, 3]), tf.zeros([1, t + 1], tf.int32), training=False)
    return captioner


def restore_captioner(cfg: config_lib.ExperimentConfig, vocab_size: int):
    """Builds the captioner of `cfg.runtime.captioner_dir` and loads its weights."""
    directory = cfg.runtime.captioner_dir
    path = run_dirs.check_captioner_dir(directory)
    cap_cfg = config_lib.load_config(directory)
    captioner = build_captioner(cap_cfg, vocab_size)
    # Only the captioner is read (not its optimizer); every captioner weight must match.
    checkpoints.make_checkpoint(captioner=captioner).restore(path).expect_partial() \
        .assert_existing_objects_matched()
    captioner.trainable = False
    return captioner


class CaptionerComponents:
    """The captioner, its teacher-forcing trainer and optimizer, and the checkpoint."""

    def __init__(self, cfg: config_lib.ExperimentConfig, vocab_size: int, model_dir: str):
        self.captioner = build_captioner(cfg, vocab_size)
        self.trainer = CaptionerTrainer(self.captioner)
        self.optimizer = keras.optimizers.Adam(cfg.captioner.learning_rate)
        self.trainer.compile(optimizer=self.optimizer, jit_compile=runtime.use_xla(cfg))
        self.optimizer.build(self.captioner.trainable_variables)
        self.checkpoint = checkpoints.CheckpointHandle(
            model_dir, cfg.train.max_checkpoints, captioner=self.captioner,
            optimizer=self.optimizer)

    def parameter_counts(self) -> Dict[str, int]:
        return {"captioner": params.count_trainable_parameters(self.captioner)}


class CaptionerTask(runner.Task):
    """Captioner pretraining on real images, with the DAMSM run's vocabulary."""

    name = "Captioner"
    results_filename = RESULTS_FILENAME

    def __init__(self, cfg: config_lib.ExperimentConfig):
        # The DAMSM run's caption length, so that captioner targets are GAN captions.
        damsm_cfg = config_lib.load_config(cfg.runtime.damsm_dir)
        super().__init__(cfg.replace(
            data={"max_caption_length": damsm_cfg.data.max_caption_length}))

    def prepare(self, model_dir, train_source):
        return runner.adopt_vocabulary(self.cfg.runtime.damsm_dir, model_dir,
                                       self.cfg.data.max_caption_length)

    def build(self, vocab_size, model_dir):
        parts = CaptionerComponents(self.cfg, vocab_size, model_dir)
        return runner.Built(parts.trainer, parts.optimizer.iterations, parts.checkpoint, parts)

    def evaluate(self, built, tokenizer):
        test_source = sources.load_source(self.cfg.data, "test")
        results = evaluate_captioner(built.parts.captioner, tokenizer, test_source, self.cfg)
        runtime.log_info("Captioner on the test split: " + ", ".join(
            f"{k}={v:.4f}" for k, v in results.items() if isinstance(v, float)))
        return results


def run_captioner_pretraining(cfg: config_lib.ExperimentConfig, model_dir: str,
                              strategy=None, verbose: int = 1) -> Dict:
    """Trains (or resumes) the captioner to cfg.train.steps, then evaluates it."""
    return runner.run(CaptionerTask(cfg), model_dir, strategy, verbose).results
