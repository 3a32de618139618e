"""Lab 07, the lab manual's extension experiments: DCGAN and BigGAN on a folder of your own.

The manual ends with two experiments: train DCGAN on a dataset you care about, then
train BigGAN on the same images and compare the two.  The pieces:

- the folder: `folders.load_folder` (and `folders.default_folder`, Fashion-MNIST written
  once as PNG files when no folder is chosen);
- the exercises: `crop_and_scale` (what the loader does to one image), `colour_generator`
  (a DCGAN generator for any square size and colour) and `balanced_indices` (the same
  number of images of every class, for a fair comparison);
- the comparison: `feature_sets` picks the features the metrics use (the course's
  classifier trained on the folder when it has classes; a fixed seeded network, a weaker
  proxy, when it has none, plus Inception where its ImageNet weights are at hand),
  `reference` computes the real images' features and the real-vs-real baseline once, and
  `score` measures samples of a model against it.
"""
from __future__ import annotations

import numpy as np

from gan_course.checks import exercise
from gan_course.models import describe_model


# ----------------------------------------------------------------------------- exercises
def _crop_cases(rng):
    """Landscape, portrait and square images, grey and colour, shrunk and enlarged, odd margins."""
    cases = []
    for height, width, channels, size in [(40, 30, 3, 16), (9, 14, 3, 4), (32, 32, 3, 32), (7, 7, 1, 12),
                                          (3, 100, 3, 8), (1, 1, 3, 2), (57, 31, 1, 9)]:
        cases.append({"image": rng.integers(0, 256, (height, width, channels)).astype(np.uint8),
                      "image_size": size})
    return cases


@exercise("07", cases=_crop_cases, rtol=1e-4, atol=1e-4,
          hint="side = min(H, W); top = (H - side) // 2; left = (W - side) // 2; crop; then "
               "tf.image.resize(float32, (image_size, image_size), method='bilinear', antialias=True); "
               "then / 127.5 - 1.")
def crop_and_scale(image, image_size):
    """One uint8 image (H, W, C) -> float32 (image_size, image_size, C) in [-1, 1].

    Keep the central square (side min(H, W); top = (H - side) // 2, left = (W - side) // 2),
    resize it with tf.image.resize(..., method="bilinear", antialias=True) on float32
    pixels, and scale [0, 255] to [-1, 1] (x / 127.5 - 1).
    """


def _generator_cases(rng):
    """Small filters so the check is quick: 8 to 64 pixels, grey and colour, 2 to 4 stages."""
    return [
        {"latent_dim": 8, "image_size": 8, "channels": 3, "filters": (8, 4)},
        {"latent_dim": 5, "image_size": 16, "channels": 1, "filters": (8, 4, 4)},
        {"latent_dim": 4, "image_size": 32, "channels": 3, "filters": (16, 8, 4)},
        {"latent_dim": 6, "image_size": 64, "channels": 3, "filters": (8, 8, 4, 4)},
        {"latent_dim": int(rng.integers(3, 9)), "image_size": 12, "channels": 3,
         "filters": (int(rng.integers(3, 9)), int(rng.integers(2, 6)))},
    ]


def _describe_generator(model, case):
    return describe_model(model, {"input_shape": (case["latent_dim"],)})


@exercise("07", cases=_generator_cases, describe=_describe_generator, rtol=1e-4, atol=1e-4,
          hint="side = image_size // 2 ** len(filters); Dense(side * side * filters[0], use_bias=False), Reshape, "
               "BatchNormalization(), ReLU(); per later filter: Conv2DTranspose(f, 5, strides=2, padding='same', "
               "use_bias=False), BatchNormalization(), ReLU(); then Conv2DTranspose(channels, 5, strides=2, "
               "padding='same') and Activation('tanh').")
def colour_generator(latent_dim, image_size, channels, filters):
    """A DCGAN generator z (latent_dim,) -> image (image_size, image_size, channels) in [-1, 1].

    The paper's layout, for any square size and any number of channels:
      side = image_size // 2 ** len(filters)   (every entry of filters is one doubling)
      Dense(side * side * filters[0], use_bias=False) -> Reshape((side, side, filters[0]))
        -> BatchNormalization() -> ReLU()
      for f in filters[1:]: Conv2DTranspose(f, 5, strides=2, padding="same", use_bias=False)
        -> BatchNormalization() -> ReLU()
      Conv2DTranspose(channels, 5, strides=2, padding="same") -> Activation("tanh")
    Keras' default initialisers and batch-norm settings; return a keras.Model.
    """


def _balanced_cases(rng):
    """Balanced and unbalanced labels, one class, classes with fewer than per_class members."""
    cases = []
    for n, classes, per_class in [(30, 3, 4), (1, 1, 1), (50, 5, 20), (17, 4, 2), (9, 2, 3)]:
        labels = rng.integers(0, classes, n)
        cases.append({"labels": labels.astype(np.int64), "per_class": per_class, "seed": int(rng.integers(0, 1000))})
    return cases


@exercise("07", cases=_balanced_cases,
          hint="rng = np.random.default_rng(seed); for c in np.unique(labels) (increasing): "
               "rng.permutation(np.flatnonzero(labels == c))[:per_class]; np.concatenate, as int64.")
def balanced_indices(labels, per_class, seed):
    """Indices of up to `per_class` images of every class, chosen at random.

    rng = np.random.default_rng(seed); for each class c in np.unique(labels), in increasing
    order, take rng.permutation(np.flatnonzero(labels == c))[:per_class]; return the
    concatenation as an int64 array (class by class).  A class with fewer members gives all.
    """


# ----------------------------------------------------------------------------- features
def feature_sets(train, held_out, directory, inception_download: bool = False, quiet: bool = False,
                 classifier_epochs: int | None = None) -> dict:
    """The features the comparison measures with, by name -> an object with `features(images)`
    -> (features, probabilities or None) and a `label` saying what they are.

    A folder with two or more classes: the course's metrics classifier trained on it
    ("classifier").  Without classes: a fixed seeded network ("seeded proxy", a weaker proxy).
    In both cases Inception-v3 ("inception") is added where its ImageNet weights are cached,
    or downloadable when `inception_download`.
    """
    from gan_course import metrics

    sets = {}
    if train.y is not None and len(train.classes) >= 2:
        sets["classifier"] = metrics.train_folder_classifier(train, held_out, directory, epochs=classifier_epochs,
                                                             quiet=quiet)
    else:
        sets["seeded proxy"] = metrics.SeededFeatures(train.x.shape[1:], seed=0)
    inception, note = metrics.inception_features(download=inception_download)
    if inception is not None:
        sets["inception"] = inception
    if not quiet:
        for name, features in sets.items():
            print(f"{name}: {features.label}")
        print(note)
    return sets


def labels_of(images) -> np.ndarray:
    """The class of every image, or 0 for all when the folder has no classes."""
    return np.asarray(images.y if images.y is not None else np.zeros(len(images)), np.int32)


def _scores(features, probs, labels, reference_features, kid_subsets, kid_subset_size) -> dict:
    from gan_course import metrics

    kid, _ = metrics.kernel_inception_distance(features, reference_features, subsets=kid_subsets,
                                               subset_size=kid_subset_size)
    out = {"frechet": metrics.frechet_distance(features, reference_features), "kid": 1000 * kid,
           "diversity": metrics.mean_pairwise_distance(features, labels), "samples": len(features)}
    if probs is not None and probs.shape[1] >= 2:
        out["class_accuracy"], out["confidence"] = metrics.class_agreement(probs, labels)
    return out


def reference(extractor, train, held_out, n: int, pick=balanced_indices, seed: int = 0, kid_subsets: int = 10,
              kid_subset_size: int = 1000) -> dict:
    """Features of `n` held-out images (class-balanced by `pick`) and the real data's own scores.

    `real` holds the Fréchet distance and KID of `n` class-balanced training images to the
    held-out ones (the real-vs-real baseline: what a perfect generator would score with these
    features and this many samples), and the class accuracy and within-class diversity of the
    held-out images themselves.
    """
    held_labels, train_labels = labels_of(held_out), labels_of(train)
    classes = max(1, len(np.unique(held_labels)))
    per_class = -(-n // classes)
    held_index = pick(held_labels, per_class, seed)
    train_index = pick(train_labels, per_class, seed + 1)
    ref_features, ref_probs = extractor.features(held_out.x[held_index])
    train_features, train_probs = extractor.features(train.x[train_index])
    options = dict(kid_subsets=kid_subsets, kid_subset_size=kid_subset_size)
    from_train = _scores(train_features, train_probs, train_labels[train_index], ref_features, **options)
    itself = _scores(ref_features, ref_probs, held_labels[held_index], train_features, **options)
    real = {**itself, "frechet": from_train["frechet"], "kid": from_train["kid"]}
    return {"features": ref_features, "real": real, "label": extractor.label, **options}


def score(images, labels, extractor, ref: dict) -> dict:
    """Fréchet distance, KID x 1000, class accuracy and confidence (with class probabilities), and
    within-class diversity of samples, next to the real data's (`*_real`)."""
    features, probs = extractor.features(images)
    out = _scores(features, probs, np.asarray(labels), ref["features"], ref["kid_subsets"], ref["kid_subset_size"])
    return {**out, **{f"{k}_real": v for k, v in ref["real"].items() if k != "samples"}}


def format_comparison(columns: dict, rows=None) -> str:
    """A text table: one column per model (dicts from `score`), then the real data and which way is better."""
    rows = rows or [("Fréchet distance", "frechet", "{:.2f}", "lower"), ("KID x 1000", "kid", "{:.2f}", "lower"),
                    ("class accuracy", "class_accuracy", "{:.1%}", "higher"),
                    ("confidence", "confidence", "{:.3f}", "higher"),
                    ("diversity (within class)", "diversity", "{:.2f}", "near real")]
    some = next(iter(columns.values()))
    header = ["metric", *columns, "real data", "better"]
    lines = [header]
    for name, key, fmt, better in rows:
        if not any(key in c for c in columns.values()):
            continue
        real = some.get(f"{key}_real")
        lines.append([name, *(fmt.format(c[key]) if key in c else "" for c in columns.values()),
                      "" if real is None else fmt.format(real), better])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = []
    for i, line in enumerate(lines):
        text.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
        if i == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)
