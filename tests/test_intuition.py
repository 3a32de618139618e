"""Lab 01: the reference answers obey the theory, the trainers and the explorer work,
and the checks catch wrong answers."""
import numpy as np
import pytest

from gan_course import checks
from gan_course import intuition as gi
from exercise_layers import assert_checked_at

EXERCISES = ("optimal_discriminator", "js_divergence", "minimax_generator_loss", "nonsaturating_generator_loss")


def test_lab_registers_its_exercises_with_batch_one_and_odd_sizes():
    names = [ex.name for ex in checks.load_lab("01")]
    assert set(EXERCISES) <= set(names)
    for name in EXERCISES:
        ex = checks.get_exercise(name)
        cases = checks.notebook_cases(ex)
        assert len(cases) >= 5
        first_dims = [np.shape(next(iter(case.values())))[0] for case in cases]
        assert 1 in first_dims and any(n % 2 for n in first_dims if n > 1)
        assert checks.run_checks(ex, ex.reference, cases).passed


def test_optimal_discriminator_is_one_half_where_densities_agree_or_vanish():
    p = np.array([0.0, 0.3, 2.0, 0.0, 1.0], np.float32)
    d = gi.optimal_discriminator(p, p)
    assert d.dtype == np.float32
    np.testing.assert_allclose(d, 0.5)
    d = gi.optimal_discriminator(np.array([1.0, 0.0, 3.0], np.float32), np.array([0.0, 1.0, 1.0], np.float32))
    np.testing.assert_allclose(d, [1.0, 0.0, 0.75])


def test_js_divergence_symmetric_zero_for_equal_ln2_for_disjoint():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(9), size=4).astype(np.float32)
    q = rng.dirichlet(np.ones(9), size=4).astype(np.float32)
    forward, backward = gi.js_divergence(p, q), gi.js_divergence(q, p)
    assert forward.dtype == np.float32 and forward.shape == (4,)
    np.testing.assert_allclose(forward, backward, rtol=1e-6)
    assert np.all(forward > 0) and np.all(forward < np.log(2))
    np.testing.assert_allclose(gi.js_divergence(p, p), 0, atol=1e-7)
    disjoint_p = np.array([[0.5, 0.5, 0, 0]], np.float32)
    disjoint_q = np.array([[0, 0, 0.25, 0.75]], np.float32)
    np.testing.assert_allclose(gi.js_divergence(disjoint_p, disjoint_q), [np.log(2)], rtol=1e-6)


def test_value_at_optimal_critic_is_minus_log4_plus_twice_jsd():
    x, edges = gi.density_grid()
    p_data = gi.TARGET_1D.density(x)
    for mean, std in [(0.0, 1.0), (3.0, 0.3), (-2.0, 0.5)]:
        p_g = gi.gaussian_density(x, mean, std)
        jsd = float(gi.js_divergence(gi.to_mass(p_data, edges), gi.to_mass(p_g, edges)))
        assert gi.value_at_optimum(p_data, p_g, edges) == pytest.approx(-np.log(4) + 2 * jsd, abs=1e-5)
    # Equal distributions: the critic can only say 1/2 and the value is -log 4.
    assert gi.value_at_optimum(p_data, p_data, edges) == pytest.approx(-np.log(4), abs=1e-9)


def test_generator_losses_match_their_formulas_and_gradients_differ_where_critic_wins():
    d = np.array([0.001, 0.5, 0.9], np.float32)
    assert gi.minimax_generator_loss(d) == pytest.approx(np.mean(np.log(1 - d.astype(np.float64))), rel=1e-6)
    assert gi.nonsaturating_generator_loss(d) == pytest.approx(-np.mean(np.log(d.astype(np.float64))), rel=1e-6)
    assert isinstance(gi.minimax_generator_loss(d), np.float32)

    import tensorflow as tf

    from gan_course.losses import get_losses

    logits = tf.constant([[-7.0]])  # the critic wins: D(G(z)) ~ 0.001
    grads = {}
    for loss in gi.GENERATOR_LOSSES:
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = get_losses(loss)[1](logits)
        grads[loss] = abs(float(tape.gradient(value, logits)[0, 0]))
    assert grads["minimax"] == pytest.approx(1 / (1 + np.exp(7)), rel=1e-4)
    assert grads["non_saturating"] == pytest.approx(1 - 1 / (1 + np.exp(7)), rel=1e-4)
    with pytest.raises(ValueError, match="loss must be one of"):
        gi.train_1d_game(1, 4, 2, loss="hinge", hidden=(4,))


@pytest.mark.parametrize(
    "name, wrong, layer",
    [
        ("optimal_discriminator", lambda p_data, p_g: p_data / (p_data + p_g), "finite"),
        ("optimal_discriminator", lambda p_data, p_g: p_g / np.maximum(p_data + p_g, 1e-30), "values"),
        ("js_divergence", lambda p, q: gi.js_divergence(p, q).astype(np.float64), "dtype"),
        ("js_divergence", lambda p, q: np.float32(np.log2(np.e)) * gi.js_divergence(p, q), "values"),
        ("minimax_generator_loss", lambda d_fake: np.float32(-np.mean(np.log(1 - d_fake))), "values"),
        ("nonsaturating_generator_loss", lambda d_fake: np.float32(-np.sum(np.log(d_fake))), "values"),
        ("nonsaturating_generator_loss", lambda fake: np.float32(0), "signature"),
    ],
)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_wrong_answers_fail_at_the_expected_layer(name, wrong, layer):
    assert_checked_at(name, wrong, layer)


@pytest.fixture(scope="module")
def tiny_runs():
    return {
        loss: gi.train_1d_game(6, 16, 3, loss=loss, samples=500, critic_head_start=2, hidden=(8,))
        for loss in gi.GENERATOR_LOSSES
    }


def test_1d_trainer_returns_snapshots_of_the_right_shapes(tiny_runs):
    run = tiny_runs["non_saturating"]
    grid_size = len(run.x)
    assert run.edges.shape == (grid_size + 1,) and run.p_data.shape == (grid_size,)
    np.testing.assert_array_equal(run.steps, [0, 3, 6])
    assert run.d_on_grid.shape == run.p_g.shape == (3, grid_size)
    assert run.d_loss.shape == run.g_loss.shape == run.g_grad_norm.shape == (6,)
    assert np.all((run.d_on_grid > 0) & (run.d_on_grid < 1))
    # p_g is a density: it integrates to (at most) 1 over the grid.
    assert np.all(np.abs((run.p_g * np.diff(run.edges)).sum(-1) - 1) < 0.05)
    assert np.all(np.isfinite(run.d_loss)) and np.all(run.g_grad_norm > 0)
    # Same seed, same start: both runs begin from the same artist.
    np.testing.assert_array_equal(tiny_runs["minimax"].p_g[0], run.p_g[0])


def test_explorer_callback_redraws_output_in_place(tiny_runs):
    box = gi.game_explorer(tiny_runs)
    assert box.snapshot.continuous_update is False
    assert box.snapshot.max == 2
    first = box.output.outputs
    assert len(first) == 1 and "image/png" in first[0]["data"]
    box.snapshot.value = 2  # the observer runs the callback, as a slider move would
    moved = box.output.outputs
    assert len(moved) == 1 and moved[0]["data"]["image/png"] != first[0]["data"]["image/png"]
    assert box.loss.value == "minimax"  # the first run is shown first
    box.loss.value = "non_saturating"
    assert len(box.output.outputs) == 1
    assert box.output.outputs[0]["data"]["image/png"] != moved[0]["data"]["image/png"]


def test_ring_data_coverage_and_trainer():
    rng = np.random.default_rng(0)
    real = gi.sample_ring(800, rng)
    assert gi.mode_coverage(real) == (8, pytest.approx(1.0, abs=0.01))
    collapsed = gi.ring_centres()[[3]] + 0.01 * rng.normal(size=(400, 2))
    assert gi.mode_coverage(collapsed)[0] == 1
    np.testing.assert_array_equal(gi.mode_counts(collapsed), [0, 0, 0, 400, 0, 0, 0, 0])
    run = gi.train_ring(4, 8, 2, pack=4, samples=100, hidden=(8,))
    assert run.samples.shape == (2, 100, 2) and run.modes_covered.shape == (2,)
    with pytest.raises(ValueError, match="multiple of pack"):
        gi.train_ring(4, 10, 2, pack=4)
