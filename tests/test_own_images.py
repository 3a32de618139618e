"""Lab 07's exercises: the hidden cases over several seeds, and typical wrong answers caught."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from gan_course import checks, own_images
from gan_course.checks import run_checks


@pytest.mark.parametrize("name", ["crop_and_scale", "colour_generator", "balanced_indices"])
def test_reference_passes_its_hidden_cases_for_any_seed(name):
    ex = checks.get_exercise(name)
    assert ex.lab == "07" and checks.LAB_MODULES["07"] == "gan_course.own_images"
    for seed in (0, 1, 2):
        result = run_checks(ex, ex.reference, ex.cases(np.random.default_rng(seed)))
        assert result.passed, result.line()


def _cases(name):
    ex = checks.get_exercise(name)
    return ex, ex.cases(np.random.default_rng(7))


def test_crop_and_scale_mistakes():
    ex, cases = _cases("crop_and_scale")

    def no_antialias(image, image_size):
        side = min(image.shape[:2])
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        square = tf.cast(image[top:top + side, left:left + side], tf.float32)
        return tf.image.resize(square, (image_size, image_size)) / 127.5 - 1.0

    def stretched(image, image_size):  # no crop: the picture is squashed
        return tf.image.resize(tf.cast(image, tf.float32), (image_size, image_size), antialias=True) / 127.5 - 1.0

    def zero_one(image, image_size):
        return (own_images.crop_and_scale(image, image_size) + 1.0) / 2.0

    for fn in (no_antialias, stretched, zero_one):
        result = run_checks(ex, fn, cases)
        assert not result.passed and result.layer in ("values", "shape"), result.line()


def test_colour_generator_mistakes():
    ex, cases = _cases("colour_generator")

    def stride_one_output(latent_dim, image_size, channels, filters):
        side = image_size // 2 ** len(filters)
        z = keras.Input(shape=(latent_dim,))
        x = layers.Reshape((side, side, filters[0]))(layers.Dense(side * side * filters[0], use_bias=False)(z))
        x = layers.ReLU()(layers.BatchNormalization()(x))
        for f in filters[1:]:
            x = layers.Conv2DTranspose(f, 5, strides=2, padding="same", use_bias=False)(x)
            x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.Conv2DTranspose(channels, 5, strides=1, padding="same")(x)
        return keras.Model(z, layers.Activation("tanh")(x))

    result = run_checks(ex, stride_one_output, cases)
    assert not result.passed and result.layer == "values" and "output_shape" in result.message


def test_balanced_indices_mistakes():
    ex, cases = _cases("balanced_indices")
    first_ones = lambda labels, per_class, seed: np.concatenate(  # noqa: E731 - not random
        [np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]).astype(np.int64)
    assert run_checks(ex, first_ones, cases).layer == "values"
    int32 = lambda labels, per_class, seed: own_images.balanced_indices(labels, per_class, seed).astype(np.int32)  # noqa: E731
    assert run_checks(ex, int32, cases).layer == "dtype"


def test_reference_and_score_on_two_classes():
    from gan_course import data, metrics

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (60, 8, 8, 3)).astype(np.float32)
    y = np.repeat([0, 1], 30)
    train = data.ImageData("t", "t", x[::2], y[::2], (-1.0, 1.0), classes=["a", "b"])
    held = data.ImageData("t", "t", x[1::2], y[1::2], (-1.0, 1.0), classes=["a", "b"])
    extractor = metrics.SeededFeatures((8, 8, 3))
    ref = own_images.reference(extractor, train, held, 20, kid_subsets=2, kid_subset_size=10)
    assert len(ref["features"]) == 20 and "class_accuracy" not in ref["real"]
    scores = own_images.score(x[:10], y[:10], extractor, ref)
    assert {"frechet", "kid", "diversity", "frechet_real"} <= set(scores)
    table = own_images.format_comparison({"model": scores})
    assert "Fréchet distance" in table and "class accuracy" not in table
