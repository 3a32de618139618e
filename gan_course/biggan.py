"""A small BigGAN (Brock, Donahue & Simonyan, 2019) for lab 06, piece by piece.

BigGAN is a class-conditional SAGAN made bigger, plus a few ideas that keep it stable
and let it trade diversity for fidelity.  Each idea is one function or layer below:

- spectral normalisation of every weight in both networks (Miyato et al. 2018):
  `power_iteration` is one step of the estimate of a kernel's largest singular value,
  `spectral_norm` wraps a layer in `keras.layers.SpectralNormalization`;
- class-conditional batch norm (`ConditionalBatchNorm`): the gain and bias of every
  batch norm in G are linear projections of a class embedding shared by all blocks,
  concatenated with a chunk of z ("skip-z", hierarchical latents);
- self-attention (`SelfAttention`, Zhang et al. 2019) at one resolution, starting as
  the identity (its gain gamma starts at 0);
- residual blocks that upsample in G (`GeneratorBlock`) and downsample in D
  (`DiscriminatorBlock`);
- the projection discriminator (`ProjectionHead`, Miyato & Koyama 2018):
  D(x, y) = psi(h) + <embed(y), h>, with h D's pooled features;
- the hinge loss (`hinge_d_loss`, and `g_loss_hinge` from `gan_course.losses`);
- orthogonal regularisation of G's kernels, BigGAN's variant that leaves the norms of
  the filters free: beta * ||W^T W * (1 - I)||_F^2 (`orthogonal_regularization`);
- an exponential moving average of G's weights for sampling (`GeneratorEMA`);
- the truncation trick: sample z from a truncated normal (`truncated_normal`).

`build_biggan_generator` / `build_biggan_discriminator` put them together at MNIST or
CIFAR size, small enough to train on a CPU; `BigGAN` trains them (a `ConditionalGAN`
whose `train_step` adds the regulariser and updates the EMA).  `train.ConditionalGAN` trains
the conditional DCGAN of `models.build_conditional_dcgan`, the lab's baseline, on the
same labelled batches (`train.image_batches(..., labels=True)`).

For the comparison: `sample_per_class` and `truncation_curve` here; the scores
(`metrics.real_reference`, `metrics.conditional_scores`: Fréchet distance, KID, class
accuracy and within-class diversity by the course's classifier) in `gan_course.metrics`.  The pretrained BigGAN-deep 128 of TF Hub:
`load_pretrained_biggan` returns a `PretrainedBigGAN`, or raises `HubModuleUnavailable`
whose message says how to get the module.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from gan_course import metrics
from gan_course.checks import exercise
from gan_course.i18n import N_, _
from gan_course.train import ConditionalGAN, GeneratorEMA  # noqa: F401 - GeneratorEMA: the lab's name

ORTHO_STRENGTH = 1e-4  # BigGAN's beta
serializable = keras.saving.register_keras_serializable(package="gan_course")


# ----------------------------------------------------------------------------- spectral norm
def _power_iteration_cases(rng):
    """Kernels as (fan_in, filters) matrices, with one row, one column and odd sizes."""
    cases = []
    for m, n in [(1, 4), (5, 1), (7, 3), (16, 9), (3, 3), (27, 8)]:
        w = rng.normal(size=(m, n)).astype(np.float32)
        u = rng.normal(size=(n,)).astype(np.float32)
        cases.append({"w": w, "u": u})
    return cases


@exercise(
    "06",
    cases=_power_iteration_cases,
    rtol=1e-4,
    atol=1e-5,
    hint=N_("v = normalize(w @ u), then u_new = normalize(w.T @ v), then sigma = v @ w @ u_new; "
         "normalize(a) = a / ||a||_2. Return (sigma, u_new, v) in that order."),
)
def power_iteration(w, u, n=1):
    """One (or `n`) power-iteration step(s) for the largest singular value of `w`.

    `w` is a kernel seen as a matrix of shape (fan_in, filters) (a convolution kernel is
    reshaped to (-1, filters)); `u` (filters,) is the running estimate of its top right
    singular vector.  Returns `(sigma, u_new, v)`: the estimate of the largest singular
    value, the updated right vector and the left vector (fan_in,).
    """


def spectral_norm(layer, power_iterations: int = 1, name=None, dtype=None):
    """`layer` with its kernel divided by its largest singular value on every training call.

    Keras' wrapper keeps u between calls, so one power iteration per step is enough: the
    kernel changes little from one step to the next.  It projects (it assigns W / sigma
    back into the kernel) rather than reparametrises as the paper's code does, so no
    gradient flows through sigma; that is how TF implementations have long done it, and
    the kernel a checkpoint stores is then the normalised one.
    """
    return layers.SpectralNormalization(layer, power_iterations=power_iterations, name=name, dtype=dtype)


# The layers below build their parts with their own dtype policy (`dtype=self.dtype_policy`):
# a part left to the global policy would compute in float32 in a copy made outside
# `train.precision()` (the weight average's `clone_model`, a reload) while the rest of the
# layer computes in bfloat16.
def _sn_conv(filters, kernel_size, name=None, dtype=None):
    conv = layers.Conv2D(filters, kernel_size, padding="same", kernel_initializer="orthogonal", dtype=dtype)
    return spectral_norm(conv, name=name, dtype=dtype)


def _sn_dense(units, use_bias=True, name=None, dtype=None):
    return spectral_norm(layers.Dense(units, use_bias=use_bias, kernel_initializer="orthogonal", dtype=dtype),
                         name=name, dtype=dtype)


# ----------------------------------------------------------------------------- layers
@serializable
class ConditionalBatchNorm(layers.Layer):
    """Batch norm whose gain and bias depend on a condition vector: call on `[x, cond]`.

    The normalisation is ordinary batch norm without its own scale and shift; the gain
    is 1 + W_gain cond and the bias W_bias cond, per sample.  In BigGAN `cond` is the
    shared class embedding concatenated with this block's chunk of z, so one embedding
    serves every block and each block learns its own projection of it.
    """

    def __init__(self, momentum=0.9, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.momentum, self.epsilon = momentum, epsilon
        self.bn = layers.BatchNormalization(center=False, scale=False, momentum=momentum, epsilon=epsilon,
                                            dtype=self.dtype_policy)

    def build(self, input_shape):
        x_shape, cond_shape = input_shape
        channels = x_shape[-1]
        self.bn.build(x_shape)
        self.gain = _sn_dense(channels, use_bias=False, dtype=self.dtype_policy)
        self.bias = _sn_dense(channels, use_bias=False, dtype=self.dtype_policy)
        self.gain.build(cond_shape)
        self.bias.build(cond_shape)

    def call(self, inputs, training=None):
        x, cond = inputs
        gain = 1.0 + self.gain(cond, training=training)[:, None, None, :]
        bias = self.bias(cond, training=training)[:, None, None, :]
        return self.bn(x, training=training) * gain + bias

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


@serializable
class SelfAttention(layers.Layer):
    """SAGAN's self-attention: every position attends to every other (keys pooled 2x2).

    The output is x + gamma * attention(x); gamma starts at 0, so the block starts as
    the identity and the network first learns local features, then how much to look
    far away.
    """

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels < 8:
            raise ValueError(_("self-attention needs at least 8 channels, not {n}").format(n=channels))

        def one_by_one(filters, name):
            return spectral_norm(layers.Conv2D(filters, 1, use_bias=False, dtype=self.dtype_policy), name=name,
                                 dtype=self.dtype_policy)

        self.query, self.key = one_by_one(channels // 8, "query"), one_by_one(channels // 8, "key")
        self.value, self.out = one_by_one(channels // 2, "value"), one_by_one(channels, "out")
        self.pool = layers.MaxPooling2D(2, padding="same", dtype=self.dtype_policy)
        for conv in (self.query, self.key, self.value):
            conv.build(input_shape)
        self.out.build((*input_shape[:-1], channels // 2))
        self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")

    def call(self, x, training=None):
        batch, height, width = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]

        def flat(t):  # (batch, h, w, c) -> (batch, h * w, c)
            return ops.reshape(t, (batch, -1, t.shape[-1]))

        query = flat(self.query(x, training=training))
        key = flat(self.pool(self.key(x, training=training)))
        value = flat(self.pool(self.value(x, training=training)))
        attention = ops.softmax(ops.matmul(query, ops.transpose(key, (0, 2, 1))), axis=-1)
        attended = ops.reshape(ops.matmul(attention, value), (batch, height, width, value.shape[-1]))
        return x + self.gamma * self.out(attended, training=training)


@serializable
class GeneratorBlock(layers.Layer):
    """BigGAN's up-block, called on `[x, cond]`: (CBN, ReLU, upsample, conv3x3) twice
    (upsampling once), plus a 1x1-convolved upsampled shortcut."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        policy = self.dtype_policy
        self.bn1, self.bn2 = ConditionalBatchNorm(dtype=policy), ConditionalBatchNorm(dtype=policy)
        self.up = layers.UpSampling2D(2, dtype=policy)
        self.conv1, self.conv2 = _sn_conv(filters, 3, dtype=policy), _sn_conv(filters, 3, dtype=policy)
        self.shortcut = _sn_conv(filters, 1, dtype=policy)

    def call(self, inputs, training=None):
        x, cond = inputs
        h = ops.relu(self.bn1([x, cond], training=training))
        h = self.conv1(self.up(h), training=training)
        h = ops.relu(self.bn2([h, cond], training=training))
        h = self.conv2(h, training=training)
        return h + self.shortcut(self.up(x), training=training)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape[0]
        return (n, None if h is None else 2 * h, None if w is None else 2 * w, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@serializable
class DiscriminatorBlock(layers.Layer):
    """BigGAN's down-block: (ReLU, conv3x3) twice, then 2x2 average pooling, plus a
    1x1-convolved shortcut.  The first block sees the image itself, so it does not
    start with a ReLU (`preactivation=False`) and pools its shortcut before the conv."""

    def __init__(self, filters, downsample=True, preactivation=True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.downsample, self.preactivation = filters, downsample, preactivation
        policy = self.dtype_policy
        self.conv1, self.conv2 = _sn_conv(filters, 3, dtype=policy), _sn_conv(filters, 3, dtype=policy)
        self.shortcut = _sn_conv(filters, 1, dtype=policy)
        self.pool = layers.AveragePooling2D(2, dtype=policy) if downsample else layers.Identity(dtype=policy)

    def call(self, x, training=None):
        h = ops.relu(x) if self.preactivation else x
        h = self.conv1(h, training=training)
        h = self.pool(self.conv2(ops.relu(h), training=training))
        if self.preactivation:
            shortcut = self.pool(self.shortcut(x, training=training))
        else:
            shortcut = self.shortcut(self.pool(x), training=training)
        return h + shortcut

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        if self.downsample:
            h, w = (None if h is None else h // 2), (None if w is None else w // 2)
        return (n, h, w, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "downsample": self.downsample,
                "preactivation": self.preactivation}


@serializable
class GlobalSumPooling2D(layers.Layer):
    """Sum over positions: (batch, h, w, c) -> (batch, c)."""

    def call(self, x):
        return ops.sum(x, axis=(1, 2))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


@serializable
class ProjectionHead(layers.Layer):
    """The projection discriminator's output, called on `[h, y]`: psi(h) + <embed(y), h>.

    psi scores how real the features look; the inner product with the class embedding
    scores whether they look like class y (Miyato & Koyama 2018).
    """

    def __init__(self, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def build(self, input_shape):
        h_shape, _ = input_shape
        self.psi = _sn_dense(1, name="psi", dtype=self.dtype_policy)
        # The class embedding as a bias-free Dense on one-hot labels: the same matrix
        # (num_classes, channels) and the same lookup, but Keras' SpectralNormalization
        # wrapper casts a layer's output to its input's dtype, which would make a wrapped
        # Embedding return integers.
        self.embed = _sn_dense(h_shape[-1], use_bias=False, name="class_embedding", dtype=self.dtype_policy)
        self.psi.build(h_shape)
        self.embed.build((None, self.num_classes))

    def embedding(self, y, training=None):
        """The class embeddings embed(y), (batch, channels)."""
        return self.embed(ops.one_hot(ops.cast(y, "int32"), self.num_classes), training=training)

    def call(self, inputs, training=None):
        h, y = inputs
        projection = ops.sum(self.embedding(y, training=training) * h, axis=-1, keepdims=True)
        return self.psi(h, training=training) + projection

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def _projection_cases(rng):
    """Feature batches of one row and odd sizes, one feature, 2 to 10 classes."""
    cases = []
    for n, channels, classes in [(1, 4, 3), (5, 7, 10), (8, 16, 10), (3, 1, 2), (33, 12, 5)]:
        cases.append({"features": rng.normal(size=(n, channels)).astype(np.float32),
                      "labels": rng.integers(0, classes, n).astype(np.int32),
                      "class_embeddings": rng.normal(size=(classes, channels)).astype(np.float32),
                      "psi_kernel": rng.normal(size=(channels, 1)).astype(np.float32),
                      "psi_bias": rng.normal(size=(1,)).astype(np.float32)})
    return cases


@exercise(
    "06",
    cases=_projection_cases,
    rtol=1e-4,
    atol=1e-4,
    hint=N_("psi(h) = features @ psi_kernel + psi_bias, shape (n, 1); the class term is the row-wise inner "
         "product of class_embeddings[labels] (n, c) with features (n, c), kept as a column (keepdims). Add them."),
)
def projection_logit(features, labels, class_embeddings, psi_kernel, psi_bias):
    """The projection discriminator's logit psi(h) + <embed(y), h>, shape (n, 1).

    features (n, c): D's pooled features h; labels (n,) int; class_embeddings
    (num_classes, c): one row per class; psi_kernel (c, 1) and psi_bias (1,): the
    linear "is it real" score.
    """


# ----------------------------------------------------------------------------- networks
def block_widths(image_size: int, ch: int):
    """(first map side, channels per stage): halve the side while it stays even and >= 4.

    28 -> 7 (two blocks: 7, 14, 28); 32 -> 4 (three blocks: 4, 8, 16, 32).  Channels go
    ch * (4, 2, 1) or ch * (4, 4, 2, 1): widest at the smallest map, as in BigGAN.
    """
    side, blocks = image_size, 0
    while side % 2 == 0 and side // 2 >= 4:
        side, blocks = side // 2, blocks + 1
    if blocks == 0:
        raise ValueError(_("an image side of {size} cannot be halved to a map of at least 4").format(size=image_size))
    return side, [ch * min(4, 2 ** (blocks - i)) for i in range(blocks + 1)]


def build_biggan_generator(latent_dim: int = 96, num_classes: int = 10, image_shape=(28, 28, 1), ch: int = 32,
                           embed_dim: int = 32, attention_resolution: int | None = None,
                           name: str = "biggan_generator") -> keras.Model:
    """BigGAN's generator (z, y) -> image in [-1, 1].

    z is split into one chunk per stage: the first is projected to the first feature
    map, each later one joins the shared class embedding as that block's condition.
    A self-attention block follows the block whose output side is `attention_resolution`
    (default: half the image side; 0 for none).
    """
    height, width, channels = image_shape
    attention_resolution = height // 2 if attention_resolution is None else attention_resolution
    side, widths = block_widths(height, ch)
    if width != height:
        raise ValueError(_("square images only"))
    num_blocks = len(widths) - 1
    chunks = [len(c) for c in np.array_split(np.arange(latent_dim), num_blocks + 1)]
    if min(chunks) == 0:
        raise ValueError(_("latent_dim must be at least {n} to give every stage a chunk of z").format(n=num_blocks + 1))

    z = keras.Input(shape=(latent_dim,), name="z")
    y = keras.Input(shape=(), dtype="int32", name="label")
    z_chunks = ops.split(z, np.cumsum(chunks)[:-1].tolist(), axis=-1)
    # One embedding for every block (BigGAN's "shared embedding"); no spectral norm on it.
    # N(0, 1) rows (PyTorch's nn.Embedding default): the class then speaks as loudly as the
    # z chunk in each block's condition; Keras' default (uniform +-0.05) starts it 30x
    # quieter, and a short training never learns to listen to it.
    shared = layers.Embedding(num_classes, embed_dim, name="shared_embedding",
                              embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0))(y)

    x = _sn_dense(side * side * widths[0], name="project")(z_chunks[0])
    x = layers.Reshape((side, side, widths[0]), name="reshape")(x)
    for i, filters in enumerate(widths[1:]):
        cond = layers.Concatenate(name=f"cond{i + 1}")([shared, z_chunks[i + 1]])
        x = GeneratorBlock(filters, name=f"up{i + 1}")([x, cond])
        side *= 2
        if side == attention_resolution:
            x = SelfAttention(name=f"attention{side}")(x)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="out_bn")(x)
    x = layers.ReLU(name="out_relu")(x)
    x = _sn_conv(channels, 3, name="to_image")(x)
    image = layers.Activation("tanh", dtype="float32", name="tanh")(x)  # float32 out under mixed precision
    return keras.Model([z, y], image, name=name)


def build_biggan_discriminator(num_classes: int = 10, image_shape=(28, 28, 1), ch: int = 32,
                               attention_resolution: int | None = None,
                               name: str = "biggan_discriminator") -> keras.Model:
    """BigGAN's projection discriminator (image, y) -> one logit.

    Down-blocks mirror G (ch, 2ch, 4ch, ...), then one block that keeps the size, ReLU,
    and a sum over positions give the features h (layer `features`) that the
    `ProjectionHead` scores.  Self-attention follows the block whose output side is
    `attention_resolution` (default: half the image side; 0 for none).
    """
    side, widths = block_widths(image_shape[0], ch)
    attention_resolution = image_shape[0] // 2 if attention_resolution is None else attention_resolution
    image = keras.Input(shape=tuple(image_shape), name="image")
    y = keras.Input(shape=(), dtype="int32", name="label")
    x, size = image, image_shape[0]
    for i, filters in enumerate(widths[::-1][:-1]):
        x = DiscriminatorBlock(filters, preactivation=i > 0, name=f"down{i + 1}")(x)
        size //= 2
        if size == attention_resolution:
            x = SelfAttention(name=f"attention{size}")(x)
    x = DiscriminatorBlock(widths[0], downsample=False, name="last_block")(x)
    x = layers.ReLU(name="relu")(x)
    # Sum, not mean, over positions (as BigGAN): the logit's scale does not shrink with the map.
    h = GlobalSumPooling2D(name="features")(x)
    logit = ProjectionHead(num_classes, dtype="float32", name="projection")([h, y])  # float32, as G's output
    return keras.Model([image, y], logit, name=name)


# ----------------------------------------------------------------------------- losses
def _hinge_cases(rng):
    """Logit batches: a batch of one, odd sizes, (n, 1) columns, and a D that is sure."""
    cases = []
    for n, shape in [(1, (1, 1)), (7, (7,)), (5, (5, 1)), (33, (33, 1)), (64, (64,))]:
        scale = 3.0 if n == 64 else 1.0
        cases.append({"real_logits": rng.normal(0.5, scale, size=shape).astype(np.float32),
                      "fake_logits": rng.normal(-0.5, scale, size=shape).astype(np.float32)})
    return cases


@exercise(
    "06",
    cases=_hinge_cases,
    hint=N_("mean(relu(1 - real_logits)) + mean(relu(1 + fake_logits)): D is only pushed on logits "
         "that are not yet beyond the margin of 1; return one scalar."),
)
def hinge_d_loss(real_logits, fake_logits):
    """The discriminator's hinge loss (SAGAN, BigGAN), from raw logits."""


def orthogonal_regularization(kernel):
    """BigGAN's orthogonal penalty ||W^T W * (1 - I)||_F^2 of one kernel.

    The kernel is seen as (fan_in, filters); only the inner products between different
    filters are penalised, so filters may keep any length (the original penalty
    ||W^T W - I||^2 also pinned every norm to 1, which hurt BigGAN).
    """
    w = ops.reshape(kernel, (-1, kernel.shape[-1]))
    gram = ops.matmul(ops.transpose(w), w)
    off_diagonal = gram * (1.0 - ops.eye(gram.shape[0], dtype=gram.dtype))
    return ops.sum(ops.square(off_diagonal))


def generator_orthogonal_penalty(generator: keras.Model, strength: float = ORTHO_STRENGTH):
    """strength * the orthogonal penalty summed over the generator's kernels.

    Kernels are the trainable weights of rank >= 2, except the embeddings (BigGAN leaves
    the shared embedding out: its rows are classes, not filters).
    """
    kernels = [w for w in generator.trainable_weights if len(w.shape) >= 2 and "embedding" not in w.path]
    return strength * ops.sum(ops.stack([orthogonal_regularization(w) for w in kernels]))


# ----------------------------------------------------------------------------- truncation
def _truncation_cases(rng):
    """z batches (one row, odd sizes), thresholds from tight to loose, 1-4 rounds of draws."""
    cases = []
    for (n, d), threshold, rounds in [((1, 5), 1.0, 3), ((7, 3), 0.5, 4), ((4, 16), 2.0, 1), ((9, 1), 0.1, 2),
                                      ((3, 33), 1.5, 3)]:
        cases.append({"z": rng.normal(size=(n, d)).astype(np.float32), "threshold": threshold,
                      "draws": rng.normal(size=(rounds, n, d)).astype(np.float32)})
    return cases


@exercise(
    "06",
    cases=_truncation_cases,
    hint=N_("for each draw in order: z = where(|z| > threshold, draw, z); entries already inside keep their value, "
         "an entry still outside after the last draw stays as it is."),
)
def truncated_normal_sample(z, threshold, draws):
    """Resample the entries of `z` whose magnitude exceeds `threshold`.

    `draws` (rounds, *z.shape) holds fresh standard-normal values: in each round every
    entry still outside [-threshold, threshold] is replaced by that round's value at its
    position.  Returns the new array; `z` is not changed.
    """


def truncated_normal(shape, threshold: float | None, seed=None) -> np.ndarray:
    """Standard normal samples conditioned on |z| <= threshold (the truncation trick).

    `seed` is an int or a `np.random.Generator`; values beyond the threshold are drawn
    again until none is left.  `threshold=None` gives plain N(0, 1) samples.
    """
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape).astype(np.float32)
    if threshold is None:
        return z
    if threshold <= 0:
        raise ValueError(_("threshold must be positive, not {threshold}").format(threshold=threshold))
    while np.any(np.abs(z) > threshold):
        draws = rng.standard_normal((4, *z.shape)).astype(np.float32)
        z = np.asarray(truncated_normal_sample(z, threshold, draws))
    return z


# ----------------------------------------------------------------------------- training
class BigGAN(ConditionalGAN):
    """A class-conditional GAN trained the BigGAN way; `fit` on batches of (images, labels).

    Per `train_step`: `d_steps` discriminator steps with the hinge loss (each on its own
    batch of fakes), one generator step with the hinge loss plus the orthogonal penalty
    (on the last D step's fakes, as `train.ConditionalGAN`), then the EMA update.
    Metrics as `train.GAN` plus `ortho`; `D(x)` and `D(G(z))` are sigmoids of the hinge
    logits, only a readable trend.  `generate` samples from the
    EMA generator unless told otherwise, so the Trainer's grids show the averaged weights.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, latent_dim: int, num_classes: int,
                 d_steps: int = 1, ortho_strength: float = ORTHO_STRENGTH, ema_decay: float = 0.999, **kwargs):
        super().__init__(generator, discriminator, latent_dim=latent_dim, num_classes=num_classes, loss="hinge",
                         ema_decay=ema_decay, **kwargs)
        self.d_steps = d_steps
        self.ortho_strength = ortho_strength

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        """Adam with beta_1 = 0 and D 4x faster than G unless given (SAGAN's two time-scale rule)."""
        super().compile(d_optimizer or keras.optimizers.Adam(4e-4, beta_1=0.0, beta_2=0.9),
                        g_optimizer or keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9), **kwargs)

    def generator_penalty(self) -> dict:
        return {"ortho": generator_orthogonal_penalty(self.generator, self.ortho_strength)}


# ----------------------------------------------------------------------------- comparison
def timed_fit(trainer, data, steps: int) -> float:
    """`trainer.fit(data, steps)`; returns the wall-clock seconds of all training in its folder.

    The seconds add up over reruns and resumes (kept in `train_time.json` beside the
    checkpoints), so a resumed run still reports what the whole training cost.
    """
    path = Path(trainer.directory) / "train_time.json"
    total = json.loads(path.read_text())["seconds"] if path.exists() else 0.0
    began = time.perf_counter()
    trainer.fit(data, steps)
    total += time.perf_counter() - began
    path.write_text(json.dumps({"seconds": total, "step": trainer.step}))
    return total


def sample_per_class(gan: ConditionalGAN, per_class: int, seed: int = 0, threshold: float | None = None,
                     batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` images of every class, labels 0, 1, ..., 9, 0, 1, ... (any prefix is balanced).

    z comes from `truncated_normal(..., threshold)`: the same seed gives the same z, so
    curves over thresholds compare like with like.  A `BigGAN` samples from its EMA generator.
    """
    labels = np.tile(np.arange(gan.num_classes, dtype=np.int32), per_class)
    z = truncated_normal((len(labels), gan.latent_dim), threshold, seed)
    images = [np.asarray(tf.cast(gan.generate(z[i:i + batch_size], labels[i:i + batch_size]), tf.float32))
              for i in range(0, len(labels), batch_size)]
    return np.concatenate(images), labels


def truncation_curve(gan: ConditionalGAN, classifier, thresholds, per_class: int, seed: int = 0,
                     reference_features=None) -> list[dict]:
    """Fidelity and diversity of samples at each truncation threshold (`None`: no truncation).

    Rows {threshold, class_accuracy, confidence, diversity, frechet}: the same seed at
    every threshold; `frechet` (to `reference_features`) only when those are given.
    """
    rows = []
    for threshold in thresholds:
        images, labels = sample_per_class(gan, per_class, seed, threshold)
        features, probs = classifier.features(images)
        accuracy, confidence = metrics.class_agreement(probs, labels)
        row = {"threshold": threshold, "class_accuracy": accuracy, "confidence": confidence,
               "diversity": metrics.mean_pairwise_distance(features, labels)}
        if reference_features is not None:
            row["frechet"] = metrics.frechet_distance(features, reference_features)
        rows.append(row)
    return rows



def truncation_sampler(gan: ConditionalGAN, count: int):
    """`sample(threshold, label, seed)` -> `count` images of class `label` with z truncated at
    `threshold` (the same seed, the same z wherever it lies inside): for `widgets.TruncationExplorer`."""
    def sample(threshold, label, seed):
        z = truncated_normal((count, gan.latent_dim), threshold, seed)
        return np.asarray(tf.cast(gan.generate(z, np.full(count, label, np.int32)), tf.float32))

    return sample


# ----------------------------------------------------------------------------- pretrained BigGAN-deep
# The TF Hub loader lives in gan_course.hub (it downloads through the data layer); its names stay importable here.
from gan_course.hub import BIGGAN_DEEP_HANDLE, HubModuleUnavailable, load_hub_module  # noqa: E402,F401 - the lab's names

# A few ImageNet classes (index: name) for the lab's pickers; the module takes any of 1000.
IMAGENET_CLASSES = {1: "goldfish", 22: "bald eagle", 88: "macaw", 130: "flamingo", 207: "golden retriever",
                    281: "tabby cat", 291: "lion", 323: "monarch butterfly", 388: "giant panda", 417: "balloon",
                    511: "convertible", 933: "cheeseburger", 947: "mushroom", 963: "pizza", 970: "alp",
                    980: "volcano"}


class PretrainedBigGAN:
    """BigGAN-deep from TF Hub through its "default" signature: y (n, 1000) one-hot,
    z (n, 128) truncated normal, truncation (scalar) -> images (n, 128, 128, 3) in [-1, 1]."""

    INPUTS = {"y", "z", "truncation"}

    def __init__(self, module, handle: str = BIGGAN_DEEP_HANDLE):
        self.module, self.handle = module, handle
        if "default" not in module.signatures:
            raise ValueError(_("{handle} has no 'default' signature (it has {signatures})").format(
                handle=handle, signatures=sorted(module.signatures)))
        self.signature = module.signatures["default"]
        specs = self.signature.structured_input_signature[1]
        if set(specs) != self.INPUTS:
            raise ValueError(_("{handle}'s default signature takes {inputs}, not {expected}").format(
                handle=handle, inputs=sorted(specs), expected=sorted(self.INPUTS)))
        self.num_classes, self.latent_dim = int(specs["y"].shape[-1]), int(specs["z"].shape[-1])

    def sample_z(self, count: int, truncation: float, seed=0) -> np.ndarray:
        """z for the module: truncation x a normal truncated to [-2, 2] (as the module's own demo)."""
        if not 0 < truncation <= 1:
            raise ValueError(_("BigGAN-deep's truncation is in (0, 1], not {truncation}").format(truncation=truncation))
        return truncation * truncated_normal((count, self.latent_dim), 2.0, seed)

    def one_hot(self, labels) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.ndim == 2:  # already class vectors (a mix of two classes, say)
            return labels.astype(np.float32)
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(_("class indices must be in [0, {n}); got {low}..{high}").format(
                n=self.num_classes, low=labels.min(), high=labels.max()))
        return np.eye(self.num_classes, dtype=np.float32)[labels]

    def generate(self, labels, truncation: float = 0.5, seed=0, z=None) -> np.ndarray:
        """Images for class indices (n,) or class vectors (n, num_classes), in [-1, 1]."""
        y = self.one_hot(labels)
        z = self.sample_z(len(y), truncation, seed) if z is None else np.asarray(z, np.float32)
        out = self.signature(y=tf.constant(y), z=tf.constant(z, tf.float32),
                             truncation=tf.constant(truncation, tf.float32))
        return np.asarray(out["default"] if isinstance(out, dict) else out)

    def interpolate_classes(self, class_a: int, class_b: int, steps: int, truncation: float = 0.5,
                            seed=0) -> np.ndarray:
        """One z, the class vector moving from class_a to class_b in `steps` images."""
        t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
        y = (1 - t) * self.one_hot([class_a]) + t * self.one_hot([class_b])
        z = np.repeat(self.sample_z(1, truncation, seed), steps, axis=0)
        return self.generate(y, truncation, z=z)


def load_pretrained_biggan(handle: str = BIGGAN_DEEP_HANDLE, download: bool = False) -> PretrainedBigGAN:
    """BigGAN-deep 128 from the TF Hub cache (or downloaded when `download`); see `load_hub_module`."""
    return PretrainedBigGAN(load_hub_module(handle, download), handle)
