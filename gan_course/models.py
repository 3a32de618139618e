"""DCGAN generators and discriminators (Radford, Metz & Chintala, 2016).

The paper's five architecture guidelines, each visible in the builders below:

1. strided convolutions in D and fractionally strided (transposed) convolutions in G,
   no pooling;
2. batch normalisation in both networks, except at G's output and D's input;
3. no fully connected hidden layers: z is projected by one matrix multiply and reshaped
   into the first feature map, and D's last feature map is flattened into one logit;
4. ReLU in G, tanh at its output;
5. LeakyReLU (slope 0.2) in D.

Weights start from N(0, 0.02) as in the paper.  `PRESETS` holds the architectures the
labs use (MNIST, the face hand-out's four-layer network, the paper's 64x64 one);
`build_tutorial_generator` / `build_tutorial_discriminator` rebuild the TensorFlow DCGAN
tutorial's networks, the baseline `bench/` measures speed against.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from gan_course.i18n import _

WEIGHT_INIT = keras.initializers.RandomNormal(mean=0.0, stddev=0.02)
GAMMA_INIT = keras.initializers.RandomNormal(mean=1.0, stddev=0.02)
LEAKY_SLOPE = 0.2

# name: (image_shape, generator filters, generator output stride, discriminator filters)
PRESETS = {
    # 7x7x256 -> 14x14x128 -> 28x28x1; D 28 -> 14 -> 7.
    "mnist": dict(image_shape=(28, 28, 1), g_filters=(256, 128), output_stride=2, d_filters=(64, 128)),
    # The face hand-out: four layers in G (projection to 7x7x512, two stride-2 transposed
    # convolutions, one stride-1 output layer) and three convolutions + one logit in D.
    "faces": dict(image_shape=(28, 28, 3), g_filters=(512, 256, 128), output_stride=1, d_filters=(64, 128, 256)),
    # The paper's LSUN network: 4x4x1024 -> 8 -> 16 -> 32 -> 64x64x3.
    "paper64": dict(image_shape=(64, 64, 3), g_filters=(1024, 512, 256, 128), output_stride=2,
                    d_filters=(128, 256, 512, 1024)),
}


def _batch_norm(name=None):
    # Momentum 0.9 (Keras' default is 0.99): the statistics of G's output drift quickly
    # while it learns, and the TF1 reference code used 0.9 for that reason.
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, gamma_initializer=GAMMA_INIT, name=name)


def first_map_size(image_size: int, num_upsamples: int) -> int:
    """Side of G's first feature map: the image side divided by 2 once per stride-2 layer."""
    size, rest = divmod(image_size, 2 ** num_upsamples)
    if rest or size < 1:
        raise ValueError(_(
            "an image side of {size} cannot be reached from a whole feature map by "
            "{n} stride-2 upsamplings; change the filters or the output stride").format(size=image_size, n=num_upsamples)
        )
    return size


def build_generator(latent_dim: int = 100, image_shape=(28, 28, 1), g_filters=(256, 128), output_stride: int = 2,
                    kernel_size: int = 5, name: str = "generator", **_ignored) -> keras.Model:
    """DCGAN generator z -> image in [-1, 1].

    `g_filters[0]` is the depth of the projected first feature map; every later entry is
    one stride-2 transposed convolution + batch norm + ReLU; the output layer is a
    transposed convolution to the image's channels with `output_stride` and tanh.
    """
    height, width, channels = image_shape
    num_upsamples = len(g_filters) - 1 + (output_stride == 2)
    h0, w0 = first_map_size(height, num_upsamples), first_map_size(width, num_upsamples)

    z = keras.Input(shape=(latent_dim,), name="z")
    # The projection of z is one matrix multiply, not a hidden layer: its output is
    # reshaped at once into the first convolutional feature map (guideline 3).
    x = layers.Dense(h0 * w0 * g_filters[0], use_bias=False, kernel_initializer=WEIGHT_INIT, name="project")(z)
    x = layers.Reshape((h0, w0, g_filters[0]), name="reshape")(x)
    x = _batch_norm("project_bn")(x)
    x = layers.ReLU(name="project_relu")(x)
    for i, filters in enumerate(g_filters[1:], 1):
        # No bias before batch norm: its shift (beta) makes a bias redundant.
        x = layers.Conv2DTranspose(filters, kernel_size, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=WEIGHT_INIT, name=f"up{i}")(x)
        x = _batch_norm(f"up{i}_bn")(x)
        x = layers.ReLU(name=f"up{i}_relu")(x)
    image = layers.Conv2DTranspose(channels, kernel_size, strides=output_stride, padding="same",
                                   kernel_initializer=WEIGHT_INIT, name="to_image")(x)
    # The output layers compute in float32 under a mixed precision policy (`train.precision`),
    # so images and logits leave the networks in float32, as Keras' mixed precision guide advises.
    image = layers.Activation("tanh", dtype="float32", name="tanh")(image)
    return keras.Model(z, image, name=name)


def build_discriminator(image_shape=(28, 28, 1), d_filters=(64, 128), kernel_size: int = 5, dropout: float = 0.0,
                        name: str = "discriminator", **_ignored) -> keras.Model:
    """DCGAN discriminator image -> one logit (no sigmoid: the losses take logits).

    Every entry of `d_filters` is a stride-2 convolution + LeakyReLU, with batch norm on
    all but the first (the input layer).  `dropout` > 0 adds dropout after each
    activation, a common addition for small data sets (not in the paper).
    """
    image = keras.Input(shape=tuple(image_shape), name="image")
    x = image
    for i, filters in enumerate(d_filters):
        first = i == 0
        x = layers.Conv2D(filters, kernel_size, strides=2, padding="same", use_bias=first,
                          kernel_initializer=WEIGHT_INIT, name=f"down{i + 1}")(x)
        if not first:
            x = _batch_norm(f"down{i + 1}_bn")(x)
        x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"down{i + 1}_lrelu")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"down{i + 1}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    logit = layers.Dense(1, kernel_initializer=WEIGHT_INIT, dtype="float32", name="logit")(x)
    return keras.Model(image, logit, name=name)


def build_dcgan(preset: str = "mnist", latent_dim: int = 100, **overrides) -> tuple[keras.Model, keras.Model]:
    """(generator, discriminator) of a preset; keyword arguments override its entries."""
    if preset not in PRESETS:
        raise KeyError(_("unknown preset {preset!r}; use one of {known}").format(preset=preset, known=", ".join(PRESETS)))
    config = {**PRESETS[preset], **overrides}
    generator = build_generator(latent_dim, **config)
    discriminator = build_discriminator(**config)
    return generator, discriminator


# ----------------------------------------------------------------------------- conditional
def build_conditional_generator(latent_dim: int = 100, num_classes: int = 10, image_shape=(28, 28, 1),
                                g_filters=(256, 128), output_stride: int = 2, kernel_size: int = 5,
                                name: str = "conditional_generator", **_ignored) -> keras.Model:
    """A conditional DCGAN generator [z, label] -> image (Mirza & Osindero's conditioning).

    The class enters once, at the input: its one-hot vector is appended to z and the
    DCGAN generator (`build_generator`, the layer `dcgan_generator`) takes it from there.
    BigGAN instead conditions every block (class-conditional batch norm).
    """
    z = keras.Input(shape=(latent_dim,), name="z")
    label = keras.Input(shape=(), dtype="int32", name="label")
    one_hot = layers.Lambda(lambda y: ops.one_hot(ops.cast(y, "int32"), num_classes), name="one_hot")(label)
    body = build_generator(latent_dim + num_classes, image_shape, g_filters, output_stride, kernel_size,
                           name="dcgan_generator")
    image = body(layers.Concatenate(name="z_and_class")([z, one_hot]))
    return keras.Model([z, label], image, name=name)


def build_conditional_discriminator(num_classes: int = 10, image_shape=(28, 28, 1), d_filters=(64, 128),
                                    kernel_size: int = 5, dropout: float = 0.0,
                                    name: str = "conditional_discriminator", **_ignored) -> keras.Model:
    """A conditional DCGAN discriminator [image, label] -> one logit.

    The class enters as `num_classes` extra input channels (its one-hot vector at every
    pixel), so D's first convolution sees image and class together and judges the pair;
    the DCGAN discriminator (`build_discriminator`, the layer `dcgan_discriminator`) does
    the rest.  BigGAN's projection discriminator uses the class only at the end.
    """
    height, width, channels = image_shape
    image = keras.Input(shape=tuple(image_shape), name="image")
    label = keras.Input(shape=(), dtype="int32", name="label")
    class_planes = layers.Lambda(
        lambda y: ops.tile(ops.one_hot(ops.cast(y, "int32"), num_classes)[:, None, None, :], (1, height, width, 1)),
        name="class_planes")(label)
    body = build_discriminator((height, width, channels + num_classes), d_filters, kernel_size, dropout,
                               name="dcgan_discriminator")
    logit = body(layers.Concatenate(name="image_and_class")([image, class_planes]))
    return keras.Model([image, label], logit, name=name)


def build_conditional_dcgan(preset: str = "mnist", latent_dim: int = 100, num_classes: int = 10,
                            **overrides) -> tuple[keras.Model, keras.Model]:
    """(conditional generator, conditional discriminator) of a preset; keywords override its entries."""
    if preset not in PRESETS:
        raise KeyError(_("unknown preset {preset!r}; use one of {known}").format(preset=preset, known=", ".join(PRESETS)))
    if num_classes < 2:
        raise ValueError(_("a conditional GAN needs at least 2 classes, not {n}").format(n=num_classes))
    config = {**PRESETS[preset], **overrides}
    return (build_conditional_generator(latent_dim, num_classes, **config),
            build_conditional_discriminator(num_classes, **config))


# ----------------------------------------------------------------------------- any size, any channels
def sized_dcgan_config(image_size: int, channels: int = 3, g_filters=(256, 128, 64), d_filters=(64, 128, 256)) -> dict:
    """A DCGAN architecture for square images of `image_size` (32, 64, ...) with `channels`.

    G: z projected to a (image_size / 2**len(g_filters))-sided map of g_filters[0] channels,
    one stride-2 transposed convolution per later entry, and a stride-2 transposed
    convolution to the image (the paper's layout).  Three entries at 32x32 give the faces
    lab's four layers (projection, two up-convolutions, the output layer) from a 4x4 map;
    four at 64x64 (1024, 512, 256, 128) are the paper's LSUN network (`PRESETS["paper64"]`).
    D: one stride-2 convolution per entry of `d_filters`, then one logit.
    """
    first_map_size(image_size, len(g_filters))  # raises with the reason if the sizes do not fit
    return dict(image_shape=(image_size, image_size, channels), g_filters=tuple(g_filters), output_stride=2,
                d_filters=tuple(d_filters))


def build_sized_dcgan(image_size: int, channels: int = 3, latent_dim: int = 100, g_filters=(256, 128, 64),
                      d_filters=(64, 128, 256), num_classes: int = 0,
                      generator=None) -> tuple[keras.Model, keras.Model]:
    """(generator, discriminator) for `image_size` x `image_size` x `channels` images.

    `num_classes` 0: the unconditional DCGAN, G(z) and D(image).  `num_classes` >= 1: lab 06's
    conditional DCGAN, G([z, label]) and D([image, label]), the class as a one-hot vector
    appended to z and as extra input channels of D.  With 1 class the label is a constant:
    the model is unconditional but trains through the same conditional code as the others.
    `generator`: a function (latent_dim, image_size, channels, filters) -> generator model
    (lab 07's `colour_generator` exercise) used instead of `build_generator`; its weights
    are reset to the paper's initialisation.
    """
    config = sized_dcgan_config(image_size, channels, g_filters, d_filters)
    extra = max(0, int(num_classes))
    if generator is None:
        body = build_generator(latent_dim + extra, **config, name="dcgan_generator" if extra else "generator")
    else:
        body = paper_initialise(generator(latent_dim + extra, image_size, channels, tuple(g_filters)))
    if not extra:
        return body, build_discriminator(**config)
    z = keras.Input(shape=(latent_dim,), name="z")
    label = keras.Input(shape=(), dtype="int32", name="label")
    one_hot = layers.Lambda(lambda y: ops.one_hot(ops.cast(y, "int32"), extra), name="one_hot")(label)
    image = body(layers.Concatenate(name="z_and_class")([z, one_hot]))
    return (keras.Model([z, label], image, name="conditional_generator"),
            build_conditional_discriminator(extra, **config))


def paper_initialise(model: keras.Model, seed: int = 0) -> keras.Model:
    """Set a model's kernels to N(0, 0.02), batch-norm gains to N(1, 0.02), biases and shifts to 0
    (the DCGAN paper's initialisation), whatever initialisers it was built with; returns it."""
    rng = np.random.default_rng(seed)
    for layer in flat_layers(model):
        if isinstance(layer, layers.BatchNormalization):
            if layer.gamma is not None:
                layer.gamma.assign(rng.normal(1.0, 0.02, layer.gamma.shape).astype(np.float32))
            if layer.beta is not None:
                layer.beta.assign(np.zeros(layer.beta.shape, np.float32))
        elif isinstance(layer, (layers.Dense, layers.Conv2D, layers.Conv2DTranspose)):
            layer.kernel.assign(rng.normal(0.0, 0.02, layer.kernel.shape).astype(np.float32))
            if getattr(layer, "bias", None) is not None:
                layer.bias.assign(np.zeros(layer.bias.shape, np.float32))
    return model


# ----------------------------------------------------------------------------- baseline
def build_tutorial_generator(latent_dim: int = 100) -> keras.Model:
    """The TensorFlow DCGAN tutorial's generator (tensorflow.org/tutorials/generative/dcgan)."""
    z = keras.Input(shape=(latent_dim,), name="z")
    x = layers.Dense(7 * 7 * 256, use_bias=False)(z)
    x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU()(x)
    x = layers.Reshape((7, 7, 256))(x)
    x = layers.Conv2DTranspose(128, 5, strides=1, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU()(x)
    x = layers.Conv2DTranspose(64, 5, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU()(x)
    image = layers.Conv2DTranspose(1, 5, strides=2, padding="same", use_bias=False, activation="tanh")(x)
    return keras.Model(z, image, name="tutorial_generator")


def build_tutorial_discriminator() -> keras.Model:
    """The TensorFlow DCGAN tutorial's discriminator: two strided convolutions with dropout."""
    image = keras.Input(shape=(28, 28, 1), name="image")
    x = layers.Conv2D(64, 5, strides=2, padding="same")(image)
    x = layers.LeakyReLU()(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Conv2D(128, 5, strides=2, padding="same")(x)
    x = layers.LeakyReLU()(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Flatten()(x)
    logit = layers.Dense(1)(x)
    return keras.Model(image, logit, name="tutorial_discriminator")


# ----------------------------------------------------------------------------- guidelines
def flat_layers(model: keras.Model) -> list:
    """The model's layers in order, nested models (blocks) opened up, Input layers left out."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out += flat_layers(layer)
        elif not isinstance(layer, layers.InputLayer):
            out.append(layer)
    return out


def _activation_of(layer) -> str | None:
    if isinstance(layer, layers.ReLU):
        return "relu"
    if isinstance(layer, layers.LeakyReLU):
        return "leaky_relu"
    fn = getattr(layer, "activation", None)
    name = getattr(fn, "__name__", None)
    return None if name in (None, "linear") else name


def _followed_by_batch_norm(chain, index) -> bool:
    for layer in chain[index + 1:]:
        if isinstance(layer, layers.Reshape):
            continue  # the projection of z: reshape, then normalise
        return isinstance(layer, layers.BatchNormalization)
    return False


def guideline_checks(generator: keras.Model, discriminator: keras.Model) -> list[tuple[str, bool, str]]:
    """The DCGAN paper's five guidelines checked on two models: (guideline, holds, evidence)."""
    g, d = flat_layers(generator), flat_layers(discriminator)
    pooling = [l.name for l in g + d if "Pooling" in type(l).__name__ or isinstance(l, layers.UpSampling2D)]
    g_up = [l for l in g if isinstance(l, layers.Conv2DTranspose)]
    d_down = [l for l in d if isinstance(l, layers.Conv2D) and not isinstance(l, layers.Conv2DTranspose)]
    strided = (any(max(l.strides) > 1 for l in g_up) and any(max(l.strides) > 1 for l in d_down)
               and not pooling)
    none = _("none")
    results = [(_("1. strided convolutions, no pooling"), strided,
                _("G: {g} strided transposed conv; D: {d} strided conv; pooling/upsampling layers: {pooling}").format(
                    g=sum(max(l.strides) > 1 for l in g_up), d=sum(max(l.strides) > 1 for l in d_down),
                    pooling=pooling or none))]

    g_weighted = [i for i, l in enumerate(g) if isinstance(l, (layers.Dense, layers.Conv2DTranspose, layers.Conv2D))]
    d_weighted = [i for i, l in enumerate(d) if isinstance(l, (layers.Dense, layers.Conv2D))]
    g_missing = [g[i].name for i in g_weighted[:-1] if not _followed_by_batch_norm(g, i)]
    g_output_bn = bool(g_weighted) and _followed_by_batch_norm(g, g_weighted[-1])
    d_convs = [i for i in d_weighted if isinstance(d[i], layers.Conv2D)]
    d_input_bn = bool(d_convs) and _followed_by_batch_norm(d, d_convs[0])
    d_missing = [d[i].name for i in d_convs[1:] if not _followed_by_batch_norm(d, i)]
    ok = not (g_missing or g_output_bn or d_input_bn or d_missing)
    results.append((_("2. batch norm except G output and D input"), ok,
                    _("without BN: {missing}; G output BN: {g_output}; D input BN: {d_input}").format(
                        missing=g_missing + d_missing or none, g_output=g_output_bn, d_input=d_input_bn)))

    g_dense = [i for i, l in enumerate(g) if isinstance(l, layers.Dense)]
    d_dense = [i for i, l in enumerate(d) if isinstance(l, layers.Dense)]
    hidden = [g[i].name for i in g_dense if i != 0] + [d[i].name for i in d_dense if i != len(d) - 1]
    results.append((_("3. no fully connected hidden layers"), not hidden,
                    _("Dense layers other than G's projection of z and D's output: {layers}").format(layers=hidden or none)))

    g_acts = [a for a in map(_activation_of, g) if a]
    ok = bool(g_acts) and g_acts[-1] == "tanh" and all(a == "relu" for a in g_acts[:-1])
    results.append((_("4. ReLU in G, tanh at its output"), ok, _("G activations: {hidden} then {output}").format(
        hidden=sorted(set(g_acts[:-1])), output=g_acts[-1:])))

    d_acts = [a for a in map(_activation_of, d) if a]
    ok = bool(d_acts) and all(a == "leaky_relu" for a in d_acts)
    results.append((_("5. LeakyReLU in D"), ok, _("D activations: {activations}").format(activations=sorted(set(d_acts)))))
    return results


# ----------------------------------------------------------------------------- grading
def layer_kinds(model: keras.Model) -> list[str]:
    """Class names of a model's layers, Input excluded (Sequential and functional alike)."""
    return [type(layer).__name__ for layer in model.layers if not isinstance(layer, layers.InputLayer)]


def describe_model(model, case: dict, seed: int = 1234) -> dict:
    """A Keras model as comparable values: layer kinds, output shape, parameter count, and
    a forward pass (inference mode) after every weight is set from a fixed seed.

    Used as `Exercise.describe` for model-builder exercises: two models that agree here
    have the same structure and compute the same function of their weights.  The input
    comes from `case["input_shape"]` (batch of 3) and the seed, never from the student.
    """
    if not isinstance(model, keras.Model):
        return {"type": type(model).__name__}
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.weights:
        shape = tuple(w.shape)
        if "variance" in w.path:  # batch-norm variances must stay positive
            weights.append(rng.uniform(0.5, 1.5, shape).astype(np.float32))
        else:
            weights.append(rng.normal(0.0, 0.3, shape).astype(np.float32))
    model.set_weights(weights)
    x = rng.normal(size=(3, *case["input_shape"])).astype(np.float32)
    out = np.asarray(model(x, training=False), np.float32)
    return {
        "layers": layer_kinds(model),
        "output_shape": [-1 if d is None else int(d) for d in model.output_shape],
        "params": int(model.count_params()),
        "forward": out,
    }
