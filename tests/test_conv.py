"""Lab 02's helpers against TensorFlow, over many random (i, k, s, p)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keras

from gan_course import conv
from gan_course.checks import REGISTRY, notebook_cases, run_checks

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def conv_setting(draw, max_padding=True):
    k = draw(st.integers(1, 5))
    i = draw(st.integers(k, 12))
    s = draw(st.integers(1, 4))
    p = draw(st.integers(0, (k - 1) // 2)) if max_padding else 0
    return i, k, s, p


@SETTINGS
@given(conv_setting(), st.sampled_from(["valid", "same", "explicit"]))
def test_conv_output_size_matches_tf(setting, mode):
    i, k, s, p = setting
    padding = p if mode == "explicit" else mode
    tf_padding = p if mode == "explicit" else mode.upper()
    out = conv.conv2d(np.zeros((i, i)), np.ones((k, k)), s, tf_padding)
    assert conv.conv_output_size(i, k, s, padding) == out.shape[0]


@SETTINGS
@given(conv_setting(), st.integers(0, 2**31 - 1))
def test_conv_matrix_times_x_is_conv2d(setting, seed):
    i, k, s, p = setting
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(i, i)).astype(np.float32)
    w = rng.normal(size=(k, k)).astype(np.float32)
    o = conv.conv_output_size(i, k, s, p)
    C = conv.conv_matrix(w, i, s, p)
    assert C.shape == (o * o, i * i)
    np.testing.assert_allclose((C @ x.ravel()).reshape(o, o), conv.conv2d(x, w, s, p), atol=1e-4)


@SETTINGS
@given(conv_setting(max_padding=False), st.integers(0, 2**31 - 1))
def test_transpose_is_c_transpose_and_the_input_gradient(setting, seed):
    import tensorflow as tf

    i, k, s, _ = setting
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(k, k)).astype(np.float32)
    o = conv.conv_output_size(i, k, s)
    y = rng.normal(size=(o, o)).astype(np.float32)
    ours = conv.conv_transpose_via_matrix(y, w, i, s)
    np.testing.assert_allclose(ours, conv.conv2d_transpose(y, w, i, s), atol=1e-4)
    x = tf.Variable(np.zeros((1, i, i, 1), np.float32))
    with tf.GradientTape() as tape:
        out = tf.nn.conv2d(x, w[:, :, None, None], strides=s, padding="VALID")
        loss = tf.reduce_sum(out * y[None, :, :, None])
    np.testing.assert_allclose(tape.gradient(loss, x).numpy()[0, :, :, 0], ours, atol=1e-4)


@SETTINGS
@given(conv_setting(max_padding=False), st.integers(0, 2**31 - 1))
def test_zero_insertion_equals_conv2d_transpose(setting, seed):
    i, k, s, _ = setting
    rng = np.random.default_rng(seed)
    o = conv.conv_output_size(i, k, s)
    y = rng.normal(size=(o, o)).astype(np.float32)
    w = rng.normal(size=(k, k)).astype(np.float32)
    full = conv.transposed_output_size(o, k, s)
    np.testing.assert_allclose(conv.conv_transpose_by_zero_insertion(y, w, s), conv.conv2d_transpose(y, w, full, s),
                               atol=1e-4)


@SETTINGS
@given(st.integers(1, 10), st.integers(1, 5), st.integers(1, 4), st.data())
def test_transposed_output_size_matches_keras_and_inverts_conv(i, k, s, data):
    a = data.draw(st.integers(0, s - 1))
    padding = data.draw(st.sampled_from(["valid", "same"]))
    p = 0 if padding == "valid" else k // 2
    layer = keras.layers.Conv2DTranspose(1, k, strides=s, padding=padding, output_padding=a)
    expected = layer.compute_output_shape((1, i, i, 1))[1]
    ours = conv.transposed_output_size(i, k, s, p, a)
    assert ours == expected
    if ours >= k - 2 * p and ours > 0:
        assert conv.conv_output_size(ours, k, s, p) == i


def test_overlap_counts_show_the_checkerboard():
    uneven = conv.overlap_counts(4, 3, 2)
    even = conv.overlap_counts(4, 4, 2)
    assert uneven[2:-2, 2:-2].min() < uneven[2:-2, 2:-2].max()  # stripes inside
    assert even[2:-2, 2:-2].min() == even[2:-2, 2:-2].max()  # flat inside


def test_explorer_redraws_when_a_slider_moves():
    box = conv.conv_explorer(max_size=8)
    assert box.state["values"]["i"] == 4
    box.controls["i"].value = 7
    box.controls["mode"].value = "transposed"
    assert box.state["values"] == {"i": 7, "k": 3, "s": 1, "p": 0, "mode": "transposed"}
    assert "o' = s(i'−1)+k−2p = 9" in box.state["fig"].axes[0].get_title()


def test_draw_grids_reports_impossible_settings():
    fig = conv.draw_grids(2, 5, 1, 0, "conv")
    assert "no valid output" in fig.axes[0].texts[0].get_text()


@pytest.mark.parametrize(
    "name, wrong, layer",
    [
        ("conv_output_size", lambda i, k, s=1, padding="valid": (i - k) // s, "values"),
        ("conv_output_size", lambda i, k, s=1, padding="valid": float(conv.conv_output_size(i, k, s, padding)), "type"),
        ("conv_matrix", lambda kernel, input_size, stride=1, padding=0:
            conv.conv_matrix(kernel, input_size, stride, padding).T, "shape"),
        ("conv_transpose_via_matrix", lambda y, kernel, input_size, stride=1:
            conv.conv_transpose_via_matrix(y, kernel, input_size, stride).astype(np.float64), "dtype"),
        ("transposed_output_size", lambda i, k, s=1, p=0, output_padding=0: s * (i - 1) + k - 2 * p, "values"),
    ],
)
def test_wrong_answers_fail_at_the_expected_layer(name, wrong, layer):
    ex = REGISTRY[name]
    result = run_checks(ex, wrong, notebook_cases(ex))
    assert not result.passed and result.layer == layer, result.line()


def test_references_pass_their_own_checks():
    for name in ("conv_output_size", "conv_matrix", "conv_transpose_via_matrix", "transposed_output_size"):
        ex = REGISTRY[name]
        assert run_checks(ex, ex.reference, notebook_cases(ex)).passed
