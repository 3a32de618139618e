"""The pretrained BigGAN-deep loader, on small modules with the same signature built here.

The real module (about 200 MB) is never downloaded: each test writes a tiny SavedModel
whose "default" signature takes y (n, 1000), z (n, 128) and a scalar truncation like
BigGAN-deep 128's, into a temporary TFHUB_CACHE_DIR at the folder tensorflow_hub
resolves the handle to (the sha1 of the handle's text).
"""
import hashlib
import io
import socket
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from gan_course import biggan, data, hub

sys.path.insert(0, str(Path(__file__).parent))
from loopback import Loopback  # noqa: E402

HANDLE = hub.BIGGAN_DEEP_HANDLE
SIDE = 4  # the tiny module's images are 4x4x3


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub"))
    monkeypatch.setenv(data.ENV_DATA, str(tmp_path / "data"))
    monkeypatch.delenv(data.ENV_MIRRORS, raising=False)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    # The fallback path (tensorflow_hub cannot import under Keras 3 without tf_keras).
    monkeypatch.setattr(hub, "_tensorflow_hub", lambda: None)
    return tmp_path / "hub"


def _images(y, z, truncation):
    """What both tiny modules compute: a colour from the class vector, a brightness from z."""
    colour = tf.matmul(y, tf.constant(np.linspace(-1, 1, 3000).reshape(1000, 3), tf.float32))
    brightness = tf.reduce_mean(z, axis=1, keepdims=True) / truncation
    return tf.tanh(tf.tile((colour + brightness)[:, None, None, :], (1, SIDE, SIDE, 1)))


def write_tf1_hub_module(folder):
    """A TF1 Hub-format module like BigGAN-deep's: a v1 SavedModel under the empty tag set,
    a variable, the "default" signature, and tfhub_module.pb beside it."""
    with tf.Graph().as_default():
        y = tf.compat.v1.placeholder(tf.float32, (None, 1000), name="y")
        z = tf.compat.v1.placeholder(tf.float32, (None, 128), name="z")
        truncation = tf.compat.v1.placeholder(tf.float32, (), name="truncation")
        gain = tf.compat.v1.get_variable("gain", initializer=tf.constant(1.0))
        images = gain * _images(y, z, truncation)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(folder))
            signature = tf.compat.v1.saved_model.predict_signature_def(
                inputs={"y": y, "z": z, "truncation": truncation}, outputs={"default": images})
            builder.add_meta_graph_and_variables(session, tags=[], signature_def_map={"default": signature})
            builder.save()
    (folder / "tfhub_module.pb").write_bytes(b"\x08\x03")  # ModuleDef(format=3), what hub.Module writes


def write_tf2_saved_model(folder, wrong_names=False):
    """A TF2 SavedModel with the same "default" signature (or one whose inputs are named otherwise)."""
    specs = [tf.TensorSpec((None, 1000), tf.float32), tf.TensorSpec((None, 128), tf.float32),
             tf.TensorSpec((), tf.float32)]
    if wrong_names:
        @tf.function(input_signature=specs)
        def default(label, noise, truncation):
            return {"default": _images(label, noise, truncation)}
    else:
        @tf.function(input_signature=specs)
        def default(y, z, truncation):
            return {"default": _images(y, z, truncation)}
    tf.saved_model.save(tf.Module(), str(folder), signatures={"default": default.get_concrete_function()})


def test_the_cache_folder_is_where_tensorflow_hub_looks(cache):
    # tensorflow_hub's compressed_module_resolver: TFHUB_CACHE_DIR / sha1(handle).hexdigest()
    expected = cache / hashlib.sha1(HANDLE.encode("utf8")).hexdigest()
    assert hub.hub_module_dir(HANDLE) == expected
    assert hub.hub_download_url(HANDLE) == HANDLE + "?tf-hub-format=compressed"


@pytest.mark.parametrize("write", [write_tf1_hub_module, write_tf2_saved_model])
def test_a_cached_module_loads_and_generates(cache, write):
    cache.mkdir(parents=True)
    write(hub.hub_module_dir(HANDLE))
    pretrained = biggan.load_pretrained_biggan(HANDLE)
    assert (pretrained.num_classes, pretrained.latent_dim) == (1000, 128)
    images = pretrained.generate([207, 980, 1], truncation=0.4, seed=3)
    assert images.shape == (3, SIDE, SIDE, 3) and np.abs(images).max() <= 1.0
    # The inputs arrive where they belong: z from the truncation and the seed, y one-hot.
    z = pretrained.sample_z(3, 0.4, 3)
    assert np.abs(z).max() <= 0.8 + 1e-6  # truncation x a normal truncated at 2
    expected = _images(tf.one_hot([207, 980, 1], 1000), tf.constant(z), tf.constant(0.4)).numpy()
    np.testing.assert_allclose(images, expected, atol=1e-5)
    np.testing.assert_array_equal(images, pretrained.generate([207, 980, 1], truncation=0.4, seed=3))
    strip = pretrained.interpolate_classes(207, 980, steps=5, truncation=0.5, seed=0)
    assert strip.shape == (5, SIDE, SIDE, 3)
    np.testing.assert_allclose(strip[0], pretrained.generate([207], 0.5, seed=0)[0], atol=1e-5)
    np.testing.assert_allclose(strip[-1], pretrained.generate([980], 0.5, seed=0)[0], atol=1e-5)
    assert np.abs(strip[2] - strip[0]).max() > 1e-3


def test_bad_inputs_get_clear_errors(cache):
    cache.mkdir(parents=True)
    write_tf2_saved_model(hub.hub_module_dir(HANDLE))
    pretrained = biggan.load_pretrained_biggan(HANDLE)
    with pytest.raises(ValueError, match=r"class indices must be in \[0, 1000\)"):
        pretrained.generate([1000])
    with pytest.raises(ValueError, match=r"truncation is in \(0, 1\]"):
        pretrained.generate([3], truncation=1.5)


def test_a_module_with_another_signature_is_refused(cache):
    cache.mkdir(parents=True)
    write_tf2_saved_model(hub.hub_module_dir(HANDLE), wrong_names=True)
    with pytest.raises(ValueError, match=r"takes \['label', 'noise', 'truncation'\], not"):
        biggan.load_pretrained_biggan(HANDLE)


def test_not_cached_says_how_to_get_it(cache):
    with pytest.raises(biggan.HubModuleUnavailable) as info:
        biggan.load_pretrained_biggan(HANDLE)
    message = str(info.value)
    folder = hub.hub_module_dir(HANDLE)
    for part in (HANDLE, hub.hub_download_url(HANDLE), str(folder), "tar -xz", "TFHUB_CACHE_DIR",
                 "not in the TF Hub cache"):
        assert part in message, part


def test_no_download_when_offline(cache, monkeypatch):
    monkeypatch.setenv("GAN_COURSE_OFFLINE", "1")
    with pytest.raises(biggan.HubModuleUnavailable, match="downloads are off"):
        biggan.load_pretrained_biggan(HANDLE, download=True)
    assert not hub.hub_module_dir(HANDLE).exists()


def test_a_failed_download_leaves_nothing_behind(cache, monkeypatch):
    monkeypatch.delenv("GAN_COURSE_OFFLINE", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    unreachable = data.RemoteFile(hub.archive_name(HANDLE), None, (f"http://127.0.0.1:{port}/module.tar.gz",))
    monkeypatch.setitem(hub.MODULES, HANDLE, unreachable)
    with pytest.raises(biggan.HubModuleUnavailable, match="could not be downloaded.*Connection refused"):
        biggan.load_pretrained_biggan(HANDLE, download=True)
    assert not cache.exists() or list(cache.iterdir()) == []  # no half module, no staging folder


def module_archive(tmp_path) -> bytes:
    """A tiny module packed the way tfhub.dev packs one: the SavedModel's files at the archive's root."""
    folder = tmp_path / "packed"
    write_tf2_saved_model(folder)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    return buffer.getvalue()


def test_the_module_comes_from_a_campus_mirror_and_stays_in_the_data_cache(cache, monkeypatch, tmp_path):
    monkeypatch.delenv("GAN_COURSE_OFFLINE", raising=False)
    blob = module_archive(tmp_path)
    with Loopback() as mirror:
        mirror.files[f"/hub/{hub.archive_name(HANDLE)}"] = blob
        monkeypatch.setenv(data.ENV_MIRRORS, mirror.url)
        assert hub.archive_name(HANDLE) == "biggan-deep-128-1.tar.gz"
        pretrained = biggan.load_pretrained_biggan(HANDLE, download=True)
        assert pretrained.generate([3]).shape == (1, SIDE, SIDE, 3)
        assert mirror.log == [("/hub/biggan-deep-128-1.tar.gz", None)]  # tfhub.dev never asked
    assert (tmp_path / "data" / "hub" / "biggan-deep-128-1.tar.gz").read_bytes() == blob
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == [hub.hub_module_dir(HANDLE).name]


def test_an_archive_that_is_no_module_is_removed_and_reported(cache, monkeypatch, tmp_path):
    monkeypatch.delenv("GAN_COURSE_OFFLINE", raising=False)
    with Loopback() as mirror:
        mirror.files[f"/hub/{hub.archive_name(HANDLE)}"] = b"\x1f\x8b not really gzip"
        monkeypatch.setenv(data.ENV_MIRRORS, mirror.url)
        with pytest.raises(biggan.HubModuleUnavailable, match="the download is not a module"):
            biggan.load_pretrained_biggan(HANDLE, download=True)
    assert not (tmp_path / "data" / "hub" / "biggan-deep-128-1.tar.gz").exists()
    assert not hub.hub_module_dir(HANDLE).exists()


def test_a_damaged_module_is_reported_not_crashed_on(cache):
    folder = hub.hub_module_dir(HANDLE)
    folder.mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"not a protocol buffer")
    with pytest.raises(biggan.HubModuleUnavailable, match="not available"):
        biggan.load_pretrained_biggan(HANDLE)


def test_tensorflow_hub_is_used_when_it_imports(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    tensorflow_hub = hub._tensorflow_hub()
    if tensorflow_hub is None:
        pytest.skip("tensorflow_hub does not import here (it needs tf_keras under Keras 3)")
    write_tf2_saved_model(hub.hub_module_dir(HANDLE))
    assert biggan.load_pretrained_biggan(HANDLE).generate([5]).shape == (1, SIDE, SIDE, 3)
