"""Images from a folder (lab 07): layouts, formats and modes, bad files, and the export.

Every folder is made here, in tmp_path, from a few synthetic pictures: fast and offline.
"""
import json

import numpy as np
import pytest
from PIL import Image

from gan_course import data, folders
from gan_course.folders import FolderError, load_folder


def _picture(height=20, width=30, colour=(200, 30, 30)):
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = colour
    return image


def _save(path, array, mode=None, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(path, **options)
    return path


def _class_folder(root, classes=("cars", "planes"), per_class=3):
    for c, name in enumerate(classes):
        for i in range(per_class):
            _save(root / name / f"{i}.png", _picture(colour=(40 * c + 10 * i, 100, 200)))
    return root


# ----------------------------------------------------------------------------- layouts
def test_classes_come_from_subfolders_in_sorted_order(tmp_path, capsys):
    root = _class_folder(tmp_path / "mine", classes=("planes", "cars", "people"), per_class=2)
    images = load_folder(root, 16)
    assert images.classes == ["cars", "people", "planes"]
    assert images.x.shape == (6, 16, 16, 3) and images.x.dtype == np.float32
    assert images.x.min() >= -1.0 and images.x.max() <= 1.0
    assert sorted(np.bincount(images.y).tolist()) == [2, 2, 2]
    for file, label in zip(images.files, images.y):
        assert file.split("/")[0] == images.classes[label]
    assert images.source == "folder" and images.skipped == []
    out = capsys.readouterr().out
    assert "Loaded 6 images" in out and "cars 2, people 2, planes 2" in out
    # A batch pipeline like every other dataset's.
    batch = next(iter(images.batches(4, labels=True)))
    assert tuple(batch[0].shape) == (4, 16, 16, 3)


def test_no_subfolders_means_unlabelled(tmp_path):
    for i in range(3):
        _save(tmp_path / f"photo{i}.jpg", _picture())
    images = load_folder(tmp_path, 8, quiet=True)
    assert images.y is None and images.classes == []
    assert folders.conditioning(images)[0] == 1
    assert "no class subfolders" in folders.conditioning(images)[1]


def test_labels_none_reads_subfolders_as_one_set(tmp_path):
    root = _class_folder(tmp_path, per_class=2)
    images = load_folder(root, 8, labels=None, quiet=True)
    assert images.y is None and len(images) == 4


def test_grey_output_has_one_channel(tmp_path):
    _save(tmp_path / "a.png", _picture())
    assert load_folder(tmp_path, 8, channels=1, quiet=True).x.shape == (1, 8, 8, 1)


def test_public_folder_layout_with_nested_folders_and_loose_files(tmp_path, capsys):
    # As an archive unpacks: class folders with nested folders inside, a loose README and image.
    _save(tmp_path / "cars" / "train" / "a.jpg", _picture())
    _save(tmp_path / "planes" / "b.jpg", _picture())
    _save(tmp_path / "cover.jpg", _picture())
    (tmp_path / "README.txt").write_text("about these images")
    (tmp_path / "empty_class").mkdir()
    images = load_folder(tmp_path, 8)
    assert images.classes == ["cars", "planes"] and len(images) == 2
    out = capsys.readouterr().out
    assert "class folder empty_class/ (no images)" in out
    assert "1 image(s) directly in" in out


# ----------------------------------------------------------------------------- formats and modes
def test_mixed_formats_and_modes_all_become_rgb(tmp_path):
    base = _picture(12, 12, (250, 120, 10))
    _save(tmp_path / "rgb.png", base)
    _save(tmp_path / "grey.png", base, "L")
    _save(tmp_path / "jpeg.jpg", base, quality=95)
    _save(tmp_path / "cmyk.jpg", base, "CMYK")
    _save(tmp_path / "bitmap.bmp", base)
    _save(tmp_path / "palette.gif", base, "P")
    _save(tmp_path / "photo.webp", base)
    _save(tmp_path / "scan.tiff", base)
    sixteen = (np.full((12, 12), 40000, np.uint16))
    Image.fromarray(sixteen).save(tmp_path / "sixteen.png")
    rgba = np.zeros((12, 12, 4), np.uint8)  # fully transparent: composited on white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "transparent.png")
    images = load_folder(tmp_path, 6, quiet=True)
    assert len(images) == 10 and images.skipped == []
    by_name = dict(zip(images.files, images.x))
    assert np.allclose(by_name["transparent.png"], 1.0)
    grey = by_name["grey.png"]
    assert np.allclose(grey[..., 0], grey[..., 1]) and np.allclose(grey[..., 1], grey[..., 2])
    assert np.allclose(by_name["sixteen.png"], 40000 / 65535 * 255 / 127.5 - 1, atol=0.01)
    assert np.allclose(by_name["rgb.png"], by_name["bitmap.bmp"])
    assert np.abs(by_name["rgb.png"] - by_name["jpeg.jpg"]).max() < 0.1


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(_picture(10, 20))
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "phone.jpg", exif=exif)
    decoded = folders.decode_image(tmp_path / "phone.jpg")
    assert decoded.shape == (20, 10, 3)


def test_central_crop_then_resize_matches_the_exercise(tmp_path):
    from gan_course.own_images import crop_and_scale

    wide = np.zeros((10, 30, 3), np.uint8)
    wide[:, 10:20] = 255  # white in the central square, black outside it
    _save(tmp_path / "wide.png", wide)
    images = load_folder(tmp_path, 5, quiet=True)
    assert np.allclose(images.x[0], 1.0)  # only the central 10x10 square is kept
    assert np.allclose(images.x[0], np.asarray(crop_and_scale(wide, 5)), atol=1e-5)
    same = load_folder(tmp_path, 5, quiet=True, prepare=crop_and_scale)
    assert np.allclose(same.x, images.x, atol=1e-5)
    # On a photograph the loader's resampler (PIL) and the exercise's (TensorFlow) agree closely.
    photo = _picture(48, 64)
    _save(tmp_path / "wide.png", photo)
    mine = load_folder(tmp_path, 20, quiet=True).x[0]
    theirs = np.asarray(crop_and_scale(photo, 20))
    assert np.abs(mine - theirs).mean() < 0.02 and np.abs(mine - theirs).max() < 0.25


# ----------------------------------------------------------------------------- bad input
def test_truncated_jpeg_and_text_named_png_are_skipped_and_named_in_one_line(tmp_path, capsys):
    _class_folder(tmp_path, per_class=2)
    good = _save(tmp_path / "cars" / "whole.jpg", _picture(64, 64))
    raw = good.read_bytes()
    (tmp_path / "cars" / "cut.jpg").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "planes" / "notes.png").write_text("this is not a picture")
    images = load_folder(tmp_path, 8)
    assert len(images) == 5
    assert dict(images.skipped) == {"cars/cut.jpg": "truncated", "planes/notes.png": "not an image PIL can read"}
    lines = [line for line in capsys.readouterr().out.splitlines() if "skipped" in line]
    assert len(lines) == 1
    assert lines[0].startswith("⚠ skipped 2 of 7 image file(s)")
    assert "cars/cut.jpg (truncated)" in lines[0] and "planes/notes.png (not an image" in lines[0]


def test_only_unreadable_files_is_an_error_naming_them(tmp_path):
    (tmp_path / "a.png").write_text("no")
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(FolderError, match=r"None of the 2 image file\(s\) .* a.png \(not an image"):
        load_folder(tmp_path, 8, quiet=True)


def test_empty_folder(tmp_path):
    with pytest.raises(FolderError, match="is empty: put images in it"):
        load_folder(tmp_path, 8)


def test_missing_path(tmp_path):
    with pytest.raises(FolderError, match="No folder at .*nowhere"):
        load_folder(tmp_path / "nowhere", 8)


def test_a_file_is_not_a_folder(tmp_path):
    path = _save(tmp_path / "one.png", _picture())
    with pytest.raises(FolderError, match="is a file, not a folder"):
        load_folder(path, 8)


def test_no_image_files(tmp_path):
    (tmp_path / "labels.csv").write_text("a,b")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FolderError, match=r"2 file\(s\) but no images .*found \.csv, \.txt"):
        load_folder(tmp_path, 8)


def test_small_folder_warns_with_the_count(tmp_path, capsys):
    _class_folder(tmp_path, per_class=2)
    load_folder(tmp_path, 8)
    assert "⚠ only 4 images in" in capsys.readouterr().out


def test_one_class_cannot_drive_a_conditional_model(tmp_path, capsys):
    _class_folder(tmp_path, classes=("cars",), per_class=3)
    images = load_folder(tmp_path, 8)
    assert images.classes == ["cars"]
    assert "one class only (cars)" in capsys.readouterr().out
    classes, why = folders.conditioning(images)
    assert classes == 1 and "one class only" in why and "unconditionally" in why


def test_bad_arguments(tmp_path):
    _save(tmp_path / "a.png", _picture())
    with pytest.raises(ValueError, match="channels"):
        load_folder(tmp_path, 8, channels=4)
    with pytest.raises(ValueError, match="labels"):
        load_folder(tmp_path, 8, labels="folders")


# ----------------------------------------------------------------------------- selection and split
def test_limit_is_class_balanced_and_seeded(tmp_path):
    _class_folder(tmp_path, classes=("a", "b", "c"), per_class=5)
    images = load_folder(tmp_path, 4, limit=6, quiet=True)
    assert np.bincount(images.y).tolist() == [2, 2, 2]
    again = load_folder(tmp_path, 4, limit=6, quiet=True)
    assert images.files == again.files


def test_split_holdout_is_stratified(tmp_path):
    _class_folder(tmp_path, classes=("a", "b"), per_class=10)
    images = load_folder(tmp_path, 4, quiet=True)
    train, held = folders.split_holdout(images, 0.2)
    assert len(train) == 16 and len(held) == 4
    assert np.bincount(held.y).tolist() == [2, 2] and held.classes == ["a", "b"]


def test_load_folder_is_also_in_data():
    assert data.load_folder is folders.load_folder


# ----------------------------------------------------------------------------- export
@pytest.fixture
def fake_dataset(monkeypatch):
    """A tiny labelled dataset in place of the real Fashion-MNIST (pixels in [0, 255])."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 6, 6, 1)).astype(np.float32)
    y = np.array([0, 1, 2] * 4)

    def load(name, split="train", value_range=(-1.0, 1.0), **_):
        assert value_range == (0.0, 255.0)
        return data.ImageData(name, f"tiny {name} [{split}]", x, y, value_range, classes=["T-shirt", "a/b", "c d"])

    monkeypatch.setattr(data, "load", load)
    return x, y


def test_export_writes_one_png_folder_per_class_once(tmp_path, fake_dataset, capsys):
    x, y = fake_dataset
    folder = folders.export_dataset("fashion_mnist", tmp_path / "fm", per_class=3)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["0-T-shirt", "1-a_b", "2-c_d"]
    assert json.loads((folder / folders.EXPORT_MARKER).read_text())["images"] == 9
    written = np.asarray(Image.open(folder / "0-T-shirt" / "00000.png"))
    assert np.array_equal(written, x[0, ..., 0].astype(np.uint8))
    assert not list(tmp_path.glob(".*partial"))  # staged, then renamed into place
    folders.export_dataset("fashion_mnist", tmp_path / "fm", per_class=3)
    assert "already exported" in capsys.readouterr().out
    images = load_folder(folder, 6, quiet=True)  # and it loads as a class folder
    assert images.classes == ["0-T-shirt", "1-a_b", "2-c_d"] and len(images) == 9
    with pytest.raises(FolderError, match="holds another export"):
        folders.export_dataset("fashion_mnist", tmp_path / "fm", per_class=2)


def test_export_refuses_a_folder_with_other_files(tmp_path, fake_dataset):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FolderError, match="not empty"):
        folders.export_dataset("fashion_mnist", tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_export_command(tmp_path, fake_dataset, capsys):
    from gan_course import cli

    assert cli.main(["export", "fashion_mnist", str(tmp_path / "out"), "--per-class", "2"]) == 0
    assert len(list((tmp_path / "out").rglob("*.png"))) == 6
    assert cli.main(["export", "celeba", str(tmp_path / "x")]) == 2
    assert "cannot export 'celeba'" in capsys.readouterr().err
