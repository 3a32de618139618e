"""Lab 02: convolution as a matrix C, transposed convolution as C^T, and size arithmetic.

Single-channel 2-D, square inputs and kernels, cross-correlation as in tf.nn.conv2d;
arrays are (side, side) float32 and flattened row by row.  Padding p is symmetric
(p zeros on every side) unless TensorFlow's "same" is asked for by name.
Reference: V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep
learning" (2016), whose notation (i, k, s, p, o and i', o', a) the lab follows.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from gan_course.checks import exercise
from gan_course.i18n import N_, _

# ----------------------------------------------------------------------------- the rules, checked once
@dataclass(frozen=True)
class Geometry:
    """A checked (i, k, s, p, a) and its output side o (o' for a transposed convolution).

    p is an int, or "same" / "valid" in lower case; `pads` are the zeros before and after
    on each axis (TensorFlow's "same" puts the odd one after).
    """

    i: int
    k: int
    s: int
    p: int | str
    output_padding: int
    transposed: bool
    o: int
    pads: tuple[int, int]

    @property
    def explicit_p(self) -> int:
        """p as a number of zeros on every side ("valid" is 0); "same" has no single p."""
        if self.p == "same":
            raise ValueError(_("this takes an integer padding p (or 'valid'); 'same' pads {before} before "
                               "and {after} after here, so give p explicitly").format(
                before=self.pads[0], after=self.pads[1]))
        return 0 if self.p == "valid" else self.p


PADDING_RULE = N_("padding p must be an integer ≥ 0 or one of the names 'same' and 'valid' (in any case)")
CONV_RULE = N_("o = floor((i + 2p - k)/s) + 1 must be ≥ 1")
TRANSPOSED_RULE = N_("o' = s(i' - 1) + a + k - 2p must be ≥ 1")


class NoOutputPixel(ValueError):
    """Arguments that leave no output pixel; `rule` is the rule they break (in the reader's language)."""

    def __init__(self, message: str, rule: str):
        super().__init__(message)
        self.rule = rule


def _whole(value, name: str, least: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(_("{name} must be an integer ≥ {least}, not {value!r}").format(
                name=name, least=least, value=value))
    if value < least:
        raise ValueError(_("{name} must be an integer ≥ {least}, not {value}").format(name=name, least=least, value=value))
    return int(value)


def conv_geometry(i, k, s=1, p=0, output_padding=0, transposed=False) -> Geometry:
    """Check a convolution's (or a transposed convolution's) arguments and work out its output side.

    i: input side (i' for a transposed convolution), k: kernel side, s: stride, p: zeros
    on each side or "same" / "valid" in any case, output_padding: Dumoulin and Visin's a.
    Every public helper of this module checks its arguments here, so a bad argument is a
    ValueError that states the rule it breaks, never an error from inside NumPy or TensorFlow.
    """
    i = _whole(i, _("the input side i'") if transposed else _("the input side i"), 1)
    k = _whole(k, _("the kernel side k"), 1)
    s = _whole(s, _("the stride s"), 1)
    if isinstance(p, str):
        if p.lower() not in ("same", "valid"):
            raise ValueError(_("{rule}, not {p!r}").format(rule=_(PADDING_RULE), p=p))
        p = p.lower()
    else:
        try:
            p = _whole(p, _("padding p"), 0)
        except ValueError:
            raise ValueError(_("{rule}, not {p!r}").format(rule=_(PADDING_RULE), p=p)) from None
    a = _whole(output_padding, _("the output padding a"), 0)
    if not transposed:
        if a:
            raise ValueError(_("output padding a applies to a transposed convolution only (a = {a})").format(a=a))
        pad = 0 if p in ("same", "valid") else p
        if p != "same" and i + 2 * pad < k:
            raise NoOutputPixel(_("no output pixel: {rule}, but i = {i}, k = {k}, s = {s}, p = {p} leave none "
                                  "(the kernel is larger than the padded input: k > i + 2p)").format(
                rule=_(CONV_RULE), i=i, k=k, s=s, p=pad), _(CONV_RULE))
        o = _keras_side(i, k, s, p, 0, False)
        total = max((o - 1) * s + k - i, 0) if p == "same" else 2 * pad
        return Geometry(i, k, s, p, 0, False, o, (total // 2, total - total // 2))
    if a >= s:
        raise ValueError(_("output padding a must be smaller than the stride: 0 ≤ a < s, but a = {a}, s = {s} "
                           "(a picks one of the s input sides a strided convolution maps to the same output; "
                           "TensorFlow refuses a ≥ s)").format(a=a, s=s))
    if p == "same" and a:
        raise ValueError(_("output padding a goes with an integer p; with 'same' the output side is s·i' "
                           "= {side} (a = {a})").format(side=s * i, a=a))
    pad = 0 if p in ("same", "valid") else p
    o = _keras_side(i, k, s, p, a, True)
    if o < 1:
        raise NoOutputPixel(_("no output pixel: {rule}, but i' = {i}, k = {k}, s = {s}, p = {p}, a = {a} "
                              "give o' = {o} (the padding crops away every pixel: 2p ≥ s(i' - 1) + a + k)").format(
            rule=_(TRANSPOSED_RULE), i=i, k=k, s=s, p=pad, a=a, o=o), _(TRANSPOSED_RULE))
    total = max((i - 1) * s + k - o, 0) if p == "same" else 2 * pad
    return Geometry(i, k, s, p, a, True, o, (total // 2, total - total // 2))


@functools.lru_cache(maxsize=1024)  # the explorer asks on every slider move; Keras layers are slow to make
def _keras_side(i, k, s, p, a, transposed) -> int:
    """The output side as Keras' own layers work it out (the lab's exercises derive the
    formula; the helpers ask the framework, so they work before those exercises are done).
    An integer p is applied as p zeros around the input (or cropped from a transposed output)."""
    import keras

    if transposed:
        layer = keras.layers.Conv2DTranspose(1, k, strides=s, padding="same" if p == "same" else "valid",
                                             output_padding=None if p == "same" else a)
        side = layer.compute_output_shape((1, i, i, 1))[1]
        return int(side) - (0 if p in ("same", "valid") else 2 * p)
    layer = keras.layers.Conv2D(1, k, strides=s, padding="same" if p == "same" else "valid")
    padded = i + (0 if p in ("same", "valid") else 2 * p)
    return int(layer.compute_output_shape((1, padded, padded, 1))[1])


def _square(x, name: str) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[0] != x.shape[1] or x.shape[0] < 1:
        raise ValueError(_("{name} must be a square 2-D array (side, side), not of shape {shape}").format(
            name=name, shape=x.shape))
    return x


INTEGER_PADDING_RULE = N_("{name} takes an integer padding p: give p = 0 for 'valid', and the zeros "
                          "that same_padding(i, k, s) gives for 'same'")


def _integer_padding(name: str, padding) -> None:
    if isinstance(padding, str):
        raise ValueError(_("{rule}, not {p!r}").format(rule=_(INTEGER_PADDING_RULE).format(name=name), p=padding))


# The input rules of the lab's exercises, checked when library code calls them (the
# student's own function is never asked to enforce them).
def _check_output_size(i, k, s, p):
    return {"p": conv_geometry(i, k, s, p).p}


def _check_matrix(kernel, input_size, stride, padding):
    kernel = _square(kernel, "kernel")
    _integer_padding("conv_matrix", padding)
    conv_geometry(input_size, kernel.shape[0], stride, padding)


def _check_transposed_size(i, k, s, p, output_padding):
    _integer_padding("transposed_output_size", p)
    conv_geometry(i, k, s, p, output_padding, transposed=True)


def _check_transpose(x, kernel, stride, padding, output_padding):
    x, kernel = _square(x, "x"), _square(kernel, "kernel")
    _integer_padding("conv_transpose_via_matrix", padding)
    conv_geometry(x.shape[0], kernel.shape[0], stride, padding, output_padding, transposed=True)


def _check_zero_insert(x, stride):
    _square(x, "x")
    _whole(stride, _("the stride s"), 1)


# Colours of the explorer and the figures (colour-blind safe "deep" palette).
INPUT_COLOUR, ZERO_COLOUR, OUTPUT_COLOUR, KERNEL_COLOUR = "#4c72b0", "#dddddd", "#55a868", "#dd8452"


# ----------------------------------------------------------------------------- sizes
def _size_cases(rng):
    cases = [
        {"i": 4, "k": 3, "s": 1, "p": 0},  # the hand-out's example: o = 2
        {"i": 5, "k": 3, "s": 2, "p": 1},  # the hand-out's fractional-stride example: o = 3
        {"i": 1, "k": 1, "s": 1, "p": "valid"},
        {"i": 1, "k": 3, "s": 2, "p": "same"},
        {"i": 7, "k": 3, "s": 2, "p": "same"},
        {"i": 6, "k": 4, "s": 3, "p": "valid"},
    ]
    for _case in range(8):
        k = int(rng.integers(1, 8))
        p = int(rng.integers(0, k))
        padding = ["valid", "same", p][int(rng.integers(0, 3))]
        low = 1 if padding == "same" else max(1, k - 2 * (p if isinstance(padding, int) else 0))
        cases.append({"i": int(rng.integers(low, 32)), "k": k, "s": int(rng.integers(1, 5)), "p": padding})
    return cases


@exercise("02", cases=_size_cases, validate=_check_output_size,
          hint=N_("an int p or 'valid' (p = 0): floor((i + 2p - k) / s) + 1 (use //); 'same': ceil(i / s) = -(-i // s)."))
def conv_output_size(i, k, s=1, p=0):
    """Output side of a convolution as tf.nn.conv2d computes it.

    i: input side, k: kernel side, s: stride, p: zeros on each side (an int), or the
    names "valid" (p = 0) and "same" (TensorFlow pads so that o = ceil(i / s)).
    """


def same_padding(i, k, s=1):
    """The zeros TensorFlow's "same" adds before and after (the odd one goes after)."""
    return conv_geometry(i, k, s, "same").pads


# ----------------------------------------------------------------------------- the matrix C
def _matrix_cases(rng):
    shapes = [(4, 3, 1, 0), (1, 1, 1, 0), (5, 3, 2, 1), (5, 2, 1, 1), (7, 4, 3, 0), (3, 3, 2, 2)]
    for _case in range(4):
        k = int(rng.integers(1, 6))
        p = int(rng.integers(0, k))
        shapes.append((int(rng.integers(max(1, k - 2 * p), 10)), k, int(rng.integers(1, 4)), p))
    return [
        {"kernel": rng.normal(size=(k, k)).astype(np.float32), "input_size": i, "stride": s, "padding": p}
        for i, k, s, p in shapes
    ]


@exercise("02", cases=_matrix_cases, validate=_check_matrix,
          hint=N_("row r*o + c of C is output pixel (r, c); kernel[a, b] goes to column y*i + x with "
                  "y = r*s - p + a, x = c*s - p + b, skipped when (y, x) falls on the padding."))
def conv_matrix(kernel, input_size, stride=1, padding=0):
    """The (o*o, i*i) float32 matrix C with C @ x.ravel() == conv2d(x).ravel() (stride s, p zeros)."""


# ----------------------------------------------------------------------------- transposed convolution
def _transposed_cases(rng):
    cases = [
        {"i": 2, "k": 3, "s": 1, "p": 0, "output_padding": 0},  # undoes the 4x4 -> 2x2 convolution
        {"i": 3, "k": 3, "s": 2, "p": 1, "output_padding": 0},  # the hand-out's fractional-stride example
        {"i": 1, "k": 1, "s": 1, "p": 0, "output_padding": 0},
        {"i": 7, "k": 5, "s": 2, "p": 2, "output_padding": 1},  # DCGAN: 7 -> 14
        {"i": 3, "k": 4, "s": 3, "p": 1, "output_padding": 2},
    ]
    for _case in range(8):
        s, k = int(rng.integers(1, 5)), int(rng.integers(1, 8))
        cases.append({"i": int(rng.integers(1, 20)), "k": k, "s": s, "p": int(rng.integers(0, (k + 1) // 2)),
                      "output_padding": int(rng.integers(0, s))})
    return cases


@exercise("02", cases=_transposed_cases, validate=_check_transposed_size,
          hint=N_("o' = s (i' - 1) + a + k - 2p, with a = output_padding."))
def transposed_output_size(i, k, s=1, p=0, output_padding=0):
    """Output side o' of a transposed convolution with input side i' = i (Dumoulin & Visin).

    output_padding is their a (Keras' output_padding): the extra rows the stride hides.
    """


def output_padding_to_invert(i, k, s=1, p=0):
    """The a for which a transposed convolution gives back side i: a = (i + 2p - k) mod s.

    A convolution maps s different input sides to the same output side (the last
    (i + 2p - k) mod s rows are never reached by the kernel); a says which one to return.
    """
    g = conv_geometry(i, k, s, p)
    return (g.i + 2 * g.explicit_p - g.k) % g.s


def _transpose_cases(rng):
    settings = [(2, 3, 1, 0, 0), (1, 1, 1, 0, 0), (3, 3, 2, 1, 0), (3, 3, 2, 0, 1), (4, 4, 2, 1, 0), (1, 2, 3, 0, 2)]
    for _case in range(4):
        s, k = int(rng.integers(1, 4)), int(rng.integers(1, 6))
        settings.append((int(rng.integers(1, 7)), k, s, int(rng.integers(0, (k + 1) // 2)), int(rng.integers(0, s))))
    return [
        {"x": rng.normal(size=(i, i)).astype(np.float32), "kernel": rng.normal(size=(k, k)).astype(np.float32),
         "stride": s, "padding": p, "output_padding": a}
        for i, k, s, p, a in settings
    ]


@exercise("02", cases=_transpose_cases, validate=_check_transpose,
          hint=N_("the output side is o' = transposed_output_size(i', k, s, p, a); build C for the forward "
                  "convolution of an o' x o' input, then reshape C.T @ x.ravel() to (o', o')."))
def conv_transpose_via_matrix(x, kernel, stride=1, padding=0, output_padding=0):
    """Transposed convolution of x (i', i') as C^T x: the (o', o') float32 array tf.nn.conv2d_transpose gives."""


# ----------------------------------------------------------------------------- zero insertion
def _zero_insert_cases(rng):
    settings = [(3, 2), (1, 3), (2, 1), (4, 3), (5, 2)] + [(int(rng.integers(1, 9)), int(rng.integers(1, 5)))
                                                           for _case in range(4)]
    return [{"x": rng.normal(size=(n, n)).astype(np.float32), "stride": s} for n, s in settings]


@exercise("02", cases=_zero_insert_cases, validate=_check_zero_insert,
          hint=N_("the result has side (n - 1) * stride + 1; start from zeros and fill every stride-th row and "
                  "column."))
def zero_insert(x, stride):
    """x (n, n) with stride - 1 zeros put between neighbouring pixels: ((n-1)*stride + 1)^2, float32."""


def _pad_or_crop(x, before, after):
    """Zero-pad a square array, or crop it where a side's amount is negative."""
    x = np.pad(x, [(max(before, 0), max(after, 0))] * 2)
    n = x.shape[0]
    lo, hi = max(-before, 0), n - max(-after, 0)
    return x[lo:hi, lo:hi]


def conv_transpose_by_zero_insertion(x, kernel, stride=1, padding=0, output_padding=0):
    """A transposed convolution as an ordinary stride-1 convolution (the "fractional stride").

    Insert stride - 1 zeros between pixels, pad with k - 1 - p zeros (plus a = output_padding
    more after), and slide the kernel flipped by 180 degrees over it with stride 1.
    """
    x, kernel = _square(x, "x"), _square(kernel, "kernel")
    g = conv_geometry(x.shape[0], kernel.shape[0], stride, padding, output_padding, transposed=True)
    p, k, s = g.explicit_p, g.k, g.s
    spread = np.zeros(((g.i - 1) * s + 1,) * 2, np.float32)  # stride - 1 zeros between neighbours
    spread[::s, ::s] = x
    z = _pad_or_crop(spread, k - 1 - p, k - 1 - p + g.output_padding)
    return conv2d(z, kernel[::-1, ::-1], 1, 0)


# ----------------------------------------------------------------------------- TensorFlow, side by side
def _tf_padding(g: Geometry):
    if isinstance(g.p, str):
        return g.p.upper()
    return [[0, 0], [g.p, g.p], [g.p, g.p], [0, 0]]


def conv2d(x, kernel, stride=1, padding=0):
    """tf.nn.conv2d on one single-channel 2-D image; padding is an int p, "valid" or "same" (any case)."""
    import tensorflow as tf

    x, kernel = _square(x, "x"), _square(kernel, "kernel")
    g = conv_geometry(x.shape[0], kernel.shape[0], stride, padding)
    out = tf.nn.conv2d(tf.constant(x[None, :, :, None]), tf.constant(kernel[:, :, None, None]), strides=g.s,
                       padding=_tf_padding(g))
    return out.numpy()[0, :, :, 0]


def conv2d_transpose(x, kernel, stride=1, padding=0, output_padding=0):
    """tf.nn.conv2d_transpose on one single-channel 2-D image, output side from the size relation
    (o' = s(i' - 1) + a + k - 2p; s·i' for "same")."""
    import tensorflow as tf

    x, kernel = _square(x, "x"), _square(kernel, "kernel")
    g = conv_geometry(x.shape[0], kernel.shape[0], stride, padding, output_padding, transposed=True)
    out = tf.nn.conv2d_transpose(tf.constant(x[None, :, :, None]), tf.constant(kernel[:, :, None, None]),
                                 output_shape=[1, g.o, g.o, 1], strides=g.s, padding=_tf_padding(g))
    return out.numpy()[0, :, :, 0]


def input_gradient(y_grad, kernel, input_size, stride=1, padding=0):
    """dL/dx of L = sum(conv2d(x) * y_grad), from tf.GradientTape (it does not depend on x)."""
    import tensorflow as tf

    kernel = _square(kernel, "kernel")
    g = conv_geometry(input_size, kernel.shape[0], stride, padding)
    y_grad = np.asarray(y_grad, np.float32)
    if y_grad.shape != (g.o, g.o):
        raise ValueError(_("y_grad must have the output's shape (o, o) = ({o}, {o}), not {shape}").format(
            o=g.o, shape=y_grad.shape))
    x = tf.Variable(tf.zeros((1, g.i, g.i, 1)))
    w = tf.constant(kernel[:, :, None, None])
    with tf.GradientTape() as tape:
        y = tf.nn.conv2d(x, w, strides=g.s, padding=_tf_padding(g))
        loss = tf.reduce_sum(y * y_grad[None, :, :, None])
    return tape.gradient(loss, x).numpy()[0, :, :, 0]


# ----------------------------------------------------------------------------- checkerboards
def overlap_counts(i, k, s):
    """Kernel taps landing on each output pixel of a transposed convolution (ones in, ones kernel)."""
    g = conv_geometry(i, k, s, 0, transposed=True)
    return conv2d_transpose(np.ones((g.i, g.i)), np.ones((g.k, g.k)), g.s)


def resize_conv_counts(i, k, s):
    """The same count for nearest-neighbour resizing by s followed by a k x k "same" convolution."""
    g = conv_geometry(i, k, s, 0, transposed=True)
    i, k, s = g.i, g.k, g.s
    resized = np.kron(np.ones((i, i), np.float32), np.ones((s, s), np.float32))
    return conv2d(resized, np.ones((k, k)), 1, "same")


def checkerboard_figure(i=4, k=3, s=2):
    """A constant input upsampled by s three ways: taps per output pixel, uneven when s does not divide k."""
    import matplotlib.pyplot as plt

    conv_geometry(i, k, s, 0, transposed=True)

    panels = [
        (_("transposed conv, k={k}, s={s}").format(k=k, s=s), overlap_counts(i, k, s)),
        (_("transposed conv, k={k}, s={s}").format(k=2 * s, s=s), overlap_counts(i, 2 * s, s)),
        (_("resize ×{s} + conv k={k} (same)").format(s=s, k=k), resize_conv_counts(i, k, s)),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
    for ax, (name, counts) in zip(axes, panels):
        im = ax.imshow(counts, cmap="magma", vmin=0)
        inner = counts[k:-k, k:-k] if counts.shape[0] > 2 * k else counts
        ax.set_title(_("{name}\ninterior taps per pixel: {low:.0f}–{high:.0f}").format(
            name=name, low=inner.min(), high=inner.max()))
        ax.set_xlabel(_("output column"))
        ax.set_ylabel(_("output row"))
        fig.colorbar(im, ax=ax, fraction=0.046, label=_("kernel taps"))
    fig.suptitle(_("A constant {i}×{i} input, uniform kernel: how many kernel taps reach each output pixel").format(i=i))
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- the explorer
def _mode(mode) -> bool:
    if mode not in ("conv", "transposed"):
        raise ValueError(_("mode must be 'conv' or 'transposed', not {mode!r}").format(mode=mode))
    return mode == "transposed"


def explorer_output_size(i, k, s, p, mode="conv"):
    """The output side the explorer shows: o for a convolution, o' (a = 0) for a transposed one."""
    return conv_geometry(i, k, s, p, transposed=_mode(mode)).o


def draw_grids(i, k, s, p, mode="conv", position=0, ax=None):
    """Draw the input and output grids of a convolution or of a transposed convolution.

    conv: the i x i input (blue) inside its p rings of zero padding (grey), the kernel's
    footprint (orange) for output pixel `position` (row by row), and the o x o output.
    Input cells the kernel never reaches are hatched.  transposed: the equivalent stride-1
    convolution: i' x i' pixels with s - 1 zeros inserted between them and k - 1 - p rings of
    zeros around (a negative amount crops, drawn crossed out), and the o' x o' output.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    transposed = _mode(mode)
    try:
        g = conv_geometry(i, k, s, p, transposed=transposed)
        empty = None
    except NoOutputPixel as err:
        empty = err.rule
    if empty is None:
        i, k, s, p = g.i, g.k, g.s, g.explicit_p  # the grids show p zeros on every side
        o = g.o
    else:
        p = 0 if isinstance(p, str) else p  # only "valid" (p = 0) can leave no output
        o = s * (i - 1) + k - 2 * p if transposed else (i + 2 * p - k) // s + 1
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 5))
    else:
        fig = ax.figure
    ax.clear()
    if mode == "conv":
        pad, gap, step = p, 1, s
        title = _("convolution  i={i}, k={k}, s={s}, p={p}:  o = ⌊(i + 2p − k)/s⌋ + 1 = {o}").format(
            i=i, k=k, s=s, p=p, o=o)
    else:
        pad, gap, step = k - 1 - p, s, 1
        title = _("transposed convolution  i'={i}, k={k}, s={s}, p={p}:  o' = s(i' − 1) + k − 2p = {o}").format(
            i=i, k=k, s=s, p=p, o=o)
    ax.set_title(title, fontsize=12)
    ax.set_xticks([])
    ax.set_yticks([])
    if empty is not None:
        why = (_("the kernel (k={k}) does not fit").format(k=k) if mode == "conv"
               else _("the padding (p={p}) crops everything").format(p=p))
        ax.text(0.5, 0.5, _("no output: {why} (size {o})\n{rule}").format(why=why, o=o, rule=empty),
                ha="center", va="center",
                fontsize=12, transform=ax.transAxes)
        for side in ax.spines.values():
            side.set_visible(False)
        return fig

    stretched = (i - 1) * gap + 1  # input side after zero insertion (gap 1: unchanged)
    full = stretched + 2 * pad  # negative pad: the ring that is cropped away
    drawn = max(full, stretched)
    shift = max(-pad, 0)  # drawn-grid index of the first cell the kernel sees
    position = min(max(int(position), 0), o * o - 1)
    row, col = divmod(position, o)
    reach = (o - 1) * step + k  # cells of the (padded) input the kernel ever covers
    for r in range(drawn):
        for c in range(drawn):
            rr, cc = r - max(pad, 0), c - max(pad, 0)
            pixel = 0 <= rr < stretched and 0 <= cc < stretched and rr % gap == 0 and cc % gap == 0
            cropped = pad < 0 and not (shift <= r < drawn - shift and shift <= c < drawn - shift)
            unused = not cropped and (r - shift >= reach or c - shift >= reach)
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor=INPUT_COLOUR if pixel else ZERO_COLOUR,
                                   edgecolor="white", linewidth=1,
                                   hatch="xx" if cropped else ("//" if unused else None), alpha=0.45 if cropped else 1))
    top, left = shift + row * step, shift + col * step
    ax.add_patch(Rectangle((left, top), k, k, facecolor=KERNEL_COLOUR, alpha=0.3, edgecolor="none"))
    ax.add_patch(Rectangle((left, top), k, k, fill=False, edgecolor=KERNEL_COLOUR, linewidth=3))

    offset = drawn + 3
    for r in range(o):
        for c in range(o):
            ax.add_patch(Rectangle((offset + c, r), 1, 1, facecolor=OUTPUT_COLOUR, edgecolor="white", linewidth=1))
    ax.add_patch(Rectangle((offset + col, row), 1, 1, facecolor=KERNEL_COLOUR, edgecolor=KERNEL_COLOUR, linewidth=3))
    middle = drawn / 2
    ax.annotate("", xy=(offset - 0.4, middle), xytext=(drawn + 0.4, middle), arrowprops={"arrowstyle": "->", "lw": 2})
    if mode == "conv":
        what = _("input {i}×{i}").format(i=i) + (_(", padded to {n}×{n}").format(n=full) if p else "")
    else:
        what = _("input {i}×{i}").format(i=i) + (_(", zeros inserted: {n}×{n}").format(n=stretched) if s > 1 else "")
        what += (_(", padded to {n}×{n}").format(n=full) if pad > 0
                 else _(", cropped to {n}×{n}").format(n=full) if pad < 0 else "")
    ax.text(drawn / 2, -0.5, what, ha="center", va="bottom", fontsize=10)
    ax.text(offset + o / 2, -0.5, _("output {o}×{o}").format(o=o), ha="center", va="bottom", fontsize=10)
    legend = [_("blue: input pixel"),
              _("grey: zero (padding or inserted)") if mode != "conv" and s > 1 else _("grey: zero (padding)"),
              _("orange: kernel footprint for output pixel ({row}, {col})").format(row=row, col=col)]
    if mode == "conv" and reach < full:
        legend.append(_("hatched: never reached, (i + 2p − k) mod s = {rest}").format(rest=(i + 2 * p - k) % s))
    if pad < 0:
        legend.append(_("crossed: cropped (p > k − 1)"))
    ax.set_xlabel(" · ".join(legend[:2]) + "\n" + " · ".join(legend[2:]), fontsize=10)
    ax.set_xlim(-0.3, offset + o + 0.3)
    ax.set_ylim(max(drawn, o) + 0.3, -1.6)  # rows go down, as in an image
    ax.set_aspect("equal")
    for side in ax.spines.values():
        side.set_visible(False)
    return fig


def conv_explorer(max_size=12):
    """Sliders for i, k, s, p, a conv / transposed toggle and the kernel's position; redraws in place.

    Returns the widget box; `box.controls` are the widgets, `box.state` holds the last figure
    and the values it was drawn with (what a test or a later cell can look at).
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    def slider(value, low, high, description):
        return widgets.IntSlider(value, low, high, description=description, continuous_update=False,
                                 style={"description_width": "initial"})

    controls = {
        "i": slider(4, 1, max_size, _("i (input side)")),
        "k": slider(3, 1, 7, _("k (kernel side)")),
        "s": slider(1, 1, 4, _("s (stride)")),
        "p": slider(0, 0, 3, _("p (padding)")),
        "mode": widgets.ToggleButtons(options=[(_("convolution"), "conv"), (_("transposed convolution"), "transposed")]),
        "position": slider(0, 0, 3, _("kernel at output pixel #")),
    }
    out = widgets.Output()
    state = {"drawing": False}

    def redraw(change=None):
        if state["drawing"]:  # changing position.max below may move position: one redraw is enough
            return
        state["drawing"] = True
        values = {}
        try:
            values = {name: w.value for name, w in controls.items() if name != "position"}
            try:
                o = explorer_output_size(**values)
            except ValueError:  # no output pixel: draw_grids says why
                o = 0
            controls["position"].max = max(o * o - 1, 0)
            values["position"] = controls["position"].value
            fig = draw_grids(**values)
            state["fig"], state["values"] = fig, values
            with out:
                out.clear_output(wait=True)
                display(fig)
            plt.close(fig)
        except Exception as err:  # show the error where the figure would be, keep the sliders alive
            with out:
                out.clear_output(wait=True)
                print(_("Could not draw {values}: {error}: {message}").format(
                    values=values, error=type(err).__name__, message=err))
        finally:
            state["drawing"] = False

    for w in controls.values():
        w.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox([controls["i"], controls["k"]]), widgets.HBox([controls["s"], controls["p"]]),
                        widgets.HBox([controls["mode"], controls["position"]]), out])
    box.controls, box.output, box.state, box.redraw = controls, out, state, redraw
    return box
