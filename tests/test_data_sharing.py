"""One cache, many kernels: concurrent downloads, a load during a download, stalls, whole reports.

Every server is a loopback one started here (`loopback.Loopback`); the processes are forked
from the test so they share its fake dataset registry, and each writes its outcome to a file.
"""
from __future__ import annotations

import gzip
import hashlib
import multiprocessing
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from loopback import Loopback  # noqa: E402

from gan_course import data  # noqa: E402
from gan_course.data import DataUnavailable, Dataset, RemoteFile  # noqa: E402

FORK = multiprocessing.get_context("fork")


def sha256(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def idx_gz(array: np.ndarray) -> bytes:
    """An array as a gzipped IDX file, the format of MNIST's and Fashion-MNIST's files."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def small_fashion(seed=0, n_train=40, n_test=10):
    rng = np.random.default_rng(seed)
    arrays = {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
              "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, n_test, dtype=np.uint8)}
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz"]
    blobs = dict(zip(names, (idx_gz(arrays[k]) for k in ("x_train", "y_train", "x_test", "y_test"))))
    return arrays, blobs


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv(data.ENV_DATA, str(root))
    for name in (data.ENV_OFFLINE, data.ENV_MIRRORS, "GAN_COURSE_ALLOW_STANDIN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    return root


@pytest.fixture
def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_fashion(monkeypatch, server, blobs, extra_urls=()):
    """Register the real `fashion_mnist` entry's file names with these blobs' checksums, served by `server`."""
    files = tuple(RemoteFile(name, sha256(blob), tuple(extra_urls) + (f"{server.url}/fm/{name}",))
                  for name, blob in blobs.items())
    for name, blob in blobs.items():
        server.files[f"/fm/{name}"] = blob
    monkeypatch.setitem(data.DATASETS, "fashion_mnist",
                        Dataset("fashion_mnist", "fake Fashion-MNIST", files, manual="Ask the instructor."))
    return files


def _child(job, out, barrier):
    """Run in a forked process: wait for the others, do `job`, write 'ok ...' or the error to `out`."""
    try:
        err = open(out + ".stderr", "w")
        os.dup2(err.fileno(), 2)
        sys.stderr = err
        barrier.wait(10)
        result = job()
        Path(out).write_text("ok " + str(result))
    except BaseException as e:  # anything escaping is what the test must see
        Path(out).write_text(f"FAIL {type(e).__name__}: {e}")
    finally:
        sys.stderr.flush()
        os._exit(0)


def run_together(jobs, tmp_path, tag):
    """Start every job in its own process at the same moment; return their outcomes (and stderr)."""
    barrier = FORK.Barrier(len(jobs))
    outs = [str(tmp_path / f"{tag}-{i}.out") for i in range(len(jobs))]
    procs = [FORK.Process(target=_child, args=(job, out, barrier)) for job, out in zip(jobs, outs)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0, f"a process did not finish ({p.exitcode})"
    return [(Path(o).read_text(), Path(o + ".stderr").read_text()) for o in outs]


def test_four_processes_download_one_dataset_ten_times_one_transfer_per_file(cache, monkeypatch, tmp_path):
    arrays, blobs = small_fashion()
    # Slow enough (about 0.1 s per file) that the four processes overlap on every file.
    with Loopback(delay=0.004, chunk=2048) as server:
        serve_fashion(monkeypatch, server, blobs)
        for trial in range(10):
            monkeypatch.setenv(data.ENV_DATA, str(tmp_path / f"cache{trial}"))
            server.log.clear()
            job = lambda: len(data.download("fashion_mnist", progress=False, timeout=5))
            outcomes = run_together([job] * 4, tmp_path, f"t{trial}")
            assert [o for o, _ in outcomes] == ["ok 4"] * 4, outcomes
            for name, blob in blobs.items():
                assert server.hits(f"/fm/{name}") == 1, (trial, name, server.log)
                assert (tmp_path / f"cache{trial}" / "fashion_mnist" / name).read_bytes() == blob
            leftovers = [p for p in (tmp_path / f"cache{trial}").rglob("*")
                         if p.is_file() and ".partial" in p.parts]
            assert leftovers == []


def test_load_while_another_process_downloads_waits_and_shows_its_progress(cache, monkeypatch, tmp_path):
    arrays, blobs = small_fashion()
    with Loopback(delay=0.01, chunk=1024) as server:
        serve_fashion(monkeypatch, server, blobs)

        def downloader():
            return len(data.download("fashion_mnist", progress=False, timeout=5))

        def learner():
            time.sleep(0.15)  # the download is under way
            images = data.load("fashion_mnist", split="test", allow_standin=False)
            assert not images.standin
            np.testing.assert_array_equal(images.y, arrays["y_test"])
            return images.x.shape

        (first, _), (second, stderr) = run_together([downloader, learner], tmp_path, "load")
    assert first == "ok 4"
    assert second == "ok (10, 28, 28, 1)", second
    assert "another process is downloading it" in stderr
    for name in blobs:
        assert server.hits(f"/fm/{name}") == 1


def test_a_stalled_mirror_is_abandoned_within_the_read_timeout_and_the_next_resumes(cache, monkeypatch):
    blob = bytes(range(256)) * 1024
    with Loopback(stall_seconds=5.0) as stalling, Loopback() as healthy:
        stalling.files["/blob.bin"] = blob
        stalling.stall["/blob.bin"] = len(blob) // 2  # half the bytes, then silence
        healthy.files["/blob.bin"] = blob
        file = RemoteFile("blob.bin", sha256(blob), (stalling.url + "/blob.bin", healthy.url + "/blob.bin"))
        monkeypatch.setitem(data.DATASETS, "fake", Dataset("fake", "fake", (file,)))
        started = time.monotonic()
        path = data.fetch("fake", file, progress=False, timeout=(2.0, 0.5))
        took = time.monotonic() - started
    assert path.read_bytes() == blob
    assert took < 2.0, f"{took:.2f} s: the stall was not cut at the 0.5 s read timeout"
    assert healthy.log == [("/blob.bin", f"bytes={len(blob) // 2}-")]  # resumed, not started over


def test_download_tries_every_file_and_names_every_failure(cache, monkeypatch, closed_port):
    good = b"fine bytes" * 100
    with Loopback() as server:
        server.files["/a.bin"] = good
        files = (RemoteFile("a.bin", sha256(b"other"), (server.url + "/a.bin",)),
                 RemoteFile("b.bin", sha256(good), (server.url + "/a.bin",)),
                 RemoteFile("c.bin", sha256(good), (f"http://127.0.0.1:{closed_port}/c.bin",)))
        monkeypatch.setitem(data.DATASETS, "fake", Dataset("fake", "fake", files, manual="Ask the instructor."))
        with pytest.raises(DataUnavailable) as err:
            data.download("fake", progress=False, retries=1, timeout=2)
    message = str(err.value)
    assert message.splitlines()[0] == "2 files of the 'fake' dataset could not be fetched:"
    assert "Could not get a.bin for the 'fake' dataset. Tried:" in message
    assert f"{server.url}/a.bin: checksum mismatch (the file was discarded)" in message
    assert "Could not get c.bin for the 'fake' dataset. Tried:" in message
    assert f"http://127.0.0.1:{closed_port}/c.bin: " in message and "Connection refused" in message
    assert (cache / "fake" / "b.bin").read_bytes() == good  # the file that could be had is there


def test_a_read_only_cache_is_a_data_unavailable_not_an_os_error(cache, monkeypatch):
    if os.geteuid() == 0:
        # Root writes anywhere: make the cache's place a file instead, so no folder can be made.
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text("not a folder")
    else:
        cache.mkdir(parents=True)
        cache.chmod(0o500)
    file = RemoteFile("x.bin", sha256(b"x"), ("http://127.0.0.1:9/x.bin",))
    monkeypatch.setitem(data.DATASETS, "fake", Dataset("fake", "fake", (file,)))
    with pytest.raises(DataUnavailable) as err:
        data.fetch("fake", file, progress=False)
    assert f"the cache {cache}: " in str(err.value)
    assert f"Put the file at {cache / 'fake' / 'x.bin'}" in str(err.value)


def test_load_of_damaged_arrays_falls_back_to_the_rules_not_a_crash(cache, monkeypatch):
    blob = b"PK\x03\x04 not really a zip"
    target = cache / "mnist" / "mnist.npz"
    target.parent.mkdir(parents=True)
    target.write_bytes(blob)
    monkeypatch.setitem(data.DATASETS, "mnist", Dataset("mnist", "fake MNIST", (
        RemoteFile("mnist.npz", sha256(blob), ()),), standin=("mnist_subset", "digits")))
    with pytest.raises(DataUnavailable, match=r"could not be read .*\n.*gan-course download mnist"):
        data.load("mnist", allow_standin=False, quiet=True)
    assert data.load("mnist", allow_standin=True, quiet=True, limit=3).standin


def test_mnist_idx_files_convert_to_the_arrays_of_mnist_npz(tmp_path):
    arrays, blobs = small_fashion(seed=4)
    paths = []
    for name, blob in blobs.items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(blob)
    converted = data._arrays_mnist(paths)
    np.savez(tmp_path / "mnist.npz", **arrays)
    from_npz = data._arrays_mnist([tmp_path / "mnist.npz"])
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert converted[key].dtype == from_npz[key].dtype == np.uint8
        np.testing.assert_array_equal(converted[key], from_npz[key])
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(idx_gz(arrays["y_train"][:-1]))
    with pytest.raises(ValueError, match="different numbers of examples"):
        data._arrays_mnist(paths)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x0d\x01" + bytes(8)))
    with pytest.raises(ValueError, match="not an IDX file of unsigned bytes"):
        data._arrays_mnist(paths)


def test_mnist_falls_back_to_the_idx_files_when_mnist_npz_cannot_be_had(cache, monkeypatch, closed_port):
    arrays, blobs = small_fashion(seed=2)
    with Loopback() as server:
        for name, blob in blobs.items():
            server.files[f"/mnist/{name}"] = blob
        fallback = tuple(RemoteFile(name, sha256(blob), (f"{server.url}/mnist/{name}",)) for name, blob in blobs.items())
        monkeypatch.setitem(data.DATASETS, "mnist", Dataset(
            "mnist", "fake MNIST", (RemoteFile("mnist.npz", sha256(b"npz"), (f"http://127.0.0.1:{closed_port}/m.npz",)),),
            standin=("mnist_subset",), fallback=fallback))
        images = data.load("mnist", split="train", allow_standin=False, quiet=True)
        assert not images.standin
        np.testing.assert_array_equal(images.y, arrays["y_train"])
        assert data.is_cached("mnist")
        hits = len(server.log)
        data.load("mnist", quiet=True)  # from the cache: no request, not even for mnist.npz
        assert len(server.log) == hits


def test_the_registry_states_a_checksum_for_every_source():
    for ds in data.DATASETS.values():
        for f in ds.files + ds.fallback:
            assert f.checksum and len(f.urls) >= 2 or ds.fallback, f.name
            assert all(c.split(":")[0] in ("sha256", "md5") for c in f.checksums)
    mnist = data.DATASETS["mnist"]
    assert [f.urls[0] for f in mnist.fallback] == [data._MNIST_IDX + f.name for f in mnist.fallback]
    fashion = data.DATASETS["fashion_mnist"]
    assert all(any("zalandoresearch" in u for u in f.urls) and f.also for f in fashion.files)
    celeba = data.DATASETS["celeba"].files[0]
    assert f"md5:{data.CELEBA_MD5}" in celeba.checksums and celeba.size == 1_443_490_838
    assert "pan.baidu.com" in data.DATASETS["celeba"].manual


def test_campus_mirrors_come_first_for_every_file(monkeypatch):
    monkeypatch.setenv(data.ENV_MIRRORS, "http://10.0.0.5:8000/ , http://lab.example.edu/gan")
    file = data.DATASETS["fashion_mnist"].files[0]
    urls = data.sources("fashion_mnist", file)
    assert urls[:2] == ["http://10.0.0.5:8000/fashion_mnist/train-images-idx3-ubyte.gz",
                        "http://lab.example.edu/gan/fashion_mnist/train-images-idx3-ubyte.gz"]
    assert urls[2:] == list(file.urls)


def test_the_celeba_message_names_google_drive_and_the_publishers_baidu_pan(cache, monkeypatch):
    monkeypatch.setenv(data.ENV_OFFLINE, "1")
    with pytest.raises(DataUnavailable) as err:
        data.download("celeba")
    message = str(err.value)
    assert "drive.google.com" in message and data.CELEBA_BAIDU in message
    assert "img_align_celeba.zip (1,443,490,838 bytes, md5 00d2c5bc6d35e252742224ab0c1e8fcb)" in message
    assert f"export {data.ENV_MIRRORS}=" in message


def test_processes_fetching_different_files_at_once_share_the_staging_folders(cache, monkeypatch, tmp_path):
    """Two datasets fetched in opposite orders: staging folders made and removed by different processes."""
    _, blobs = small_fashion(seed=1)
    other = {f"o{i}.bin": bytes([i]) * 30_000 for i in range(4)}
    with Loopback(delay=0.002, chunk=2048) as server:
        serve_fashion(monkeypatch, server, blobs)
        for name, blob in other.items():
            server.files[f"/other/{name}"] = blob
        monkeypatch.setitem(data.DATASETS, "other", Dataset("other", "other", tuple(
            RemoteFile(name, sha256(blob), (f"{server.url}/other/{name}",)) for name, blob in other.items())))
        options = dict(progress=False, timeout=5)
        forwards = lambda: len(data.download("fashion_mnist", **options) + data.download("other", **options))
        backwards = lambda: len(data.download("other", **options) + data.download("fashion_mnist", **options))
        for trial in range(5):
            monkeypatch.setenv(data.ENV_DATA, str(tmp_path / f"cache{trial}"))
            server.log.clear()
            outcomes = run_together([forwards, backwards, forwards, backwards], tmp_path, f"mix{trial}")
            assert [o for o, _ in outcomes] == ["ok 8"] * 4, outcomes
            assert sorted(path for path, _ in server.log) == sorted(
                [f"/fm/{n}" for n in blobs] + [f"/other/{n}" for n in other])


def test_mnist_that_cannot_be_had_either_way_says_so_in_one_report(cache, monkeypatch):
    monkeypatch.setenv(data.ENV_OFFLINE, "1")
    with pytest.raises(DataUnavailable) as err:
        data.download("mnist")
    message = str(err.value)
    assert message.splitlines()[0] == (
        "The 'mnist' dataset could not be fetched, neither as mnist.npz nor as train-images-idx3-ubyte.gz, "
        "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz:")
    for f in data.DATASETS["mnist"].files + data.DATASETS["mnist"].fallback:
        assert f"Could not get {f.name} for the 'mnist' dataset." in message
        assert all(url in message for url in f.urls)


def test_a_mirror_that_stalls_after_progress_is_asked_again_when_no_other_can_finish(cache, monkeypatch,
                                                                                     closed_port):
    blob = bytes(range(256)) * 1024
    with Loopback(stall_seconds=2.0) as flaky:
        flaky.files["/blob.bin"] = blob
        flaky.stall["/blob.bin"] = len(blob) // 2  # the first answer stalls half-way; a resumed one does not
        file = RemoteFile("blob.bin", sha256(blob), (flaky.url + "/blob.bin", f"http://127.0.0.1:{closed_port}/b"))
        monkeypatch.setitem(data.DATASETS, "fake", Dataset("fake", "fake", (file,)))
        path = data.fetch("fake", file, progress=False, timeout=(2.0, 0.5))
    assert path.read_bytes() == blob
    assert [r for _, r in flaky.log] == [None, f"bytes={len(blob) // 2}-"]
