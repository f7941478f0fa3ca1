"""The registered metrics: each adapts a metric library to the evaluation context.

`fid` (TF 2015 Inception pool3, `fid` + `inception`), `is` (`inception_score`),
`r_precision` (the run's DAMSM encoders, `r_precision`), and on shapes
`attribute_accuracy`, `shapes_fid` (the attribute classifier, `attributes`),
`diversity` (`diversity`) and `f2f_consistency` (`consistency`). Each is a `prepare`
step, which loads the networks it needs into the context or raises
`MetricUnavailableError`, and a `compute` step over the streams
`context.generate_and_collect` filled. Importing this module registers them.
"""

import os
from typing import Dict, Tuple

import numpy as np
import tensorflow as tf

from tf_t2i.data import shapes_captions
from tf_t2i.data import sources
from tf_t2i.eval import attributes as attributes_lib
from tf_t2i.eval import consistency as consistency_lib
from tf_t2i.eval import context
from tf_t2i.eval import diversity as diversity_lib
from tf_t2i.eval import fid as fid_lib
from tf_t2i.eval import inception as inception_lib
from tf_t2i.eval import inception_score as is_lib
from tf_t2i.eval import r_precision as r_precision_lib


# --- Preparation: networks each metric needs. -----------------------------------------
def _load_once(ctx: context.EvalContext, key: str, load, errors) -> None:
    """Keeps `load()` as `ctx.resources[key]`; an error of `errors` makes it unavailable."""
    if key in ctx.resources:
        return
    try:
        ctx.resources[key] = load()
    except errors as e:
        raise context.MetricUnavailableError(str(e)) from e


def _prepare_inception(ctx: context.EvalContext) -> None:
    options = ctx.options
    _load_once(ctx, "inception",
               load=lambda: inception_lib.fid_inception(options.inception_weights,
                                                        options.batch_size),
               errors=inception_lib.InceptionWeightsError)


def _prepare_is(ctx: context.EvalContext) -> None:
    options = ctx.options
    _load_once(ctx, "is_classifier",
               load=lambda: is_lib.load_classifier(options.is_classifier, options.batch_size),
               errors=(is_lib.ClassifierUnavailableError, ValueError))


def _prepare_damsm(ctx: context.EvalContext) -> None:
    # The run's own DAMSM encoders are part of every GAN checkpoint; a GAN model trained
    # without the DAMSM term (seen by the training callback) holds no image encoder.
    if ctx.parts.image_encoder is None:
        raise context.MetricUnavailableError(
            "r_precision needs the run's DAMSM image encoder.")


def _prepare_attributes(ctx: context.EvalContext) -> None:
    if "attribute_classifier" in ctx.resources:
        return
    if ctx.cfg.data.dataset != "shapes":
        raise context.MetricUnavailableError(
            f"the attribute classifier's metrics (attribute_accuracy, shapes_fid, diversity, "
            f"f2f_consistency) need the shapes dataset; this run uses "
            f"{ctx.cfg.data.dataset!r}.")
    ctx.resources["attribute_classifier"] = attributes_lib.load_or_train_classifier(
        ctx.cfg.data, test_source=ctx.test_source, epochs=ctx.options.classifier_epochs,
        extra_images=ctx.options.classifier_extra_images, verbose=2, log=ctx.log)


# --- Real-image statistics. ----------------------------------------------------------
def _real_stats_path(ctx: context.EvalContext) -> str:
    d = ctx.cfg.data
    key = f"{d.dataset}-px{d.image_size}-test"
    if d.dataset == "shapes":
        key += f"-seed{d.shapes_seed}-n{d.shapes_test_size}"
    return os.path.join(inception_lib.cache_dir(), "fid_stats", f"{key}-inception2015.npz")


def real_inception_statistics(ctx: context.EvalContext) -> Tuple[np.ndarray, np.ndarray, str]:
    """(mu, sigma, source) of the real test images: --real_stats, the cache, or computed."""
    if ctx.options.real_stats:
        mu, sigma = fid_lib.load_statistics(ctx.options.real_stats, inception_lib.FEATURE_DIM)
        return mu, sigma, ctx.options.real_stats
    path = _real_stats_path(ctx)
    if os.path.exists(path):
        mu, sigma = fid_lib.load_statistics(path)
        return mu, sigma, path
    images = ctx.real_images()
    ctx.log(f"Computing Inception statistics of {len(images)} real test images (cached at "
            f"{path}).")
    features = ctx.resources["inception"](images)
    mu, sigma = fid_lib.feature_statistics(features)
    fid_lib.save_statistics(path, mu, sigma, num_images=np.int64(len(images)))
    return mu, sigma, path


# --- The metrics. --------------------------------------------------------------------
@context.register_metric("fid", ["inception"], _prepare_inception,
                         "FID on TF 2015 Inception pool3 against the real test images")
def _fid(ctx: context.EvalContext) -> Dict:
    mu_real, sigma_real, source = real_inception_statistics(ctx)
    mu, sigma = fid_lib.feature_statistics(ctx.streams["inception"])
    terms = fid_lib.frechet_terms(mu, sigma, mu_real, sigma_real)
    out = {"value": terms["mean"] + terms["covariance"], "std": None, "real_stats": source,
           "mean_term": terms["mean"], "covariance_term": terms["covariance"]}
    if ctx.num_images < inception_lib.FEATURE_DIM:
        out["note"] = (f"{ctx.num_images} < {inception_lib.FEATURE_DIM} images: the covariance "
                       "is rank-deficient; not comparable with published FID.")
    return out


@context.register_metric("is", ["is_probs"], _prepare_is,
                         "Inception Score (improved-gan formula, contiguous splits)")
def _inception_score(ctx: context.EvalContext) -> Dict:
    mean, std = is_lib.inception_score(ctx.streams["is_probs"], ctx.options.is_splits)
    return {"value": mean, "std": std, "splits": ctx.options.is_splits}


@context.register_metric(
    "r_precision", ["damsm"], _prepare_damsm,
    "R-precision with the run's DAMSM encoders (1 true vs 99 mismatched captions)")
def _r_precision(ctx: context.EvalContext) -> Dict:
    codes, sentences = ctx.streams["damsm_codes"], ctx.streams["damsm_sentences"]
    source = ctx.test_source
    groups = r_precision_lib.mismatched_groups(source.class_ids[ctx.draw_images],
                                               source.image_ids[ctx.draw_images])
    rng = np.random.default_rng([ctx.options.seed, 3])
    mismatched = r_precision_lib.sample_mismatched(groups, ctx.options.r_precision_mismatched,
                                                   rng)
    mean, std = r_precision_lib.r_precision_indexed(codes, sentences, mismatched,
                                                    folds=ctx.options.r_precision_folds)
    return {"value": mean, "std": std, "folds": ctx.options.r_precision_folds}


def _real_reading(ctx: context.EvalContext) -> attributes_lib.Reading:
    if "real_reading" not in ctx.resources:
        ctx.resources["real_reading"] = ctx.resources["attribute_classifier"](ctx.real_images())
    return ctx.resources["real_reading"]


@context.register_metric("attribute_accuracy", ["attributes"], _prepare_attributes,
                         "shapes: share of caption-named attributes the image shows")
def _attribute_accuracy(ctx: context.EvalContext) -> Dict:
    named = [shapes_captions.parse_caption(ctx.caption_text(k)) for k in range(ctx.num_images)]
    judgements = attributes_lib.judge(ctx.streams["attributes"], named)
    summary = attributes_lib.summarize_judgements(judgements)
    real_draws = _real_reading(ctx).take(ctx.draw_images)
    reference = attributes_lib.summarize_judgements(attributes_lib.judge(real_draws, named))
    classifier = ctx.resources["attribute_classifier"]
    num_objects = np.asarray(ctx.test_source.attributes["num_objects"])[ctx.draw_images]
    return {"value": summary.pop("attribute_accuracy"), "std": None, "per_attribute": summary,
            "breakdown": attributes_lib.breakdown(judgements, named, num_objects,
                                                  ctx.streams["attributes"]),
            "real_images": reference["attribute_accuracy"],
            "classifier_test_accuracy": classifier.accuracy}


@context.register_metric("shapes_fid", ["attributes"], _prepare_attributes,
                         "shapes: FID in the attribute classifier's 256-d feature space")
def _shapes_fid(ctx: context.EvalContext) -> Dict:
    real = _real_reading(ctx)
    mu, sigma = fid_lib.feature_statistics(ctx.streams["attributes"].features)
    mu_real, sigma_real = fid_lib.feature_statistics(real.features)
    terms = fid_lib.frechet_terms(mu, sigma, mu_real, sigma_real)
    # The total variance of each set: a generator whose images vary too little shows a
    # smaller trace than the real images'; one that varies the wrong way, a covariance
    # term out of proportion to the two traces.
    return {"value": terms["mean"] + terms["covariance"], "std": None,
            "mean_term": terms["mean"], "covariance_term": terms["covariance"],
            "trace": float(np.trace(sigma)), "real_trace": float(np.trace(sigma_real)),
            "real_images": int(len(real.features)),
            "real_vs_real": _shapes_fid_real_vs_real(ctx, real)}


def _shapes_fid_real_vs_real(ctx: context.EvalContext, real: attributes_lib.Reading) -> float:
    """shapes-FID of as many real train images as were generated against the test split:
    the value a perfect generator would get with this sample size."""
    key = ("shapes_fid_real_vs_real", ctx.num_images)
    if key not in ctx.resources:
        train = sources.load_source(ctx.cfg.data, "train")
        count = min(ctx.num_images, len(train))
        features = ctx.resources["attribute_classifier"](train.images[:count]).features
        ctx.resources[key] = fid_lib.fid_from_features(features, real.features)
    return ctx.resources[key]


@context.register_metric(
    "diversity", [], _prepare_attributes,
    "shapes: spread over noise for one caption / spread of real images that fit it",
    label=lambda o: f"{o.diversity_captions}x{o.diversity_samples}")
def _diversity(ctx: context.EvalContext) -> Dict:
    """See `tf_t2i.eval.diversity`; generates its own groups (one caption, many z).

    Captions are drawn at random from the test split among those that at least two real
    test images fit, so that every caption has a real reference group.
    """
    options, source = ctx.options, ctx.test_source
    classifier = ctx.resources["attribute_classifier"]
    rng = np.random.default_rng([options.seed, 4])
    truth = diversity_lib.ground_truth_reading(source.attributes)
    real_pixels, real_reading = ctx.real_images(), _real_reading(ctx)
    generate = context.make_generate_fn(ctx)
    samples, per_image = options.diversity_samples, ctx.bank.captions_per_image
    generated, real = [], []
    for draw in rng.permutation(len(source) * per_image):
        if len(generated) == options.diversity_captions:
            break
        image, caption = divmod(int(draw), per_image)
        named = shapes_captions.parse_caption(source.captions[image][caption])
        group = diversity_lib.choose_real_group(diversity_lib.fitting_images(named, truth),
                                                samples, rng)
        if group is None:
            continue
        ids = context.caption_ids(ctx, np.full(samples, image), np.full(samples, caption))
        z = rng.standard_normal((samples, ctx.cfg.generator.z_dim)).astype(np.float32)
        pixels = generate(tf.constant(z), ids)[0].numpy()
        generated.append(diversity_lib.group_statistics(classifier(pixels), pixels, named))
        real.append(diversity_lib.group_statistics(real_reading.take(group),
                                                   real_pixels[group], named))
    out = diversity_lib.summarize(generated, real)
    out["std"] = None
    out["samples_per_caption"] = samples
    return out


def _prepare_f2f(ctx: context.EvalContext) -> None:
    _prepare_attributes(ctx)
    if len(ctx.test_source) < 2 or ctx.bank.captions_per_image < 2:
        raise context.MetricUnavailableError(
            f"f2f_consistency needs at least 2 test images with 2 captions each; the test "
            f"split has {len(ctx.test_source)} with {ctx.bank.captions_per_image}.")


@context.register_metric(
    "f2f_consistency", [], _prepare_f2f,
    "shapes: two captions of one image, same z: attributes agree, feature distance",
    label=lambda o: context.metric_label("", o.f2f_pairs))
def _f2f_consistency(ctx: context.EvalContext) -> Dict:
    """See `tf_t2i.eval.consistency`; generates its own images, three per pair.

    Pair k: two different captions of one test image and a caption of another test image
    (the unrelated reference), all three from the same noise vector.
    """
    options, source = ctx.options, ctx.test_source
    classifier = ctx.resources["attribute_classifier"]
    rng = np.random.default_rng([options.seed, 5])
    drawn = consistency_lib.draw_pairs(len(source), ctx.bank.captions_per_image,
                                       options.f2f_pairs, rng)
    z_all = rng.standard_normal((options.f2f_pairs, ctx.cfg.generator.z_dim)).astype(np.float32)
    generate = context.make_generate_fn(ctx)
    readings = {"first": [], "second": [], "other": []}
    chunk = max(1, options.batch_size // 3)  # three images per pair in one call
    for start in range(0, options.f2f_pairs, chunk):
        part = slice(start, min(start + chunk, options.f2f_pairs))
        images = np.concatenate([drawn["image"][part], drawn["image"][part],
                                 drawn["other_image"][part]])
        captions = np.concatenate([drawn["first"][part], drawn["second"][part],
                                   drawn["other_caption"][part]])
        z = np.tile(z_all[part], (3, 1))
        pixels = generate(tf.constant(z), context.caption_ids(ctx, images, captions))[0]
        reading = classifier(pixels.numpy())
        for key, rows in zip(readings, np.split(np.arange(len(z)), 3)):
            readings[key].append(reading.take(rows))
    first, second, other = (attributes_lib.Reading.concat(readings[k]) for k in readings)
    named = {key: [shapes_captions.parse_caption(source.captions[i][c])
                   for i, c in zip(drawn["image"], drawn[key])]
             for key in ("first", "second")}
    out = consistency_lib.summarize(
        consistency_lib.pair_agreement(first, second, named["first"], named["second"]),
        consistency_lib.identical_scenes(first, second),
        consistency_lib.pair_distances(first.features, second.features),
        consistency_lib.pair_distances(first.features, other.features))
    out["std"] = None
    return out
