"""Lab 05, InfoGAN and AC-GAN on MNIST: the latent split, the Q head, the class losses.

InfoGAN (Chen et al. 2016) splits G's input into an incompressible noise z (62 numbers)
and a code c the generator is asked to keep readable: one categorical Cat(10) code and
two continuous U(-1, 1) codes.  A head Q on the discriminator's trunk recovers c from
G(z, c); G and Q minimise the information loss L_I (cross-entropy of the categorical code
plus a Gaussian negative log-likelihood of the continuous ones), which is a variational
lower bound of the mutual information I(c; G(z, c)): H(c) - L_I, at most ln 10 = 2.30
nats for the categorical code.  No label is ever shown: the categories that emerge are
matched to digits afterwards (Hungarian assignment) to measure them as a classifier.  One
addition to the paper: Q must also read the category from turned, scaled and shifted copies
of the fakes (`augment_digits`, after Elastic-InfoGAN), which keeps two digits from sharing it.

AC-GAN (Odena et al. 2017) is the supervised cousin: G(z, class) and a discriminator that
outputs a real/fake logit and 10 class logits.  The hand-out (001) defines the class
losses on real images (`loss_cr`) and on fakes (`loss_cf`), adds loss_c = (loss_cr +
loss_cf) / 2 to both networks' losses, and removes one or the other as its two ablations.

Exercises (contracts; their answers are in solutions/05_infogan_acgan.ipynb):

- `infogan_latent(categories, continuous, noise)`: G's input from injected draws;
- `information_loss(category_logits, categories, code_means, codes, continuous_weight)`;
- `acgan_discriminator_loss(...)`: D's loss with the loss_cr / loss_cf switches;
- `matched_accuracy(predicted, labels)`: accuracy after the best code-to-label matching.

Networks: `build_generator` (the paper's MNIST G), `build_infogan_discriminator` (D and
its Q head on one trunk), `build_acgan_discriminator`.  Training: `InfoGAN` and `ACGAN`,
two `train.GAN`s run by `train.Trainer`.  Measuring: `categorical_code_accuracy`,
`conditional_accuracy`, `code_sweep`, `ablation_table`, `explain_ablation`.
"""
from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from gan_course import losses as gan_losses
from gan_course.checks import exercise
from gan_course.i18n import N_, _
from gan_course.train import GAN, per_replica_scale

NUM_CATEGORIES = 10
NUM_CONTINUOUS = 2
NOISE_DIM = 62
LN10 = math.log(NUM_CATEGORIES)  # H(c) of a uniform Cat(10), the most the categorical bound can reach
LEAKY_SLOPE = 0.1  # the InfoGAN paper's leaky ReLU
WEIGHT_INIT = keras.initializers.RandomNormal(stddev=0.02)
# Q's categorical code must also be read from a rotated, rescaled, shifted copy of each fake
# (`augment_digits`), with this weight in G and Q's loss: measured in bench/RESULTS.md.
AUGMENT_WEIGHT = 0.3
AUGMENT_DEGREES, AUGMENT_SCALE, AUGMENT_SHIFT = 15.0, (0.85, 1.15), 2.0
# The hand-out's ablations: which of loss_cr (real images) and loss_cf (fakes) each run keeps.
ACGAN_ABLATIONS = {"full": (True, True), "drop loss_cr": (False, True), "drop loss_cf": (True, False)}


# ----------------------------------------------------------------------------- latent
def _latent_cases(rng):
    cases = []
    for n, k, c, z in ((1, 10, 2, 62), (7, 10, 2, 62), (16, 10, 2, 5), (5, 3, 1, 4), (9, 10, 0, 62), (2, 4, 3, 1)):
        cases.append({"categories": rng.integers(0, k, n).astype(np.int32),
                      "continuous": rng.uniform(-1, 1, (n, c)).astype(np.float32),
                      "noise": rng.normal(size=(n, z)).astype(np.float32),
                      "num_categories": k})
    return cases


def _static_rows(tensor, name, rank):
    if tensor.shape.rank is not None and tensor.shape.rank != rank:
        axes = "(batch, features)" if rank == 2 else "(batch)"
        raise ValueError(_("{name} must have {rank} dimension(s) {axes}; got shape {shape}").format(
            name=name, rank=rank, axes=axes, shape=tuple(tensor.shape)))
    return tensor.shape[0]


def _check_latent_parts(categories, continuous, noise, num_categories):
    """The input rules of `infogan_latent`: one batch size, categories in range."""
    categories = tf.convert_to_tensor(categories)
    sizes = {name: _static_rows(tf.convert_to_tensor(t), name, rank) for name, t, rank in
             (("categories", categories, 1), ("continuous", continuous, 2), ("noise", noise, 2))}
    known = {v for v in sizes.values() if v is not None}
    if len(known) > 1:
        raise ValueError(_("categories, continuous and noise must have the same batch size; got {sizes}").format(sizes=sizes))
    if tf.executing_eagerly() and tf.size(categories) > 0:
        low, high = int(tf.reduce_min(categories)), int(tf.reduce_max(categories))
        if low < 0 or high >= num_categories:
            raise ValueError(_("categories must lie in [0, {n}); got values from {low} to {high}").format(
                n=num_categories, low=low, high=high))


@exercise("05", cases=_latent_cases, validate=_check_latent_parts,
          hint=N_("tf.one_hot(categories, num_categories), then tf.concat([one_hot, continuous, noise], axis=1), "
               "all float32."))
def infogan_latent(categories, continuous, noise, num_categories=NUM_CATEGORIES):
    """G's input (n, num_categories + c + z): one-hot categories, then the continuous codes, then the noise."""


def split_latent(latent, num_categories=NUM_CATEGORIES, num_continuous=NUM_CONTINUOUS):
    """The inverse of `infogan_latent`: (categories, continuous, noise) of latent vectors."""
    latent = np.asarray(latent, np.float32)
    return (latent[:, :num_categories].argmax(1), latent[:, num_categories:num_categories + num_continuous],
            latent[:, num_categories + num_continuous:])


# ----------------------------------------------------------------------------- information loss
def _information_cases(rng):
    cases = []
    for n, k, c, weight in ((1, 10, 2, 1.0), (8, 10, 2, 1.0), (13, 10, 2, 0.5), (5, 3, 1, 2.0), (6, 10, 0, 1.0)):
        cases.append({"category_logits": rng.normal(0, 3, (n, k)).astype(np.float32),
                      "categories": rng.integers(0, k, n).astype(np.int32),
                      "code_means": rng.normal(0, 1, (n, c)).astype(np.float32),
                      "codes": rng.uniform(-1, 1, (n, c)).astype(np.float32),
                      "continuous_weight": weight})
    # A confident Q: softmax of these logits underflows to 0 in float32; log(0) is -inf.
    cases.append({"category_logits": np.array([[60.0, -60.0, 0.0], [-60.0, 60.0, 0.0]], np.float32),
                  "categories": np.array([1, 1], np.int32),
                  "code_means": np.zeros((2, 2), np.float32), "codes": np.full((2, 2), 0.5, np.float32),
                  "continuous_weight": 1.0})
    return cases


@exercise("05", cases=_information_cases, rtol=1e-4, atol=1e-5,
          hint=N_("mean over the batch of tf.nn.sparse_softmax_cross_entropy_with_logits(labels=categories, "
               "logits=category_logits), plus continuous_weight times the mean over the batch of "
               "0.5 * sum over the code dimensions of (codes - code_means)**2."))
def information_loss(category_logits, categories, code_means, codes, continuous_weight=1.0):
    """L_I, a float32 scalar: categorical cross-entropy + weight * Gaussian NLL (std 1, constant dropped).

    The continuous term is mean_n 0.5 * sum_j (c_nj - mu_nj)^2: -log N(c; mu, 1) up to 0.5 ln(2 pi) per code.
    """


def categorical_cross_entropy(logits, labels):
    """Mean cross-entropy of integer labels under softmax(logits) (the categorical part of L_I)."""
    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, tf.cast(logits, tf.float32),
                                                                       from_logits=True))


# ----------------------------------------------------------------------------- AC-GAN losses
def _acgan_cases(rng):
    cases = []
    for n_real, n_fake, k, cr, cf in ((1, 1, 10, True, True), (8, 8, 10, True, True), (5, 7, 10, False, True),
                                      (6, 3, 10, True, False), (4, 4, 3, False, False), (16, 16, 10, True, True)):
        cases.append({"real_logits": rng.normal(0.5, 2, (n_real, 1)).astype(np.float32),
                      "fake_logits": rng.normal(-0.5, 2, (n_fake, 1)).astype(np.float32),
                      "real_class_logits": rng.normal(0, 3, (n_real, k)).astype(np.float32),
                      "fake_class_logits": rng.normal(0, 3, (n_fake, k)).astype(np.float32),
                      "real_labels": rng.integers(0, k, n_real).astype(np.int32),
                      "fake_labels": rng.integers(0, k, n_fake).astype(np.int32),
                      "use_loss_cr": cr, "use_loss_cf": cf})
    return cases


@exercise("05", cases=_acgan_cases, rtol=1e-4, atol=1e-5,
          hint=N_("loss_d = (mean BCE(real_logits, 1) + mean BCE(fake_logits, 0)) / 2; loss_cr and loss_cf are the "
               "mean sparse softmax cross-entropies of the class logits on real and on generated images; "
               "loss_c = (loss_cr + loss_cf) / 2 with a dropped term left out (not renormalised); return loss_d + loss_c."))
def acgan_discriminator_loss(real_logits, fake_logits, real_class_logits, fake_class_logits, real_labels,
                             fake_labels, use_loss_cr=True, use_loss_cf=True):
    """The hand-out's D loss: (loss_d_r + loss_d_f) / 2 + (loss_cr + loss_cf) / 2, a float32 scalar.

    A switch set to False leaves its term out entirely (it is not even computed).
    """


def acgan_generator_loss(fake_logits, fake_class_logits, fake_labels, use_loss_cf=True):
    """G's loss in the hand-out: loss_g + loss_c.  Of loss_c only loss_cf / 2 depends on G (loss_cr is a
    function of real images), so that is the part kept here."""
    loss_g = gan_losses.g_loss_non_saturating(fake_logits)
    if use_loss_cf:
        loss_g += categorical_cross_entropy(fake_class_logits, fake_labels) / 2
    return loss_g


def ablation_switches(name: str) -> tuple[bool, bool]:
    """(use_loss_cr, use_loss_cf) of an ablation named in `ACGAN_ABLATIONS`."""
    if name not in ACGAN_ABLATIONS:
        raise KeyError(_("unknown AC-GAN ablation {name!r}; use one of {known}").format(
            name=name, known=", ".join(map(repr, ACGAN_ABLATIONS))))
    return ACGAN_ABLATIONS[name]


# ----------------------------------------------------------------------------- matching
def _check_predictions(predicted, labels, num_classes):
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if predicted.ndim != 1 or predicted.shape != labels.shape:
        raise ValueError(_("predicted and labels must be 1-D arrays of the same length; got shapes {a} and {b}").format(
            a=predicted.shape, b=labels.shape))
    if predicted.size == 0:
        raise ValueError(_("no predictions to match"))
    for name, values in (("predicted", predicted), ("labels", labels)):
        if values.min() < 0 or values.max() >= num_classes:
            raise ValueError(_("{name} must lie in [0, {n}); got values from {low} to {high}").format(
                name=name, n=num_classes, low=values.min(), high=values.max()))
    return predicted.astype(np.int64), labels.astype(np.int64)


def confusion_matrix(predicted, labels, num_classes=NUM_CATEGORIES) -> np.ndarray:
    """counts[code, label]: how many images of each label got each predicted code."""
    from sklearn.metrics import confusion_matrix as table

    predicted, labels = _check_predictions(predicted, labels, num_classes)
    # scikit-learn's rows are its first argument: the codes.
    return table(predicted, labels, labels=np.arange(num_classes)).astype(np.int64)


def code_assignment(predicted, labels, num_classes=NUM_CATEGORIES) -> tuple[np.ndarray, np.ndarray]:
    """(mapping, confusion): mapping[code] = the label matched to it by the Hungarian assignment."""
    from scipy.optimize import linear_sum_assignment

    confusion = confusion_matrix(predicted, labels, num_classes)
    codes, matched = linear_sum_assignment(confusion, maximize=True)
    mapping = np.empty(num_classes, np.int64)
    mapping[codes] = matched
    return mapping, confusion


def _matched_cases(rng):
    cases = []
    for n, k, noise in ((1, 10, 0.0), (50, 10, 0.0), (101, 10, 0.2), (37, 3, 0.4), (200, 10, 0.6), (9, 4, 0.5)):
        labels = rng.integers(0, k, n)
        predicted = rng.permutation(k)[labels]
        flip = rng.random(n) < noise
        predicted[flip] = rng.integers(0, k, int(flip.sum()))
        cases.append({"predicted": predicted.astype(np.int64), "labels": labels.astype(np.int64),
                      "num_classes": k})
    return cases


def _validate_predictions(predicted, labels, num_classes):
    """The input rules of `matched_accuracy`; the arguments go on as they were given."""
    _check_predictions(predicted, labels, num_classes)


@exercise("05", cases=_matched_cases, strict_dtype=False, validate=_validate_predictions,
          hint=N_("build counts[code, label] (np.add.at), then scipy.optimize.linear_sum_assignment(counts, "
               "maximize=True); the accuracy is the matched counts' sum divided by the number of images."))
def matched_accuracy(predicted, labels, num_classes=NUM_CATEGORIES):
    """Accuracy (a float) of predicted codes after the one-to-one code -> label matching that maximises it."""


# ----------------------------------------------------------------------------- augmentation
def augment_digits(images, max_degrees: float = AUGMENT_DEGREES, scale_range=AUGMENT_SCALE,
                   max_shift: float = AUGMENT_SHIFT, fill_value: float = -1.0):
    """Each image turned by up to `max_degrees`, scaled within `scale_range` and shifted by up to `max_shift`
    pixels about its centre, at random: a change of pose that keeps which digit it is.

    One affine resampling per image (`keras.ops.image.affine_transform`, bilinear), differentiable with
    respect to the images, so a loss on the copies reaches the generator that drew them.  Keras' RandomRotation,
    RandomZoom and RandomTranslation layers would resample three times (three blurs of a 28x28 stroke), hence the
    one composed matrix here.  Uncovered pixels get `fill_value` (the background of images in [-1, 1]).
    """
    x = tf.cast(images, tf.float32)
    n = tf.shape(x)[0]
    height, width = x.shape[1], x.shape[2]
    angle = tf.random.uniform((n,), -max_degrees, max_degrees) * (math.pi / 180.0)
    scale = tf.random.uniform((n,), *scale_range)
    shift = tf.random.uniform((n, 2), -max_shift, max_shift)
    # The transform maps each output pixel (x, y) to the input point it reads: rotate by -angle and
    # divide by the scale about the centre, then undo the shift.
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    zero = tf.zeros((n,))
    transform = tf.stack([cos, -sin, cx - cos * cx + sin * cy - shift[:, 0],
                          sin, cos, cy - sin * cx - cos * cy - shift[:, 1], zero, zero], axis=1)
    moved = keras.ops.image.affine_transform(x, transform, interpolation="bilinear", fill_mode="constant",
                                             fill_value=fill_value)
    return tf.cast(moved, images.dtype)


# ----------------------------------------------------------------------------- networks
def _batch_norm(name=None):
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def build_generator(latent_dim: int, widths=(1024, 128, 64), image_shape=(28, 28, 1),
                    name: str = "generator") -> keras.Model:
    """The InfoGAN paper's MNIST G: FC widths[0]-BN-ReLU, FC 7x7xwidths[1]-BN-ReLU,
    4x4 stride-2 up-convolution to 14x14xwidths[2]-BN-ReLU, 4x4 stride-2 up-convolution to 28x28, tanh."""
    fc, channels, up = widths
    height, width, out_channels = image_shape
    if height % 4 or width % 4:
        raise ValueError(_("two stride-2 up-convolutions need image sides divisible by 4; got {shape}").format(
            shape=image_shape))
    latent = keras.Input((latent_dim,), name="latent")
    x = layers.Dense(fc, use_bias=False, kernel_initializer=WEIGHT_INIT, name="fc")(latent)
    x = layers.ReLU(name="fc_relu")(_batch_norm("fc_bn")(x))
    x = layers.Dense(height // 4 * width // 4 * channels, use_bias=False, kernel_initializer=WEIGHT_INIT,
                     name="project")(x)
    x = layers.ReLU(name="project_relu")(_batch_norm("project_bn")(x))
    x = layers.Reshape((height // 4, width // 4, channels), name="reshape")(x)
    x = layers.Conv2DTranspose(up, 4, strides=2, padding="same", use_bias=False, kernel_initializer=WEIGHT_INIT,
                               name="up1")(x)
    x = layers.ReLU(name="up1_relu")(_batch_norm("up1_bn")(x))
    x = layers.Conv2DTranspose(out_channels, 4, strides=2, padding="same", kernel_initializer=WEIGHT_INIT,
                               name="to_image")(x)
    image = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(latent, image, name=name)


def build_trunk(widths=(64, 128, 1024), image_shape=(28, 28, 1)) -> keras.Model:
    """D's shared trunk: conv widths[0] 4x4 s2 lReLU, conv widths[1] 4x4 s2 BN lReLU, FC widths[2] BN lReLU."""
    conv1, conv2, fc = widths
    image = keras.Input(tuple(image_shape), name="image")
    x = layers.Conv2D(conv1, 4, strides=2, padding="same", kernel_initializer=WEIGHT_INIT, name="conv1")(image)
    x = layers.LeakyReLU(LEAKY_SLOPE, name="conv1_lrelu")(x)
    x = layers.Conv2D(conv2, 4, strides=2, padding="same", use_bias=False, kernel_initializer=WEIGHT_INIT,
                      name="conv2")(x)
    x = layers.LeakyReLU(LEAKY_SLOPE, name="conv2_lrelu")(_batch_norm("conv2_bn")(x))
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(fc, use_bias=False, kernel_initializer=WEIGHT_INIT, name="fc")(x)
    features = layers.LeakyReLU(LEAKY_SLOPE, name="fc_lrelu")(_batch_norm("fc_bn")(x))
    return keras.Model(image, features, name="trunk")


def build_code_head(features_dim: int, width: int = 128, num_categories: int = NUM_CATEGORIES,
                    num_continuous: int = NUM_CONTINUOUS, name: str = "q_head") -> keras.Model:
    """Q on the trunk's features: FC width-BN-lReLU, then category logits (and code means when
    num_continuous > 0; a single output otherwise, as AC-GAN's class head)."""
    features = keras.Input((features_dim,), name="features")
    x = layers.Dense(width, use_bias=False, kernel_initializer=WEIGHT_INIT, name="fc")(features)
    x = layers.LeakyReLU(LEAKY_SLOPE, name="fc_lrelu")(_batch_norm("fc_bn")(x))
    logits = layers.Dense(num_categories, kernel_initializer=WEIGHT_INIT, dtype="float32",
                          name="category_logits")(x)
    if not num_continuous:
        return keras.Model(features, logits, name=name)
    means = layers.Dense(num_continuous, kernel_initializer=WEIGHT_INIT, dtype="float32", name="code_means")(x)
    return keras.Model(features, [logits, means], name=name)


def build_infogan_discriminator(widths=(64, 128, 1024), q_width: int = 128, num_categories: int = NUM_CATEGORIES,
                                num_continuous: int = NUM_CONTINUOUS, image_shape=(28, 28, 1)):
    """(discriminator, q_head): D = image -> trunk -> one logit; Q = trunk features -> (logits, means).

    The trunk is one model inside D (`discriminator.get_layer("trunk")`): Q reads the very
    features D computes, so recovering the code costs one small head, not a second network.
    """
    trunk = build_trunk(widths, image_shape)
    image = keras.Input(tuple(image_shape), name="image")
    logit = layers.Dense(1, kernel_initializer=WEIGHT_INIT, dtype="float32", name="real_fake")(trunk(image))
    discriminator = keras.Model(image, logit, name="discriminator")
    q_head = build_code_head(widths[2], q_width, num_categories, num_continuous)
    return discriminator, q_head


def build_acgan_discriminator(widths=(64, 128, 1024), class_width: int = 128, num_classes: int = NUM_CATEGORIES,
                              image_shape=(28, 28, 1)) -> keras.Model:
    """AC-GAN's D: image -> trunk -> [real/fake logit (n, 1), class logits (n, num_classes)]."""
    trunk = build_trunk(widths, image_shape)
    image = keras.Input(tuple(image_shape), name="image")
    features = trunk(image)
    logit = layers.Dense(1, kernel_initializer=WEIGHT_INIT, dtype="float32", name="real_fake")(features)
    class_logits = build_code_head(widths[2], class_width, num_classes, 0, name="class_head")(features)
    return keras.Model(image, [logit, class_logits], name="discriminator")


# ----------------------------------------------------------------------------- InfoGAN
class InfoGAN(GAN):
    """G(z, c), D and Q on one trunk, trained with the information loss (module doc).

    Per `train_step`: a D step (real vs generated, non-saturating cross-entropy) updating
    the trunk and D's head; then one step of G and Q together on g_loss + info_weight * L_I,
    with G's optimizer (Q's head is G's ally: both want the code readable).  The G step
    reuses the D step's generated batch and its recorded G forward pass.

    `trunk_learns_info=True` is the authors' released code instead: D's step minimises
    d_loss + info_weight * L_I over the trunk, D's head and Q's head (D's optimizer), so
    the trunk also learns features that help Q, and the G step moves G alone.

    `augment_weight` > 0 adds to the G step Q's categorical cross-entropy on a copy of the
    fakes turned, scaled and shifted at random (`augment_digits`), with that weight: the
    category must survive a change of pose, so G cannot spend it on slant or size (one
    digit split over two codes, two digits then sharing one), and a digit's identity is what is
    left to carry it.  The identity-preserving transformations of Elastic-InfoGAN (Ojha et
    al. 2020), as a cross-entropy.  The copies go through the trunk in a call of their own
    (its batch norm sees fakes or copies, never both).  Metrics: `d_loss`, `g_loss`,
    `info_loss` (L_I), `cat_ce`, `cont_nll`, `mi_bound` (ln 10 - cat_ce, nats), `D(x)`,
    `D(G(z))`, and `augment_ce` when augmenting.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, q_head: keras.Model,
                 num_categories: int = NUM_CATEGORIES, num_continuous: int = NUM_CONTINUOUS, noise_dim: int = NOISE_DIM,
                 continuous_weight: float = 1.0, info_weight: float = 1.0, latent_fn=infogan_latent,
                 info_loss_fn=information_loss, trunk_learns_info: bool = False,
                 augment_weight: float = AUGMENT_WEIGHT, **kwargs):
        latent_dim = num_categories + num_continuous + noise_dim
        if generator.input_shape[-1] != latent_dim:
            raise ValueError(_("G takes {inputs} inputs; the latent has {categories} + {continuous} + {noise} = {total}").format(
                inputs=generator.input_shape[-1], categories=num_categories, continuous=num_continuous,
                noise=noise_dim, total=latent_dim))
        super().__init__(generator, discriminator, latent_dim=latent_dim, loss="non_saturating", **kwargs)
        self.q_head = q_head
        self.trunk = discriminator.get_layer("trunk")
        self.d_head = discriminator.get_layer("real_fake")
        self.num_categories, self.num_continuous, self.noise_dim = num_categories, num_continuous, noise_dim
        self.continuous_weight, self.info_weight = float(continuous_weight), float(info_weight)
        self.latent_fn, self.info_loss_fn = latent_fn, info_loss_fn
        self.trunk_learns_info = bool(trunk_learns_info)
        self.augment_weight = float(augment_weight)

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        """The paper's Adam: D 2e-4, G and Q 1e-3, beta_1 = 0.5, unless given."""
        super().compile(d_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5),
                        g_optimizer or keras.optimizers.Adam(1e-3, beta_1=0.5), **kwargs)
        # One optimizer also moves Q's head: built on it now (the Trainer's later build is then a no-op).
        self.d_optimizer.build(self.d_step_variables)
        self.g_optimizer.build(self.g_step_variables)

    @property
    def d_step_variables(self) -> list:
        """What D's optimizer moves: D (trunk and head), and Q's head when `trunk_learns_info`."""
        return self.discriminator.trainable_variables + (self.q_head.trainable_variables if self.trunk_learns_info
                                                         else [])

    @property
    def g_step_variables(self) -> list:
        """What G's optimizer moves: G, and Q's head unless `trunk_learns_info`."""
        return self.generator.trainable_variables + ([] if self.trunk_learns_info
                                                     else self.q_head.trainable_variables)

    # ------------------------------------------------------------------ latent
    def sample_codes(self, batch_size):
        """(categories, continuous codes, noise): Cat(10), U(-1, 1)^2, N(0, I)^62."""
        categories = tf.random.uniform((batch_size,), 0, self.num_categories, dtype=tf.int32)
        continuous = tf.random.uniform((batch_size, self.num_continuous), -1.0, 1.0)
        noise = tf.random.normal((batch_size, self.noise_dim))
        return categories, continuous, noise

    def sample_latent(self, batch_size):
        return self.latent_fn(*self.sample_codes(batch_size), num_categories=self.num_categories)

    def fixed_latent(self, count: int, seed: int = 0):
        """A grid whose rows are the categories (count // num_categories columns), codes and noise from `seed`."""
        rng = np.random.default_rng(seed)
        columns = max(1, count // self.num_categories)
        categories = (np.arange(count) // columns) % self.num_categories
        continuous = rng.uniform(-1, 1, (count, self.num_continuous)).astype(np.float32)
        noise = rng.standard_normal((count, self.noise_dim)).astype(np.float32)
        return np.asarray(infogan_latent(categories, continuous, noise, self.num_categories))

    def generate_codes(self, categories, continuous, noise) -> np.ndarray:
        """Images (in [-1, 1]) from explicit categories (n,), continuous codes (n, c) and noise (n, z)."""
        latent = infogan_latent(np.asarray(categories), np.asarray(continuous, np.float32),
                                np.asarray(noise, np.float32), self.num_categories)
        return np.asarray(self.generator(latent, training=False), np.float32)

    def predict_codes(self, images, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
        """Q's (category logits, code means) for images, in inference mode."""
        logits, means = [], []
        for start in range(0, len(images), batch_size):
            out = self.q_head(self.trunk(images[start:start + batch_size], training=False), training=False)
            logits.append(np.asarray(out[0]))
            means.append(np.asarray(out[1]))
        return np.concatenate(logits), np.concatenate(means)

    def checkpoint_objects(self) -> dict:
        return {**super().checkpoint_objects(), "q_head": self.q_head}

    # ------------------------------------------------------------------ training
    def train_step(self, data):
        real_images = data[0] if isinstance(data, (tuple, list)) else data
        batch_size = tf.shape(real_images)[0]
        categories, continuous, noise = self.sample_codes(batch_size)
        latent = self.latent_fn(categories, continuous, noise, num_categories=self.num_categories)

        with tf.GradientTape() as generator_tape:
            fake_images = self.generator(latent, training=True)
        # D step: real and generated images in separate calls (the trunk has batch norm).
        d_variables = self.d_step_variables
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(real_images, training=True)
            features = self.trunk(fake_images, training=True)
            fake_logits = self.d_head(features)
            d_loss = self.d_loss_fn(real_logits, fake_logits)
            d_objective = d_loss
            if self.trunk_learns_info:
                category_logits, code_means = self.q_head(features, training=True)
                d_objective += self.info_weight * tf.cast(self.info_loss_fn(
                    category_logits, categories, code_means, continuous, self.continuous_weight), tf.float32)
            scaled = self.d_optimizer.scale_loss(per_replica_scale(d_objective))
        grads = tape.gradient(scaled, d_variables)
        self.d_optimizer.apply_gradients(zip(grads, d_variables))

        # G step (with Q's head unless the D step moved it): the same fakes judged by the
        # updated trunk, D's head and Q's head.
        q_variables = [] if self.trunk_learns_info else self.q_head.trainable_variables
        with tf.GradientTape() as tape:
            tape.watch(fake_images)
            features = self.trunk(fake_images, training=True)
            fake_logits = self.d_head(features)
            category_logits, code_means = self.q_head(features, training=True)
            g_loss = self.g_loss_fn(fake_logits)
            info_loss = tf.cast(self.info_loss_fn(category_logits, categories, code_means, continuous,
                                                  self.continuous_weight), tf.float32)
            objective = g_loss + self.info_weight * info_loss
            if self.augment_weight:
                moved_logits, _ = self.q_head(self.trunk(augment_digits(fake_images), training=True), training=True)
                augment_ce = categorical_cross_entropy(moved_logits, categories)
                objective += self.augment_weight * augment_ce
            scaled = self.g_optimizer.scale_loss(per_replica_scale(objective))
        image_grads, *q_grads = tape.gradient(scaled, [fake_images] + q_variables)
        g_grads = generator_tape.gradient(fake_images, self.generator.trainable_variables,
                                          output_gradients=image_grads)
        self.g_optimizer.apply_gradients(zip(g_grads + q_grads, self.generator.trainable_variables + q_variables))

        cat_ce = categorical_cross_entropy(category_logits, categories)
        cont_nll = tf.reduce_mean(0.5 * tf.reduce_sum(tf.square(continuous - tf.cast(code_means, tf.float32)), -1))
        extra = {"augment_ce": augment_ce} if self.augment_weight else {}
        return {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "info_loss": info_loss,
            "cat_ce": cat_ce,
            "cont_nll": cont_nll,
            "mi_bound": math.log(self.num_categories) - cat_ce,
            "D(x)": tf.reduce_mean(tf.sigmoid(tf.cast(real_logits, tf.float32))),
            "D(G(z))": tf.reduce_mean(tf.sigmoid(tf.cast(fake_logits, tf.float32))),
            **extra,
        }


def make_infogan(generator_widths=(1024, 128, 64), discriminator_widths=(64, 128, 1024), q_width: int = 128,
                 latent_fn=infogan_latent, info_loss_fn=information_loss, continuous_weight: float = 1.0,
                 d_learning_rate: float = 2e-4, g_learning_rate: float = 1e-3,
                 trunk_learns_info: bool = False, info_weight: float = 1.0,
                 augment_weight: float = AUGMENT_WEIGHT) -> InfoGAN:
    """A compiled InfoGAN with the paper's MNIST networks at the given widths."""
    generator = build_generator(NUM_CATEGORIES + NUM_CONTINUOUS + NOISE_DIM, generator_widths)
    discriminator, q_head = build_infogan_discriminator(discriminator_widths, q_width)
    gan = InfoGAN(generator, discriminator, q_head, latent_fn=latent_fn, info_loss_fn=info_loss_fn,
                  continuous_weight=continuous_weight, info_weight=info_weight, trunk_learns_info=trunk_learns_info,
                  augment_weight=augment_weight)
    gan.compile(keras.optimizers.Adam(d_learning_rate, beta_1=0.5), keras.optimizers.Adam(g_learning_rate, beta_1=0.5))
    return gan


def categorical_code_accuracy(gan: InfoGAN, images, labels, accuracy_fn=matched_accuracy) -> dict:
    """Q's categorical code as a digit classifier: argmax on `images`, matched to `labels` (Hungarian).

    Returns {"accuracy", "error", "mapping" (code -> digit), "confusion" (counts[code, digit]), "codes"}.
    """
    logits, _ = gan.predict_codes(np.asarray(images, np.float32))
    codes = logits.argmax(1)
    mapping, confusion = code_assignment(codes, labels, gan.num_categories)
    accuracy = float(accuracy_fn(codes, np.asarray(labels), gan.num_categories))
    return {"accuracy": accuracy, "error": 1.0 - accuracy, "mapping": mapping, "confusion": confusion,
            "codes": codes}


# ----------------------------------------------------------------------------- AC-GAN
class ACGAN(GAN):
    """G(z, class) and D(x) -> (real/fake logit, class logits), trained on batches of (images, labels).

    `ablation` is a name in `ACGAN_ABLATIONS`: "full" keeps both class losses, "drop
    loss_cr" and "drop loss_cf" remove one from D's and G's losses (the hand-out's two
    experiments).  `d_loss_fn` is `acgan_discriminator_loss` (or the student's).  Both
    class losses are always measured and logged, dropped or not.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, ablation: str = "full",
                 num_classes: int = NUM_CATEGORIES, noise_dim: int = NOISE_DIM, latent_fn=infogan_latent,
                 d_loss_fn=acgan_discriminator_loss, **kwargs):
        latent_dim = num_classes + noise_dim
        if generator.input_shape[-1] != latent_dim:
            raise ValueError(_("G takes {inputs} inputs; the latent has {classes} + {noise} = {total}").format(
                inputs=generator.input_shape[-1], classes=num_classes, noise=noise_dim, total=latent_dim))
        super().__init__(generator, discriminator, latent_dim=latent_dim, loss="non_saturating", **kwargs)
        self.ablation = ablation
        self.use_loss_cr, self.use_loss_cf = ablation_switches(ablation)
        self.num_classes, self.noise_dim = num_classes, noise_dim
        self.latent_fn, self.acgan_d_loss_fn = latent_fn, d_loss_fn

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        """The hand-out's Adam: D 1e-4, G 1e-3 (G learns faster), beta_1 = 0.5, unless given."""
        super().compile(d_optimizer or keras.optimizers.Adam(1e-4, beta_1=0.5),
                        g_optimizer or keras.optimizers.Adam(1e-3, beta_1=0.5), **kwargs)

    def latent(self, classes, noise):
        classes = tf.convert_to_tensor(classes)
        no_codes = tf.zeros((tf.shape(classes)[0], 0))
        return self.latent_fn(classes, no_codes, noise, num_categories=self.num_classes)

    def sample_latent(self, batch_size):
        classes = tf.random.uniform((batch_size,), 0, self.num_classes, dtype=tf.int32)
        return self.latent(classes, tf.random.normal((batch_size, self.noise_dim)))

    def fixed_latent(self, count: int, seed: int = 0):
        """Rows are classes (count // num_classes columns), noise from `seed`."""
        columns = max(1, count // self.num_classes)
        classes = (np.arange(count) // columns) % self.num_classes
        noise = np.random.default_rng(seed).standard_normal((count, self.noise_dim)).astype(np.float32)
        return np.asarray(infogan_latent(classes, np.zeros((count, 0), np.float32), noise, self.num_classes))

    def generate_codes(self, classes, continuous, noise) -> np.ndarray:
        """Images from classes (n,) and noise (n, z); `continuous` must have 0 columns (AC-GAN has no codes).
        With a weight average (`ema_decay`) the averaged G draws them."""
        latent = infogan_latent(np.asarray(classes), np.asarray(continuous, np.float32).reshape(len(noise), -1),
                                np.asarray(noise, np.float32), self.num_classes)
        return np.asarray(self.sampling_generator(latent, training=False), np.float32)

    def train_step(self, data):
        real_images, real_labels = data[0], tf.cast(data[1], tf.int32)
        batch_size = tf.shape(real_images)[0]
        fake_labels = tf.random.uniform((batch_size,), 0, self.num_classes, dtype=tf.int32)
        latent = self.latent(fake_labels, tf.random.normal((batch_size, self.noise_dim)))

        with tf.GradientTape() as generator_tape:
            fake_images = self.generator(latent, training=True)
        with tf.GradientTape() as tape:
            real_logits, real_class_logits = self.discriminator(real_images, training=True)
            fake_logits, fake_class_logits = self.discriminator(fake_images, training=True)
            d_loss = tf.cast(self.acgan_d_loss_fn(real_logits, fake_logits, real_class_logits, fake_class_logits,
                                                  real_labels, fake_labels, self.use_loss_cr, self.use_loss_cf),
                             tf.float32)
            scaled = self.d_optimizer.scale_loss(per_replica_scale(d_loss))
        grads = tape.gradient(scaled, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))

        with tf.GradientTape() as tape:
            tape.watch(fake_images)
            fake_logits, fake_class_logits = self.discriminator(fake_images, training=True)
            g_loss = acgan_generator_loss(fake_logits, fake_class_logits, fake_labels, self.use_loss_cf)
            scaled = self.g_optimizer.scale_loss(per_replica_scale(g_loss))
        image_grads = tape.gradient(scaled, fake_images)
        grads = generator_tape.gradient(fake_images, self.generator.trainable_variables, output_gradients=image_grads)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        self.after_generator_step()

        return {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "loss_cr": categorical_cross_entropy(real_class_logits, real_labels),
            "loss_cf": categorical_cross_entropy(fake_class_logits, fake_labels),
            "D(x)": tf.reduce_mean(tf.sigmoid(tf.cast(real_logits, tf.float32))),
            "D(G(z))": tf.reduce_mean(tf.sigmoid(tf.cast(fake_logits, tf.float32))),
        }


def make_acgan(ablation: str = "full", generator_widths=(1024, 128, 64), discriminator_widths=(64, 128, 1024),
               class_width: int = 128, latent_fn=infogan_latent, d_loss_fn=acgan_discriminator_loss,
               d_learning_rate: float = 1e-4, g_learning_rate: float = 1e-3, ema_decay: float | None = None) -> ACGAN:
    """A compiled AC-GAN (same G and trunk as InfoGAN) for one of `ACGAN_ABLATIONS`; `ema_decay`: sample
    from an average of G's weights (`train.GAN`)."""
    ablation_switches(ablation)  # an unknown name fails before anything is built
    generator = build_generator(NUM_CATEGORIES + NOISE_DIM, generator_widths)
    discriminator = build_acgan_discriminator(discriminator_widths, class_width)
    gan = ACGAN(generator, discriminator, ablation, latent_fn=latent_fn, d_loss_fn=d_loss_fn, ema_decay=ema_decay)
    gan.compile(keras.optimizers.Adam(d_learning_rate, beta_1=0.5), keras.optimizers.Adam(g_learning_rate, beta_1=0.5))
    return gan


def conditional_accuracy(gan: ACGAN, classifier, count: int, seed: int = 0, reference_features=None,
                         accuracy_fn=matched_accuracy) -> dict:
    """How well generated images follow the class they were asked for, by the course classifier.

    `count` samples, balanced over the classes, with noise from `seed`.  Returns
    {"accuracy": share classified as their own class, "matched accuracy": the same after
    the best one-to-one class -> digit matching, "share of top digit": the largest share any
    digit takes, "frechet": Fréchet distance to `reference_features` (if given)}.
    """
    from gan_course.metrics import frechet_distance

    rng = np.random.default_rng(seed)
    classes = np.arange(count) % gan.num_classes
    noise = rng.standard_normal((count, gan.noise_dim)).astype(np.float32)
    images = np.concatenate([gan.generate_codes(classes[i:i + 500], np.zeros((len(classes[i:i + 500]), 0)),
                                                noise[i:i + 500]) for i in range(0, count, 500)])
    features, probs = classifier.features(images)
    predicted = probs.argmax(1)
    result = {"accuracy": float(np.mean(predicted == classes)),
              "matched accuracy": float(accuracy_fn(predicted, classes, gan.num_classes)),
              "share of top digit": float(np.bincount(predicted, minlength=gan.num_classes).max() / count)}
    if reference_features is not None:
        result["frechet"] = frechet_distance(features, reference_features)
    return result


# ----------------------------------------------------------------------------- figures and tables
def code_sweep(generate_codes, code: int, values, num_categories: int = NUM_CATEGORIES,
               num_continuous: int = NUM_CONTINUOUS, noise_dim: int = NOISE_DIM, seed: int = 0,
               row_order=None) -> np.ndarray:
    """The paper's figure: rows = categories (in `row_order`), columns = `values` of one continuous code.

    Every image uses the same noise vector and the other codes at 0, so a row changes only
    through that code.  Returns images (rows * len(values), H, W, C) in row-major order.
    """
    if not 0 <= code < num_continuous:
        raise ValueError(_("code must be in [0, {n}); got {code}").format(n=num_continuous, code=code))
    values = np.asarray(values, np.float32)
    rows = np.arange(num_categories) if row_order is None else np.asarray(row_order)
    categories = np.repeat(rows, len(values))
    continuous = np.zeros((len(categories), num_continuous), np.float32)
    continuous[:, code] = np.tile(values, len(rows))
    noise = np.random.default_rng(seed).standard_normal((1, noise_dim)).astype(np.float32)
    return generate_codes(categories, continuous, np.repeat(noise, len(categories), 0))


def ablation_table(results: dict) -> str:
    """An aligned text table of {run name: conditional_accuracy result (+ any scalar extras)}."""
    columns = list(dict.fromkeys(k for r in results.values() for k in r))
    header = ["run"] + columns
    rows = [[name] + [f"{r[c]:.3f}" if c in r else "" for c in columns] for name, r in results.items()]
    widths = [max(len(line[i]) for line in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(text.ljust(w) for text, w in zip(line, widths)).rstrip() for line in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def explain_ablation(results: dict, chance: float = 1 / NUM_CATEGORIES) -> str:
    """A markdown paragraph about the three runs, computed from their numbers (so it stays true)."""
    full, no_cr, no_cf = (results[name] for name in ("full", "drop loss_cr", "drop loss_cf"))

    def versus(value, reference):
        if abs(value - reference) < 0.05:
            return _("about the same as the full model")
        return _("above the full model") if value > reference else _("below the full model")

    def near_chance(value):
        return _("close to chance") if value < chance + 0.1 else _("{ratio:.1f} times chance").format(ratio=value / chance)

    if no_cr["matched accuracy"] >= 0.8:
        verdict = _("The classes are distinct digits under other names: the link to the real labels is what "
                    "loss_cr carries.")
    elif no_cr["matched accuracy"] > no_cr["accuracy"] + 0.1:
        verdict = _("Many classes are distinct digits under other names (some share a digit): the link to the real "
                    "labels is what loss_cr carries.")
    else:
        verdict = _("Here the permutation explains little of the gap: the classes are not yet distinct digits.")
    lines = [
        _("- **full** (loss_cr + loss_cf): {accuracy:.0%} of the samples are classified as the class they were "
          "generated for (chance is {chance:.0%}).").format(accuracy=full["accuracy"], chance=chance),
        _("- **drop loss_cf**: G is never told which class it drew, so the class input is just more noise to it: "
          "{accuracy:.0%} ({near_chance}), {versus}. D still learns real classes from loss_cr, but nothing passes "
          "that knowledge to G.").format(accuracy=no_cf["accuracy"], near_chance=near_chance(no_cf["accuracy"]),
                                         versus=versus(no_cf["accuracy"], full["accuracy"])),
        _("- **drop loss_cr**: D never sees a real label, so it only learns to tell G's classes apart, and G only has "
          "to make them tell-apart-able: {accuracy:.0%} are classified as the asked-for digit ({near_chance}), but "
          "matching classes to digits one-to-one (the best permutation) gives {matched:.0%}. {verdict}").format(
            accuracy=no_cr["accuracy"], near_chance=near_chance(no_cr["accuracy"]),
            matched=no_cr["matched accuracy"], verdict=verdict),
    ]
    if all("final loss_cr" in r for r in (full, no_cr, no_cf)):
        lines.append(_("- loss_cr at the end: {full:.2f} (full), {no_cr:.2f} (drop loss_cr), {no_cf:.2f} (drop "
                       "loss_cf) nats; ln 10 = {uniform:.2f} is a uniform guess, and above it D's class head is "
                       "confidently wrong about real digits.").format(
            full=full["final loss_cr"], no_cr=no_cr["final loss_cr"], no_cf=no_cf["final loss_cr"], uniform=math.log(10)))
    if all("frechet" in r for r in (full, no_cr, no_cf)):
        named = {"full": full, "drop loss_cr": no_cr, "drop loss_cf": no_cf}
        best = min(named, key=lambda name: named[name]["frechet"])
        scores = ", ".join(f"{r['frechet']:.1f} ({name})" for name, r in named.items())
        if best == "drop loss_cf":
            lines.append(_("- Fréchet distance to real test digits (lower is better): {scores}. The most "
                           "realistic-looking set comes from **{best}**: without a class term G spends all its effort "
                           "on looking real, which on a short budget costs the conditioned runs some image quality."
                           ).format(scores=scores, best=best))
        else:
            lines.append(_("- Fréchet distance to real test digits (lower is better): {scores}. The most "
                           "realistic-looking set comes from **{best}**.").format(scores=scores, best=best))
    return "\n".join(lines)
