"""Lab 04's library: safe extraction, the offline message, crops, the pipeline, the stand-in."""
import stat
import zipfile

import numpy as np
import pytest

from gan_course import checks, data, faces


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_COURSE_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("GAN_COURSE_OFFLINE", "1")
    return tmp_path / "cache"


# ----------------------------------------------------------------------------- zip slip
def _zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, payload in members:
            if isinstance(payload, zipfile.ZipInfo):
                archive.writestr(payload, name)
            else:
                archive.writestr(name, payload)
    return path


@pytest.mark.parametrize("evil", ["../escaped.txt", "img/../../escaped.txt", "/escaped_abs.txt",
                                  "..\\escaped.txt"])
def test_safe_extract_refuses_members_that_escape(tmp_path, evil):
    archive = _zip(tmp_path / "evil.zip", [("img/ok.jpg", b"fine"), (evil, b"gotcha")])
    target = tmp_path / "out" / "target"
    with pytest.raises(faces.UnsafeArchive, match="nothing was extracted"):
        faces.safe_extract(archive, target, progress=False)
    assert not (target / "img" / "ok.jpg").exists()  # refused whole, before writing anything
    assert not (tmp_path / "out" / "escaped.txt").exists()


def test_safe_extract_refuses_symbolic_links(tmp_path):
    link = zipfile.ZipInfo("img/link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = _zip(tmp_path / "link.zip", [("../../outside", link)])
    with pytest.raises(faces.UnsafeArchive, match="symbolic link"):
        faces.safe_extract(archive, tmp_path / "target", progress=False)


def test_safe_extract_writes_ordinary_members(tmp_path):
    archive = _zip(tmp_path / "ok.zip", [("img_align_celeba/000001.jpg", b"a"), ("img_align_celeba/x/2.jpg", b"b")])
    target = faces.safe_extract(archive, tmp_path / "target", progress=False)
    assert (target / "img_align_celeba" / "000001.jpg").read_bytes() == b"a"
    assert (target / "img_align_celeba" / "x" / "2.jpg").read_bytes() == b"b"


# ----------------------------------------------------------------------------- offline
def test_offline_message_says_where_to_put_the_zip(cache):
    with pytest.raises(data.DataUnavailable) as err:
        faces.celeba_folder(progress=False)
    message = str(err.value)
    assert "put img_align_celeba.zip here" in message
    assert str(cache / "celeba") in message


def test_stand_in_is_labelled_and_made_of_faces(cache, capsys):
    crops = faces.load_face_crops(limit=5000, allow_standin=True, progress=False)
    assert crops.standin and "STAND-IN" in crops.note and "Labeled Faces in the Wild" in crops.note
    assert "STAND-IN" in capsys.readouterr().out
    assert crops.images.shape == (1000, 25, 25, 3) and crops.images.dtype == np.uint8
    # Grey repeated into RGB; mirrored copies are the mirror images of the originals.
    np.testing.assert_array_equal(crops.images[..., 0], crops.images[..., 2])
    np.testing.assert_array_equal(crops.images[100], crops.images[0, :, ::-1])
    assert crops.images.std() > 20  # real photographs, not a blank array


def test_stand_in_refused_when_the_profile_wants_real_data(cache):
    with pytest.raises(data.DataUnavailable, match="only on the real data"):
        faces.load_face_crops(limit=10, allow_standin=False, progress=False)


def test_celeba_folder_is_read_cropped_and_cached(cache):
    from PIL import Image

    folder = cache / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        image = np.zeros((218, 178, 3), np.uint8)
        image[55:163, 35:143] = (40 * i + 60, 90, 200)  # the central 108x108 square, flat colour
        image[:55] = rng.integers(0, 256, (55, 178, 3))  # noise that the crop must remove
        Image.fromarray(image).save(folder / f"{i + 1:06d}.jpg", quality=98)
    (cache / "celeba" / ".extracted").write_text("test\n")
    crops = faces.load_face_crops(limit=2, progress=False)
    assert not crops.standin and crops.images.shape == (2, faces.STORE_SIZE, faces.STORE_SIZE, 3)
    centre = crops.images[:, 4:-4, 4:-4].astype(int)
    assert np.abs(centre - np.array([[60, 90, 200], [100, 90, 200]])[:, None, None]).max() < 12
    assert (cache / "celeba" / f"crops-108-{faces.STORE_SIZE}-2.npy").is_file()
    example, title = faces.aligned_example()
    assert example.shape == (218, 178, 3) and "CelebA" in title


def test_aligned_example_stand_in_has_celeba_shape(cache):
    example, title = faces.aligned_example()
    assert example.shape == (218, 178, 3) and "stand-in" in title


# ----------------------------------------------------------------------------- exercises
def test_crop_face_keeps_the_centre():
    images = np.arange(2 * 7 * 6 * 1).reshape(2, 7, 6, 1)
    out = faces.crop_face(images, 3)
    np.testing.assert_array_equal(out, images[:, 2:5, 1:4])
    assert faces.crop_face(np.zeros((1, 218, 178, 3), np.uint8)).shape == (1, 108, 108, 3)


def test_face_dataset_resizes_scales_and_batches():
    images = np.full((5, 20, 20, 3), 255, np.uint8)
    images[1] = 0
    batches = list(faces.face_dataset(images, batch_size=2, image_size=28))
    assert [tuple(b.shape) for b in batches] == [(2, 28, 28, 3), (2, 28, 28, 3), (1, 28, 28, 3)]
    first = batches[0].numpy()
    np.testing.assert_allclose(first[0], 0.5, atol=1e-5)
    np.testing.assert_allclose(first[1], -0.5, atol=1e-5)
    assert first.dtype == np.float32


def test_training_batches_reshuffle_each_epoch():
    images = np.arange(12, dtype=np.uint8)[:, None, None, None].repeat(4, 1).repeat(4, 2).repeat(3, 3) * 20
    crops = faces.FaceCrops(images, "numbers")
    ds = faces.face_training_batches(crops, batch_size=5, image_size=4, value_range=(0.0, 255.0))
    epochs = [[int(round(v)) for b in ds for v in b.numpy()[:, 0, 0, 0]] for _ in range(2)]
    assert all(len(e) == 10 for e in epochs)  # 12 images, batches of 5, remainder dropped
    assert epochs[0] != epochs[1]
    assert set(epochs[0]) <= set(range(0, 240, 20))


@pytest.mark.parametrize("name", ["crop_face", "face_dataset", "spherical_walk"])
def test_lab_04_exercises_accept_the_reference_and_reject_a_mistake(name):
    import tensorflow as tf

    ex = checks.get_exercise(name)
    assert ex.lab == "04" and len(ex.cases(np.random.default_rng(0))) >= 5
    assert checks.run_checks(ex, ex.reference, checks.notebook_cases(ex)).passed
    wrong = {
        "crop_face": lambda images, size=108: images[:, :size, :size],
        "face_dataset": lambda images, batch_size, image_size=28, value_range=(-0.5, 0.5):
            tf.data.Dataset.from_tensor_slices(
                tf.image.resize(tf.cast(images, tf.float32), (image_size, image_size)) / 255.0 - 0.5
            ).batch(batch_size),
        "spherical_walk": lambda z_start, z_end, steps: np.linspace(z_start, z_end, steps).astype(np.float32),
    }[name]
    result = checks.run_checks(ex, wrong, checks.notebook_cases(ex))
    assert not result.passed and result.layer == "values"


# ----------------------------------------------------------------------------- extraction limits
def test_a_zip_bomb_is_refused_from_its_declared_sizes_before_writing(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("img_align_celeba/000001.jpg", b"real enough")
        archive.writestr("img_align_celeba/zeros.bin", bytes(20 * 2**20))  # 20 MiB of zeros: ~20 KB packed
    packed = bomb.stat().st_size
    declared = 20 * 2**20 + len(b"real enough")
    target = tmp_path / "target"
    with pytest.raises(faces.ArchiveTooLarge) as err:
        faces.safe_extract(bomb, target, progress=False)
    assert str(err.value) == (
        f"bomb.zip: its members would expand {packed:,} bytes into {declared:,} ({declared / packed:,.0f} times, "
        f"more than the 50 times an archive of photos reaches: a zip bomb?); nothing was extracted.")
    assert list(target.rglob("*")) == []


def test_an_archive_over_the_size_cap_or_the_free_space_is_refused(tmp_path, monkeypatch):
    archive = _zip(tmp_path / "big.zip", [("img/a.jpg", b"x" * 5000), ("img/b.jpg", b"y" * 5000)])
    with pytest.raises(faces.ArchiveTooLarge) as err:
        faces.safe_extract(archive, tmp_path / "t1", progress=False, max_bytes=9_999, max_expansion=1e9)
    assert str(err.value) == ("big.zip: its members would take 10,000 bytes, more than the 9,999 allowed; "
                              "nothing was extracted.")
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, faces.RESERVE_BYTES + 9_000))
    target = tmp_path / "t2"
    with pytest.raises(faces.ArchiveTooLarge) as err:
        faces.safe_extract(archive, target, progress=False, max_expansion=1e9)
    assert str(err.value) == (f"big.zip: its members would take 10,000 bytes and {target} has "
                              f"{faces.RESERVE_BYTES + 9_000:,} bytes free (256 MiB must stay free); nothing was "
                              "extracted. Free some space, or point GAN_COURSE_DATA at a bigger disk.")
    assert list(target.rglob("*")) == []


def test_a_cache_folder_that_is_a_symbolic_link_is_fine(tmp_path):
    big_disk = tmp_path / "big_disk" / "celeba_images"
    big_disk.mkdir(parents=True)
    target = tmp_path / "cache" / "celeba"
    target.mkdir(parents=True)
    (target / "img_align_celeba").symlink_to(big_disk)  # the usual way to put the images elsewhere
    archive = _zip(tmp_path / "ok.zip", [("img_align_celeba/000001.jpg", b"a")])
    faces.safe_extract(archive, target, progress=False)
    assert (big_disk / "000001.jpg").read_bytes() == b"a"
    # The cache folder itself a link: fine too; a member climbing out of it is still refused.
    linked = tmp_path / "linked_cache"
    linked.symlink_to(tmp_path / "cache")
    faces.safe_extract(_zip(tmp_path / "ok2.zip", [("img_align_celeba/000002.jpg", b"b")]), linked / "celeba",
                       progress=False)
    assert (big_disk / "000002.jpg").read_bytes() == b"b"
    evil = _zip(tmp_path / "evil.zip", [("img_align_celeba/../../escaped.jpg", b"c")])
    with pytest.raises(faces.UnsafeArchive) as err:
        faces.safe_extract(evil, linked / "celeba", progress=False)
    assert str(err.value) == ("evil.zip: member 'img_align_celeba/../../escaped.jpg' is a path that climbs out "
                              "with '..'; nothing was extracted.")


def test_celeba_that_cannot_be_extracted_is_data_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_COURSE_DATA", str(tmp_path / "cache"))
    bomb = tmp_path / "cache" / "celeba" / "img_align_celeba.zip"
    bomb.parent.mkdir(parents=True)
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("img_align_celeba/zeros.bin", bytes(4 * 2**20))
    monkeypatch.setattr(data, "download", lambda name, **kw: [bomb])
    with pytest.raises(data.DataUnavailable, match=r"^CelebA could not be extracted in .*: img_align_celeba.zip: "
                                                   r"its members would expand .* a zip bomb\?"):
        faces.celeba_folder(progress=False)
    monkeypatch.setenv("GAN_COURSE_PROFILE", "smoke")
    assert faces.load_face_crops(10, allow_standin=True, quiet=True).standin  # the stand-in rules apply
