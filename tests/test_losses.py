"""The loss registry against hand computations."""
import numpy as np
import pytest
import tensorflow as tf

from gan_course import losses

REAL = np.array([[2.0], [-1.0], [0.5]], np.float32)
FAKE = np.array([[-3.0], [0.0]], np.float32)


def sig(x):
    return 1 / (1 + np.exp(-x.astype(np.float64)))


def test_cross_entropy_d_loss_by_hand():
    d_loss, _ = losses.get_losses("minimax")
    expected = -np.mean(np.log(sig(REAL))) - np.mean(np.log(1 - sig(FAKE)))
    assert float(d_loss(REAL, FAKE)) == pytest.approx(expected, rel=1e-5)


def test_label_smoothing_is_one_sided():
    d_loss, _ = losses.get_losses("non_saturating", label_smoothing=0.1)
    p, q = sig(REAL), sig(FAKE)
    real_term = -np.mean(0.9 * np.log(p) + 0.1 * np.log(1 - p))
    fake_term = -np.mean(np.log(1 - q))  # target 0, not 0.1
    assert float(d_loss(REAL, FAKE)) == pytest.approx(real_term + fake_term, rel=1e-5)
    # The fakes' term does not move with smoothing.
    plain, _ = losses.get_losses("non_saturating")
    zero = np.full_like(REAL, 50.0)  # D(x) = 1: only the smoothing penalty remains on reals
    diff = float(d_loss(zero, FAKE)) - float(plain(zero, FAKE))
    assert diff == pytest.approx(0.1 * 50.0, rel=1e-4)


def test_generator_losses_by_hand():
    _, minimax = losses.get_losses("minimax")
    _, non_sat = losses.get_losses("non_saturating")
    q = sig(FAKE)
    assert float(minimax(FAKE)) == pytest.approx(np.mean(np.log(1 - q)), rel=1e-5)
    assert float(non_sat(FAKE)) == pytest.approx(-np.mean(np.log(q)), rel=1e-5)


def test_hinge_by_hand():
    d_loss, g_loss = losses.get_losses("hinge")
    expected = np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE))
    assert float(d_loss(REAL, FAKE)) == pytest.approx(expected, rel=1e-6)
    assert float(g_loss(FAKE)) == pytest.approx(-FAKE.mean(), rel=1e-6)
    with pytest.raises(ValueError, match="label smoothing"):
        losses.get_losses("hinge", label_smoothing=0.1)


def test_minimax_saturates_where_non_saturating_does_not():
    # D rejects the fakes confidently (logit -10): the minimax gradient all but vanishes.
    logits = tf.Variable([[-10.0]])
    grads = {}
    for name in ("minimax", "non_saturating"):
        _, g_loss = losses.get_losses(name)
        with tf.GradientTape() as tape:
            loss = g_loss(logits)
        grads[name] = abs(float(tape.gradient(loss, logits)[0, 0]))
    assert grads["minimax"] < 1e-4 < 0.9 < grads["non_saturating"]


def test_finite_for_saturated_logits():
    for name in losses.LOSSES:
        d_loss, g_loss = losses.get_losses(name)
        big = np.array([[200.0], [-200.0]], np.float32)
        assert np.isfinite(float(d_loss(big, big))) and np.isfinite(float(g_loss(big)))


def test_unknown_names_and_bad_smoothing():
    with pytest.raises(KeyError, match="non_saturating"):
        losses.get_losses("wasserstein")
    with pytest.raises(ValueError):
        losses.get_losses("minimax", label_smoothing=1.0)
