"""Pretrained TF Hub modules (lab 06's BigGAN-deep), cached where tensorflow_hub looks for them.

`load_hub_module(handle)` loads a module from the TF Hub cache (`TFHUB_CACHE_DIR`); when
it is missing and a download is allowed, the compressed module is fetched through the
course's data layer (`data.fetch`: the campus mirrors of `GAN_COURSE_MIRRORS` first, then
tfhub.dev; one transfer per cache however many kernels ask, resumed when cut) into the
data cache's `hub/` folder, and unpacked into the TF Hub cache under a lock.  The archive
stays in the data cache, so `gan-course mirror` can serve it to a class.

tfhub.dev now forwards to Kaggle Models and ends on Google storage, which many networks
cannot reach: a campus mirror, or the archive unpacked by hand, is the way around it.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from gan_course import data
from gan_course.i18n import _

BIGGAN_DEEP_HANDLE = "https://tfhub.dev/deepmind/biggan-deep-128/1"
HUB_CACHE_ENV = "TFHUB_CACHE_DIR"
HUB_FOLDER = "hub"  # the data cache's folder for module archives, and a mirror's: <base>/hub/<file>


class HubModuleUnavailable(RuntimeError):
    """The TF Hub module is neither cached nor downloadable here; the message says how to get it."""


def hub_cache_dir() -> Path:
    """Where TF Hub modules are cached: TFHUB_CACHE_DIR, else tensorflow_hub's default
    (the system's temporary folder / tfhub_modules)."""
    return Path(os.environ.get(HUB_CACHE_ENV) or Path(tempfile.gettempdir()) / "tfhub_modules")


def hub_module_dir(handle: str) -> Path:
    """The folder tensorflow_hub resolves `handle` to: the cache dir / sha1 of the handle's text."""
    return hub_cache_dir() / hashlib.sha1(handle.encode("utf8")).hexdigest()


def hub_download_url(handle: str) -> str:
    """The compressed (.tar.gz) download of a tfhub.dev handle (tfhub.dev forwards it to Kaggle Models)."""
    return f"{handle}?tf-hub-format=compressed"


def archive_name(handle: str) -> str:
    """The archive's name in the data cache and on a mirror: biggan-deep-128-1.tar.gz for BigGAN-deep."""
    parts = [p for p in handle.split("://", 1)[-1].split("/")[1:] if p]
    return "-".join(parts[1:] if len(parts) > 2 else parts) + ".tar.gz"


def remote_file(handle: str) -> data.RemoteFile:
    """The module's archive as the data layer fetches it.

    TF Hub publishes no checksum of its archives, so none is stated: an archive is
    accepted when it unpacks into a SavedModel (and one that does not is removed).
    """
    return data.RemoteFile(archive_name(handle), None, (hub_download_url(handle),))


# The modules the labs use; `gan-course mirror` and the doctor list them.
MODULES = {BIGGAN_DEEP_HANDLE: remote_file(BIGGAN_DEEP_HANDLE)}


def _hub_message(handle: str, folder: Path, reason: str) -> str:
    url = hub_download_url(handle)
    archive = data.dataset_dir(HUB_FOLDER) / archive_name(handle)
    lines = [_("The pretrained module {handle} is not available: {reason}.").format(handle=handle, reason=reason),
             _("To use it, download {url}").format(url=url),
             _("(about 200 MB, a .tar.gz of a TF1 Hub module; the same files are on Kaggle Models as "
               "deepmind/biggan, variation deep-128) and unpack it into\n  {folder}").format(folder=folder),
             _("for example:  mkdir -p {folder} && curl -L '{url}' | tar -xz -C {folder}").format(folder=folder, url=url),
             _("That folder is {variable}/sha1(handle), where tensorflow_hub looks for the handle; "
               "set {variable} to keep modules elsewhere.").format(variable=HUB_CACHE_ENV),
             _("Or put the archive at {path} and run the cell again.").format(path=archive)]
    if not data.mirrors():
        lines.append(_(data.MIRROR_HINT))
    return "\n".join(lines)


def _is_saved_model(folder: Path) -> bool:
    return (folder / "saved_model.pb").is_file() or (folder / "saved_model.pbtxt").is_file()


def _tensorflow_hub():
    """The tensorflow_hub package if it imports, else None.

    tensorflow_hub 0.16 imports tf_keras (Keras 2) when it is imported and fails under
    Keras 3 without it, and tf_keras would install a second TensorFlow.  For a SavedModel
    `hub.load` is `tf.saved_model.load` on the cached folder, which is what the fallback does.
    """
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its failed import prints a long notice
            import tensorflow_hub as hub
    except ImportError:
        return None
    return hub


def _unpack(archive: Path, folder: Path) -> None:
    """Unpack a module archive into `folder`, whole or not at all (tarfile's "data" filter)."""
    import shutil
    import tarfile

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.{os.getpid()}.", suffix=".tmp", dir=folder.parent))
    try:
        unpacked = staging / "module"
        with tarfile.open(archive) as tar:
            tar.extractall(unpacked, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        if not _is_saved_model(unpacked):
            raise ValueError(_("the archive holds no saved_model.pb"))
        os.replace(unpacked, folder)  # a rename: another kernel never sees half a module
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pack_module(handle: str, archive: Path) -> bool:
    """Pack a module unpacked in the TF Hub cache into `archive` (for a mirror); False if it is not cached."""
    import tarfile

    folder = hub_module_dir(handle)
    if not _is_saved_model(folder):
        return False
    archive.parent.mkdir(parents=True, exist_ok=True)
    staged = archive.with_name(f".{archive.name}.{os.getpid()}.tmp")
    try:
        with tarfile.open(staged, "w:gz") as tar:  # the files at the archive's root, as tfhub.dev packs them
            for path in sorted(folder.rglob("*")):
                tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
        os.replace(staged, archive)
    finally:
        staged.unlink(missing_ok=True)
    return True


def _download_module(handle: str, folder: Path, progress: bool = True) -> None:
    """Fetch the compressed module (mirrors first) and unpack it into `folder`."""
    import tarfile

    import filelock

    if data.downloads_off():
        raise HubModuleUnavailable(_hub_message(handle, folder, _("downloads are off (GAN_COURSE_OFFLINE)")))
    file = MODULES.get(handle) or remote_file(handle)
    try:
        archive = data.fetch(HUB_FOLDER, file, progress=progress)
    except data.DataUnavailable as err:
        tried = [line.strip() for line in str(err).splitlines()[1:] if line.startswith("  ") and ": " in line]
        raise HubModuleUnavailable(_hub_message(handle, folder, _("it could not be downloaded ({tried})").format(
            tried="; ".join(tried)))) from None
    folder.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(folder.parent / f".{folder.name}.lock", mode=0o666):
        if _is_saved_model(folder):  # another kernel unpacked it meanwhile
            return
        try:
            _unpack(archive, folder)
        except (tarfile.TarError, ValueError, EOFError, OSError) as err:
            archive.unlink(missing_ok=True)  # no checksum to trust it by: a broken archive is fetched again
            raise HubModuleUnavailable(_hub_message(handle, folder, _("the download is not a module ({error})").format(
                error=err))) from None


def load_hub_module(handle: str, download: bool = False, progress: bool = True):
    """A TF Hub module by its handle: `tensorflow_hub.load(handle)` where tensorflow_hub imports,
    else `tf.saved_model.load` of the folder tensorflow_hub would use (`hub_module_dir`).

    Not cached and `download=False` (or the download fails): `HubModuleUnavailable`, whose
    message gives the handle, the download URL and the folder to unpack it into.
    """
    import tensorflow as tf

    folder = hub_module_dir(handle)
    cached = _is_saved_model(folder)
    if not cached and not download:
        raise HubModuleUnavailable(_hub_message(handle, folder, _("it is not in the TF Hub cache ({folder})").format(
            folder=folder.parent)))
    try:
        if not cached:
            _download_module(handle, folder, progress)
        hub = _tensorflow_hub()
        if hub is not None:
            return hub.load(handle)  # finds the module in the cache this folder belongs to
        # A TF1 Hub module (tfhub_module.pb beside the SavedModel) keeps its graph under
        # the empty tag set, as hub.load knows.
        return tf.saved_model.load(str(folder), tags=[] if (folder / "tfhub_module.pb").exists() else None)
    except (OSError, ValueError, tf.errors.OpError) as err:
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        raise HubModuleUnavailable(_hub_message(handle, folder, reason)) from err
