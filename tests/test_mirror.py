"""A campus mirror in two commands: `gan-course mirror DIR`, served by `python -m http.server`'s
handler on loopback, then `GAN_COURSE_MIRRORS` in an empty cache with every public source unreachable.

The registry is replaced by small files under the real datasets' folder and file names.
"""
from __future__ import annotations

import functools
import hashlib
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gan_course import cli, data, doctor, hub


def sha256(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


@pytest.fixture
def closed_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def course(tmp_path, monkeypatch, closed_url):
    """The real registry's layout (with MNIST's IDX fallback and the BigGAN module), small blobs, dead public URLs."""
    blobs = {}

    def remote(folder, name, checksum=True):
        blob = f"{folder}/{name} ".encode() * 50
        blobs[f"{folder}/{name}"] = blob
        return data.RemoteFile(name, sha256(blob) if checksum else None, (f"{closed_url}/{folder}/{name}",))

    idx = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
           "t10k-labels-idx1-ubyte.gz"]
    datasets = {
        "mnist": data.Dataset("mnist", "MNIST", (remote("mnist", "mnist.npz"),),
                              fallback=tuple(remote("mnist", n) for n in idx)),
        "fashion_mnist": data.Dataset("fashion_mnist", "Fashion-MNIST", tuple(remote("fashion_mnist", n) for n in idx)),
        "celeba": data.Dataset("celeba", "CelebA", (remote("celeba", "img_align_celeba.zip"),)),
    }
    monkeypatch.setattr(data, "DATASETS", datasets)
    monkeypatch.setattr(hub, "MODULES", {hub.BIGGAN_DEEP_HANDLE: remote("hub", "biggan-deep-128-1.tar.gz", False)})
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "tfhub"))
    for name in (data.ENV_OFFLINE, data.ENV_MIRRORS):
        monkeypatch.delenv(name, raising=False)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    return blobs


def fill_cache(root, blobs, skip=()):
    for name, blob in blobs.items():
        if name not in skip:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(blob)


@pytest.fixture
def static_server():
    """What `python -m http.server --directory DIR` runs, on 127.0.0.1 and a free port."""
    servers = []

    def serve(folder):
        handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield serve
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_mirror_then_download_everything_from_it_with_the_public_sources_unreachable(
        course, tmp_path, monkeypatch, static_server, capsys):
    instructor = tmp_path / "instructor-cache"
    fill_cache(instructor, course)
    (instructor / "celeba" / "img_align_celeba.zip.verified").write_text("stale stamp")  # never served
    monkeypatch.setenv(data.ENV_DATA, str(instructor))
    site = tmp_path / "site"
    assert cli.main(["mirror", str(site), "--port", "8123"]) == 0
    out = capsys.readouterr().out
    assert f"Laid out 11 verified file(s) from {instructor} in {site}:" in out
    assert "python -m http.server 8123 --directory " + str(site) in out
    assert "export GAN_COURSE_MIRRORS=http://<this server's address>:8123" in out
    served = sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
    assert served == sorted(course)  # <dataset>/<file>, nothing else
    # Hard links where the disk allows it: no second copy of the data.
    assert (site / "mnist" / "mnist.npz").stat().st_ino == (instructor / "mnist" / "mnist.npz").stat().st_ino

    url = static_server(site)
    student = tmp_path / "student-cache"
    monkeypatch.setenv(data.ENV_DATA, str(student))
    monkeypatch.setenv(data.ENV_MIRRORS, url)
    sources = {f.message.split(":")[0]: f for f in doctor.check_sources() if f.topic == "sources"}
    assert sources["fashion_mnist/train-images-idx3-ubyte.gz"].message.endswith(
        f"from {url}/fashion_mnist/train-images-idx3-ubyte.gz (campus mirror, 0.0 MB)")
    assert all(f.level == doctor.OK for f in sources.values())

    assert cli.main(["download"]) == 0
    assert cli.main(["download", "hub"]) == 0
    for name in ["mnist/mnist.npz", "fashion_mnist/t10k-labels-idx1-ubyte.gz", "celeba/img_align_celeba.zip",
                 "hub/biggan-deep-128-1.tar.gz"]:
        assert (student / name).read_bytes() == course[name], name
    # mnist.npz came from the mirror: its IDX fallback was never needed.
    assert not (student / "mnist" / "train-images-idx3-ubyte.gz").exists()


def test_mirror_lists_what_the_cache_lacks_and_doctor_warns_for_it(course, tmp_path, monkeypatch, static_server,
                                                                  capsys):
    instructor = tmp_path / "instructor-cache"
    fill_cache(instructor, course, skip={"celeba/img_align_celeba.zip", "hub/biggan-deep-128-1.tar.gz"})
    (instructor / "mnist" / "mnist.npz").write_bytes(b"damaged")  # fails its checksum: not laid out
    monkeypatch.setenv(data.ENV_DATA, str(instructor))
    site = tmp_path / "site"
    assert cli.main(["mirror", str(site)]) == 0
    out = capsys.readouterr().out
    assert ("Not in this cache, so not on the mirror: mnist/mnist.npz, celeba/img_align_celeba.zip, "
            "hub/biggan-deep-128-1.tar.gz") in out
    assert not (site / "mnist" / "mnist.npz").exists()

    url = static_server(site)
    monkeypatch.setenv(data.ENV_DATA, str(tmp_path / "student"))
    monkeypatch.setenv(data.ENV_MIRRORS, url)
    findings = {f.message.split(":")[0]: f for f in doctor.check_sources() if f.topic == "sources"}
    celeba = findings["celeba/img_align_celeba.zip"]
    assert celeba.level == doctor.WARN
    assert celeba.message == (f"celeba/img_align_celeba.zip: no campus mirror has it ({url}/celeba/img_align_celeba.zip:"
                              f" HTTP 404); it would come from {data.DATASETS['celeba'].files[0].urls[0]}")
    # MNIST: the IDX files are on the mirror, so the student still gets MNIST from it.
    assert "(fallback for mnist.npz)" in findings["mnist/train-images-idx3-ubyte.gz (fallback for mnist.npz)"].message
    paths = data.download("mnist", progress=False, retries=1, timeout=2)
    assert [p.name for p in paths] == [f.name for f in data.DATASETS["mnist"].fallback]


def test_mirror_of_an_empty_cache_says_so_and_fails(course, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(data.ENV_DATA, str(tmp_path / "empty"))
    assert cli.main(["mirror", str(tmp_path / "site")]) == 1
    assert "Laid out 0 verified file(s)" in capsys.readouterr().out


def test_an_unpacked_hub_module_is_packed_for_the_mirror(course, tmp_path, monkeypatch):
    import tarfile

    monkeypatch.setenv(data.ENV_DATA, str(tmp_path / "cache"))
    module = hub.hub_module_dir(hub.BIGGAN_DEEP_HANDLE)
    (module / "variables").mkdir(parents=True)
    (module / "saved_model.pb").write_bytes(b"graph")
    (module / "variables" / "variables.index").write_bytes(b"index")
    laid, _ = data.lay_out_mirror(tmp_path / "site")
    assert "hub/biggan-deep-128-1.tar.gz" in laid
    with tarfile.open(tmp_path / "site" / "hub" / "biggan-deep-128-1.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["saved_model.pb", "variables", "variables/variables.index"]
