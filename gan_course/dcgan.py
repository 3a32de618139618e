"""Lab 03, DCGAN on MNIST: the lesson's exercises and the helpers that use them.

The exercises registered here are contracts (signature and instructions); their
answers are in ``solutions/03_dcgan_mnist.ipynb``:

- `discriminator_loss(real_logits, fake_logits, smoothing)`: D's cross-entropy with
  one-sided label smoothing (real target 1 - smoothing, fake target 0);
- `generator_block(input_shape, filters, kernel_size, strides)`: one step up G's
  ladder (transposed convolution, batch norm, ReLU), compared by structure and by a
  forward pass with fixed weights;
- `slerp(z0, z1, t)`: spherical interpolation between latent vectors.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from gan_course.checks import ExerciseUnfinished, SolutionsUnavailable, exercise, reference
from gan_course.i18n import N_
from gan_course.models import describe_model


# ----------------------------------------------------------------------------- losses
def _loss_cases(rng):
    cases = []
    for n_real, n_fake, smoothing, scale in ((1, 1, 0.0, 2.0), (7, 5, 0.1, 2.0), (16, 16, 0.0, 4.0),
                                             (3, 9, 0.2, 1.0), (64, 64, 0.1, 3.0)):
        cases.append({
            "real_logits": tf.constant(rng.normal(0.5, scale, (n_real, 1)), tf.float32),
            "fake_logits": tf.constant(rng.normal(-0.5, scale, (n_fake, 1)), tf.float32),
            "smoothing": smoothing,
        })
    # A discriminator that is sure of itself: sigmoid(40) rounds to 1.0 in float32, so
    # log(1 - sigmoid(40)) is -inf unless the loss is computed from the logits.
    cases.append({
        "real_logits": tf.constant([[40.0], [-40.0], [3.0]], tf.float32),
        "fake_logits": tf.constant([[40.0], [-40.0]], tf.float32),
        "smoothing": 0.1,
    })
    return cases


@exercise("03", cases=_loss_cases, rtol=1e-4, atol=1e-5,
          hint=N_("real images have target 1 - smoothing, fakes target 0 (smoothing is one-sided); "
               "use tf.nn.sigmoid_cross_entropy_with_logits on the logits and average each term."))
def discriminator_loss(real_logits, fake_logits, smoothing=0.0):
    """The discriminator's loss, a float32 scalar tensor.

    mean BCE(sigmoid(real_logits), 1 - smoothing) + mean BCE(sigmoid(fake_logits), 0).
    """


# ----------------------------------------------------------------------------- models
def _block_cases(rng):
    return [
        {"input_shape": (7, 7, 16), "filters": 8, "kernel_size": 5, "strides": 2},
        {"input_shape": (1, 1, 4), "filters": 3, "kernel_size": 4, "strides": 2},
        {"input_shape": (3, 5, 2), "filters": 1, "kernel_size": 3, "strides": 1},
        {"input_shape": (4, 4, int(rng.integers(3, 9))), "filters": int(rng.integers(2, 7)), "kernel_size": 5,
         "strides": 2},
        {"input_shape": (5, 3, 6), "filters": 5, "kernel_size": 2, "strides": 3},
    ]


@exercise("03", cases=_block_cases, describe=describe_model, rtol=1e-4, atol=1e-4,
          hint=N_("Conv2DTranspose(filters, kernel_size, strides=strides, padding='same', use_bias=False), "
               "then BatchNormalization() with Keras' defaults, then ReLU()."))
def generator_block(input_shape, filters, kernel_size=5, strides=2):
    """A keras.Model from feature maps of `input_shape` to `strides` times larger ones."""


def build_lab_generator(latent_dim: int, filters=(256, 128), block=generator_block, kernel_size: int = 5) -> keras.Model:
    """The lab's MNIST generator assembled from `block` (the student's generator_block).

    z -> Dense to a 7x7 map (+ batch norm, ReLU) -> blocks -> transposed conv to 28x28x1 -> tanh.
    """
    from gan_course.models import GAMMA_INIT, WEIGHT_INIT

    z = keras.Input(shape=(latent_dim,), name="z")
    x = layers.Dense(7 * 7 * filters[0], use_bias=False, kernel_initializer=WEIGHT_INIT, name="project")(z)
    x = layers.Reshape((7, 7, filters[0]), name="reshape")(x)
    x = layers.BatchNormalization(gamma_initializer=GAMMA_INIT, name="project_bn")(x)
    x = layers.ReLU(name="project_relu")(x)
    size = 7
    for i, f in enumerate(filters[1:], 1):
        up = block(input_shape=(size, size, filters[i - 1]), filters=f, kernel_size=kernel_size, strides=2)
        up.name = f"block{i}"
        x = up(x)
        size *= 2
    if size != 14:
        raise ValueError("the lab's generator has exactly two filter entries: 7x7 -> 14x14 -> 28x28")
    x = layers.Conv2DTranspose(1, kernel_size, strides=2, padding="same", kernel_initializer=WEIGHT_INIT,
                               name="to_image")(x)
    image = layers.Activation("tanh", dtype="float32", name="tanh")(x)  # float32 out under mixed precision
    return keras.Model(z, image, name="generator")


# ----------------------------------------------------------------------------- latent space
def _slerp_cases(rng):
    z = rng.normal(size=(16,)).astype(np.float32)
    return [
        {"z0": rng.normal(size=(100,)).astype(np.float32), "z1": rng.normal(size=(100,)).astype(np.float32), "t": 0.5},
        {"z0": rng.normal(size=(7,)).astype(np.float32), "z1": rng.normal(size=(7,)).astype(np.float32), "t": 0.0},
        {"z0": rng.normal(size=(7,)).astype(np.float32), "z1": rng.normal(size=(7,)).astype(np.float32), "t": 1.0},
        {"z0": rng.normal(size=(1, 33)).astype(np.float32), "z1": rng.normal(size=(1, 33)).astype(np.float32),
         "t": 0.3},
        {"z0": rng.normal(size=(5, 8)).astype(np.float32), "z1": rng.normal(size=(5, 8)).astype(np.float32),
         "t": 0.75},
        # Parallel vectors: the angle is 0 and sin(0) = 0; fall back to a straight line.
        {"z0": z, "z1": 2 * z, "t": 0.25},
    ]


@exercise("03", cases=_slerp_cases, rtol=1e-4, atol=1e-5, strict_dtype=False,
          hint=N_("omega = arccos of the cosine between z0 and z1 (clip it to [-1, 1]); "
               "sin((1-t) omega)/sin(omega) * z0 + sin(t omega)/sin(omega) * z1; "
               "when sin(omega) is about 0, return (1-t) z0 + t z1."))
def slerp(z0, z1, t):
    """Spherical interpolation from z0 (t = 0) to z1 (t = 1) along the last axis."""


def interpolate(z0, z1, steps: int, method=slerp) -> np.ndarray:
    """`steps` latent vectors from z0 to z1 (inclusive) by `method` (slerp, or lerp)."""
    return np.stack([method(z0, z1, float(t)) for t in np.linspace(0.0, 1.0, steps)])


def lerp(z0, z1, t):
    """Straight-line interpolation, for comparison with slerp."""
    return ((1 - t) * np.asarray(z0) + t * np.asarray(z1)).astype(np.asarray(z0).dtype)


# ----------------------------------------------------------------------------- safety
def usable_in_graph(fn, name: str, *example_args):
    """`fn` if it also runs inside a compiled `tf.function` (as a training step does);
    otherwise the course's reference, with a note saying why (or, where the reference is
    not on the machine, a one-line stop that says what to change)."""
    try:
        tf.function(fn)(*example_args)
        return fn
    except Exception as err:  # the student's code is the one being tried
        why = (f"⚠ {name} passed its checks but cannot run inside a compiled training step "
               f"({type(err).__name__}: {str(err).splitlines()[0][:120]}). Write it with TensorFlow "
               f"operations (tf.*) only.")
    try:
        chosen = reference(name)
    except SolutionsUnavailable:
        raise ExerciseUnfinished(why) from None
    print(f"{why} Training uses the course's reference {name}.")
    return chosen
