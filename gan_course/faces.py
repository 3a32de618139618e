"""Lab 04, faces: CelebA's aligned images cropped to the face, shrunk, scaled, batched.

The face hand-out's recipe: take CelebA's aligned 178x218 images, keep the central
108x108 square (the alignment puts the face there), shrink it to 28x28, scale the
pixels to a small symmetric range, and feed batches to a four-layer DCGAN.

- `celeba_folder()` fetches `img_align_celeba.zip` into the data cache and extracts it
  safely (no member may land outside the target folder: "zip slip").
- `load_face_crops()` decodes, crops and reduces the images through tf.data, and caches
  the result; where CelebA cannot be had and the profile allows it, it returns the
  labelled stand-in: 100 real face photographs from Labeled Faces in the Wild that
  scikit-image ships inside its wheel (`skimage.data.lfw_subset`), augmented.
- The lab's exercises: `crop_face`, `face_dataset` (the tf.data pipeline) and
  `spherical_walk` (a latent walk along a great circle).
"""
from __future__ import annotations

import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from gan_course.checks import exercise
from gan_course.i18n import N_, _

ALIGNED_SHAPE = (218, 178)  # CelebA's aligned images: height, width
FACE_CROP = 108  # the hand-out's square around the face
STORE_SIZE = 64  # crops are kept at this size in memory and in the cache
HANDOUT_RANGE = (-0.5, 0.5)


# ----------------------------------------------------------------------------- exercises
def _crop_cases(rng):
    cases = []
    for batch, height, width, channels, size in [(1, 218, 178, 3, 108), (3, 9, 7, 3, 5), (2, 10, 10, 1, 4),
                                                 (5, 12, 17, 3, 11), (1, 6, 6, 3, 6), (4, 31, 20, 3, 13)]:
        images = rng.integers(0, 256, (batch, height, width, channels)).astype(np.uint8)
        cases.append({"images": images, "size": size})
    return cases


@exercise("04", cases=_crop_cases,
          hint=N_("top = (height - size) // 2 and left = (width - size) // 2; slice images[:, top:top + size, "
                  "left:left + size]."))
def crop_face(images, size=FACE_CROP):
    """Keep the central `size` x `size` square of every image in a batch.

    images: array (N, H, W, C), any dtype; returns (N, size, size, C), same dtype.
    When H - size (or W - size) is odd, the extra row (column) is left at the bottom
    (right): top = (H - size) // 2, left = (W - size) // 2, as the hand-out computes it.
    """


def _describe_dataset(value, case):
    import tensorflow as tf

    if not isinstance(value, tf.data.Dataset):
        return _("a {kind} (return a tf.data.Dataset)").format(kind=type(value).__name__)
    return [np.asarray(batch) for batch in value]


def _dataset_cases(rng):
    cases = []
    for n, side, batch_size, image_size, value_range in [(1, 25, 1, 28, (-0.5, 0.5)), (7, 30, 3, 12, (-1.0, 1.0)),
                                                         (5, 16, 2, 8, (-0.5, 0.5)), (4, 9, 4, 9, (-1.0, 1.0)),
                                                         (6, 20, 5, 7, (0.0, 1.0))]:
        images = rng.integers(0, 256, (n, side, side, 3)).astype(np.uint8)
        cases.append({"images": images, "batch_size": batch_size, "image_size": image_size,
                      "value_range": value_range})
    return cases


@exercise("04", cases=_dataset_cases, describe=_describe_dataset, rtol=1e-4, atol=1e-4,
          hint=N_("tf.image.resize(tf.cast(x, tf.float32), (image_size, image_size), antialias=True), then "
                  "x / 255 * (hi - lo) + lo; batch with drop_remainder=False."))
def face_dataset(images, batch_size, image_size=28, value_range=HANDOUT_RANGE):
    """A tf.data pipeline of training batches from uint8 face crops.

    images: uint8 array (N, h, w, 3) of face crops.  Return a `tf.data.Dataset` whose
    elements are float32 batches (<= batch_size, image_size, image_size, 3):
      1. start from `tf.data.Dataset.from_tensor_slices(images)`, in the given order;
      2. batch first (`batch(batch_size)`, keep the last, smaller batch), then map over
         whole batches (one call per batch is much faster than one per image);
      3. resize with `tf.image.resize(x, (image_size, image_size), method="bilinear",
         antialias=True)` on float32 pixels (antialias averages, as PIL's resize does
         when shrinking);
      4. scale [0, 255] to `value_range`: x / 255 * (hi - lo) + lo (the hand-out's
         range is (-0.5, 0.5); a tanh generator covers (-1, 1));
      5. end with `prefetch(tf.data.AUTOTUNE)`.
    Shuffling is left to the caller (`face_training_batches`).
    """


def _walk_cases(rng):
    cases = []
    for steps, dim in [(5, 100), (1, 8), (2, 3), (7, 17), (9, 64), (4, 2)]:
        z = rng.standard_normal((2, dim)).astype(np.float32)
        cases.append({"z_start": z[0], "z_end": z[1], "steps": steps})
    # (Anti)parallel endpoints: the circle is undefined and the walk is a straight line.
    z = rng.standard_normal(6).astype(np.float32)
    cases.append({"z_start": z, "z_end": 2 * z, "steps": 3})
    return cases


@exercise("04", cases=_walk_cases, rtol=1e-4, atol=1e-5,
          hint=N_("omega = arccos(z0.z1 / (|z0| |z1|)); z(t) = (sin((1-t) omega) z0 + sin(t omega) z1) / sin(omega); "
                  "t = np.linspace(0, 1, steps)."))
def spherical_walk(z_start, z_end, steps):
    """`steps` latent vectors on the great circle from z_start to z_end (both included).

    z_start, z_end: float32 vectors (d,).  Return float32 (steps, d) with
    t = np.linspace(0, 1, steps), omega the angle between the two vectors, and
        z(t) = (sin((1 - t) omega) z_start + sin(t omega) z_end) / sin(omega).
    When sin(omega) < 1e-6 (parallel vectors) return the straight line
    (1 - t) z_start + t z_end instead.
    """


# ----------------------------------------------------------------------------- archive
class UnsafeArchive(ValueError):
    """A zip member would be written outside the target folder (or is a link), or the archive would not fit."""


class ArchiveTooLarge(UnsafeArchive):
    """The archive's members would take more space than allowed, or than the disk has."""


# Photographs barely compress (CelebA's zip is 1.44 GB packed and about as much unpacked);
# a zip bomb expands a thousandfold.  Above this ratio the archive is refused.
MAX_EXPANSION = 50
# Space left free on the disk after extracting, for the crops cache and the rest of the lab.
RESERVE_BYTES = 256 * 2**20


def _unsafe_reason(member: zipfile.ZipInfo) -> str | None:
    # Checked on the names alone, not on resolved paths: a folder of the cache that is a
    # symbolic link (to a bigger disk) is the owner's choice, while no member may be a link
    # or climb out, so a name that stays inside lexically stays inside.
    name = member.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if name.startswith("/") or path.is_absolute() or ":" in name.split("/")[0]:
        return _("an absolute path")
    if ".." in path.parts:
        return _("a path that climbs out with '..'")
    if stat.S_ISLNK(member.external_attr >> 16):
        return _("a symbolic link")
    return None


def _size_problem(name: str, members, packed: int, target: Path, max_bytes, max_expansion) -> str | None:
    """Why the archive may not be extracted into `target`, from its declared sizes (None if it may).

    The declared sizes bound what is written: zipfile stops each member at its declared
    size and raises BadZipFile when the bytes do not match it (CRC), so they can be trusted.
    """
    from gan_course.data import ENV_DATA

    declared = sum(m.file_size for m in members)
    if packed and declared > max_expansion * packed:
        return _("{name}: its members would expand {packed:,} bytes into {declared:,} ({ratio:,.0f} times, more "
                 "than the {max_expansion} times an archive of photos reaches: a zip bomb?); nothing was extracted."
                 ).format(name=name, packed=packed, declared=declared, ratio=declared / packed,
                          max_expansion=max_expansion)
    if max_bytes is not None and declared > max_bytes:
        return _("{name}: its members would take {declared:,} bytes, more than the {max_bytes:,} allowed; "
                 "nothing was extracted.").format(name=name, declared=declared, max_bytes=max_bytes)
    free = shutil.disk_usage(target).free
    if declared > free - RESERVE_BYTES:
        return _("{name}: its members would take {declared:,} bytes and {target} has {free:,} bytes free "
                 "({reserve} MiB must stay free); nothing was extracted. "
                 "Free some space, or point {variable} at a bigger disk.").format(
            name=name, declared=declared, target=target, free=free, reserve=RESERVE_BYTES // 2**20, variable=ENV_DATA)
    return None


def safe_extract(zip_path, target, progress: bool = True, max_bytes: int | None = None,
                 max_expansion: float = MAX_EXPANSION) -> Path:
    """Extract a zip into `target`, refusing the whole archive if any member would escape it
    or the whole would not fit (more than `max_bytes`, or than the free space, or expanding
    more than `max_expansion` times).

    Every member and the sizes are checked before anything is written, so a crafted
    archive leaves no file behind.  Returns the target folder.
    """
    from tqdm.auto import tqdm

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    name = Path(zip_path).name
    with zipfile.ZipFile(zip_path) as archive:
        members = archive.infolist()
        for member in members:
            reason = _unsafe_reason(member)
            if reason:
                raise UnsafeArchive(_("{name}: member {member!r} is {reason}; nothing was extracted.").format(
                    name=name, member=member.filename, reason=reason))
        problem = _size_problem(name, members, Path(zip_path).stat().st_size, target, max_bytes, max_expansion)
        if problem:
            raise ArchiveTooLarge(problem)
        for member in tqdm(members, desc=_("extracting {name}").format(name=name), unit=_("file"), disable=not progress, leave=False):
            archive.extract(member, target)
    return target


def celeba_folder(progress: bool = True) -> Path:
    """The folder of CelebA's aligned JPEGs, downloading and extracting them once.

    Raises `data.DataUnavailable` (saying where to put img_align_celeba.zip) when the
    archive is neither cached nor downloadable, or cannot be extracted here.  Extraction
    happens under a lock: kernels starting together extract it once.
    """
    import filelock

    from gan_course import data

    root = data.dataset_dir("celeba")
    folder = root / "img_align_celeba"
    done = root / ".extracted"
    if done.is_file() and folder.is_dir():
        return folder
    try:
        (archive,) = data.download("celeba", progress=progress)
    except data.DataUnavailable as err:
        raise data.DataUnavailable(_("CelebA is not here: put img_align_celeba.zip here: {folder}/\n{error}").format(
            folder=root, error=err)) from None
    try:
        lock_path = data.cache_dir() / ".locks" / "celeba" / "extract.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(lock_path, mode=0o666):
            if not (done.is_file() and folder.is_dir()):
                safe_extract(archive, root, progress=progress)
                done.write_text("img_align_celeba.zip extracted\n")
    except (UnsafeArchive, zipfile.BadZipFile, OSError) as err:
        reason = str(err) if isinstance(err, UnsafeArchive) else f"{type(err).__name__}: {err}"
        raise data.DataUnavailable(_("CelebA could not be extracted in {folder}: {reason}").format(
            folder=root, reason=reason)) from None
    return folder


# ----------------------------------------------------------------------------- loading
@dataclass
class FaceCrops:
    """uint8 face crops (N, h, w, 3) and where they came from."""

    images: np.ndarray
    title: str
    standin: bool = False
    note: str = ""

    def __len__(self):
        return len(self.images)


def _decode_crop(path, crop: int, size: int):
    import tensorflow as tf

    image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    # crop_face's offsets, from the shape known only when the file is decoded.
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    face = tf.image.crop_to_bounding_box(image, (height - crop) // 2, (width - crop) // 2, crop, crop)
    face = tf.image.resize(tf.cast(face, tf.float32), (size, size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(face), 0, 255), tf.uint8)


def read_celeba_crops(folder, limit: int, crop: int = FACE_CROP, size: int = STORE_SIZE,
                      progress: bool = True) -> np.ndarray:
    """Decode, crop and shrink the first `limit` aligned images with a parallel tf.data pipeline."""
    import tensorflow as tf
    from tqdm.auto import tqdm

    paths = sorted(str(p) for p in Path(folder).glob("*.jpg"))[:limit]
    if not paths:
        raise FileNotFoundError(_("no .jpg files in {folder}").format(folder=folder))
    pipeline = (tf.data.Dataset.from_tensor_slices(paths)
                .map(lambda p: _decode_crop(p, crop, size), num_parallel_calls=tf.data.AUTOTUNE)
                .batch(256).prefetch(tf.data.AUTOTUNE))
    parts = [batch.numpy() for batch in tqdm(pipeline, total=-(-len(paths) // 256), desc=_("decoding faces"),
                                             unit=_("batch"), disable=not progress)]
    return np.concatenate(parts)


STANDIN_DESCRIPTION = N_("100 real face photographs from Labeled Faces in the Wild (25x25 pixels, grey, already "
                          "cropped to the face) that ship inside scikit-image, mirrored and shifted into "
                          "1,000 training images")


def standin_faces() -> np.ndarray:
    """The face stand-in: LFW faces from `skimage.data.lfw_subset()` (no download), augmented.

    The subset holds 100 faces and 100 non-faces; only the faces are used.  Each face
    and its mirror image are taken whole and as four 23x23 corner crops scaled back to
    25x25 (small shifts), 1,000 images in all; grey is repeated into three channels so
    the same RGB model trains on it.
    """
    import tensorflow as tf
    from skimage.data import lfw_subset

    faces = (lfw_subset()[:100] * 255).round().astype(np.uint8)
    faces = np.concatenate([faces, faces[:, :, ::-1]])[..., None]
    views = [faces]
    for top, left in [(0, 0), (0, 2), (2, 0), (2, 2)]:
        crop = faces[:, top:top + 23, left:left + 23].astype(np.float32)
        views.append(tf.image.resize(crop, (25, 25), antialias=True).numpy().round().clip(0, 255).astype(np.uint8))
    grey = np.concatenate(views)
    return np.repeat(grey, 3, axis=-1)


def load_face_crops(limit: int, allow_standin: bool | None = None, progress: bool = True,
                    quiet: bool = False) -> FaceCrops:
    """Face crops for training: CelebA (cached after the first decode) or the labelled stand-in."""
    from gan_course import data

    try:
        folder = celeba_folder(progress=progress)
    except data.DataUnavailable as err:
        if allow_standin is None:
            from gan_course.config import profile

            allow_standin = profile().allow_standin
        if not allow_standin:
            raise data.DataUnavailable(f"{err}\n{_(data.REAL_DATA_ONLY)}") from None
        note = _("⚠ STAND-IN DATA: CelebA is not available here, so this lab runs on {description}. "
                 "Put img_align_celeba.zip in {folder}/ for the real faces.").format(
            description=_(STANDIN_DESCRIPTION), folder=data.dataset_dir("celeba"))
        if not quiet:
            print(note)
        return FaceCrops(standin_faces()[:limit], _("LFW faces from scikit-image (stand-in)"), True, note)
    cached = data.dataset_dir("celeba") / f"crops-{FACE_CROP}-{STORE_SIZE}-{limit}.npy"
    if cached.is_file():
        images = np.load(cached)
    else:
        images = read_celeba_crops(folder, limit, progress=progress)
        import os

        staged = cached.with_name(f".{cached.name}.{os.getpid()}")  # kernels sharing the cache write apart
        try:
            with open(staged, "wb") as f:
                np.save(f, images)
            staged.replace(cached)
        except OSError:
            staged.unlink(missing_ok=True)  # a read-only or full cache: decode again next time
    return FaceCrops(images, _("CelebA aligned faces, central {size}x{size} crop").format(size=FACE_CROP), False, "")


def aligned_example() -> tuple[np.ndarray, str]:
    """One image in CelebA's aligned 178x218 format, to show the crop on.

    CelebA's first image when the data is here; otherwise scikit-image's astronaut photo
    (Eileen Collins), cut to a 178x218 frame centred on her face the way CelebA's
    alignment centres every face.
    """
    from gan_course import data

    folder = data.dataset_dir("celeba") / "img_align_celeba"
    first = folder / "000001.jpg"
    if (data.dataset_dir("celeba") / ".extracted").is_file() and first.is_file():
        from PIL import Image

        return np.asarray(Image.open(first).convert("RGB")), _("CelebA 000001.jpg (aligned, 178x218)")
    from skimage.data import astronaut

    return astronaut()[11:229, 136:314].copy(), _("scikit-image's astronaut photo in a 178x218 frame (stand-in)")


def face_training_batches(crops: FaceCrops, batch_size: int, image_size: int = 28, value_range=(-1.0, 1.0),
                          seed: int = 0, pipeline=face_dataset):
    """Training batches: `pipeline` prepares every image once, then each epoch reshuffles them.

    The prepared images are cached in memory, shuffled anew every pass, and batched with
    a fixed batch size (the last partial batch is dropped so every step sees the same shape).
    """
    prepared = pipeline(crops.images, batch_size, image_size, value_range).unbatch().cache()
    shuffled = prepared.shuffle(len(crops), seed=seed, reshuffle_each_iteration=True)
    return shuffled.batch(batch_size, drop_remainder=True).prefetch(2)
