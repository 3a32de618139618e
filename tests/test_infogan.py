"""Lab 05: InfoGAN's latent, Q head and information loss; AC-GAN's class losses and ablations; the exercises."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_course import checks, infogan, train
from gan_course.checks import run_checks
from exercise_layers import assert_checked_at

TINY = dict(generator_widths=(16, 4, 4), discriminator_widths=(4, 8, 16), q_width=8)


@pytest.fixture()
def tiny_infogan():
    keras.utils.set_random_seed(0)
    return infogan.make_infogan(**TINY)


@pytest.fixture()
def tiny_acgan():
    keras.utils.set_random_seed(0)
    return infogan.make_acgan("full", TINY["generator_widths"], TINY["discriminator_widths"], TINY["q_width"])


def _images(n, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 28, 28, 1)).astype(np.float32)


def _weights(model):
    return [w.numpy().copy() for w in model.trainable_variables]


def _changed(before, model):
    return all(not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_variables) if b.size > 1)


# ----------------------------------------------------------------------------- latent
def test_latent_is_one_hot_then_codes_then_noise():
    latent = infogan.infogan_latent(np.array([3, 0]), np.array([[0.5, -1.0], [1.0, 0.25]]), np.ones((2, 62)))
    latent = latent.numpy()
    assert latent.shape == (2, 74) and latent.dtype == np.float32
    np.testing.assert_array_equal(latent[0, :10], np.eye(10)[3])
    np.testing.assert_array_equal(latent[1, :10], np.eye(10)[0])
    np.testing.assert_allclose(latent[:, 10:12], [[0.5, -1.0], [1.0, 0.25]])
    np.testing.assert_array_equal(latent[:, 12:], 1.0)
    categories, codes, noise = infogan.split_latent(latent)
    np.testing.assert_array_equal(categories, [3, 0])
    assert codes.shape == (2, 2) and noise.shape == (2, 62)


def test_sampled_codes_have_the_papers_distributions(tiny_infogan):
    categories, continuous, noise = (t.numpy() for t in tiny_infogan.sample_codes(4000))
    assert categories.dtype == np.int32 and set(np.unique(categories)) == set(range(10))
    assert np.all(np.bincount(categories) > 300)  # uniform over the 10 categories
    assert continuous.shape == (4000, 2) and continuous.min() >= -1 and continuous.max() <= 1
    assert abs(continuous.mean()) < 0.05 and continuous.var() == pytest.approx(1 / 3, rel=0.1)  # U(-1, 1)
    assert noise.shape == (4000, 62) and noise.std() == pytest.approx(1.0, rel=0.05)
    latent = tiny_infogan.sample_latent(5).numpy()
    assert latent.shape == (5, 74)
    np.testing.assert_array_equal(latent[:, :10].sum(1), 1.0)


def test_fixed_latent_rows_are_categories_and_repeat_for_a_seed(tiny_infogan):
    latent = tiny_infogan.fixed_latent(100, seed=3)
    categories, _, _ = infogan.split_latent(latent)
    np.testing.assert_array_equal(categories.reshape(10, 10), np.repeat(np.arange(10), 10).reshape(10, 10))
    np.testing.assert_array_equal(latent, tiny_infogan.fixed_latent(100, seed=3))
    assert not np.array_equal(latent, tiny_infogan.fixed_latent(100, seed=4))


@pytest.mark.parametrize("kwargs, match", [
    (dict(categories=np.zeros(3, int), continuous=np.zeros((2, 2)), noise=np.zeros((3, 62))), "same batch size"),
    (dict(categories=np.zeros((3, 1), int), continuous=np.zeros((3, 2)), noise=np.zeros((3, 62))), "1 dimension"),
    (dict(categories=np.zeros(3, int), continuous=np.zeros(3), noise=np.zeros((3, 62))), "2 dimension"),
    (dict(categories=np.array([0, 10, 2]), continuous=np.zeros((3, 2)), noise=np.zeros((3, 62))), r"\[0, 10\)"),
    (dict(categories=np.array([-1, 0, 2]), continuous=np.zeros((3, 2)), noise=np.zeros((3, 62))), r"\[0, 10\)"),
])
def test_latent_rejects_bad_input_with_a_clear_message(kwargs, match):
    with pytest.raises(ValueError, match=match):
        infogan.infogan_latent(**kwargs)


# ----------------------------------------------------------------------------- networks
def test_networks_follow_the_papers_shapes():
    generator = infogan.build_generator(74, (1024, 128, 64))
    assert generator.output_shape == (None, 28, 28, 1)
    assert [l.units for l in generator.layers if isinstance(l, keras.layers.Dense)] == [1024, 7 * 7 * 128]
    ups = [l for l in generator.layers if isinstance(l, keras.layers.Conv2DTranspose)]
    assert [(l.filters, l.kernel_size, l.strides) for l in ups] == [(64, (4, 4), (2, 2)), (1, (4, 4), (2, 2))]
    discriminator, q_head = infogan.build_infogan_discriminator((64, 128, 1024), 128)
    trunk = discriminator.get_layer("trunk")
    convs = [l for l in trunk.layers if isinstance(l, keras.layers.Conv2D)]
    assert [(l.filters, l.kernel_size, l.strides) for l in convs] == [(64, (4, 4), (2, 2)), (128, (4, 4), (2, 2))]
    assert trunk.output_shape == (None, 1024) and discriminator.output_shape == (None, 1)
    assert [tuple(s) for s in q_head.output_shape] == [(None, 10), (None, 2)]
    acgan_d = infogan.build_acgan_discriminator((8, 16, 32), 8)
    assert [tuple(s) for s in acgan_d.output_shape] == [(None, 1), (None, 10)]


def test_q_head_reads_the_discriminators_trunk(tiny_infogan):
    gan = tiny_infogan
    assert gan.trunk is gan.discriminator.get_layer("trunk")
    d_ids = {id(v) for v in gan.discriminator.trainable_variables}
    assert {id(v) for v in gan.trunk.trainable_variables} <= d_ids  # D's optimizer trains the trunk
    assert not d_ids & {id(v) for v in gan.q_head.trainable_variables}  # Q's own head is separate
    # Q's input is the trunk's output: the same features D's head reads.
    images = _images(3)
    features = gan.trunk(images, training=False)
    logits, means = gan.predict_codes(images)
    expected = gan.q_head(features, training=False)
    np.testing.assert_allclose(logits, expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(means, expected[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gan.discriminator(images, training=False), gan.d_head(features), rtol=1e-5, atol=1e-6)
    # Changing a trunk weight changes both D's and Q's outputs.
    kernel = gan.trunk.get_layer("conv1").kernel
    kernel.assign(kernel * 3.0)
    assert not np.allclose(gan.predict_codes(images)[0], logits)
    # G's optimizer is built on G and Q's head together.
    g_ids = {id(v) for v in gan.g_optimizer._trainable_variables}
    assert g_ids == {id(v) for v in gan.generator.trainable_variables + gan.q_head.trainable_variables}


# ----------------------------------------------------------------------------- training
def test_one_train_step_moves_g_d_and_q_and_reports_the_mi_bound(tiny_infogan):
    gan = tiny_infogan
    before = {name: _weights(m) for name, m in
              (("G", gan.generator), ("D", gan.discriminator), ("Q", gan.q_head))}
    metrics = {k: float(v) for k, v in gan.train_step(tf.constant(_images(8))).items()}
    for name, model in (("G", gan.generator), ("D", gan.discriminator), ("Q", gan.q_head)):
        assert _changed(before[name], model), f"{name}'s weights did not move"
    assert {"d_loss", "g_loss", "info_loss", "cat_ce", "cont_nll", "mi_bound", "D(x)", "D(G(z))"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    assert metrics["mi_bound"] <= math.log(10) + 1e-6
    assert metrics["mi_bound"] == pytest.approx(math.log(10) - metrics["cat_ce"], abs=1e-5)
    assert metrics["info_loss"] == pytest.approx(metrics["cat_ce"] + metrics["cont_nll"], rel=1e-4)
    # An untrained Q knows nothing: its cross-entropy is near ln 10, the bound near 0.
    assert metrics["cat_ce"] == pytest.approx(math.log(10), abs=0.3)


def test_trunk_learns_info_moves_q_with_d_and_adds_l_i_to_the_trunks_update():
    def step(trunk_learns_info):
        keras.utils.set_random_seed(0)
        gan = infogan.make_infogan(**TINY, trunk_learns_info=trunk_learns_info)
        q_before = _weights(gan.q_head)
        tf.random.set_seed(1)  # the same codes, noise and fakes in both runs
        gan.train_step(tf.constant(_images(8)))
        return gan, q_before

    default, _ = step(False)
    authors, q_before = step(True)
    ids = lambda variables: {id(v) for v in variables}
    q_ids = ids(authors.q_head.trainable_variables)
    assert ids(authors.d_optimizer._trainable_variables) == ids(authors.discriminator.trainable_variables) | q_ids
    assert ids(authors.g_optimizer._trainable_variables) == ids(authors.generator.trainable_variables)
    assert _changed(q_before, authors.q_head), "Q's head did not move with D's optimizer"
    # Same start, same batch: only the L_I term in D's objective separates the two trunks.
    moved = [not np.allclose(a, b.numpy()) for a, b in
             zip(_weights(default.trunk), authors.trunk.trainable_variables)]
    assert any(moved), "the trunk's update ignored L_I"
    # D's head gets no gradient from L_I: after one identical D step it is the same in both runs.
    for a, b in zip(_weights(default.d_head), authors.d_head.trainable_variables):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-6)


def test_info_weight_scales_l_i_in_the_step():
    # lambda = 0 (and no augmented term) leaves Q without a gradient (Adam then moves it by nothing);
    # lambda = 1 moves it.
    for weight, q_moves in ((0.0, False), (1.0, True)):
        keras.utils.set_random_seed(0)
        gan = infogan.make_infogan(**TINY, info_weight=weight, augment_weight=0.0)
        assert gan.info_weight == weight
        q_before = _weights(gan.q_head)
        gan.train_step(tf.constant(_images(8)))
        assert _changed(q_before, gan.q_head) == q_moves, weight


def _dot(size=28, row=13, col=13):
    image = -np.ones((1, size, size, 1), np.float32)
    image[0, row:row + 2, col:col + 2, 0] = 1.0
    return image


def _centre_of_mass(images):
    mass = np.asarray(images, np.float64)[..., 0] + 1.0  # background -1 weighs nothing
    rows, cols = np.indices(mass.shape[1:])
    total = mass.sum(axis=(1, 2))
    return np.stack([(mass * rows).sum(axis=(1, 2)) / total, (mass * cols).sum(axis=(1, 2)) / total], 1)


def test_augment_digits_without_ranges_is_the_identity():
    images = _images(5)
    same = infogan.augment_digits(tf.constant(images), max_degrees=0.0, scale_range=(1.0, 1.0), max_shift=0.0)
    np.testing.assert_allclose(np.asarray(same), images, atol=1e-5)


def test_augment_digits_turns_about_the_centre_and_shifts_by_at_most_max_shift():
    # Turned and scaled, a dot at the centre stays at the centre; shifted, it moves by at most max_shift.
    dots = np.repeat(_dot(row=13, col=13), 64, axis=0)
    tf.random.set_seed(0)
    turned = np.asarray(infogan.augment_digits(tf.constant(dots), max_degrees=40.0, scale_range=(0.8, 1.2),
                                               max_shift=0.0))
    np.testing.assert_allclose(_centre_of_mass(turned), 13.5, atol=0.05)
    shifted = np.asarray(infogan.augment_digits(tf.constant(dots), max_degrees=0.0, scale_range=(1.0, 1.0),
                                                max_shift=2.0))
    offsets = _centre_of_mass(shifted) - 13.5
    assert np.abs(offsets).max() <= 2.0 + 1e-4
    assert np.abs(offsets).max() > 1.0, "no image was shifted"
    assert len({tuple(np.round(o, 3)) for o in offsets}) > 60, "the images did not get their own shifts"
    # Off centre, a turn moves a dot along a circle about the centre.
    ring = np.asarray(infogan.augment_digits(tf.constant(np.repeat(_dot(row=3, col=13), 64, axis=0)),
                                             max_degrees=30.0, scale_range=(1.0, 1.0), max_shift=0.0))
    radius = np.hypot(*(_centre_of_mass(ring) - 13.5).T)
    np.testing.assert_allclose(radius, 10.0, atol=0.3)


def test_augment_digits_keeps_shape_dtype_range_and_passes_gradients():
    for dtype in (tf.float32, tf.bfloat16):
        images = tf.constant(_images(4), dtype)
        moved = infogan.augment_digits(images)
        assert moved.shape == images.shape and moved.dtype == dtype
        values = np.asarray(tf.cast(moved, tf.float32))
        assert values.min() >= -1.0 - 1e-2 and values.max() <= 1.0 + 1e-2
    images = tf.constant(_images(4))
    with tf.GradientTape() as tape:
        tape.watch(images)
        loss = tf.reduce_sum(infogan.augment_digits(images) ** 2)
    gradient = np.asarray(tape.gradient(loss, images))
    assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0


def test_the_augmented_term_reaches_g_and_q_and_is_logged():
    def step(augment_weight, info_weight=1.0):
        keras.utils.set_random_seed(0)
        gan = infogan.make_infogan(**TINY, augment_weight=augment_weight, info_weight=info_weight)
        before = {"G": _weights(gan.generator), "Q": _weights(gan.q_head)}
        tf.random.set_seed(1)  # the same codes, noise and fakes in every run
        metrics = {k: float(v) for k, v in gan.train_step(tf.constant(_images(8))).items()}
        return gan, before, metrics

    assert infogan.make_infogan(**TINY).augment_weight == infogan.AUGMENT_WEIGHT > 0
    plain, _, plain_metrics = step(0.0)
    assert "augment_ce" not in plain_metrics
    augmented, _, metrics = step(0.3)
    # An untrained Q reads the turned copies no better than the originals: near ln 10.
    assert metrics["augment_ce"] == pytest.approx(math.log(10), abs=0.3)
    # Same start, same batch: only the augmented term separates G's update in the two runs.
    assert any(not np.allclose(a, b.numpy()) for a, b in
               zip(_weights(plain.generator), augmented.generator.trainable_variables))
    # Without L_I (lambda = 0) the augmented term alone still moves Q's categorical part, and only that.
    alone, before, _ = step(0.3, info_weight=0.0)
    moved = {v.path: not np.allclose(b, v.numpy()) for b, v in zip(before["Q"], alone.q_head.trainable_variables)}
    assert moved["category_logits/kernel"] and moved["fc/kernel"], moved
    assert not moved["code_means/kernel"], moved


def test_trainer_checkpoints_and_resumes_the_q_head(tmp_path):
    images = _images(32)

    def make():
        keras.utils.set_random_seed(0)
        return infogan.make_infogan(**TINY)

    trainer = train.Trainer(make, tmp_path, sample_every=2, num_samples=20, progress=False, quiet=True)
    trainer.fit(images, steps=2, batch_size=8)
    assert trainer.step == 2 and "mi_bound" in trainer.history[-1]
    q_weights = _weights(trainer.gan.q_head)
    resumed = train.Trainer(make, tmp_path, sample_every=2, num_samples=20, progress=False, quiet=True)
    assert resumed.step == 2
    for saved, restored in zip(q_weights, resumed.gan.q_head.trainable_variables):
        np.testing.assert_array_equal(saved, restored.numpy())


def test_acgan_step_moves_both_networks_and_logs_both_class_losses(tiny_acgan):
    gan = tiny_acgan
    g_before, d_before = _weights(gan.generator), _weights(gan.discriminator)
    labels = tf.constant(np.arange(8) % 10, tf.int32)
    metrics = {k: float(v) for k, v in gan.train_step((tf.constant(_images(8)), labels)).items()}
    assert _changed(g_before, gan.generator) and _changed(d_before, gan.discriminator)
    assert {"loss_cr", "loss_cf", "d_loss", "g_loss"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())


# ----------------------------------------------------------------------------- AC-GAN losses
def _acgan_inputs(seed=0, n=6):
    rng = np.random.default_rng(seed)
    return dict(real_logits=rng.normal(size=(n, 1)).astype(np.float32),
                fake_logits=rng.normal(size=(n, 1)).astype(np.float32),
                real_class_logits=rng.normal(size=(n, 10)).astype(np.float32),
                fake_class_logits=rng.normal(size=(n, 10)).astype(np.float32),
                real_labels=rng.integers(0, 10, n), fake_labels=rng.integers(0, 10, n))


def _ce(logits, labels):
    logits = logits - logits.max(1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return -log_probs[np.arange(len(labels)), labels].mean()


def _bce(logits, target):
    p = 1 / (1 + np.exp(-logits))
    return -(target * np.log(p) + (1 - target) * np.log(1 - p)).mean()


def test_acgan_discriminator_loss_matches_the_handout_by_hand():
    x = _acgan_inputs()
    loss_d = (_bce(x["real_logits"], 1) + _bce(x["fake_logits"], 0)) / 2
    loss_cr, loss_cf = _ce(x["real_class_logits"], x["real_labels"]), _ce(x["fake_class_logits"], x["fake_labels"])
    expected = {(True, True): loss_d + (loss_cr + loss_cf) / 2, (False, True): loss_d + loss_cf / 2,
                (True, False): loss_d + loss_cr / 2, (False, False): loss_d}
    for (cr, cf), value in expected.items():
        got = float(infogan.acgan_discriminator_loss(**x, use_loss_cr=cr, use_loss_cf=cf))
        assert got == pytest.approx(value, rel=1e-5), (cr, cf)


def test_a_dropped_class_loss_is_really_gone():
    x = _acgan_inputs()
    # With loss_cr dropped the real class logits play no part, even if they are garbage.
    garbage = dict(x, real_class_logits=np.full_like(x["real_class_logits"], np.nan))
    dropped = float(infogan.acgan_discriminator_loss(**x, use_loss_cr=False))
    assert float(infogan.acgan_discriminator_loss(**garbage, use_loss_cr=False)) == dropped
    assert np.isnan(float(infogan.acgan_discriminator_loss(**garbage)))  # and kept, they count
    garbage = dict(x, fake_class_logits=np.full_like(x["fake_class_logits"], np.nan))
    assert np.isfinite(float(infogan.acgan_discriminator_loss(**garbage, use_loss_cf=False)))
    # G's loss: loss_g (+ loss_cf / 2 unless dropped).
    g_full = float(infogan.acgan_generator_loss(x["fake_logits"], x["fake_class_logits"], x["fake_labels"]))
    g_drop = float(infogan.acgan_generator_loss(x["fake_logits"], x["fake_class_logits"], x["fake_labels"], False))
    assert g_drop == pytest.approx(_bce(x["fake_logits"], 1), rel=1e-5)
    assert g_full - g_drop == pytest.approx(_ce(x["fake_class_logits"], x["fake_labels"]) / 2, rel=1e-5)


@pytest.mark.parametrize("ablation", list(infogan.ACGAN_ABLATIONS))
def test_each_ablation_trains_with_its_switches(ablation):
    keras.utils.set_random_seed(0)
    gan = infogan.make_acgan(ablation, TINY["generator_widths"], TINY["discriminator_widths"], TINY["q_width"])
    seen = []

    def recording(*args):
        seen.append(tuple(bool(a) for a in args[6:]))
        return infogan.acgan_discriminator_loss(*args)

    gan.acgan_d_loss_fn = recording
    gan.train_step((tf.constant(_images(4)), tf.constant([0, 1, 2, 3])))
    assert seen == [infogan.ACGAN_ABLATIONS[ablation]]
    assert (gan.use_loss_cr, gan.use_loss_cf) == infogan.ACGAN_ABLATIONS[ablation]


def test_acgan_weight_average_moves_each_step_and_draws_the_samples(tiny_acgan):
    keras.utils.set_random_seed(0)
    gan = infogan.make_acgan("full", TINY["generator_widths"], TINY["discriminator_widths"], TINY["q_width"],
                             ema_decay=0.5)
    before = gan.ema.model.get_weights()
    gan.train_step((tf.constant(_images(4)), tf.constant([0, 1, 2, 3])))
    after = gan.ema.model.get_weights()
    assert before and any(not np.allclose(a, b) for a, b in zip(before, after))  # updated in the step
    noise = np.random.default_rng(1).standard_normal((2, infogan.NOISE_DIM)).astype(np.float32)
    latent = infogan.infogan_latent(np.array([1, 7]), np.zeros((2, 0), np.float32), noise)
    np.testing.assert_allclose(gan.generate_codes([1, 7], np.zeros((2, 0)), noise),
                               np.asarray(gan.ema.model(latent, training=False)), rtol=1e-5, atol=1e-6)
    assert tiny_acgan.ema is None  # off unless asked for


def test_unknown_ablation_names_fail_clearly():
    with pytest.raises(KeyError, match="unknown AC-GAN ablation 'drop loss_x'.*'full'"):
        infogan.make_acgan("drop loss_x")
    with pytest.raises(KeyError, match="drop loss_cr"):
        infogan.ablation_switches("no cr")


# ----------------------------------------------------------------------------- matching
def test_matched_accuracy_of_a_permutation_is_one():
    labels = np.random.default_rng(0).integers(0, 10, 500)
    permutation = np.array([3, 7, 0, 9, 1, 5, 8, 2, 6, 4])
    assert infogan.matched_accuracy(permutation[labels], labels) == 1.0
    mapping, _ = infogan.code_assignment(permutation[labels], labels)
    np.testing.assert_array_equal(mapping[permutation], np.arange(10))  # code permutation[d] -> digit d


def test_matched_accuracy_on_a_known_confusion():
    # counts[code, label] for 3 codes: code 0 is mostly label 1, code 1 mostly label 2, code 2 split.
    counts = np.array([[1, 6, 0],
                       [0, 1, 5],
                       [4, 2, 1]])
    predicted = np.concatenate([np.full(counts[c, l], c) for c in range(3) for l in range(3)])
    labels = np.concatenate([np.full(counts[c, l], l) for c in range(3) for l in range(3)])
    # By hand: the best one-to-one matching is 0->1, 1->2, 2->0: (6 + 5 + 4) / 20.
    assert infogan.matched_accuracy(predicted, labels, 3) == pytest.approx(15 / 20)
    mapping, confusion = infogan.code_assignment(predicted, labels, 3)
    np.testing.assert_array_equal(confusion, counts)
    np.testing.assert_array_equal(mapping, [1, 2, 0])
    # A greedy choice would not do as well when two codes want one label.
    counts = np.array([[5, 4], [5, 0]])
    predicted = np.repeat([0, 0, 1, 1], [5, 4, 5, 0])
    labels = np.repeat([0, 1, 0, 1], [5, 4, 5, 0])
    assert infogan.matched_accuracy(predicted, labels, 2) == pytest.approx(9 / 14)


@pytest.mark.parametrize("predicted, labels, match", [
    (np.zeros(3, int), np.zeros(4, int), "same length"),
    (np.zeros((2, 2), int), np.zeros((2, 2), int), "1-D"),
    (np.array([], int), np.array([], int), "no predictions"),
    (np.array([0, 10]), np.array([0, 1]), r"predicted must lie in \[0, 10\)"),
    (np.array([0, 1]), np.array([0, -1]), r"labels must lie"),
])
def test_matched_accuracy_rejects_bad_input(predicted, labels, match):
    with pytest.raises(ValueError, match=match):
        infogan.matched_accuracy(predicted, labels)


def test_categorical_code_accuracy_uses_q_and_the_matching(tiny_infogan):
    images = _images(40)
    logits, _ = tiny_infogan.predict_codes(images)
    codes = logits.argmax(1)
    labels = (codes + 3) % 10  # labels that are a relabelling of Q's codes
    result = infogan.categorical_code_accuracy(tiny_infogan, images, labels)
    assert result["accuracy"] == 1.0 and result["error"] == 0.0
    assert result["confusion"].sum() == 40
    np.testing.assert_array_equal(result["mapping"][np.unique(codes)], (np.unique(codes) + 3) % 10)


# ----------------------------------------------------------------------------- exercises
def test_information_loss_by_hand():
    logits = np.zeros((2, 3), np.float32)  # uniform over 3: cross-entropy ln 3
    codes, means = np.array([[1.0, 0.0], [0.0, 0.0]], np.float32), np.zeros((2, 2), np.float32)
    # continuous term: mean over the batch of 0.5 * sum (c - mu)^2 = (0.5 + 0) / 2
    value = float(infogan.information_loss(logits, np.array([0, 2]), means, codes, continuous_weight=2.0))
    assert value == pytest.approx(math.log(3) + 2.0 * 0.25, rel=1e-6)
    confident = np.array([[60.0, -60.0]], np.float32)  # softmax underflows: log-softmax must stay finite
    assert float(infogan.information_loss(confident, np.array([1]), np.zeros((1, 0)), np.zeros((1, 0)))) \
        == pytest.approx(120.0, rel=1e-5)


def test_lab_05_exercises_are_registered():
    names = [ex.name for ex in checks.load_lab("05")]
    assert names == ["infogan_latent", "information_loss", "acgan_discriminator_loss", "matched_accuracy"]


@pytest.mark.parametrize("name", ["infogan_latent", "information_loss", "acgan_discriminator_loss",
                                  "matched_accuracy"])
def test_references_pass_their_checks(name):
    ex = checks.get_exercise(name)
    cases = checks.notebook_cases(ex)
    assert len(cases) >= 5 and any(len(next(iter(c.values()))) == 1 for c in cases)  # batch 1 included
    result = run_checks(ex, ex.reference, cases)
    assert result.passed, result.line()


def _latent_numpy(categories, continuous, noise, num_categories=10):
    return np.concatenate([np.eye(num_categories, dtype=np.float32)[categories], continuous, noise], 1)


def _info_unweighted(category_logits, categories, code_means, codes, continuous_weight=1.0):
    return infogan.information_loss(category_logits, categories, code_means, codes, 1.0)


def _acgan_renormalised(real_logits, fake_logits, real_class_logits, fake_class_logits, real_labels, fake_labels,
                        use_loss_cr=True, use_loss_cf=True):
    kept = [infogan.categorical_cross_entropy(l, y) for l, y, use in
            ((real_class_logits, real_labels, use_loss_cr), (fake_class_logits, fake_labels, use_loss_cf)) if use]
    loss_d = infogan.acgan_discriminator_loss(real_logits, fake_logits, real_class_logits, fake_class_logits,
                                              real_labels, fake_labels, False, False)
    return loss_d + (tf.add_n(kept) / len(kept) if kept else 0.0)


def _greedy_accuracy(predicted, labels, num_classes=10):
    counts = np.zeros((num_classes, num_classes))
    np.add.at(counts, (predicted, labels), 1)
    return float(counts.max(1).sum() / len(labels))  # each code takes its favourite label, repeats allowed


# The naive log of a softmax that underflows is the mistake one case is about.
@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")
@pytest.mark.parametrize("name, fn, layer", [
    ("infogan_latent", _latent_numpy, None),  # a NumPy answer passes too
    ("infogan_latent", lambda categories, continuous, noise, num_categories=10:
        _latent_numpy(categories, noise, continuous, num_categories) if continuous.shape[1] == noise.shape[1]
        else np.concatenate([noise, continuous, np.eye(num_categories, dtype=np.float32)[categories]], 1), "values"),
    ("infogan_latent", lambda categories, continuous, noise, num_categories=10:
        _latent_numpy(categories, continuous, noise, num_categories).astype(np.float64), "dtype"),
    ("information_loss", _info_unweighted, "values"),
    ("information_loss", lambda category_logits, categories, code_means, codes, continuous_weight=1.0:
        -np.mean(np.log(tf.nn.softmax(category_logits).numpy()[np.arange(len(categories)), categories]))
        + continuous_weight * np.mean(0.5 * np.sum((codes - code_means) ** 2, -1)), "finite"),
    ("acgan_discriminator_loss", _acgan_renormalised, "values"),
    ("matched_accuracy", _greedy_accuracy, "values"),
    ("matched_accuracy", lambda predicted, labels: 1.0, "signature"),
])
def test_exercise_checks_catch_mistakes_at_the_right_layer(name, fn, layer):
    assert_checked_at(name, fn, layer)


# ----------------------------------------------------------------------------- figures and tables
def _encoding_generator(categories, continuous, noise):
    """Images that carry their inputs: pixel [0, 0] = category, [0, 1] = first code, [0, 2] = second, [1, 0] = noise."""
    images = np.zeros((len(categories), 28, 28, 1), np.float32)
    images[:, 0, 0, 0] = categories
    images[:, 0, 1:1 + continuous.shape[1], 0] = continuous
    images[:, 1, 0, 0] = noise[:, 0]
    return images


def test_code_sweep_rows_are_categories_columns_are_code_values():
    values = np.linspace(-2, 2, 5)
    images = infogan.code_sweep(_encoding_generator, code=1, values=values, row_order=[2, 0, 1], num_categories=3)
    assert images.shape == (15, 28, 28, 1)
    grid = images.reshape(3, 5, 28, 28)
    np.testing.assert_array_equal(grid[:, :, 0, 0], np.repeat([[2], [0], [1]], 5, 1))
    np.testing.assert_allclose(grid[:, :, 0, 2], np.tile(values, (3, 1)))  # the swept code
    np.testing.assert_array_equal(grid[:, :, 0, 1], 0.0)  # the other code stays at 0
    assert np.unique(grid[:, :, 1, 0]).size == 1  # one noise vector for the whole figure
    with pytest.raises(ValueError, match="code must be in"):
        infogan.code_sweep(_encoding_generator, code=2, values=values)


def _result(acc, matched, **extra):
    return {"accuracy": acc, "matched accuracy": matched, "share of top digit": 0.1, **extra}


def test_ablation_table_and_explanation_follow_the_numbers():
    results = {"full": _result(0.93, 0.93, frechet=3.0), "drop loss_cr": _result(0.08, 0.85, frechet=4.0),
               "drop loss_cf": _result(0.11, 0.3, frechet=5.0)}
    table = infogan.ablation_table(results).splitlines()
    assert table[0].split() == ["run", "accuracy", "matched", "accuracy", "share", "of", "top", "digit", "frechet"]
    assert table[2].startswith("full") and "0.930" in table[2] and "3.000" in table[2]
    text = infogan.explain_ablation(results)
    assert "93%" in text and "85%" in text and "close to chance" in text
    assert "The classes are distinct digits under other names" in text
    assert "3.0 (full), 4.0 (drop loss_cr), 5.0 (drop loss_cf)" in text and "comes from **full**." in text
    results["drop loss_cr"] = _result(0.08, 0.6, frechet=1.0)
    text = infogan.explain_ablation(results)
    assert "Many classes are distinct digits" in text and "comes from **drop loss_cr**." in text
    results["drop loss_cr"] = _result(0.08, 0.12)
    text = infogan.explain_ablation(results)
    assert "not yet distinct digits" in text and "Fréchet" not in text  # a run without the figure: no sentence


def test_trainer_runs_an_acgan_on_labelled_batches(tmp_path):
    from gan_course.data import ImageData

    labelled = ImageData("digits", "test digits", _images(24), np.arange(24) % 10, (-1.0, 1.0))
    batches = train.image_batches(labelled, 8, labels=True)
    images, labels = next(iter(batches))
    assert images.shape == (8, 28, 28, 1) and labels.shape == (8,)
    # Each image travels with its own label.
    matches = [np.flatnonzero(np.all(labelled.x == image, axis=(1, 2, 3)))[0] for image in images.numpy()]
    np.testing.assert_array_equal(labelled.y[matches], labels.numpy())

    def make():
        keras.utils.set_random_seed(0)
        return infogan.make_acgan("drop loss_cr", TINY["generator_widths"], TINY["discriminator_widths"], 8)

    trainer = train.Trainer(make, tmp_path, sample_every=2, num_samples=20, progress=False, quiet=True)
    trainer.fit(batches, steps=2)
    assert trainer.step == 2 and {"loss_cr", "loss_cf"} <= set(trainer.history[-1])
    with pytest.raises(ValueError, match="cannot fill a batch"):
        train.image_batches(labelled, 32, labels=True)
