"""Classifier-based metrics for GAN samples (labs 03-06).

Inception-based FID and IS measure ImageNet features, which say little about 28x28
digits.  The course follows the common practice for MNIST-like data: a small CNN
classifier is trained once per dataset, and its penultimate layer (128 features) and
softmax stand in for Inception's pool and logits:

- `frechet_distance`: the Fréchet distance between Gaussians fitted to two feature sets
  (Heusel et al. 2017), ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)).
- `kernel_inception_distance`: KID (Binkowski et al. 2018), the unbiased MMD^2 with the
  cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets.
- `classifier_score`: the Inception-score formula exp(E_x KL(p(y|x) || p(y))) on the
  classifier's softmax: 1 (one class, or no confidence) to 10 (confident and balanced).
- `class_histogram`: the share of samples the classifier puts in each class.

Numbers from different classifiers are not comparable (and none of these are the
Inception FIDs papers report), so `evaluate` always prints the real-vs-real baseline
(a train sample against a test sample) next to each figure.
"""
from __future__ import annotations

import json
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gan_course.config import seeded
from gan_course.i18n import N_, _

CLASSIFIER_VERSION = 1  # bump when the architecture or training recipe changes
FEATURE_LAYER = "features"


# ----------------------------------------------------------------------------- figures
def _as_features(feats) -> np.ndarray:
    feats = np.asarray(feats, np.float64)
    if feats.ndim != 2:
        raise ValueError(_("features must be a 2-D array (samples, features); got shape {shape}").format(shape=feats.shape))
    if len(feats) < 2:
        raise ValueError(_("a covariance needs at least 2 samples per set"))
    return feats


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigen-decomposition."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    # Round-off makes tiny eigenvalues of a singular covariance slightly negative.
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(feats_a, feats_b) -> float:
    """Fréchet distance between Gaussians fitted to two sets of features (rows are samples).

    Tr((S_a S_b)^(1/2)) is computed as Tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)), a symmetric
    PSD matrix whose eigenvalues are real: no complex round-off to discard, and singular
    covariances (fewer samples than features) are handled.
    """
    a, b = _as_features(feats_a), _as_features(feats_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(_("feature sizes differ: {a} and {b}").format(a=a.shape[1], b=b.shape[1]))
    mu_a, mu_b = a.mean(0), b.mean(0)
    sigma_a, sigma_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _psd_sqrt(sigma_a)
    middle = root_a @ sigma_b @ root_a
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    distance = np.sum((mu_a - mu_b) ** 2) + np.trace(sigma_a) + np.trace(sigma_b) - 2 * trace_sqrt
    return float(max(distance, 0.0))


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kernel_inception_distance(feats_a, feats_b, subsets: int = 10, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """KID: mean and standard deviation over `subsets` random subsets of the unbiased MMD^2.

    Unbiased means the diagonal k(x, x) terms are left out, so two samples of one
    distribution score about 0 (slightly negative values happen) at any sample size.
    """
    a, b = _as_features(feats_a), _as_features(feats_b)
    m = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    values = []
    for _repeat in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
        mmd = ((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
               + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
               - 2 * k_xy.mean())
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))


def classifier_score(probs, splits: int = 10) -> tuple[float, float]:
    """The Inception-score formula exp(E_x KL(p(y|x) || p(y))) on class probabilities.

    Mean and standard deviation over `splits` equal parts, as in Salimans et al. (2016).
    Between 1 and the number of classes.
    """
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2:
        raise ValueError(_("probs must be (samples, classes); got shape {shape}").format(shape=probs.shape))
    eps = 1e-12
    scores = []
    for part in np.array_split(probs, max(1, min(splits, len(probs)))):
        marginal = part.mean(0, keepdims=True)
        kl = (part * (np.log(part + eps) - np.log(marginal + eps))).sum(1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def class_histogram(probs_or_labels, num_classes: int = 10) -> np.ndarray:
    """Share of samples in each class (argmax of probabilities, or integer labels); sums to 1."""
    values = np.asarray(probs_or_labels)
    labels = values.argmax(-1) if values.ndim == 2 else values.astype(np.int64)
    return np.bincount(labels, minlength=num_classes)[:num_classes].astype(np.float64) / max(len(labels), 1)


# ----------------------------------------------------------------------------- classifier
def build_classifier(num_classes: int = 10, image_shape=(28, 28, 1)):
    """A small CNN whose penultimate Dense layer (128 units, named "features") feeds the metrics."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input(shape=image_shape),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dropout(0.25),
        layers.Dense(128, activation="relu", name=FEATURE_LAYER),
        layers.Dropout(0.4),
        layers.Dense(num_classes, activation="softmax", name="probs"),
    ], name="metrics_classifier")


@dataclass
class Classifier:
    """A trained metrics classifier: `features(images)` -> (features, probabilities)."""

    dataset: str
    model: object
    test_accuracy: float
    standin: bool
    path: Path
    note: str = ""
    _both: object = field(default=None, repr=False)

    def features(self, images, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
        """Penultimate-layer features and softmax of images in [-1, 1], shape (N, 28, 28, 1)."""
        import keras

        if self._both is None:
            self._both = keras.Model(self.model.inputs[0],
                                     [self.model.get_layer(FEATURE_LAYER).output, self.model.outputs[0]])
        images = np.asarray(images, np.float32)
        feats, probs = [], []
        for start in range(0, len(images), batch_size):
            f, p = self._both(images[start:start + batch_size], training=False)
            feats.append(np.asarray(f))
            probs.append(np.asarray(p))
        return np.concatenate(feats), np.concatenate(probs)


_LOADED: dict[tuple, Classifier] = {}


def classifier_path(dataset: str, source: str, epochs: int, train_limit: int | None) -> Path:
    """Where a trained classifier is cached: keyed by dataset, data source ("real" or the stand-in's
    name) and training budget."""
    from gan_course.data import cache_dir

    budget = f"e{epochs}" + (f"-n{train_limit}" if train_limit else "")
    return cache_dir() / "classifiers" / f"{dataset}-{source}-{budget}-v{CLASSIFIER_VERSION}.keras"


# Trained under seed 0 (the same classifier everywhere); the lab's seed carries on afterwards.
@seeded(0)
def load_classifier(dataset: str = "mnist", epochs: int | None = None, train_limit: int | None = -1,
                    quiet: bool = False, retrain: bool = False) -> Classifier:
    """The metrics classifier of a dataset: from the data cache, or trained once and cached there.

    Budget defaults come from the profile (`metrics_classifier_epochs`,
    `metrics_classifier_train_limit`); a short smoke-profile training gets its own cache
    entry and never stands in for a full one.
    """
    import keras

    from gan_course import data
    from gan_course.config import profile

    p = profile()
    epochs = p.metrics_classifier_epochs if epochs is None else epochs
    train_limit = p.metrics_classifier_train_limit if train_limit == -1 else train_limit
    train = data.load(dataset, "train", limit=train_limit, quiet=True)
    # A small training set (the offline stand-in) gets more epochs: at least
    # `metrics_classifier_min_steps` updates of batch 128 whatever the data size.
    epochs = max(epochs, -(-p.metrics_classifier_min_steps * 128 // len(train)))
    path = classifier_path(dataset, train.source, epochs, train_limit)
    key = (str(path),)
    if key in _LOADED and not retrain:
        return _LOADED[key]
    info_path = path.with_suffix(".json")
    if path.is_file() and info_path.is_file() and not retrain:
        model = keras.models.load_model(path)
        info = json.loads(info_path.read_text())
        if not quiet:
            print(_("Metrics classifier for {dataset} loaded from the cache (test accuracy {accuracy:.2%}{standin}).").format(
                dataset=dataset, accuracy=info["test_accuracy"], standin=_(", stand-in data") if train.standin else ""))
    else:
        test = data.load(dataset, "test", quiet=True)
        if not quiet:
            print(_("Training the metrics classifier for {dataset} once ({epochs} epoch(s) on {n:,} images{standin}); "
                    "it is cached for later labs.").format(dataset=dataset, epochs=epochs, n=len(train),
                                                           standin=_(", stand-in data") if train.standin else ""))
        model = build_classifier(len(train.classes) or 10, train.x.shape[1:])
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(train.x, train.y, batch_size=128, epochs=epochs, verbose=0 if quiet else 2,
                  validation_data=(test.x, test.y))
        accuracy = model.evaluate(test.x, test.y, batch_size=500, verbose=0)[1]
        info = {"dataset": dataset, "standin": train.standin, "epochs": epochs, "train_images": len(train),
                "test_accuracy": float(accuracy), "version": CLASSIFIER_VERSION}
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written under a temporary name and moved into place: a kernel stopped mid-save
        # never leaves a half-written classifier for the next lab to load.
        staged = path.with_name(f".{path.stem}.{os.getpid()}.keras")
        model.save(staged)
        os.replace(staged, path)
        staged_info = info_path.with_name(f".{info_path.name}.{os.getpid()}")
        staged_info.write_text(json.dumps(info, indent=1))
        os.replace(staged_info, info_path)
        if not quiet:
            print(_("Metrics classifier test accuracy: {accuracy:.2%}").format(accuracy=accuracy))
    classifier = Classifier(dataset, model, float(info["test_accuracy"]), train.standin, path, train.note)
    _LOADED[key] = classifier
    return classifier


# ----------------------------------------------------------------------------- evaluation
def sample_images(generator_or_samples, n: int, seed: int, value_range) -> np.ndarray:
    """Images in [-1, 1]: given as an array, or drawn from a generator with z ~ N(0, I)."""
    if hasattr(generator_or_samples, "input_shape") and callable(generator_or_samples):
        latent_dim = int(generator_or_samples.input_shape[-1])
        rng = np.random.default_rng(seed)
        parts = []
        for start in range(0, n, 500):
            z = rng.standard_normal((min(500, n - start), latent_dim)).astype(np.float32)
            parts.append(np.asarray(generator_or_samples(z, training=False), np.float32))
        images = np.concatenate(parts)
    else:
        images = np.asarray(generator_or_samples, np.float32)[:n]
    lo, hi = value_range
    return (images - lo) / (hi - lo) * 2.0 - 1.0


def evaluate(generator_or_samples, dataset: str = "mnist", n: int | None = None, value_range=(-1.0, 1.0),
             seed: int = 0, classifier: Classifier | None = None, quiet: bool = False) -> list[dict]:
    """Every metric for generated images, next to the real-vs-real baseline.

    `generator_or_samples` is a Keras generator (sampled with z ~ N(0, I)) or an array of
    images in `value_range`.  Both are compared with `n` test images; the baseline
    compares `n` training images with the same test images, so it shows what a perfect
    generator would score with this classifier and sample size.  Returns a list of rows
    {"metric", "generated", "real baseline", "better"}; prints the table unless quiet.
    """
    from gan_course import data
    from gan_course.config import profile

    p = profile()
    n = p.metrics_samples if n is None else n
    classifier = classifier or load_classifier(dataset, quiet=quiet)
    test = data.load(dataset, "test", quiet=True)
    train = data.load(dataset, "train", quiet=True)
    n = min(n, len(test), len(train))
    rng = np.random.default_rng(seed)
    reference = test.x[rng.choice(len(test), n, replace=False)]
    real = train.x[rng.choice(len(train), n, replace=False)]
    fake = sample_images(generator_or_samples, n, seed, value_range)
    if fake.shape[1:] != reference.shape[1:]:
        raise ValueError(_("generated images have shape {shape}; the {dataset} classifier expects {expected}").format(
            shape=fake.shape[1:], dataset=dataset, expected=reference.shape[1:]))
    if len(fake) < n:
        n = len(fake)
        reference, real = reference[:n], real[:n]

    ref_f, ref_p = classifier.features(reference)
    real_f, real_p = classifier.features(real)
    fake_f, fake_p = classifier.features(fake)
    kid_options = dict(subsets=p.metrics_kid_subsets, subset_size=p.metrics_kid_subset_size, seed=seed)
    hist_fake, hist_real = class_histogram(fake_p), class_histogram(real_p)
    kid_fake, kid_real = (kernel_inception_distance(f, ref_f, **kid_options) for f in (fake_f, real_f))
    # The names and verdicts stay English in the rows (keys a program reads); format_table translates them.
    rows = [
        {"metric": N_("Fréchet distance (classifier features)"), "generated": frechet_distance(fake_f, ref_f),
         "real baseline": frechet_distance(real_f, ref_f), "better": N_("lower")},
        {"metric": N_("KID x 1000"), "generated": 1000 * kid_fake[0], "real baseline": 1000 * kid_real[0],
         "better": N_("lower")},
        {"metric": N_("classifier score (IS formula, max 10)"), "generated": classifier_score(fake_p)[0],
         "real baseline": classifier_score(real_p)[0], "better": N_("higher")},
        {"metric": N_("largest class share"), "generated": float(hist_fake.max()),
         "real baseline": float(hist_real.max()), "better": N_("close to baseline")},
        {"metric": N_("classes with >= 2% of samples"), "generated": int((hist_fake >= 0.02).sum()),
         "real baseline": int((hist_real >= 0.02).sum()), "better": N_("higher")},
    ]
    for row in rows:
        row["samples"] = n
    rows.append({"metric": N_("class histogram"), "generated": hist_fake, "real baseline": hist_real,
                 "better": N_("close to baseline"), "samples": n})
    if not quiet:
        source = _(" (stand-in data)") if classifier.standin else ""
        print(_("{n:,} samples against {n:,} {dataset} test images{source}; classifier test accuracy {accuracy:.2%}.").format(
            n=n, dataset=dataset, source=source, accuracy=classifier.test_accuracy))
        print(format_table(rows))
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows of `evaluate` as an aligned text table (the histogram row as percentages)."""
    def cell(value):
        if isinstance(value, np.ndarray):
            return " ".join(f"{100 * v:.0f}" for v in value) + " (%)"
        if isinstance(value, (int, np.integer)):
            return f"{value:d}"
        return f"{value:.3f}"

    def width(text):  # a Chinese character takes two columns
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)

    header = (_("metric"), _("generated"), _("real baseline"), _("better"))
    table = [header] + [(_(r["metric"]), cell(r["generated"]), cell(r["real baseline"]), _(r["better"])) for r in rows]
    widths = [max(width(line[i]) for line in table) for i in range(4)]
    lines = ["  ".join(text + " " * (w - width(text)) for text, w in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- class-conditional samples (lab 06)
def class_agreement(probs, labels) -> tuple[float, float]:
    """(accuracy, confidence): how often the classifier's top class is the conditioning label,
    and its mean probability for that label."""
    probs, labels = np.asarray(probs), np.asarray(labels, np.int64)
    if len(probs) != len(labels):
        raise ValueError(_("{n} probability rows but {labels} labels").format(n=len(probs), labels=len(labels)))
    return float(np.mean(probs.argmax(-1) == labels)), float(np.mean(probs[np.arange(len(labels)), labels]))


def mean_pairwise_distance(features, labels=None) -> float:
    """Mean Euclidean distance between two different samples' features (a diversity measure).

    With `labels`, the mean over classes of the within-class value: for a conditional
    generator that is the spread truncation removes, not the distance between classes.
    """
    features = np.asarray(features, np.float64)
    if labels is not None:
        labels = np.asarray(labels)
        return float(np.mean([mean_pairwise_distance(features[labels == c]) for c in np.unique(labels)]))
    n = len(features)
    if n < 2:
        raise ValueError(_("a pairwise distance needs at least 2 samples"))
    squared = np.sum(features ** 2, axis=1)
    distances = np.sqrt(np.clip(squared[:, None] + squared[None, :] - 2 * features @ features.T, 0, None))
    return float(distances.sum() / (n * (n - 1)))


def conditional_scores_of(features, probs, labels, reference_features) -> dict:
    """Fréchet distance, KID (x 1000), class accuracy, confidence and within-class diversity
    of samples given by their classifier features and probabilities."""
    from gan_course.config import profile

    p = profile()
    kid, _ = kernel_inception_distance(features, reference_features, subsets=p.metrics_kid_subsets,
                                       subset_size=p.metrics_kid_subset_size)
    accuracy, confidence = class_agreement(probs, labels)
    return {"frechet": frechet_distance(features, reference_features), "kid": 1000 * kid,
            "class_accuracy": accuracy, "confidence": confidence,
            "diversity": mean_pairwise_distance(features, labels), "samples": len(features)}


def real_reference(classifier, dataset: str = "mnist", n: int = 1000, seed: int = 0, train=None) -> dict:
    """What samples are scored against, computed once: the classifier's features of `n` test
    images (`features`), and the real data's own scores (`real`).

    `real` holds the Fréchet distance and KID of `n` training images to those test images
    (the real-vs-real baseline of `metrics.evaluate`), and the class accuracy, confidence
    and diversity of the test images themselves (held out from the classifier's training).
    `train`: the training images when already loaded (an `ImageData`).
    """
    from gan_course import data as gan_data

    test = gan_data.load(dataset, "test", quiet=True)
    train = gan_data.load(dataset, "train", quiet=True) if train is None else train
    n = min(n, len(test.x), len(train.x))
    rng = np.random.default_rng(seed)
    test_index, train_index = rng.choice(len(test.x), n, replace=False), rng.choice(len(train.x), n, replace=False)
    test_features, test_probs = classifier.features(test.x[test_index])
    train_features, train_probs = classifier.features(train.x[train_index])
    from_train = conditional_scores_of(train_features, train_probs, train.y[train_index], test_features)
    held_out = conditional_scores_of(test_features, test_probs, test.y[test_index], train_features)
    real = {**held_out, "frechet": from_train["frechet"], "kid": from_train["kid"]}
    return {"dataset": dataset, "features": test_features, "real": real}


def conditional_scores(images, labels, classifier, reference: dict) -> dict:
    """The comparison's numbers for class-conditional samples, with the real data's beside them.

    `frechet` and `kid` (x 1000) between the classifier's features of the samples and of
    the `real_reference` test images; `class_accuracy` and `confidence` from
    `class_agreement`; `diversity`, the within-class `mean_pairwise_distance`.  The
    `*_real` entries are the reference's real-data scores.
    """
    features, probs = classifier.features(images)
    scores = conditional_scores_of(features, probs, labels, reference["features"])
    return {**scores, **{f"{key}_real": value for key, value in reference["real"].items() if key != "samples"}}

# ----------------------------------------------------------------------------- any folder (lab 07)
# Trained under seed 0 (the same classifier everywhere); the lab's seed carries on afterwards.
@seeded(0)
def train_folder_classifier(train, held_out, directory, epochs: int | None = None, quiet: bool = False,
                            retrain: bool = False) -> Classifier:
    """The course's metrics classifier trained on a folder's labelled images (as for MNIST).

    `train` / `held_out`: `ImageData` with labels (see `folders.split_holdout`); the test
    accuracy is measured on `held_out`.  Cached in `directory` under a fingerprint of the
    training images, so a rerun loads it and another folder trains its own.
    """
    import hashlib

    import keras

    from gan_course.config import profile

    if train.y is None or len(train.classes) < 2:
        raise ValueError(_("a metrics classifier needs labelled images of at least 2 classes; "
                           "use seeded_features() for an unlabelled folder"))
    p = profile()
    epochs = p.folder_classifier_epochs if epochs is None else epochs
    epochs = max(epochs, -(-p.folder_classifier_min_steps * 128 // len(train)))
    digest = hashlib.sha1(np.ascontiguousarray(train.x).tobytes() + np.asarray(train.y).tobytes()).hexdigest()[:12]
    path = Path(directory) / f"classifier-{digest}-e{epochs}-v{CLASSIFIER_VERSION}.keras"
    info_path = path.with_suffix(".json")
    name = train.name
    if path.is_file() and info_path.is_file() and not retrain:
        model = keras.models.load_model(path)
        info = json.loads(info_path.read_text())
        if not quiet:
            print(_("Metrics classifier for {name} loaded from {folder} (held-out accuracy {accuracy:.2%}).").format(
                name=name, folder=path.parent, accuracy=info["test_accuracy"]))
    else:
        if not quiet:
            print(_("Training the metrics classifier on {n:,} images of {name} ({classes} classes, {epochs} "
                    "epoch(s)); tested on {held_out:,} held-out images.").format(
                n=len(train), name=name, classes=len(train.classes), epochs=epochs, held_out=len(held_out)))
        model = build_classifier(len(train.classes), train.x.shape[1:])
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(train.x, train.y, batch_size=128, epochs=epochs, verbose=0 if quiet else 2,
                  validation_data=(held_out.x, held_out.y))
        _loss, accuracy = model.evaluate(held_out.x, held_out.y, batch_size=500, verbose=0)
        info = {"dataset": name, "classes": list(train.classes), "epochs": epochs, "train_images": len(train),
                "test_accuracy": float(accuracy), "version": CLASSIFIER_VERSION}
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f".{path.stem}.{os.getpid()}.keras")
        model.save(staged)
        os.replace(staged, path)
        info_path.write_text(json.dumps(info, indent=1))
        if not quiet:
            print(_("Metrics classifier held-out accuracy: {accuracy:.2%}").format(accuracy=accuracy))
    classifier = Classifier(name, model, float(info["test_accuracy"]), False, path)
    classifier.label = f"features of the course's classifier trained on {name}"
    return classifier


class SeededFeatures:
    """Features of a fixed, seeded, untrained convolutional network: a weaker proxy for
    folders without classes.

    Random convolutional features still separate textures, colours and shapes, so the
    Fréchet distance on them falls as samples get closer to the real images, but they know
    nothing about what matters in a picture: compare numbers from the same seed and image
    size only.  `features(images)` -> (features, None): no class probabilities.
    """

    def __init__(self, image_shape, seed: int = 0, width: int = 64):
        import keras
        from keras import layers

        self.seed, self.image_shape = seed, tuple(image_shape)
        init = lambda i: keras.initializers.HeNormal(seed=seed * 100 + i)  # noqa: E731
        image = keras.Input(shape=self.image_shape)
        x = image
        pooled = []
        for i, filters in enumerate((width // 2, width, 2 * width)):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer=init(i))(x)
            x = layers.AveragePooling2D(2)(x) if x.shape[1] >= 4 else x
            pooled.append(layers.GlobalAveragePooling2D()(x))
        self.model = keras.Model(image, layers.Concatenate()(pooled), name=f"seeded_features_{seed}")
        self.label = (f"features of a fixed random network (seed {seed}): a WEAKER PROXY, not a trained "
                      f"classifier's")
        self.test_accuracy = None

    def features(self, images, batch_size: int = 500):
        images = np.asarray(images, np.float32)
        feats = [np.asarray(self.model(images[i:i + batch_size], training=False))
                 for i in range(0, len(images), batch_size)]
        return np.concatenate(feats), None


INCEPTION_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_URL = "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/" + INCEPTION_WEIGHTS


def _keras_weights_path(name: str) -> Path:
    return Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "models" / name


def _reachable(url: str, timeout: float = 3.0) -> bool:
    import socket
    from urllib.parse import urlparse

    try:
        with socket.create_connection((urlparse(url).hostname, 443), timeout=timeout):
            return True
    except OSError:
        return False


class InceptionFeatures:
    """The standard FID features: InceptionV3's 2048-d pool layer (ImageNet weights,
    `keras.applications`), images resized to 299x299.  `features(images)` -> (features, None)."""

    def __init__(self, model):
        self.model = model
        self.label = "Inception-v3 pool features (ImageNet weights): the standard FID/KID features"
        self.test_accuracy = None

    def features(self, images, batch_size: int = 50):
        import tensorflow as tf

        images = np.asarray(images, np.float32)
        feats = []
        for i in range(0, len(images), batch_size):
            batch = tf.image.resize(images[i:i + batch_size], (299, 299), method="bilinear")
            if batch.shape[-1] == 1:
                batch = tf.image.grayscale_to_rgb(batch)
            feats.append(np.asarray(self.model(batch, training=False)))  # inputs in [-1, 1], as Inception's
        return np.concatenate(feats), None


def inception_features(download: bool = False) -> tuple[InceptionFeatures | None, str]:
    """(InceptionFeatures, note) when ImageNet weights are cached (or downloadable and `download`),
    else (None, why not and where to put the file)."""
    path = _keras_weights_path(INCEPTION_WEIGHTS)
    if not path.is_file():
        if not download:
            return None, (f"Inception features not used: its ImageNet weights are not cached at {path} "
                          f"(download {INCEPTION_URL} there to add them).")
        if not _reachable(INCEPTION_URL):
            return None, (f"Inception features not used: its ImageNet weights are not cached at {path} and "
                          f"{INCEPTION_URL} cannot be reached from here.")
    import keras

    try:
        model = keras.applications.InceptionV3(include_top=False, weights="imagenet", pooling="avg",
                                               input_shape=(299, 299, 3))
    except Exception as err:  # a failed or cut-off download
        return None, f"Inception features not used: loading its weights failed ({type(err).__name__}: {err})."
    return InceptionFeatures(model), f"Inception features used (weights in {path})."
