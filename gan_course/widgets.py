"""Latent-space widgets: sliders over chosen dimensions of z, and interpolation between samples.

Each explorer is a small class whose callbacks are ordinary methods, so pytest drives
them by setting widget values, exactly as a student's mouse does.  The picture is one
`ipywidgets.Image` whose PNG bytes are replaced in place on every event (no figure is
re-created, no output is cleared), sliders use `continuous_update=False` so a drag
costs one redraw, and an exception inside a callback is caught and printed into the
explorer's `Output` widget instead of vanishing into the kernel log.
"""
from __future__ import annotations

import io
import traceback

import numpy as np

from gan_course.i18n import N_, _


# ----------------------------------------------------------------------------- paths
def lerp(z_start, z_end, steps: int) -> np.ndarray:
    """`steps` points on the straight line from z_start to z_end (both included)."""
    z_start, z_end = np.asarray(z_start, np.float32), np.asarray(z_end, np.float32)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return ((1 - t) * z_start + t * z_end).astype(np.float32)


def great_circle(z_start, z_end, steps: int) -> np.ndarray:
    """`steps` points along the great circle from z_start to z_end, norms interpolated linearly.

    Under z ~ N(0, I) almost all the mass lies near a sphere of radius sqrt(d); the
    straight line between two samples cuts through the low-density middle (its midpoint
    has about 0.7x their norm), the great circle stays at the typical norm.  The circle is
    walked as a rotation in the plane of the two vectors (an orthonormal basis from a QR
    decomposition), so the explorer works before lab 04's `spherical_walk` exercise is
    done.  Falls back to the straight line when the vectors are (anti)parallel.
    """
    pair = np.stack([z_start, z_end], axis=1).astype(np.float64)
    r_start, r_end = np.linalg.norm(pair, axis=0)
    basis, upper = np.linalg.qr(pair)
    if r_start == 0 or r_end == 0 or abs(upper[1, 1]) < 1e-6 * r_end:
        return lerp(pair[:, 0], pair[:, 1], steps)
    angle = np.arctan2(abs(upper[1, 1]), upper[0, 1] * np.sign(upper[0, 0]))
    direction = basis * np.sign(np.diag(upper))  # columns: z_start's direction, then the orthogonal one
    fractions = np.linspace(0.0, 1.0, steps)
    radii = (1 - fractions) * r_start + fractions * r_end
    points = np.cos(fractions * angle)[:, None] * direction[:, 0] + np.sin(fractions * angle)[:, None] * direction[:, 1]
    return (radii[:, None] * points).astype(np.float32)


PATHS = {"linear": lerp, "spherical": great_circle}


# ----------------------------------------------------------------------------- images
def to_uint8(images, value_range=(-1.0, 1.0)) -> np.ndarray:
    """Generator output (N, H, W, C) in `value_range` to uint8 (N, H, W, C)."""
    images = np.asarray(images, np.float32)
    lo, hi = value_range
    return (np.clip((images - lo) / (hi - lo), 0.0, 1.0) * 255).round().astype(np.uint8)


def png_bytes(images, value_range=(-1.0, 1.0), zoom: int = 4, pad: int = 2) -> bytes:
    """A row of images as PNG bytes, each pixel drawn as a zoom x zoom block (crisp at 28x28)."""
    from PIL import Image

    pixels = to_uint8(images, value_range)
    n, h, w, c = pixels.shape
    strip = np.full((h, n * w + (n - 1) * pad, c), 255, np.uint8)
    for i in range(n):
        strip[:, i * (w + pad): i * (w + pad) + w] = pixels[i]
    strip = strip.repeat(zoom, 0).repeat(zoom, 1)
    image = Image.fromarray(strip[..., 0] if c == 1 else strip)
    buffer = io.BytesIO()
    # Level 1: a 0.1 MB strip compresses in about a millisecond; level 6 costs 5x more for a few %.
    image.save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


def _as_generate(generator):
    """A function z (N, d) float32 -> images: a Keras model in inference mode, or any callable."""
    if hasattr(generator, "input_shape") and hasattr(generator, "predict_on_batch"):
        return lambda z: np.asarray(generator(z, training=False))
    return lambda z: np.asarray(generator(z))


def _latent_dim(generator, latent_dim):
    if latent_dim is not None:
        return int(latent_dim)
    shape = getattr(generator, "input_shape", None)
    if shape is None:
        raise ValueError(_("pass latent_dim= for a generator that is not a Keras model"))
    return int(shape[-1])


class _Explorer:
    """What both explorers share: the image, the message area and safe callbacks."""

    def __init__(self, generator, latent_dim, value_range, zoom, seed):
        import ipywidgets as w

        self.generate = _as_generate(generator)
        self.latent_dim = _latent_dim(generator, latent_dim)
        self.value_range = value_range
        self.zoom = zoom
        self.rng = np.random.default_rng(seed)
        self.image = w.Image(format="png")
        self.output = w.Output()
        self.error: str | None = None
        self._holding = False

    def _safe(self, action):
        """Run a redraw; an exception becomes a message in `output` (and `error`), not silence."""
        try:
            action()
        except Exception as err:  # anything the generator or the student's code raises
            self.error = f"{type(err).__name__}: {err}"
            where = traceback.extract_tb(err.__traceback__)[-1]
            self.output.append_stdout(_("⚠ the redraw failed: {error}\n  (in {function}, {file}:{line})\n").format(
                error=self.error, function=where.name, file=where.filename.rsplit("/", 1)[-1], line=where.lineno))
            return False
        if self.error is not None:
            self.error = None
            self.output.outputs = ()  # the last redraw worked: the old message no longer applies
        return True

    def _show(self, images):
        self.image.value = png_bytes(images, self.value_range, self.zoom)


class LatentExplorer(_Explorer):
    """Sliders over chosen dimensions of z around a base sample, and a re-draw button.

        explorer = LatentExplorer(generator, dims=[0, 1, 2, 3])
        explorer.widget          # show it (last expression of a cell, or display())

    `labels` names sliders ({62: "angle"}); `make_input(z)` maps the latent vector to the
    generator's input when that is not z itself (a class one-hot appended, for example).
    """

    def __init__(self, generator, dims=(0, 1, 2, 3), latent_dim: int | None = None, seed: int = 0,
                 value_range=(-1.0, 1.0), limit: float = 3.0, zoom: int = 6, labels: dict | None = None,
                 make_input=None, z=None):
        import ipywidgets as w

        super().__init__(generator, latent_dim, value_range, zoom, seed)
        self.dims = [int(d) for d in dims]
        bad = [d for d in self.dims if not 0 <= d < self.latent_dim]
        if bad:
            raise ValueError(_("dims {dims} are outside z's {n} dimensions").format(dims=bad, n=self.latent_dim))
        self.make_input = make_input or (lambda z: z)
        self.z = (self.rng.standard_normal(self.latent_dim) if z is None else np.asarray(z)).astype(np.float32)
        labels = labels or {}
        self.sliders = [
            w.FloatSlider(value=float(np.clip(self.z[d], -limit, limit)), min=-limit, max=limit, step=0.05,
                          description=labels.get(d, f"z[{d}]"), continuous_update=False, readout_format=".2f")
            for d in self.dims
        ]
        for slider in self.sliders:
            slider.observe(self.on_slider, names="value")
        self.redraw_button = w.Button(description=_("New sample"), icon="refresh",
                                      tooltip=_("draw a new z; the sliders move to its values"))
        self.redraw_button.on_click(self.on_redraw)
        self.widget = w.HBox([w.VBox(self.sliders + [self.redraw_button]), w.VBox([self.image, self.output])])
        self._safe(self.render)

    def current_z(self) -> np.ndarray:
        z = self.z.copy()
        for d, slider in zip(self.dims, self.sliders):
            z[d] = slider.value
        return z

    def render(self):
        z = self.make_input(self.current_z()[None, :]).astype(np.float32)
        self._show(self.generate(z))

    def on_slider(self, change=None):
        if not self._holding:
            self._safe(self.render)

    def on_redraw(self, button=None):
        """A new base z; the sliders take its values, then one redraw (not one per slider)."""
        self.z = self.rng.standard_normal(self.latent_dim).astype(np.float32)
        self._holding = True
        try:
            for d, slider in zip(self.dims, self.sliders):
                slider.value = float(np.clip(self.z[d], slider.min, slider.max))
        finally:
            self._holding = False
        self._safe(self.render)


class InterpolationExplorer(_Explorer):
    """A strip of images from one sample to another, along a straight line or a great circle.

    A slider picks how many steps, a toggle picks the path, "New endpoints" draws two new
    samples.  `path()` returns the latent points currently shown.
    """

    def __init__(self, generator, steps: int = 8, latent_dim: int | None = None, seed: int = 0,
                 value_range=(-1.0, 1.0), zoom: int = 3, method: str = "spherical", make_input=None,
                 max_steps: int = 16):
        import ipywidgets as w

        super().__init__(generator, latent_dim, value_range, zoom, seed)
        self.make_input = make_input or (lambda z: z)
        self.endpoints = self.rng.standard_normal((2, self.latent_dim)).astype(np.float32)
        self.method = w.ToggleButtons(options=list(PATHS), value=method, description=_("path"))
        self.steps = w.IntSlider(value=steps, min=2, max=max_steps, description=_("steps"), continuous_update=False)
        self.redraw_button = w.Button(description=_("New endpoints"), icon="refresh")
        self.method.observe(self.on_change, names="value")
        self.steps.observe(self.on_change, names="value")
        self.redraw_button.on_click(self.on_redraw)
        self.widget = w.VBox([w.HBox([self.method, self.steps, self.redraw_button]), self.image, self.output])
        self._safe(self.render)

    def path(self) -> np.ndarray:
        return PATHS[self.method.value](self.endpoints[0], self.endpoints[1], self.steps.value)

    def render(self):
        self._show(self.generate(self.make_input(self.path()).astype(np.float32)))

    def on_change(self, change=None):
        self._safe(self.render)

    def on_redraw(self, button=None):
        self.endpoints = self.rng.standard_normal((2, self.latent_dim)).astype(np.float32)
        self._safe(self.render)


class TruncationExplorer(_Explorer):
    """A row of samples of one class at a chosen truncation threshold (lab 06).

        explorer = TruncationExplorer(sample, class_names=data.CLASS_NAMES["mnist"])
        explorer.widget

    `sample(threshold, label, seed)` returns images of class `label` with z truncated
    at `threshold`.  The seed stays fixed while the slider moves, so the same samples
    become more typical (low threshold) or more varied (high); "New samples" changes it.
    `class_names` is a list (class i is named class_names[i]) or a dict {index: name}.
    """

    def __init__(self, sample, class_names, threshold: float = 1.0, thresholds=(0.05, 2.0), step: float = 0.05,
                 seed: int = 0, value_range=(-1.0, 1.0), zoom: int = 3):
        import ipywidgets as w

        # No latent vector of its own: `sample` draws z from the threshold and the seed.
        super().__init__(sample, 0, value_range, zoom, seed)
        self.sample = sample
        names = dict(enumerate(class_names)) if isinstance(class_names, (list, tuple)) else dict(class_names)
        if not names:
            raise ValueError(_("class_names is empty: give at least one class to pick"))
        low, high = thresholds
        if not 0 < low <= threshold <= high:
            raise ValueError(_("threshold {threshold} must lie in the slider's range [{low}, {high}], with {low} > 0").format(
                threshold=threshold, low=low, high=high))
        self.seed = seed
        self.threshold = w.FloatSlider(value=threshold, min=low, max=high, step=step, description=_("truncation"),
                                       continuous_update=False, readout_format=".2f")
        self.label = w.Dropdown(options=[(f"{i}: {name}", i) for i, name in names.items()], description=_("class"))
        self.redraw_button = w.Button(description=_("New samples"), icon="refresh")
        self.threshold.observe(self.on_change, names="value")
        self.label.observe(self.on_change, names="value")
        self.redraw_button.on_click(self.on_redraw)
        self.widget = w.VBox([w.HBox([self.threshold, self.label, self.redraw_button]), self.image, self.output])
        self._safe(self.render)

    def render(self):
        self._show(self.sample(float(self.threshold.value), int(self.label.value), int(self.seed)))

    def on_change(self, change=None):
        self._safe(self.render)

    def on_redraw(self, button=None):
        self.seed += 1
        self._safe(self.render)


class CodeExplorer(_Explorer):
    """A class picker, sliders for continuous codes and a noise re-draw, for InfoGAN and AC-GAN.

        explorer = CodeExplorer(gan.generate_codes, code_names=["code 1 (angle?)", "code 2 (width?)"])
        explorer.widget

    `generate_codes(categories (n,), continuous (n, c), noise (n, z)) -> images` draws one
    strip of `samples` images: the picked class and the slider values for all of them, a
    different noise vector each, so what the class and codes control shows across styles.
    `code_names=()` (AC-GAN: no codes) leaves only the picker and the noise button.
    `class_names` labels the picker (InfoGAN's codes are not digits until matched).
    """

    def __init__(self, generate_codes, num_classes: int = 10, code_names=(N_("code 1"), N_("code 2")), noise_dim: int = 62,
                 samples: int = 8, class_names=None, limit: float = 2.0, seed: int = 0, value_range=(-1.0, 1.0),
                 zoom: int = 3):
        import ipywidgets as w

        super().__init__(generate_codes, noise_dim, value_range, zoom, seed)
        self.generate_codes = generate_codes
        self.samples = int(samples)
        names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        if len(names) != num_classes:
            raise ValueError(_("class_names has {n} names for {classes} classes").format(n=len(names), classes=num_classes))
        self.picker = w.ToggleButtons(options=[(name, i) for i, name in enumerate(names)], value=0,
                                      description=_("class"), style={"button_width": "36px"})
        self.sliders = [w.FloatSlider(value=0.0, min=-limit, max=limit, step=0.05, description=_(name),
                                      continuous_update=False, readout_format=".2f") for name in code_names]
        self.noise = self.rng.standard_normal((self.samples, self.latent_dim)).astype(np.float32)
        self.redraw_button = w.Button(description=_("New noise"), icon="refresh",
                                      tooltip=_("draw new noise vectors; class and codes stay"))
        self.picker.observe(self.on_change, names="value")
        for slider in self.sliders:
            slider.observe(self.on_change, names="value")
        self.redraw_button.on_click(self.on_redraw)
        self.widget = w.VBox([self.picker, w.HBox(self.sliders + [self.redraw_button]), self.image, self.output])
        self._safe(self.render)

    def inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(categories, continuous, noise) of the strip shown now."""
        categories = np.full(self.samples, self.picker.value, np.int32)
        codes = np.tile(np.array([s.value for s in self.sliders], np.float32), (self.samples, 1))
        return categories, codes.reshape(self.samples, len(self.sliders)), self.noise

    def render(self):
        self._show(self.generate_codes(*self.inputs()))

    def on_change(self, change=None):
        self._safe(self.render)

    def on_redraw(self, button=None):
        self.noise = self.rng.standard_normal((self.samples, self.latent_dim)).astype(np.float32)
        self._safe(self.render)
