"""BigGAN's pieces: each one does what the paper says, and the lab 06 exercises grade."""
import json
import math
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_course import biggan, checks, metrics, train
from gan_course.checks import run_checks
from exercise_layers import assert_checked_at

LATENT_DIM, NUM_CLASSES = 12, 10


@pytest.fixture(scope="module")
def tiny_biggan():
    """The smallest networks the builders make, 28x28 and ch=8, in a `BigGAN` (shared: building is slow)."""
    keras.utils.set_random_seed(0)
    generator = biggan.build_biggan_generator(LATENT_DIM, NUM_CLASSES, (28, 28, 1), ch=8, embed_dim=8)
    discriminator = biggan.build_biggan_discriminator(NUM_CLASSES, (28, 28, 1), ch=8)
    gan = biggan.BigGAN(generator, discriminator, latent_dim=LATENT_DIM, num_classes=NUM_CLASSES)
    gan.compile()
    return gan


# ----------------------------------------------------------------------------- spectral norm
def test_power_iteration_converges_to_the_largest_singular_value():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(12, 7)).astype(np.float32)
    u = rng.normal(size=(7,)).astype(np.float32)
    sigma, u_new, v = biggan.power_iteration(w, u, n=100)
    _, s, vt = np.linalg.svd(w)
    assert float(sigma) == pytest.approx(s[0], rel=1e-4)
    assert abs(float(np.dot(u_new, vt[0]))) == pytest.approx(1.0, abs=1e-4)  # the top right vector, up to sign
    assert np.asarray(v).shape == (12,) and float(np.linalg.norm(v)) == pytest.approx(1.0, abs=1e-5)
    # One step from a random u underestimates sigma (a Rayleigh quotient).
    assert float(biggan.power_iteration(w, u)[0]) <= s[0] + 1e-4


@pytest.mark.parametrize("make_layer, x_shape", [
    (lambda: keras.layers.Dense(9, kernel_initializer=keras.initializers.RandomNormal(stddev=1.0)), (2, 16)),
    (lambda: keras.layers.Conv2D(12, 3, kernel_initializer=keras.initializers.RandomNormal(stddev=1.0)), (2, 8, 8, 5)),
])
def test_keras_spectral_normalization_gives_unit_largest_singular_value(make_layer, x_shape):
    keras.utils.set_random_seed(0)  # how fast u converges depends on the kernel's spectral gap
    layer = biggan.spectral_norm(make_layer())
    x = np.random.default_rng(1).normal(size=x_shape).astype(np.float32)
    layer.build(x_shape)
    filters = layer.kernel.shape[-1]

    def top_singular_value():
        return np.linalg.svd(layer.kernel.numpy().reshape(-1, filters), compute_uv=False)[0]

    assert top_singular_value() > 3.0  # far from normalised at the start
    # One training call = one step of `power_iteration` from the layer's stored u, then W / sigma.
    kernel, u = layer.kernel.numpy(), layer.vector_u.numpy()[0]
    sigma, u_new, _ = biggan.power_iteration(kernel, u)
    layer(x, training=True)
    np.testing.assert_allclose(layer.kernel.numpy(), kernel / float(sigma), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(layer.vector_u.numpy()[0], u_new, rtol=1e-4, atol=1e-6)
    # u is kept between calls, so the estimate converges over training steps.
    for _ in range(100):
        layer(x, training=True)
    assert top_singular_value() == pytest.approx(1.0, abs=1e-3)
    # Inference leaves the kernel alone.
    before = layer.kernel.numpy()
    layer(x, training=False)
    np.testing.assert_array_equal(layer.kernel.numpy(), before)


# ----------------------------------------------------------------------------- layers
def test_conditional_batch_norm_depends_on_the_class_only():
    keras.utils.set_random_seed(2)
    embedding = keras.layers.Embedding(NUM_CLASSES, 6)
    cbn = biggan.ConditionalBatchNorm()
    x = np.repeat(np.random.default_rng(2).normal(size=(1, 4, 4, 5)).astype(np.float32), 4, axis=0)
    labels = np.array([3, 7, 3, 1], np.int32)
    for training in (False, True):
        out = np.asarray(cbn([x, embedding(labels)], training=training))
        np.testing.assert_allclose(out[0], out[2], atol=1e-6)  # same input, same class
        assert np.abs(out[0] - out[1]).max() > 1e-2  # same input, another class
        assert np.abs(out[1] - out[3]).max() > 1e-2
    # Without its projections it is plain batch norm without scale and shift.
    cbn.gain.layer.kernel.assign(tf.zeros_like(cbn.gain.layer.kernel))
    cbn.bias.layer.kernel.assign(tf.zeros_like(cbn.bias.layer.kernel))
    out = np.asarray(cbn([x, embedding(labels)], training=False))
    mean, variance = cbn.bn.moving_mean.numpy(), cbn.bn.moving_variance.numpy()
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(variance + 1e-5), rtol=1e-4, atol=1e-5)


def test_self_attention_starts_as_the_identity():
    attention = biggan.SelfAttention()
    x = np.random.default_rng(3).normal(size=(2, 7, 7, 16)).astype(np.float32)  # odd side: keys pooled with padding
    np.testing.assert_array_equal(np.asarray(attention(x, training=True)), x)
    assert float(attention.gamma.numpy()) == 0.0 and attention.gamma.trainable
    attention.gamma.assign(0.5)
    assert np.abs(np.asarray(attention(x)) - x).max() > 1e-3


def test_projection_head_is_psi_plus_inner_product_with_the_class_embedding():
    rng = np.random.default_rng(4)
    head = biggan.ProjectionHead(NUM_CLASSES)
    h = rng.normal(size=(5, 6)).astype(np.float32)
    y = np.array([0, 9, 4, 4, 2], np.int32)
    head([h, y])
    embed = head.embed.layer.kernel.numpy()  # (num_classes, channels)
    psi_w, psi_b = head.psi.layer.kernel.numpy(), head.psi.layer.bias.numpy()
    expected = h @ psi_w + psi_b + np.sum(embed[y] * h, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(head([h, y])), expected, rtol=1e-5, atol=1e-5)
    # psi zeroed: only the projection term is left.
    head.psi.layer.kernel.assign(tf.zeros_like(head.psi.layer.kernel))
    projection = np.sum(embed[y] * h, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(head([h, y])), projection, rtol=1e-5, atol=1e-5)


def test_discriminator_output_is_psi_of_its_features_plus_projection(tiny_biggan):
    discriminator = tiny_biggan.discriminator
    rng = np.random.default_rng(5)
    images = tf.constant(rng.uniform(-1, 1, (3, 28, 28, 1)).astype(np.float32))
    labels = tf.constant([1, 5, 8], tf.int32)
    features = keras.Model(discriminator.inputs, discriminator.get_layer("features").output)
    h = np.asarray(features([images, labels]))
    head = discriminator.get_layer("projection")
    psi = h @ head.psi.layer.kernel.numpy() + head.psi.layer.bias.numpy()
    inner = np.sum(head.embed.layer.kernel.numpy()[labels.numpy()] * h, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(discriminator([images, labels])), psi + inner, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- regulariser, EMA, truncation
def test_orthogonal_regularization_is_zero_only_for_orthogonal_filters():
    rng = np.random.default_rng(6)
    q, _ = np.linalg.qr(rng.normal(size=(36, 8)))
    assert float(biggan.orthogonal_regularization(q.astype(np.float32))) == pytest.approx(0.0, abs=1e-9)
    # BigGAN's variant leaves the filters' lengths free; a conv kernel is seen as (-1, filters).
    scaled = (q * np.arange(1, 9)).astype(np.float32).reshape(3, 3, 4, 8)
    assert float(biggan.orthogonal_regularization(scaled)) == pytest.approx(0.0, abs=1e-8)
    w = rng.normal(size=(36, 8)).astype(np.float32)
    gram = w.T @ w
    expected = np.sum((gram * (1 - np.eye(8))) ** 2)
    assert float(biggan.orthogonal_regularization(w)) == pytest.approx(expected, rel=1e-4)
    assert expected > 1.0


def test_generator_orthogonal_penalty_covers_the_kernels_not_the_embedding(tiny_biggan):
    generator = tiny_biggan.generator
    kernels = [w for w in generator.trainable_weights if len(w.shape) >= 2 and "embedding" not in w.path]
    expected = sum(float(biggan.orthogonal_regularization(w)) for w in kernels)
    penalty = float(biggan.generator_orthogonal_penalty(generator, strength=1.0))
    assert penalty == pytest.approx(expected, rel=1e-4) and penalty > 0
    assert any("embedding" in w.path for w in generator.trainable_weights)  # it exists, and is left out


def test_ema_moves_the_shadow_toward_the_live_weights_by_the_decay(tiny_biggan):
    generator, ema = tiny_biggan.generator, tiny_biggan.ema
    z = tf.random.normal((2, LATENT_DIM))
    labels = tf.constant([0, 3])
    ema.copy_to(generator)  # the copy starts equal to the live generator, and computes the same
    np.testing.assert_allclose(np.asarray(ema.model([z, labels])), np.asarray(generator([z, labels])), atol=1e-6)
    ema.decay = 0.9
    shadow = ema.model.get_weights()
    live = [w + 1.0 for w in shadow]
    original = generator.get_weights()
    try:
        generator.set_weights(live)
        ema.update()
        for new, old, target in zip(ema.model.get_weights(), shadow, live):
            np.testing.assert_allclose(new, 0.9 * old + 0.1 * target, rtol=1e-5, atol=1e-6)
        # The warm-up of tf.train.ExponentialMovingAverage: at update 0 the decay is 1/10.
        before = ema.model.get_weights()
        ema.update(num_updates=0)
        for new, old, target in zip(ema.model.get_weights(), before, live):
            np.testing.assert_allclose(new, 0.1 * old + 0.9 * target, rtol=1e-5, atol=1e-6)
        # Swapped in, the live generator samples with the averaged weights, then gets its own back.
        with ema.swapped_in() as swapped:
            np.testing.assert_allclose(swapped.get_weights()[0], ema.model.get_weights()[0])
        np.testing.assert_array_equal(generator.get_weights()[0], live[0])
    finally:
        generator.set_weights(original)
        ema.decay = 0.999


def test_truncated_normal_stays_within_the_threshold_with_the_right_distribution():
    threshold = 1.0
    z = biggan.truncated_normal((4000, 10), threshold, seed=7)
    assert z.shape == (4000, 10) and z.dtype == np.float32
    assert np.abs(z).max() <= threshold
    # N(0, 1) conditioned on |z| <= 1: mean 0, variance 1 - 2 phi(1) / (2 Phi(1) - 1).
    phi = math.exp(-0.5) / math.sqrt(2 * math.pi)
    mass = math.erf(1 / math.sqrt(2))
    assert z.mean() == pytest.approx(0.0, abs=0.02)
    assert z.var() == pytest.approx(1 - 2 * phi / mass, abs=0.01)
    # The inner half-threshold holds P(|z| < 0.5) / P(|z| < 1) of the samples: not clipped, not uniform.
    inner = math.erf(0.5 / math.sqrt(2)) / mass
    assert np.mean(np.abs(z) < 0.5) == pytest.approx(inner, abs=0.01)
    np.testing.assert_array_equal(z, biggan.truncated_normal((4000, 10), threshold, seed=7))
    assert np.abs(biggan.truncated_normal((2000,), None, seed=7)).max() > 2.5


# ----------------------------------------------------------------------------- networks and training
@pytest.mark.parametrize("image_shape", [(28, 28, 1), (32, 32, 3)])
def test_networks_build_with_the_expected_shapes(image_shape, tiny_biggan):
    if image_shape == (28, 28, 1):
        generator, discriminator = tiny_biggan.generator, tiny_biggan.discriminator
    else:
        generator = biggan.build_biggan_generator(LATENT_DIM, NUM_CLASSES, image_shape, ch=8, embed_dim=8)
        discriminator = biggan.build_biggan_discriminator(NUM_CLASSES, image_shape, ch=8)
    assert generator.output_shape == (None, *image_shape)
    assert discriminator.output_shape == (None, 1)
    assert any(isinstance(layer, biggan.SelfAttention) for layer in generator.layers)
    assert any(isinstance(layer, biggan.SelfAttention) for layer in discriminator.layers)
    z, labels = tf.random.normal((3, LATENT_DIM)), tf.constant([0, 4, 9])
    images = generator([z, labels], training=False)
    assert images.shape == (3, *image_shape) and np.abs(np.asarray(images)).max() <= 1.0
    assert discriminator([images, labels]).shape == (3, 1)


def test_default_sizes_train_on_a_cpu():
    # Parameter counts only (no forward pass): a few hundred thousand each at MNIST size.
    generator = biggan.build_biggan_generator()
    discriminator = biggan.build_biggan_discriminator()
    assert 2e5 < generator.count_params() < 1e6
    assert 2e5 < discriminator.count_params() < 1e6


def test_a_few_train_steps_give_finite_losses_and_move_the_ema(tiny_biggan):
    gan, discriminator = tiny_biggan, tiny_biggan.discriminator
    rng = np.random.default_rng(8)
    images = tf.constant(rng.uniform(-1, 1, (4, 28, 28, 1)).astype(np.float32))
    labels = tf.constant(rng.integers(0, NUM_CLASSES, 4))
    d_before, ema_before = discriminator.get_weights(), gan.ema.model.get_weights()
    for _ in range(2):
        metrics = gan.train_step((images, labels))
    for key in ("d_loss", "g_loss", "ortho", "D(x)", "D(G(z))"):
        assert np.isfinite(float(metrics[key])), key
    assert float(metrics["ortho"]) > 0
    assert any(np.abs(a - b).max() > 0 for a, b in zip(d_before, discriminator.get_weights()))
    assert any(np.abs(a - b).max() > 0 for a, b in zip(ema_before, gan.ema.model.get_weights()))
    samples = gan.generate(np.zeros((3, LATENT_DIM), np.float32))
    assert samples.shape == (3, 28, 28, 1)


# ----------------------------------------------------------------------------- exercises
EXERCISES = ["power_iteration", "projection_logit", "hinge_d_loss", "truncated_normal_sample"]


def test_lab_06_exercises_are_registered():
    names = [ex.name for ex in checks.load_lab("06")]
    assert names == EXERCISES


@pytest.mark.parametrize("name", EXERCISES)
def test_references_pass_their_checks(name):
    ex = checks.get_exercise(name)
    cases = checks.notebook_cases(ex)
    assert len(cases) >= 5
    result = run_checks(ex, ex.reference, cases)
    assert result.passed, result.line()


def _power_iteration_unnormalised(w, u, n=1):
    v = w @ u
    u_new = w.T @ v
    return np.float32(v @ w @ u_new), u_new, v


def _power_iteration_numpy(w, u, n=1):
    for _ in range(n):
        v = w @ u / np.linalg.norm(w @ u)
        u = w.T @ v / np.linalg.norm(w.T @ v)
    return v @ w @ u, u, v


@pytest.mark.parametrize("name, fn, layer", [
    ("power_iteration", _power_iteration_numpy, None),  # a NumPy answer passes too
    ("power_iteration", _power_iteration_unnormalised, "values"),
    ("power_iteration", lambda w, u, n=1: _power_iteration_numpy(w, u)[:2], "shape"),
    ("power_iteration", lambda w, u, n=1: tuple(np.float64(a) for a in _power_iteration_numpy(w, u)), "dtype"),
    ("hinge_d_loss", lambda real_logits, fake_logits: np.mean(np.maximum(0, 1 - real_logits))
     + np.mean(np.maximum(0, 1 + fake_logits)), None),
    ("hinge_d_loss", lambda real_logits, fake_logits: np.mean(1 - real_logits) + np.mean(1 + fake_logits), "values"),
    ("hinge_d_loss", lambda real_logits, fake_logits: np.maximum(0, 1 - real_logits)
     + np.maximum(0, 1 + fake_logits), "type"),
    ("truncated_normal_sample", lambda z, threshold, draws: np.clip(z, -threshold, threshold), "values"),
    ("truncated_normal_sample", lambda z, threshold, draws: np.where(np.abs(z) > threshold, draws[0], z), "values"),
    ("truncated_normal_sample", lambda z, threshold: z, "signature"),
    ("projection_logit", lambda features, labels, class_embeddings, psi_kernel, psi_bias:
     features @ psi_kernel + psi_bias + np.sum(class_embeddings[labels] * features, axis=1, keepdims=True), None),
    ("projection_logit", lambda features, labels, class_embeddings, psi_kernel, psi_bias:
     features @ psi_kernel + psi_bias, "values"),  # the class term forgotten
    ("projection_logit", lambda features, labels, class_embeddings, psi_kernel, psi_bias:
     (features @ psi_kernel)[:, 0] + psi_bias + np.sum(class_embeddings[labels] * features, axis=1), "shape"),
])
def test_exercise_checks_catch_mistakes_at_the_right_layer(name, fn, layer):
    assert_checked_at(name, fn, layer)


def test_projection_logit_reference_is_what_the_projection_head_computes():
    rng = np.random.default_rng(11)
    head = biggan.ProjectionHead(NUM_CLASSES)
    h = rng.normal(size=(6, 5)).astype(np.float32)
    y = np.array([0, 9, 3, 3, 7, 1], np.int32)
    expected = np.asarray(head([h, y]))
    got = biggan.projection_logit(h, y, head.embed.layer.kernel.numpy(), head.psi.layer.kernel.numpy(),
                                  head.psi.layer.bias.numpy())
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- more of the pieces
def test_the_class_embedding_is_shared_by_every_generator_block(tiny_biggan):
    generator = tiny_biggan.generator
    embeddings = [layer for layer in generator.layers if isinstance(layer, keras.layers.Embedding)]
    assert [layer.name for layer in embeddings] == ["shared_embedding"]
    shared = embeddings[0].output
    conds = [layer for layer in generator.layers if layer.name.startswith("cond")]
    assert len(conds) == 2  # one per up-block at 28x28
    assert all(any(t is shared for t in layer.input) for layer in conds)
    # One table drives every block: changing class 3's row changes class 3's image only.
    z = tf.constant(np.random.default_rng(12).normal(size=(2, LATENT_DIM)).astype(np.float32))
    labels = tf.constant([3, 5])
    table = embeddings[0].embeddings
    before, saved = np.asarray(generator([z, labels])), table.numpy()
    try:
        table.assign(tf.tensor_scatter_nd_update(table, [[3]], [saved[3] + 1.0]))
        after = np.asarray(generator([z, labels]))
    finally:
        table.assign(saved)
    assert np.abs(after[0] - before[0]).max() > 1e-3
    np.testing.assert_allclose(after[1], before[1], atol=1e-6)


def test_self_attention_looks_across_the_whole_map():
    keras.utils.set_random_seed(13)
    attention = biggan.SelfAttention()
    x = np.random.default_rng(13).normal(size=(1, 6, 6, 16)).astype(np.float32)
    out = np.asarray(attention(x))
    assert out.shape == x.shape
    attention.gamma.assign(1.0)
    far = x.copy()
    far[0, 5, 5] += 3.0  # one pixel in the far corner
    change = np.abs(np.asarray(attention(far)) - np.asarray(attention(x)))[0, 0, 0]
    assert change.max() > 1e-4  # the opposite corner sees it: no convolution this small would
    with pytest.raises(ValueError, match="at least 8 channels"):
        biggan.SelfAttention()(np.zeros((1, 4, 4, 4), np.float32))


def test_hinge_losses_stop_pushing_beyond_the_margin():
    sure = biggan.hinge_d_loss(np.array([[2.0], [1.5]], np.float32), np.array([[-3.0], [-1.0]], np.float32))
    assert float(sure) == 0.0
    unsure = biggan.hinge_d_loss(np.array([[0.0]], np.float32), np.array([[0.5]], np.float32))
    assert float(unsure) == pytest.approx(1.0 + 1.5)
    from gan_course import losses
    assert float(losses.g_loss_hinge(np.array([[2.0], [-1.0]], np.float32))) == pytest.approx(-0.5)


# ----------------------------------------------------------------------------- the Trainer drives a BigGAN
def _tiny_gan(seed=0):
    keras.utils.set_random_seed(seed)
    generator = biggan.build_biggan_generator(LATENT_DIM, NUM_CLASSES, (28, 28, 1), ch=8, embed_dim=8)
    discriminator = biggan.build_biggan_discriminator(NUM_CLASSES, (28, 28, 1), ch=8)
    gan = biggan.BigGAN(generator, discriminator, latent_dim=LATENT_DIM, num_classes=NUM_CLASSES, ema_decay=0.5)
    gan.compile()
    return gan


class _Labelled:
    """Images whose brightness encodes their label, like an `ImageData`."""

    def __init__(self, n=40):
        self.y = np.arange(n) % NUM_CLASSES
        self.x = np.broadcast_to((self.y / 9.0 * 2 - 1)[:, None, None, None], (n, 28, 28, 1)).astype(np.float32)


def test_trainer_trains_a_biggan_samples_from_its_ema_and_resumes_it(tmp_path):
    from gan_course import train

    batches = train.image_batches(_Labelled(), 4, labels=True)
    trainer = train.Trainer(_tiny_gan(), tmp_path, sample_every=2, num_samples=20, progress=False, quiet=True)
    trainer.fit(batches, steps=3)
    gan = trainer.gan
    assert trainer.step == 3 and [row["step"] for row in trainer.history] == [1, 2, 3]
    assert all(np.isfinite(row["ortho"]) for row in trainer.history)  # BigGAN's own metric is logged
    z, labels = trainer.fixed_z
    np.testing.assert_array_equal(labels, np.arange(20) // 5 % NUM_CLASSES)  # a row per class
    grid = trainer.generate()
    np.testing.assert_allclose(grid, np.asarray(gan.ema.model([z, labels], training=False)), atol=1e-6)
    assert np.abs(grid - np.asarray(gan.generator([z, labels], training=False))).max() > 1e-4
    assert sorted(f.name for f in (tmp_path / "samples").glob("*.png")) == [
        "step_000000.png", "step_000002.png", "step_000003.png"]

    ema_weights = gan.ema.model.get_weights()
    resumed = train.Trainer(_tiny_gan(seed=1), tmp_path, sample_every=2, num_samples=20, progress=False,
                            quiet=True)
    assert resumed.step == 3
    for saved, restored in zip(ema_weights, resumed.gan.ema.model.get_weights()):
        np.testing.assert_array_equal(saved, restored)
    np.testing.assert_allclose(resumed.generate(), grid, atol=1e-5)  # the grid goes on from the same EMA


def test_a_bfloat16_biggan_trains_and_its_average_computes_as_it_does():
    keras.utils.set_random_seed(0)
    with train.precision("mixed_bfloat16"):
        generator = biggan.build_biggan_generator(LATENT_DIM, NUM_CLASSES, (28, 28, 1), ch=8, embed_dim=8)
        discriminator = biggan.build_biggan_discriminator(NUM_CLASSES, (28, 28, 1), ch=8)
    gan = biggan.BigGAN(generator, discriminator, latent_dim=LATENT_DIM, num_classes=NUM_CLASSES, ema_decay=0.9)
    gan.compile()
    assert generator.get_layer("up1").compute_dtype == "bfloat16"
    assert gan.ema.model.get_layer("up1").compute_dtype == "bfloat16"  # the copy keeps the policy
    images = tf.random.uniform((4, 28, 28, 1), -1, 1)
    logs = gan.train_step((images, tf.constant([0, 1, 2, 3])))
    assert all(np.isfinite(float(value)) for value in logs.values())
    assert discriminator([images, tf.constant([0, 1, 2, 3])]).dtype == tf.float32
    assert gan.generate(gan.fixed_latent(4)).dtype == tf.float32


def test_timed_fit_adds_up_the_seconds_of_every_run(tmp_path):
    class FakeTrainer:
        directory, step = tmp_path, 0

        def fit(self, data, steps):
            self.step = steps

    first = biggan.timed_fit(FakeTrainer(), None, 5)
    second = biggan.timed_fit(FakeTrainer(), None, 5)
    assert 0 <= first <= second
    assert json.loads((tmp_path / "train_time.json").read_text()) == {"seconds": second, "step": 5}


# ----------------------------------------------------------------------------- the conditional DCGAN
def test_conditional_gan_trains_with_labels_and_generates_by_class():
    from gan_course import models

    keras.utils.set_random_seed(14)
    generator, discriminator = models.build_conditional_dcgan("mnist", LATENT_DIM, NUM_CLASSES,
                                                              g_filters=(16, 8), d_filters=(8, 16))
    gan = train.ConditionalGAN(generator, discriminator, LATENT_DIM, NUM_CLASSES)
    gan.compile()
    assert not gan.fuse_discriminator  # D has batch norm: real and fake batches kept apart
    data = _Labelled(16)
    d_before = discriminator.get_weights()
    metrics = gan.train_step((tf.constant(data.x[:8]), tf.constant(data.y[:8])))
    assert set(metrics) == {"d_loss", "g_loss", "D(x)", "D(G(z))"}
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert any(np.abs(a - b).max() > 0 for a, b in zip(d_before, discriminator.get_weights()))
    z = np.repeat(np.random.default_rng(14).normal(size=(1, LATENT_DIM)).astype(np.float32), 2, axis=0)
    images = np.asarray(gan.generate((z, np.array([1, 6]))))
    assert images.shape == (2, 28, 28, 1) and np.abs(images[0] - images[1]).max() > 1e-4
    np.testing.assert_allclose(np.asarray(gan.generate(z, [1, 6])), images)


class _PenalisedGAN(train.ConditionalGAN):
    """A penalty on G's weights, as BigGAN's orthogonal one: it reaches G's kernels directly."""

    def generator_penalty(self):
        return {"penalty": 0.05 * tf.reduce_sum(tf.square(self.generator.trainable_variables[0]))}


def test_conditional_g_step_reuses_the_d_steps_fakes_and_adds_a_weight_penalty():
    """G's gradient: the updated D's verdict on the D step's own fakes, carried back through
    the recorded G forward pass, plus the penalty's direct gradient (checked by hand)."""
    from gan_course import models

    build = lambda: models.build_conditional_dcgan("mnist", LATENT_DIM, NUM_CLASSES,  # noqa: E731
                                                   g_filters=(16, 8), d_filters=(8, 16))
    generator, discriminator = build()
    before, _ = build()  # a copy of G before the step (G holds a Lambda layer: no clone_model)
    before.set_weights(generator.get_weights())
    gan = _PenalisedGAN(generator, discriminator, LATENT_DIM, NUM_CLASSES)
    gan.compile(d_optimizer=keras.optimizers.SGD(0.1), g_optimizer=keras.optimizers.SGD(0.1))
    data = _Labelled(8)
    keras.utils.set_random_seed(5)
    z, labels = gan.sample_latent(8), gan.sample_labels(8)  # the draws the D step will make
    keras.utils.set_random_seed(5)
    metrics = gan.train_step((tf.constant(data.x), tf.constant(data.y)))
    assert set(metrics) == {"d_loss", "g_loss", "penalty", "D(x)", "D(G(z))"}

    with tf.GradientTape() as tape:  # D is the updated one; G's weights are those before the step
        fake = before([z, labels], training=True)
        loss = (gan.g_loss_fn(discriminator([fake, labels], training=True))
                + 0.05 * tf.reduce_sum(tf.square(before.trainable_variables[0])))
    grads = tape.gradient(loss, before.trainable_variables)
    for w, grad, got in zip(before.trainable_variables, grads, generator.trainable_variables):
        np.testing.assert_allclose(got.numpy(), w.numpy() - 0.1 * grad.numpy(), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- comparison and truncation
class _LinearGAN:
    """A stand-in conditional generator: the image is z (padded) plus its class, so its spread is z's."""
    latent_dim, num_classes = 8, 3

    def generate(self, z, labels):
        z, labels = np.asarray(z), np.asarray(labels)
        return (np.pad(z, ((0, 0), (0, 8)))[:, :, None, None] + labels[:, None, None, None]).astype(np.float32)


class _FakeClassifier:
    """features = the pixels; the guess is the class plus the mean of z, rounded (right when z is small)."""

    def features(self, images):
        flat = np.asarray(images).reshape(len(images), -1)
        guess = np.clip(np.round(flat[:, :8].mean(1)), 0, 2).astype(int)
        probs = np.full((len(images), 3), 0.1)
        probs[np.arange(len(images)), guess] = 0.8
        return flat, probs


def test_sample_per_class_is_balanced_in_every_prefix():
    images, labels = biggan.sample_per_class(_LinearGAN(), per_class=4, seed=1, threshold=0.5)
    assert images.shape == (12, 16, 1, 1)
    np.testing.assert_array_equal(labels, np.tile([0, 1, 2], 4))
    assert np.abs(images[:, :8, 0, 0] - labels[:, None]).max() <= 0.5  # z was truncated at 0.5


def test_mean_pairwise_distance_and_class_agreement():
    points = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0], [6.0, 8.0]])
    assert metrics.mean_pairwise_distance(points[:2]) == pytest.approx(5.0)
    assert metrics.mean_pairwise_distance(points, labels=[0, 0, 1, 1]) == pytest.approx(7.5)  # (5 + 10) / 2
    with pytest.raises(ValueError, match="at least 2"):
        metrics.mean_pairwise_distance(points[:1])
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    assert metrics.class_agreement(probs, [0, 1, 1]) == pytest.approx((2 / 3, (0.9 + 0.7 + 0.4) / 3))
    with pytest.raises(ValueError, match="3 probability rows but 2 labels"):
        metrics.class_agreement(probs, [0, 1])


def test_truncation_trades_diversity_for_fidelity():
    rows = biggan.truncation_curve(_LinearGAN(), _FakeClassifier(), [0.1, 1.0, None], per_class=50, seed=2)
    assert [r["threshold"] for r in rows] == [0.1, 1.0, None]
    diversity = [r["diversity"] for r in rows]
    accuracy = [r["class_accuracy"] for r in rows]
    assert diversity[0] < diversity[1] < diversity[2]
    assert accuracy[0] == 1.0 >= accuracy[1] >= accuracy[2] and accuracy[2] < 0.95


def test_truncation_sampler_keeps_z_for_the_same_seed():
    sample = biggan.truncation_sampler(_LinearGAN(), 5)
    a, b = sample(1.0, 2, 7), sample(1.0, 2, 7)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a[:, :8] - 2).max() <= 1.0 and a.shape == (5, 16, 1, 1)
    assert np.abs(sample(1.0, 2, 8) - a).max() > 0


def test_conditional_scores_compare_samples_with_the_real_reference(monkeypatch):
    from gan_course import data

    rng = np.random.default_rng(5)

    def fake_load(name, split="train", quiet=False, **kwargs):  # real "images" = what an ideal G draws
        labels = np.tile([0, 1, 2], 100)
        z = rng.standard_normal((len(labels), 8)).astype(np.float32)
        return types.SimpleNamespace(x=_LinearGAN().generate(z, labels), y=labels)

    monkeypatch.setattr(data, "load", fake_load)
    reference = metrics.real_reference(_FakeClassifier(), "mnist", n=150)
    assert reference["features"].shape == (150, 16)
    assert reference["real"]["frechet"] < 1.0  # train and test come from one distribution
    good = metrics.conditional_scores(*biggan.sample_per_class(_LinearGAN(), 50, seed=1), _FakeClassifier(), reference)
    tight = metrics.conditional_scores(*biggan.sample_per_class(_LinearGAN(), 50, seed=1, threshold=0.2),
                                      _FakeClassifier(), reference)
    assert good["samples"] == 150 and good["frechet_real"] == reference["real"]["frechet"]
    assert good["frechet"] < 1.0 < tight["frechet"]  # too little spread is far from the real data
    assert tight["diversity"] < good["diversity"] and tight["class_accuracy"] >= good["class_accuracy"]
    assert good["kid"] < tight["kid"]
