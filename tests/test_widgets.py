"""Latent widgets driven as a student would: by setting widget values and clicking."""
import numpy as np
import pytest

from gan_course import widgets

LATENT = 6


def fake_generator(z):
    """A cheap 'generator': image brightness depends on every coordinate of z."""
    z = np.asarray(z, np.float32)
    base = np.tanh(z @ np.linspace(-1, 1, z.shape[1] * 28 * 28).reshape(z.shape[1], 28 * 28).astype(np.float32))
    return base.reshape(-1, 28, 28, 1)


def _text(output):
    return "".join(o.get("text", "") for o in output.outputs)


def test_slider_move_changes_the_image_in_place():
    explorer = widgets.LatentExplorer(fake_generator, dims=[0, 3], latent_dim=LATENT)
    image = explorer.image
    before = image.value
    assert before[:8] == b"\x89PNG\r\n\x1a\n"
    explorer.sliders[1].value = 2.5
    assert explorer.image is image  # the same widget, new bytes
    assert image.value != before
    assert explorer.current_z()[3] == pytest.approx(2.5)
    assert all(not s.continuous_update for s in explorer.sliders)


def test_image_shows_the_generator_output_for_the_slider_values():
    import io

    from PIL import Image

    explorer = widgets.LatentExplorer(fake_generator, dims=[1], latent_dim=LATENT, zoom=2)
    explorer.sliders[0].value = -1.0
    shown = np.asarray(Image.open(io.BytesIO(explorer.image.value)))
    expected = widgets.to_uint8(fake_generator(explorer.current_z()[None]))[0, ..., 0]
    np.testing.assert_array_equal(shown[::2, ::2], expected)


def test_redraw_button_draws_a_new_sample_with_one_render():
    calls = []

    def counting(z):
        calls.append(len(z))
        return fake_generator(z)

    explorer = widgets.LatentExplorer(counting, dims=[0, 1, 2], latent_dim=LATENT)
    before, z_before = explorer.image.value, explorer.current_z()
    calls.clear()
    explorer.redraw_button.click()
    assert len(calls) == 1  # the sliders moved without a redraw each
    assert explorer.image.value != before
    assert not np.allclose(explorer.current_z(), z_before)
    np.testing.assert_allclose([s.value for s in explorer.sliders],
                               np.clip(explorer.z[:3], -3, 3), atol=0.05)


def test_an_exception_in_the_generator_shows_as_a_message():
    state = {"fail": False}

    def flaky(z):
        if state["fail"]:
            raise RuntimeError("generator exploded")
        return fake_generator(z)

    explorer = widgets.LatentExplorer(flaky, dims=[0], latent_dim=LATENT)
    good = explorer.image.value
    state["fail"] = True
    explorer.sliders[0].value = 1.0  # must not raise out of the callback
    assert "RuntimeError: generator exploded" in _text(explorer.output)
    assert explorer.error and explorer.image.value == good  # the last good picture stays
    state["fail"] = False
    explorer.sliders[0].value = -1.0
    assert explorer.error is None and _text(explorer.output) == ""


def test_keras_generator_and_rejected_dims():
    import keras

    z = keras.Input((LATENT,))
    image = keras.layers.Reshape((7, 7, 3))(keras.layers.Dense(147, activation="tanh")(z))
    model = keras.Model(z, image)
    explorer = widgets.LatentExplorer(model, dims=[5])
    assert explorer.latent_dim == LATENT
    before = explorer.image.value
    explorer.sliders[0].value = 3.0
    assert explorer.image.value != before
    with pytest.raises(ValueError, match="outside"):
        widgets.LatentExplorer(model, dims=[LATENT])


def test_lerp_and_slerp_endpoints_and_norms():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(64), rng.standard_normal(64)
    for path in (widgets.lerp(a, b, 7), widgets.great_circle(a, b, 7)):
        assert path.shape == (7, 64) and path.dtype == np.float32
        np.testing.assert_allclose(path[0], a, atol=1e-5)
        np.testing.assert_allclose(path[-1], b, atol=1e-5)
    # The straight line's midpoint sags towards the origin; the great circle keeps the norm.
    mid_lerp = np.linalg.norm(widgets.lerp(a, b, 3)[1])
    mid_slerp = np.linalg.norm(widgets.great_circle(a, b, 3)[1])
    typical = (np.linalg.norm(a) + np.linalg.norm(b)) / 2
    assert mid_lerp < 0.85 * typical
    assert mid_slerp == pytest.approx(typical, rel=0.1)
    # Parallel vectors: the circle is undefined, the line is used.
    np.testing.assert_allclose(widgets.great_circle(a, 2 * a, 3)[1], 1.5 * a, rtol=1e-5)


def test_interpolation_explorer_follows_its_controls():
    explorer = widgets.InterpolationExplorer(fake_generator, steps=4, latent_dim=LATENT, method="linear")
    first = explorer.image.value
    np.testing.assert_allclose(explorer.path(), widgets.lerp(*explorer.endpoints, 4))
    explorer.method.value = "spherical"
    np.testing.assert_allclose(explorer.path(), widgets.great_circle(*explorer.endpoints, 4))
    assert explorer.image.value != first
    explorer.steps.value = 6
    assert explorer.path().shape == (6, LATENT)
    endpoints = explorer.endpoints.copy()
    explorer.redraw_button.click()
    assert not np.allclose(explorer.endpoints, endpoints)
    assert not explorer.steps.continuous_update


# ----------------------------------------------------------------------------- lab 05: class picker and code sliders
def code_generator(categories, continuous, noise):
    """Images whose brightness encodes class, codes and noise, recording each call."""
    code_generator.calls.append((np.array(categories), np.array(continuous), np.array(noise)))
    level = 0.1 * np.asarray(categories)[:, None] + np.asarray(continuous).sum(1, keepdims=True) \
        + 0.05 * np.asarray(noise)[:, :1]
    return np.tanh(np.broadcast_to(level[:, :, None, None], (len(level), 1, 28, 28))).reshape(-1, 28, 28, 1)


def test_code_explorer_redraws_for_the_picker_the_sliders_and_the_noise():
    code_generator.calls = []
    explorer = widgets.CodeExplorer(code_generator, num_classes=10, code_names=("angle", "width"), noise_dim=5,
                                    samples=4)
    assert len(code_generator.calls) == 1 and explorer.image.value[:4] == b"\x89PNG"
    shown = explorer.image.value
    explorer.picker.value = 7
    categories, codes, noise = code_generator.calls[-1]
    np.testing.assert_array_equal(categories, [7, 7, 7, 7])
    assert explorer.image.value != shown
    shown = explorer.image.value
    explorer.sliders[1].value = -1.5
    _, codes, same_noise = code_generator.calls[-1]
    np.testing.assert_allclose(codes, [[0.0, -1.5]] * 4)
    np.testing.assert_array_equal(same_noise, noise)  # the noise stays while the codes move
    assert explorer.image.value != shown and not explorer.sliders[1].continuous_update
    shown, calls = explorer.image.value, len(code_generator.calls)
    explorer.redraw_button.click()
    assert len(code_generator.calls) == calls + 1
    categories, codes, new_noise = code_generator.calls[-1]
    assert not np.allclose(new_noise, noise) and new_noise.shape == (4, 5)
    np.testing.assert_array_equal(categories, 7)  # class and codes survive a new noise draw
    np.testing.assert_allclose(codes[:, 1], -1.5)
    assert explorer.image.value != shown


def test_code_explorer_without_codes_and_with_bad_names():
    code_generator.calls = []
    explorer = widgets.CodeExplorer(code_generator, code_names=(), noise_dim=3, samples=2,
                                    class_names=[f"digit {i}" for i in range(10)])
    assert explorer.sliders == [] and code_generator.calls[-1][1].shape == (2, 0)
    assert explorer.picker.options[3] == ("digit 3", 3)
    explorer.picker.value = 4
    np.testing.assert_array_equal(code_generator.calls[-1][0], [4, 4])
    with pytest.raises(ValueError, match="class_names has 3 names for 10 classes"):
        widgets.CodeExplorer(code_generator, class_names=["a", "b", "c"])


# ----------------------------------------------------------------------------- lab 06: truncation
def _truncation_sampler(calls):
    def sample(threshold, label, seed):
        calls.append((threshold, label, seed))
        z = np.random.default_rng(seed).standard_normal((3, 28, 28, 1)).clip(-threshold, threshold)
        return np.tanh(z + label / 5.0).astype(np.float32)

    return sample


def test_truncation_explorer_redraws_for_threshold_class_and_new_samples():
    calls = []
    explorer = widgets.TruncationExplorer(_truncation_sampler(calls), class_names=["zero", "one", "two"],
                                          threshold=1.0, thresholds=(0.1, 2.0))
    assert calls == [(1.0, 0, 0)]
    assert [label for label, _ in explorer.label.options] == ["0: zero", "1: one", "2: two"]
    first = explorer.image.value
    explorer.threshold.value = 0.3
    assert calls[-1] == (pytest.approx(0.3), 0, 0) and explorer.image.value != first  # same seed, new threshold
    explorer.label.value = 2
    assert calls[-1] == (pytest.approx(0.3), 2, 0)
    explorer.redraw_button.click()
    assert calls[-1] == (pytest.approx(0.3), 2, 1)  # a new seed
    assert not explorer.threshold.continuous_update


def test_truncation_explorer_takes_a_dict_of_classes_and_reports_errors():
    calls = []
    explorer = widgets.TruncationExplorer(_truncation_sampler(calls), class_names={207: "retriever", 980: "volcano"},
                                          threshold=0.5, thresholds=(0.02, 1.0))
    assert calls[-1] == (0.5, 207, 0)

    def broken(threshold, label, seed):
        raise RuntimeError("the module is gone")

    explorer.sample = broken
    explorer.label.value = 980
    assert "RuntimeError: the module is gone" in _text(explorer.output)
    explorer.sample = _truncation_sampler(calls)
    explorer.threshold.value = 0.6
    assert explorer.error is None and _text(explorer.output) == ""


def test_truncation_explorer_rejects_bad_settings():
    with pytest.raises(ValueError, match="class_names is empty"):
        widgets.TruncationExplorer(_truncation_sampler([]), class_names=[])
    with pytest.raises(ValueError, match="must lie in the slider's range"):
        widgets.TruncationExplorer(_truncation_sampler([]), class_names=["a"], threshold=3.0, thresholds=(0.1, 2.0))
