"""Images from a folder of your own: the loader and the export behind lab 07.

`load_folder(path, image_size)` reads a folder of pictures the way
`keras.utils.image_dataset_from_directory` lays them out: one subfolder per class
(class names from the folder names, in sorted order), or all images in one folder
(unlabelled).  Every image is decoded by PIL (any format it reads: JPEG, PNG, BMP, GIF,
WebP, TIFF, PPM...), turned upright from its EXIF orientation, converted to RGB (grey,
palette, 16-bit and CMYK images; RGBA composited on white) or to grey, cropped to its
central square, resized with an antialiased bilinear filter and scaled to [-1, 1].  The
result is the same `ImageData` as the course's other datasets, which also knows its
folder (`path`), each image's file (`files`) and what was `skipped` or `ignored`.

Bad input is reported, never silently used:

- a missing path, a file instead of a folder, an empty folder, a folder with no image
  files: `FolderError`, whose message says what was found and what to do;
- unreadable or truncated files: skipped, counted and named in one line (`⚠ skipped`);
- fewer than `MIN_IMAGES` images: a warning with the count (a GAN needs thousands);
- empty class folders are left out, by name; loose images beside class folders are
  counted and ignored, as Keras does.

`export_dataset("fashion_mnist", folder)` writes one of the course's datasets as PNG
files in one folder per class (`gan-course export`), once: the offline default of lab 07.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
MIN_IMAGES = 1000  # below this a GAN mostly memorises: warn
EXPORT_MARKER = ".gan_course_export.json"
# Public image folders a student can download (name, size, URL, how it unpacks).
PUBLIC_FOLDERS = (
    ("Imagenette: ten easy ImageNet classes (tench, springer spaniel, cassette player, chain saw, church, "
     "French horn, garbage truck, gas pump, golf ball, parachute), 13,394 photos; imagenette2-160.tgz, about "
     "94 MB. Give imagenette2-160/train/: one folder per class (named by WordNet id)",
     "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"),
    ("Stanford Cars: 16,185 photos of 196 car models, about 1.8 GB. The photos unpack without class folders "
     "(the classes are in a .mat file): give the cars_train/ folder and the lab trains unlabelled",
     "https://www.kaggle.com/datasets/jessicali9530/stanford-cars-dataset"),
    ("FGVC-Aircraft: 10,000 aircraft photos, fgvc-aircraft-2013b.tar.gz, about 2.75 GB. Give data/images/ "
     "(no class folders: unlabelled; each photo carries a 20-pixel copyright strip at the bottom)",
     "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/"),
)


class FolderError(ValueError):
    """The folder cannot be used as it is; the message says why and what to do."""


# ----------------------------------------------------------------------------- decoding
def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _files_under(folder: Path) -> list[Path]:
    """Every file under `folder` (recursively, hidden files and folders left out), sorted."""
    out = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(root) / f for f in sorted(files) if not f.startswith(".")]
    return out


def decode_image(path, channels: int = 3) -> np.ndarray:
    """One image file as uint8 (H, W, channels): upright, RGB (alpha on white) or grey.

    Raises OSError (truncated, unreadable) or PIL's UnidentifiedImageError (not an image).
    """
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image.load()  # decodes now: a truncated file fails here, not later
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            # 16-bit or float grey: rescale to 8 bits instead of clipping at 255.
            values = np.asarray(image, np.float64)
            top = 65535.0 if values.max() > 255 else 255.0
            image = Image.fromarray((values / top * 255).clip(0, 255).round().astype(np.uint8), "L")
        if image.mode == "P":
            image = image.convert("RGBA")
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba)
        image = image.convert("RGB" if channels == 3 else "L")
        array = np.asarray(image, np.uint8)
    return array if array.ndim == 3 else array[..., None]


def _reason(err: BaseException) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(err, UnidentifiedImageError):
        return "not an image PIL can read"
    text = str(err).split("\n")[0]
    if "truncated" in text.lower():
        return "truncated"
    return f"{type(err).__name__}: {text[:60]}"


def fit_square(image: np.ndarray, image_size: int) -> np.ndarray:
    """An (H, W, C) uint8 image as float32 (image_size, image_size, C) in [-1, 1]: the central
    square (side min(H, W)), then PIL's antialiased bilinear resize.

    PIL does both steps: `ImageOps.fit` to the square's own side only crops (no resampling),
    and resizing the crop alone keeps pixels outside it from bleeding in at the edges."""
    from PIL import Image, ImageOps

    channels = image.shape[-1]
    picture = Image.fromarray(image[..., 0] if channels == 1 else image)
    side = min(picture.size)
    square = ImageOps.fit(picture, (side, side), method=Image.Resampling.NEAREST, centering=(0.5, 0.5))
    fitted = np.asarray(square.resize((image_size, image_size), Image.Resampling.BILINEAR), np.float32)
    return (fitted.reshape(image_size, image_size, channels) / 127.5 - 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- layout
def _layout(path: Path, labels) -> tuple[list[str], list[tuple[Path, int]], list[str]]:
    """(class names, [(file, class index)], ignored notes) for a folder; raises FolderError."""
    if not path.exists():
        raise FolderError(f"No folder at {path} (resolved from {Path.cwd()}): check the path, "
                          f"or leave it empty to use the course's default folder.")
    if not path.is_dir():
        raise FolderError(f"{path} is a file, not a folder: give the folder that holds the images.")
    everything = _files_under(path)
    if not everything:
        raise FolderError(f"{path} is empty: put images in it, all in one folder (unlabelled) "
                          f"or one subfolder per class (the subfolder names become the class names).")
    images = [f for f in everything if _is_image_name(f)]
    if not images:
        kinds = sorted({f.suffix.lower() or "(no extension)" for f in everything})
        examples = ", ".join(str(f.relative_to(path)) for f in everything[:3])
        raise FolderError(f"{path} holds {len(everything)} file(s) but no images (looked for "
                          f"{' '.join(IMAGE_EXTENSIONS)}); found {', '.join(kinds)}, e.g. {examples}.")
    if labels not in ("inferred", None):
        raise ValueError(f"labels must be 'inferred' or None, not {labels!r}")
    subfolders = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    ignored = []
    if labels == "inferred" and subfolders:
        classes, items = [], []
        for folder in subfolders:
            own = [f for f in _files_under(folder) if _is_image_name(f)]
            if not own:
                ignored.append(f"class folder {folder.name}/ (no images)")
                continue
            items += [(f, len(classes)) for f in own]
            classes.append(folder.name)
        loose = [f for f in images if f.parent == path]
        if loose:
            ignored.append(f"{len(loose)} image(s) directly in {path.name}/ beside the class folders")
        if not classes:
            raise FolderError(f"{path} has subfolders but none holds an image.")
        return classes, items, ignored
    return [], [(f, -1) for f in images], ignored


def _balanced_order(items, limit, seed):
    """Files in a seeded random order that is class-balanced at every prefix (classes in turn)."""
    rng = np.random.default_rng(seed)
    by_class: dict[int, list] = {}
    for item in items:
        by_class.setdefault(item[1], []).append(item)
    shuffled = [[group[i] for i in rng.permutation(len(group))] for _, group in sorted(by_class.items())]
    order = [group[i] for i in range(max(map(len, shuffled))) for group in shuffled if i < len(group)]
    return order if limit is None else order[:limit]


# ----------------------------------------------------------------------------- loading
def load_folder(path, image_size: int, channels: int = 3, labels="inferred", limit: int | None = None,
                seed: int = 0, quiet: bool = False, prepare=None):
    """The images of a folder as float32 (N, image_size, image_size, channels) in [-1, 1].

    `labels="inferred"`: one subfolder per class if there are subfolders (y = class index,
    `classes` = the folder names, sorted), else unlabelled (y = None); `labels=None`:
    unlabelled whatever the layout.  `limit`: at most this many images, chosen at random
    (by `seed`) and balanced over classes.  `prepare(image, image_size)`: one decoded uint8
    image -> float32 (image_size, image_size, channels) in [-1, 1], replacing the built-in
    central crop + resize (lab 07's `crop_and_scale` exercise does the same).

    Returns an `ImageData` (`source` "folder") with, besides its usual fields, `path`,
    `files` (each image's path relative to the folder, in the order of x), `skipped`
    ((file, reason) pairs) and `ignored` (what the layout left out).
    """
    from tqdm.auto import tqdm

    from gan_course.data import ImageData

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (colour), not {channels}")
    if int(image_size) < 4:
        raise ValueError(f"image_size must be at least 4, not {image_size}")
    path = Path(path).expanduser()
    classes, items, ignored = _layout(path, labels)
    order = _balanced_order(items, limit, seed)

    x, kept, skipped = [], [], []
    for file, label in tqdm(order, desc=f"reading {path.name}", unit="image", disable=quiet or len(order) < 2000,
                            leave=False):
        try:
            image = decode_image(file, channels)
        except Exception as err:  # any decoder failure: the file is skipped and named
            skipped.append((str(file.relative_to(path)), _reason(err)))
            continue
        x.append(np.asarray(prepare(image, image_size), np.float32) if prepare is not None
                 else fit_square(image, image_size))
        kept.append((file, label))
    if not kept:
        named = "; ".join(f"{f} ({why})" for f, why in skipped[:5])
        raise FolderError(f"None of the {len(order)} image file(s) in {path} could be read: {named}"
                          f"{' ...' if len(skipped) > 5 else ''}.")
    x = np.stack(x)

    y = np.array([label for _, label in kept], np.int64) if classes else None
    if classes:
        present = np.bincount(y, minlength=len(classes))
    unlabelled = "unlabelled" if not classes else f"{len(classes)} classes"
    images = ImageData(
        name=f"folder:{path.name}", title=f"{path.name} ({len(kept):,} images, {unlabelled}, "
                                         f"{image_size}x{image_size})",
        x=x, y=y, value_range=(-1.0, 1.0), standin=False, note="", classes=list(classes), source="folder")
    images.path, images.skipped, images.ignored = path, skipped, ignored
    images.files = [str(f.relative_to(path)) for f, _ in kept]

    lines = []
    if skipped:
        named = ", ".join(f"{f} ({why})" for f, why in skipped[:8])
        lines.append(f"⚠ skipped {len(skipped)} of {len(order)} image file(s) that could not be read: {named}"
                     f"{', ...' if len(skipped) > 8 else ''}")
    if ignored:
        lines.append(f"⚠ left out: {'; '.join(ignored)}")
    if len(kept) < MIN_IMAGES:
        lines.append(f"⚠ only {len(kept):,} images in {path}: a GAN needs thousands to learn more than "
                     f"copies of them (below {MIN_IMAGES:,}, expect blurry or memorised samples).")
    if classes and len(classes) == 1:
        lines.append(f"⚠ one class only ({classes[0]}): a class-conditional model has nothing to condition on.")
    images.note = "\n".join(lines)
    if not quiet:
        counts = (", ".join(f"{c} {n}" for c, n in zip(classes, present)) if classes and len(classes) <= 12
                  else (f"{len(classes)} classes" if classes else "no classes (all images in one folder)"))
        print(f"Loaded {len(kept):,} images from {path} at {image_size}x{image_size}x{channels}: {counts}.")
        if images.note:
            print(images.note)
    return images


def conditioning(images) -> tuple[int, str]:
    """(number of classes the models condition on, the reason): the folder's classes when it has
    two or more; otherwise 1, that is unconditional training, and a message saying so."""
    n = len(images.classes)
    if n >= 2:
        return n, f"{n} classes: both models are class-conditional."
    why = "it has one class only" if n == 1 else "it has no class subfolders"
    return 1, (f"This folder cannot drive a class-conditional model ({why}): both models train "
               f"unconditionally (every image gets the label 0), and class accuracy is not reported.")


def split_holdout(images, fraction: float = 0.2, seed: int = 0):
    """(training part, held-out part) of a folder's images, stratified by class when labelled.

    The held-out images train nothing: they are what the metrics classifier is tested on,
    and the real-vs-real baseline compares them with training images."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), not {fraction}")
    rng = np.random.default_rng(seed)
    labels = images.y if images.y is not None else np.zeros(len(images), np.int64)
    held = np.zeros(len(images), bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        held[rng.permutation(members)[:max(1, int(round(fraction * len(members))))]] = True
    if held.all():
        raise FolderError(f"{len(images)} images are too few to hold some out for the metrics.")

    from gan_course.data import ImageData

    def part(mask, what):
        return ImageData(images.name, f"{images.title} [{what}]", images.x[mask],
                         None if images.y is None else images.y[mask], images.value_range, images.standin,
                         images.note, list(images.classes), images.source)

    return part(~held, "train"), part(held, "held out")


# ----------------------------------------------------------------------------- export
def export_dataset(name: str, folder, split: str = "train", per_class: int | None = None, quiet: bool = False,
                   seed: int = 0) -> Path:
    """Write a course dataset as PNG files, one subfolder per class (`0-T-shirt/00017.png`), once.

    `per_class`: at most this many images of each class (chosen at random by `seed`).  The
    folder is written beside its final place and renamed into it when complete, so a stopped
    export never leaves half a folder; an existing complete export is reused.
    """
    from PIL import Image
    from tqdm.auto import tqdm

    from gan_course import data

    folder = Path(folder).expanduser()
    marker = folder / EXPORT_MARKER
    wanted = {"dataset": name, "split": split, "per_class": per_class, "seed": seed}
    if marker.is_file():
        done = json.loads(marker.read_text())
        if {k: done.get(k) for k in wanted} == wanted:
            if not quiet:
                print(f"{name} ({split}) is already exported to {folder}: {done['images']:,} PNG files.")
            return folder
        raise FolderError(f"{folder} holds another export ({done.get('dataset')}, {done.get('split')}, "
                          f"per_class {done.get('per_class')}): choose another folder or delete it.")
    if folder.exists() and any(folder.iterdir()):
        raise FolderError(f"{folder} exists and is not empty: export into a new folder.")

    images = data.load(name, split, value_range=(0.0, 255.0), quiet=quiet)
    pixels = np.asarray(images.x).round().clip(0, 255).astype(np.uint8)
    labels = np.asarray(images.y)
    class_names = images.classes or [str(c) for c in range(int(labels.max()) + 1)]
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(len(class_names)):
        members = rng.permutation(np.flatnonzero(labels == c))
        chosen.append(np.sort(members[:per_class] if per_class else members))
    order = np.concatenate(chosen)

    staging = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    width = max(1, len(str(len(class_names) - 1)))
    subfolders = [f"{c:0{width}d}" + ("" if n == str(c) else "-" + n.replace("/", "_").replace(" ", "_"))
                  for c, n in enumerate(class_names)]
    try:
        for sub in subfolders:
            (staging / sub).mkdir(parents=True)
        for index in tqdm(order, desc=f"exporting {name}", unit="image", disable=quiet, leave=False):
            image = pixels[index]
            Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
                staging / subfolders[labels[index]] / f"{index:05d}.png", compress_level=1)
        (staging / EXPORT_MARKER).write_text(json.dumps({**wanted, "images": int(len(order)),
                                                         "source": images.title}, indent=1))
        folder.parent.mkdir(parents=True, exist_ok=True)
        if folder.exists():
            folder.rmdir()  # empty (checked above)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not quiet:
        print(f"Exported {len(order):,} images of {images.title} as PNG files to {folder}, "
              f"one folder per class.")
    return folder


def default_folder(per_class: int | None, name: str = "fashion_mnist", quiet: bool = False) -> Path:
    """The offline default of lab 07: a course dataset exported once into the data cache."""
    from gan_course.data import cache_dir

    folder = cache_dir() / "folders" / f"{name}-train-{per_class or 'all'}"
    if not (folder / EXPORT_MARKER).is_file():
        export_dataset(name, folder, "train", per_class, quiet=quiet)
    return folder
