"""Lab 02's helpers against TensorFlow and Keras, over many random (i, k, s, p)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keras

from gan_course import conv
from gan_course.checks import REGISTRY, notebook_cases, run_checks
from exercise_layers import assert_checked_at

SETTINGS = settings(max_examples=40, deadline=None)
seeds = st.integers(0, 2**31 - 1)


@st.composite
def conv_setting(draw):
    """(i, k, s, p) of a convolution with at least one output pixel; p may exceed k - 1."""
    k = draw(st.integers(1, 6))
    p = draw(st.integers(0, 3))
    i = draw(st.integers(max(1, k - 2 * p), 13))
    s = draw(st.integers(1, 4))
    return i, k, s, p


@st.composite
def transposed_setting(draw):
    """(i', k, s, p, a) of a transposed convolution with a non-empty output, 0 <= a < s."""
    k = draw(st.integers(1, 6))
    s = draw(st.integers(1, 4))
    a = draw(st.integers(0, s - 1))
    p = draw(st.integers(0, k))
    i = draw(st.integers(1, 7))
    if s * (i - 1) + a + k - 2 * p < 1:  # no output pixel: a larger input has one
        i = i + (2 * p) // s + 1
    return i, k, s, p, a


def spread_with_trailing_zeros(x, stride):
    """A classic zero-insertion slip: zeros after the last pixel too, side n * stride."""
    cell = np.zeros((stride, stride), np.float32)
    cell[0, 0] = 1
    return np.kron(x, cell)


def rand(rng, side):
    return rng.normal(size=(side, side)).astype(np.float32)


@SETTINGS
@given(conv_setting(), st.sampled_from(["explicit", "valid", "same"]))
def test_conv_output_size_is_the_side_tf_conv2d_produces(setting, mode):
    i, k, s, p = setting
    padding = p if mode == "explicit" else mode
    if mode == "valid" and i < k:
        return
    out = conv.conv2d(np.zeros((i, i)), np.ones((k, k)), s, padding)
    assert conv.conv_output_size(i, k, s, padding) == out.shape[0]
    if mode == "same":
        before, after = conv.same_padding(i, k, s)
        assert (i + before + after - k) // s + 1 == out.shape[0] and after - before in (0, 1)


@SETTINGS
@given(conv_setting(), seeds)
def test_conv_matrix_times_x_is_tf_conv2d(setting, seed):
    i, k, s, p = setting
    rng = np.random.default_rng(seed)
    x, w = rand(rng, i), rand(rng, k)
    o = conv.conv_output_size(i, k, s, p)
    C = conv.conv_matrix(w, i, s, p)
    assert C.shape == (o * o, i * i) and C.dtype == np.float32
    np.testing.assert_allclose((C @ x.ravel()).reshape(o, o), conv.conv2d(x, w, s, p), rtol=1e-4, atol=1e-4)


@SETTINGS
@given(transposed_setting(), seeds)
def test_c_transpose_is_tf_conv2d_transpose_and_the_input_gradient(setting, seed):
    i, k, s, p, a = setting
    rng = np.random.default_rng(seed)
    x, w = rand(rng, i), rand(rng, k)
    ours = conv.conv_transpose_via_matrix(x, w, s, p, a)
    side = conv.transposed_output_size(i, k, s, p, a)
    assert ours.shape == (side, side) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, conv.conv2d_transpose(x, w, s, p, a), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours, conv.input_gradient(x, w, side, s, p), rtol=1e-4, atol=1e-4)


@SETTINGS
@given(transposed_setting(), seeds)
def test_zero_insertion_then_flipped_convolution_is_conv2d_transpose(setting, seed):
    i, k, s, p, a = setting
    rng = np.random.default_rng(seed)
    x, w = rand(rng, i), rand(rng, k)
    stretched = conv.zero_insert(x, s)
    assert stretched.shape == ((i - 1) * s + 1,) * 2 and np.count_nonzero(stretched) == np.count_nonzero(x)
    np.testing.assert_allclose(conv.conv_transpose_by_zero_insertion(x, w, s, p, a),
                               conv.conv2d_transpose(x, w, s, p, a), rtol=1e-4, atol=1e-4)


@SETTINGS
@given(st.integers(1, 10), st.integers(1, 6), st.integers(1, 4), st.sampled_from(["valid", "same"]), st.data())
def test_transposed_output_size_is_what_keras_conv2dtranspose_produces(i, k, s, padding, data):
    a = data.draw(st.integers(0, s - 1))
    if padding == "same":
        k = k | 1  # "same" pads (k - 1) / 2 on each side only for an odd kernel
    p = 0 if padding == "valid" else (k - 1) // 2
    layer = keras.layers.Conv2DTranspose(1, k, strides=s, padding=padding, output_padding=a)
    produced = keras.ops.convert_to_numpy(layer(np.zeros((1, i, i, 1), np.float32))).shape[1]
    assert conv.transposed_output_size(i, k, s, p, a) == produced


@SETTINGS
@given(conv_setting())
def test_transposed_size_with_the_right_output_padding_inverts_the_conv_size(setting):
    i, k, s, p = setting
    o = conv.conv_output_size(i, k, s, p)
    a = conv.output_padding_to_invert(i, k, s, p)
    assert 0 <= a < s
    assert conv.transposed_output_size(o, k, s, p, a) == i
    # every a in 0..s-1 (with a non-empty side) is a side TensorFlow's convolution maps back to o
    for other in range(s):
        if s * (o - 1) + other + k - 2 * p >= 1:  # a non-empty side (otherwise the helper refuses it)
            side = conv.transposed_output_size(o, k, s, p, other)
            assert conv.conv2d(np.zeros((side, side)), np.ones((k, k)), s, p).shape[0] == o


def test_handout_examples():
    assert conv.conv_matrix(np.ones((3, 3)), 4).shape == (4, 16)
    assert conv.conv_output_size(4, 3) == 2 and conv.conv_output_size(5, 3, 2, 1) == 3
    assert conv.transposed_output_size(2, 3) == 4  # p' = k - p - 1 = 2 around the 2x2 input
    assert conv.transposed_output_size(3, 3, 2, 1) == 5


def test_overlap_counts_show_the_checkerboard_and_resize_conv_does_not():
    uneven, even = conv.overlap_counts(4, 3, 2), conv.overlap_counts(4, 4, 2)
    resized = conv.resize_conv_counts(4, 3, 2)
    assert uneven[2:-2, 2:-2].min() == 1 and uneven[2:-2, 2:-2].max() == 4  # a grid inside
    assert np.all(even[2:-2, 2:-2] == 4)
    assert np.all(resized[1:-1, 1:-1] == 9)


def test_explorer_redraws_when_a_slider_moves():
    box = conv.conv_explorer(max_size=8)
    first = box.state["fig"]
    assert box.state["values"]["i"] == 4 and "o = ⌊(i + 2p − k)/s⌋ + 1 = 2" in first.axes[0].get_title()
    assert box.controls["position"].max == 3
    box.controls["i"].value = 7
    assert box.state["fig"] is not first and box.controls["position"].max == 24
    box.controls["position"].value = 24
    box.controls["mode"].value = "transposed"
    box.controls["s"].value = 2
    assert box.state["values"] == {"i": 7, "k": 3, "s": 2, "p": 0, "mode": "transposed", "position": 24}
    assert "o' = s(i' − 1) + k − 2p = 15" in box.state["fig"].axes[0].get_title()
    box.controls["mode"].value = "conv"  # 3x3 output: the kernel position is clamped to the last pixel
    assert box.controls["position"].value == 8 and box.state["values"]["position"] == 8
    assert all(w.continuous_update is False for name, w in box.controls.items() if name != "mode")


def test_draw_grids_marks_padding_unreached_cells_and_impossible_settings():
    from matplotlib.patches import Rectangle

    fig = conv.draw_grids(6, 3, 2, 1, "conv")  # (6 + 2 - 3) mod 2 = 1 row never reached
    cells = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    hatched = [p for p in cells if p.get_hatch() == "//"]
    assert len(hatched) == 8 + 8 - 1 and "never reached" in fig.axes[0].get_xlabel()
    fig = conv.draw_grids(2, 5, 1, 0, "conv")
    assert "no output" in fig.axes[0].texts[0].get_text()


@pytest.mark.parametrize(
    "name, wrong, layer",
    [
        ("conv_output_size", lambda i, k, s=1, p=0: (i - k) // s + 1, "values"),  # padding ignored
        ("conv_output_size", lambda i, k, s=1, p=0: float(conv.conv_output_size(i, k, s, p)), "type"),
        ("conv_matrix", lambda kernel, input_size, stride=1, padding=0:
            conv.conv_matrix(kernel, input_size, stride, padding).T, "shape"),
        ("conv_matrix", lambda kernel, input_size, stride=1, padding=0:
            conv.conv_matrix(np.asarray(kernel)[::-1, ::-1], input_size, stride, padding), "values"),  # convolution, not correlation
        ("conv_transpose_via_matrix", lambda x, kernel, stride=1, padding=0, output_padding=0:
            conv.conv_transpose_via_matrix(x, kernel, stride, padding, 0), "shape"),  # output_padding ignored
        ("conv_transpose_via_matrix", lambda x, kernel, stride=1, padding=0, output_padding=0:
            conv.conv_transpose_via_matrix(x, kernel, stride, padding, output_padding).astype(np.float64), "dtype"),
        ("zero_insert", lambda x, stride: spread_with_trailing_zeros(x, stride), "shape"),
        ("transposed_output_size", lambda i, k, s=1, p=0, output_padding=0: s * (i - 1) + k - 2 * p, "values"),
        ("transposed_output_size", lambda i, k, s: s * (i - 1) + k, "signature"),
    ],
)
def test_wrong_answers_fail_at_the_expected_layer(name, wrong, layer):
    assert_checked_at(name, wrong, layer)


def test_references_pass_their_own_checks_and_cases_cover_edges():
    lab = [ex for ex in REGISTRY.values() if ex.lab == "02"]
    assert [ex.name for ex in lab] == ["conv_output_size", "conv_matrix", "transposed_output_size",
                                       "conv_transpose_via_matrix", "zero_insert"]
    for ex in lab:
        cases = notebook_cases(ex)
        assert len(cases) >= 5 and run_checks(ex, ex.reference, cases).passed
    sizes = [c["i"] for c in notebook_cases(REGISTRY["conv_output_size"])]
    assert 1 in sizes and any(n % 2 for n in sizes)
    arrays = [c["x"] for c in notebook_cases(REGISTRY["conv_transpose_via_matrix"])]
    assert any(x.shape == (1, 1) for x in arrays) and all(x.dtype == np.float32 for x in arrays)



# ----------------------------------------------------------------------------- argument rules
def test_padding_names_in_any_case_are_the_same_as_in_lower_case():
    rng = np.random.default_rng(0)
    x, w = rand(rng, 7), rand(rng, 3)
    for name in ("same", "valid"):
        expected = conv.conv2d(x, w, 2, name)
        for spelling in (name.upper(), name.capitalize()):
            np.testing.assert_array_equal(conv.conv2d(x, w, 2, spelling), expected)
            assert conv.explorer_output_size(7, 3, 2, spelling) == expected.shape[0]
    assert conv.conv2d_transpose(x, w, 2, "SAME").shape == (14, 14)  # o' = s·i'
    assert conv.conv2d_transpose(x, w, 2, "Valid", 1).shape == (2 * 6 + 1 + 3,) * 2
    np.testing.assert_allclose(conv.conv2d_transpose(x, w, 2, "VALID"), conv.conv2d_transpose(x, w, 2, 0), atol=1e-5)
    assert conv.same_padding(7, 4, 2) == (1, 2)
    g = conv.conv_geometry(7, 3, 2, "SAME")
    assert (g.p, g.o, g.pads) == ("same", 4, (1, 1))


@pytest.mark.parametrize("call, message", [
    (lambda: conv.conv2d(np.zeros((4, 4)), np.ones((3, 3)), 1, "full"),
     "padding p must be an integer ≥ 0 or one of the names 'same' and 'valid' (in any case), not 'full'"),
    (lambda: conv.conv2d(np.zeros((4, 4)), np.ones((3, 3)), 1, -1),
     "padding p must be an integer ≥ 0 or one of the names 'same' and 'valid' (in any case), not -1"),
    (lambda: conv.conv2d(np.zeros((2, 2)), np.ones((5, 5))),
     "no output pixel: o = floor((i + 2p - k)/s) + 1 must be ≥ 1, but i = 2, k = 5, s = 1, p = 0 leave none "
     "(the kernel is larger than the padded input: k > i + 2p)"),
    (lambda: conv.conv2d(np.zeros((4, 4)), np.ones((3, 3)), 0),
     "the stride s must be an integer ≥ 1, not 0"),
    (lambda: conv.conv2d_transpose(np.zeros((3, 3)), np.ones((3, 3)), 2, 1, 2),
     "output padding a must be smaller than the stride: 0 ≤ a < s, but a = 2, s = 2 (a picks one of the s input "
     "sides a strided convolution maps to the same output; TensorFlow refuses a ≥ s)"),
    (lambda: conv.conv2d_transpose(np.zeros((1, 1)), np.ones((1, 1)), 1, 1),
     "no output pixel: o' = s(i' - 1) + a + k - 2p must be ≥ 1, but i' = 1, k = 1, s = 1, p = 1, a = 0 give o' = -1 "
     "(the padding crops away every pixel: 2p ≥ s(i' - 1) + a + k)"),
    (lambda: conv.conv2d_transpose(np.zeros((3, 3)), np.ones((3, 3)), 2, "same", 1),
     "output padding a goes with an integer p; with 'same' the output side is s·i' = 6 (a = 1)"),
    (lambda: conv.conv_transpose_by_zero_insertion(np.zeros((3, 3)), np.ones((3, 3)), 2, "same"),
     "this takes an integer padding p (or 'valid'); 'same' pads 0 before and 1 after here, so give p explicitly"),
    (lambda: conv.output_padding_to_invert(2, 5, 1, 0),
     "no output pixel: o = floor((i + 2p - k)/s) + 1 must be ≥ 1, but i = 2, k = 5, s = 1, p = 0 leave none "
     "(the kernel is larger than the padded input: k > i + 2p)"),
    (lambda: conv.same_padding(0, 3), "the input side i must be an integer ≥ 1, not 0"),
    (lambda: conv.input_gradient(np.ones((3, 3)), np.ones((3, 3)), 4),
     "y_grad must have the output's shape (o, o) = (2, 2), not (3, 3)"),
    (lambda: conv.conv2d(np.zeros((4, 3)), np.ones((3, 3))), "x must be a square 2-D array (side, side), not of "
                                                              "shape (4, 3)"),
    (lambda: conv.explorer_output_size(4, 3, 1, 0, "deconv"), "mode must be 'conv' or 'transposed', not 'deconv'"),
    (lambda: conv.overlap_counts(4, 2.5, 2), "the kernel side k must be an integer ≥ 1, not 2.5"),
])
def test_bad_arguments_are_value_errors_that_state_the_rule(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert str(err.value) == message


BAD = {"padding 'full'": dict(p="full"), "kernel too large": dict(k=9), "a >= s": dict(a=2),
       "stride 0": dict(s=0)}


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("helper", [
    lambda i, k, s, p, a: conv.conv2d(np.ones((i, i)), np.ones((k, k)) if k else np.ones((1, 1)), s, p),
    lambda i, k, s, p, a: conv.conv2d_transpose(np.ones((i, i)), np.ones((k, k)), s, p, a),
    lambda i, k, s, p, a: conv.input_gradient(np.ones((1, 1)), np.ones((k, k)), i, s, p),
    lambda i, k, s, p, a: conv.conv_transpose_by_zero_insertion(np.ones((i, i)), np.ones((k, k)), s, p, a),
    lambda i, k, s, p, a: conv.explorer_output_size(i, k, s, p),
    lambda i, k, s, p, a: conv.draw_grids(i, k, s, p),
    lambda i, k, s, p, a: conv.output_padding_to_invert(i, k, s, p),
    lambda i, k, s, p, a: conv.same_padding(i, k, s) if p != "full" else conv.conv_geometry(i, k, s, p),
    lambda i, k, s, p, a: conv.overlap_counts(i, k, s) if p != "full" else conv.conv_geometry(i, k, s, p),
], ids=["conv2d", "conv2d_transpose", "input_gradient", "zero_insertion", "explorer_output_size", "draw_grids",
        "output_padding_to_invert", "same_padding", "overlap_counts"])
def test_every_helper_answers_a_bad_argument_with_a_value_error(helper, bad):
    import matplotlib.pyplot as plt

    args = {"i": 3, "k": 2, "s": 2, "p": 0, "a": 0, **BAD[bad]}
    if bad == "kernel too large":
        args.update(s=1, a=0)
    try:
        fig = helper(**args)
    except ValueError:
        return
    finally:
        plt.close("all")
    # Only where the argument plays no part may a helper accept it, and then it draws or
    # answers what the rule says (draw_grids draws "no output"; a transposed convolution
    # with a large kernel has an output).
    if bad == "kernel too large":
        return
    if bad == "a >= s" and "a" not in helper.__code__.co_names:
        return
    pytest.fail(f"{bad} accepted: {fig!r}")


@SETTINGS
@given(st.integers(1, 8), st.integers(1, 7), st.integers(1, 4), st.integers(0, 4), st.integers(0, 4))
def test_the_rules_accept_exactly_what_tensorflow_accepts(i, k, s, p, a):
    """conv2d_transpose with the output side of the rules runs in TensorFlow; what the rules refuse, TensorFlow does not compute."""
    import tensorflow as tf

    try:
        g = conv.conv_geometry(i, k, s, p, a, transposed=True)
    except ValueError:
        o = s * (i - 1) + a + k - 2 * p
        assert a >= s or o < 1
        if a >= s and o >= 1:  # TensorFlow refuses this output shape
            with pytest.raises((tf.errors.InvalidArgumentError, ValueError)):
                tf.nn.conv2d_transpose(tf.ones((1, i, i, 1)), tf.ones((k, k, 1, 1)), [1, o, o, 1], s,
                                       [[0, 0], [p, p], [p, p], [0, 0]])
        return
    out = conv.conv2d_transpose(np.ones((i, i)), np.ones((k, k)), s, p, a)
    assert out.shape == (g.o, g.o)
    forward = conv.conv_geometry(g.o, k, s, p)
    assert forward.o == i  # the transposed convolution's output maps back to its input


def test_explorer_shows_the_rule_when_a_setting_has_no_output():
    import matplotlib.pyplot as plt

    box = conv.conv_explorer(max_size=8)
    box.controls["i"].value = 1
    box.controls["k"].value = 5
    text = box.state["fig"].axes[0].texts[0].get_text()
    assert "no output" in text and "o = floor((i + 2p - k)/s) + 1 must be ≥ 1" in text
    assert box.controls["position"].max == 0
    plt.close("all")


@pytest.mark.parametrize("call, message", [
    (lambda: conv.conv_output_size(2, 5, 1, 0),
     "no output pixel: o = floor((i + 2p - k)/s) + 1 must be ≥ 1, but i = 2, k = 5, s = 1, p = 0 leave none "
     "(the kernel is larger than the padded input: k > i + 2p)"),
    (lambda: conv.conv_output_size(4, 3, 1, "full"),
     "padding p must be an integer ≥ 0 or one of the names 'same' and 'valid' (in any case), not 'full'"),
    (lambda: conv.conv_matrix(np.ones((3, 3)), 4, 1, "SAME"),
     "conv_matrix takes an integer padding p: give p = 0 for 'valid', and the zeros that same_padding(i, k, s) "
     "gives for 'same', not 'SAME'"),
    (lambda: conv.conv_matrix(np.ones((5, 5)), 2),
     "no output pixel: o = floor((i + 2p - k)/s) + 1 must be ≥ 1, but i = 2, k = 5, s = 1, p = 0 leave none "
     "(the kernel is larger than the padded input: k > i + 2p)"),
    (lambda: conv.transposed_output_size(3, 3, 2, "same"),
     "transposed_output_size takes an integer padding p: give p = 0 for 'valid', and the zeros that "
     "same_padding(i, k, s) gives for 'same', not 'same'"),
    (lambda: conv.transposed_output_size(3, 3, 2, 0, 2),
     "output padding a must be smaller than the stride: 0 ≤ a < s, but a = 2, s = 2 (a picks one of the s input "
     "sides a strided convolution maps to the same output; TensorFlow refuses a ≥ s)"),
    (lambda: conv.conv_transpose_via_matrix(np.ones((1, 1)), np.ones((1, 1)), 1, 1),
     "no output pixel: o' = s(i' - 1) + a + k - 2p must be ≥ 1, but i' = 1, k = 1, s = 1, p = 1, a = 0 give o' = -1 "
     "(the padding crops away every pixel: 2p ≥ s(i' - 1) + a + k)"),
    (lambda: conv.zero_insert(np.ones((2, 2)), 0), "the stride s must be an integer ≥ 1, not 0"),
])
def test_the_exercises_called_from_the_library_state_the_rule(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert str(err.value) == message


def test_the_exercises_called_from_the_library_accept_the_names_where_they_should():
    assert conv.conv_output_size(7, 3, 2, "SAME") == 4
    assert conv.conv_output_size(7, 3, 2, "Valid") == 3
