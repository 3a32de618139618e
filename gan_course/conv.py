"""Lab 02: convolution as a matrix C, transposed convolution as C^T, and size arithmetic.

Single-channel 2-D, square inputs and kernels, cross-correlation as in tf.nn.conv2d.
References: Dumoulin & Visin, "A guide to convolution arithmetic for deep learning" (2016).
"""
from __future__ import annotations

import numpy as np

from gan_course.checks import exercise


# ----------------------------------------------------------------------------- sizes
def _size_cases(rng):
    cases = [
        {"i": 4, "k": 3, "s": 1, "padding": "valid"},
        {"i": 1, "k": 1, "s": 1, "padding": "same"},
        {"i": 7, "k": 3, "s": 2, "padding": "same"},
        {"i": 5, "k": 4, "s": 3, "padding": 1},
    ]
    for _ in range(6):
        k = int(rng.integers(1, 6))
        p = int(rng.integers(0, k))
        cases.append({
            "i": int(rng.integers(k, 30)), "k": k, "s": int(rng.integers(1, 5)),
            "padding": ["valid", "same", p][int(rng.integers(0, 3))],
        })
    return cases


@exercise("02", cases=_size_cases,
          hint="valid: floor((i + 2p - k) / s) + 1 with p = 0; same: ceil(i / s); an integer is p.")
def conv_output_size(i, k, s=1, padding="valid"):
    """Output side of a convolution (input i, kernel k, stride s) as tf.nn.conv2d computes it."""
    if padding == "same":
        return -(-i // s)
    p = 0 if padding == "valid" else int(padding)
    return (i + 2 * p - k) // s + 1


def _transposed_cases(rng):
    cases = [
        {"i": 2, "k": 3, "s": 1, "p": 0, "output_padding": 0},
        {"i": 1, "k": 1, "s": 1, "p": 0, "output_padding": 0},
        {"i": 7, "k": 5, "s": 2, "p": 2, "output_padding": 1},
        {"i": 3, "k": 4, "s": 2, "p": 1, "output_padding": 0},
    ]
    for _ in range(6):
        s = int(rng.integers(1, 4))
        k = int(rng.integers(1, 6))
        cases.append({"i": int(rng.integers(1, 16)), "k": k, "s": s, "p": int(rng.integers(0, (k + 1) // 2)),
                      "output_padding": int(rng.integers(0, s))})
    return cases


@exercise("02", cases=_transposed_cases,
          hint="o' = s (i' - 1) + a + k - 2p, where a is the output_padding.")
def transposed_output_size(i, k, s=1, p=0, output_padding=0):
    """Output side of a transposed convolution (Dumoulin & Visin; Keras' output_padding is a)."""
    return s * (i - 1) + output_padding + k - 2 * p


# ----------------------------------------------------------------------------- the matrix C
def _matrix_cases(rng):
    shapes = [(4, 3, 1, 0), (1, 1, 1, 0), (5, 3, 2, 0), (5, 2, 1, 1), (6, 3, 2, 1), (7, 4, 3, 0)]
    return [
        {"kernel": rng.normal(size=(k, k)).astype(np.float32), "input_size": i, "stride": s, "padding": p}
        for i, k, s, p in shapes
    ]


@exercise("02", cases=_matrix_cases,
          hint="row r of C is output pixel r; put kernel[a, b] at column (row*s - p + a) * i + (col*s - p + b).")
def conv_matrix(kernel, input_size, stride=1, padding=0):
    """The (o*o, i*i) matrix C with C @ x.ravel() == conv2d(x) (zero padding p, stride s)."""
    kernel = np.asarray(kernel, np.float32)
    k = kernel.shape[0]
    i, s, p = input_size, stride, padding
    o = conv_output_size(i, k, s, p)
    C = np.zeros((o * o, i * i), np.float32)
    for r in range(o):
        for c in range(o):
            for a in range(k):
                for b in range(k):
                    y, x = r * s - p + a, c * s - p + b
                    if 0 <= y < i and 0 <= x < i:  # taps on the zero padding contribute nothing
                        C[r * o + c, y * i + x] = kernel[a, b]
    return C


def _transpose_cases(rng):
    shapes = [(4, 3, 1), (1, 1, 1), (5, 3, 2), (7, 3, 2), (6, 2, 2), (9, 4, 3)]
    cases = []
    for i, k, s in shapes:
        o = conv_output_size(i, k, s)
        cases.append({"y": rng.normal(size=(o, o)).astype(np.float32),
                      "kernel": rng.normal(size=(k, k)).astype(np.float32), "input_size": i, "stride": s})
    return cases


@exercise("02", cases=_transpose_cases,
          hint="build C for the forward convolution (input_size, stride), then x = (C.T @ y.ravel()) reshaped.")
def conv_transpose_via_matrix(y, kernel, input_size, stride=1):
    """Transposed convolution of y (o, o) as C^T y, back to (input_size, input_size); VALID padding."""
    C = conv_matrix(kernel, input_size, stride, 0)
    return (C.T @ np.asarray(y, np.float32).ravel()).reshape(input_size, input_size)


def conv2d(x, kernel, stride=1, padding="VALID"):
    """tf.nn.conv2d on one single-channel 2-D image, for side-by-side checks."""
    import tensorflow as tf

    x = tf.constant(np.asarray(x, np.float32)[None, :, :, None])
    w = tf.constant(np.asarray(kernel, np.float32)[:, :, None, None])
    if isinstance(padding, int):
        padding = [[0, 0], [padding, padding], [padding, padding], [0, 0]]
    return tf.nn.conv2d(x, w, strides=stride, padding=padding).numpy()[0, :, :, 0]


def conv2d_transpose(y, kernel, output_size, stride=1, padding="VALID"):
    """tf.nn.conv2d_transpose on one single-channel 2-D image."""
    import tensorflow as tf

    y = tf.constant(np.asarray(y, np.float32)[None, :, :, None])
    w = tf.constant(np.asarray(kernel, np.float32)[:, :, None, None])
    out = tf.nn.conv2d_transpose(y, w, output_shape=[1, output_size, output_size, 1], strides=stride, padding=padding)
    return out.numpy()[0, :, :, 0]


def zero_insert(y, stride):
    """Put stride-1 zeros between neighbouring pixels: the 'fractional stride' of a transposed convolution."""
    y = np.asarray(y, np.float32)
    n = y.shape[0]
    out = np.zeros(((n - 1) * stride + 1,) * 2, np.float32)
    out[::stride, ::stride] = y
    return out


def conv_transpose_by_zero_insertion(y, kernel, stride=1):
    """Transposed convolution as an ordinary stride-1 convolution: zero insertion, k-1 padding, flipped kernel."""
    kernel = np.asarray(kernel, np.float32)
    k = kernel.shape[0]
    z = zero_insert(y, stride)
    return conv2d(z, kernel[::-1, ::-1], 1, k - 1)


def overlap_counts(i, k, s):
    """How many kernel taps land on each output pixel of a transposed convolution (ones in, ones kernel)."""
    o = transposed_output_size(i, k, s)
    return conv2d_transpose(np.ones((i, i)), np.ones((k, k)), o, s)


# ----------------------------------------------------------------------------- figures
def draw_grids(i, k, s, p, mode="conv", ax=None):
    """Draw input and output grids of a convolution or a transposed convolution.

    conv: the input (blue) with its zero padding (grey), the kernel's first footprint
    (orange) and the output grid.  transposed: the input with zeros inserted between pixels
    (fractional stride) and k-1-p padding, then the output it produces.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if ax is None:
        fig, ax = plt.subplots(figsize=(8.5, 4.6))
    else:
        fig = ax.figure
    ax.clear()
    if mode == "conv":
        o = conv_output_size(i, k, s, p)
        pad_in, inner, ins = p, i, 1
        title = f"convolution: i={i}, k={k}, s={s}, p={p} → o = ⌊(i+2p−k)/s⌋+1 = {o}"
    else:
        o = transposed_output_size(i, k, s, p)
        pad_in, inner, ins = k - 1 - p, i, s
        title = f"transposed: i'={i}, k={k}, s={s}, p={p} → o' = s(i'−1)+k−2p = {o}"
    if o < 1 or pad_in < 0:
        ax.text(0.5, 0.5, f"no valid output for these settings (o = {o})", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_title(title)
        ax.axis("off")
        return fig
    stretched = (inner - 1) * ins + 1
    full = stretched + 2 * pad_in
    for r in range(full):
        for c in range(full):
            rr, cc = r - pad_in, c - pad_in
            real = 0 <= rr < stretched and 0 <= cc < stretched and rr % ins == 0 and cc % ins == 0
            ax.add_patch(Rectangle((c, -r - 1), 1, 1, facecolor="#4c72b0" if real else "#dddddd",
                                   edgecolor="white", linewidth=1))
    ax.add_patch(Rectangle((0, -k), k, k, fill=False, edgecolor="#dd8452", linewidth=3))
    offset = full + 2
    for r in range(o):
        for c in range(o):
            ax.add_patch(Rectangle((offset + c, -r - 1), 1, 1, facecolor="#55a868", edgecolor="white", linewidth=1))
    ax.add_patch(Rectangle((offset, -1), 1, 1, fill=False, edgecolor="#dd8452", linewidth=3))
    ax.annotate("", xy=(offset - 0.3, -full / 2), xytext=(full + 0.3, -full / 2),
                arrowprops={"arrowstyle": "->", "lw": 2})
    ax.text(full / 2, 0.4, f"input ({'padded ' if pad_in else ''}{full}×{full})", ha="center")
    ax.text(offset + o / 2, 0.4, f"output ({o}×{o})", ha="center")
    ax.set_xlim(-0.5, offset + o + 0.5)
    ax.set_ylim(-max(full, o) - 0.5, 1.2)
    ax.set_aspect("equal")
    ax.set_xlabel("blue: input pixels · grey: zeros (padding / inserted) · orange: kernel at its first position")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return fig


def conv_explorer(max_size=12):
    """Sliders for i, k, s, p and a conv / transposed toggle; the grids redraw in place."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    controls = {
        "i": widgets.IntSlider(4, 1, max_size, description="i (input)", continuous_update=False),
        "k": widgets.IntSlider(3, 1, 7, description="k (kernel)", continuous_update=False),
        "s": widgets.IntSlider(1, 1, 4, description="s (stride)", continuous_update=False),
        "p": widgets.IntSlider(0, 0, 3, description="p (padding)", continuous_update=False),
        "mode": widgets.ToggleButtons(options=[("convolution", "conv"), ("transposed", "transposed")]),
    }
    out = widgets.Output()
    state = {}

    def redraw(_=None):
        values = {name: w.value for name, w in controls.items()}
        with out:
            try:
                out.clear_output(wait=True)
                fig = draw_grids(**values)
                state["fig"], state["values"] = fig, values
                display(fig)
                plt.close(fig)
            except Exception as err:  # show the error in the notebook, keep the widget alive
                print(f"Could not draw {values}: {type(err).__name__}: {err}")

    for w in controls.values():
        w.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox([controls["i"], controls["k"]]), widgets.HBox([controls["s"], controls["p"]]),
                        controls["mode"], out])
    box.controls, box.output, box.state, box.redraw = controls, out, state, redraw
    return box


def checkerboard_figure(i=4, k=3, s=2):
    """Uneven overlap of a transposed convolution (k not divisible by s) against k divisible by s."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, kk in zip(axes, (k, 2 * s)):
        counts = overlap_counts(i, kk, s)
        im = ax.imshow(counts, cmap="magma")
        ax.set_title(f"k={kk}, s={s}: taps per output pixel\n(min {counts.min():.0f}, max {counts.max():.0f})")
        ax.set_xlabel("output column")
        ax.set_ylabel("output row")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle("Checkerboard: a constant input through a transposed convolution with a uniform kernel")
    fig.tight_layout()
    return fig
