"""`gan-course doctor`: ready machines pass, broken ones fail with the fix spelled out.

The datasets are replaced by one small file made here (with its real checksum), so the
tests need no network and no downloaded data.
"""
import hashlib
import sys
import tomllib
from pathlib import Path

import pytest

from gan_course import cli, data, doctor

PAYLOAD = b"GAN Lab doctor test payload\n" * 64


@pytest.fixture
def tiny_cache(tmp_path, monkeypatch):
    """A cache in tmp_path whose only dataset, `tiny`, is one file the test may write or damage."""
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    tiny = data.Dataset("tiny", "a tiny test dataset",
                        (data.RemoteFile("tiny.bin", f"sha256:{sha}", ("http://127.0.0.1:9/tiny.bin",)),))
    monkeypatch.setattr(data, "DATASETS", {"tiny": tiny})
    monkeypatch.setenv(data.ENV_DATA, str(tmp_path / "cache"))
    monkeypatch.setenv("GAN_COURSE_PROFILE", "smoke")
    return tmp_path / "cache" / "tiny" / "tiny.bin"


def run_doctor(capsys):
    status = cli.main(["doctor"])
    return status, capsys.readouterr().out


def test_healthy_cache_passes(tiny_cache, capsys):
    tiny_cache.parent.mkdir(parents=True)
    tiny_cache.write_bytes(PAYLOAD)
    status, out = run_doctor(capsys)
    assert status == 0, out
    assert "TensorFlow 2." in out and "Keras 3." in out
    assert "smoke (set by GAN_COURSE_PROFILE" in out
    assert f"{tiny_cache.parent.parent} is writable" in out
    assert "tiny" in out and "present, checksums verified" in out
    assert "ERROR" not in out and "Ready for the labs" in out


def test_missing_dataset_is_a_warning_with_the_command(tiny_cache, capsys):
    status, out = run_doctor(capsys)
    assert status == 0, out
    line = next(line for line in out.splitlines() if " tiny " in line)
    assert line.split()[0] == "warn" and "not downloaded yet" in line
    assert "fix: gan-course download tiny" in out


def test_corrupted_dataset_fails(tiny_cache, capsys):
    tiny_cache.parent.mkdir(parents=True)
    tiny_cache.write_bytes(PAYLOAD[:-1] + b"?")
    status, out = run_doctor(capsys)
    assert status == 1, out
    assert "ERROR  tiny" in out and "tiny.bin" in out and "fails its checksum" in out
    assert "fix: gan-course download tiny" in out
    assert "problem(s) stop the labs" in out


def test_unwritable_cache_fails(tiny_cache, tmp_path, monkeypatch, capsys):
    # Tests may run as root, for whom chmod does not stop a write; a cache path that runs
    # through a regular file cannot be created by anyone, root included.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache's parent folder should be")
    monkeypatch.setenv(data.ENV_DATA, str(blocker / "cache"))
    status, out = run_doctor(capsys)
    assert status == 1, out
    assert f"the data cache {blocker / 'cache'} is not writable" in out
    assert "fix: export GAN_COURSE_DATA=" in out


def test_read_only_folder_is_found_by_writing(tmp_path, monkeypatch):
    # A read-only mount refuses the write itself, whatever the permission bits say.
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    assert doctor.writable(tmp_path) is None
    monkeypatch.setattr(doctor.tempfile, "mkstemp", refuse)
    assert doctor.writable(tmp_path) == "Permission denied"


def test_missing_tensorflow_fails(tiny_cache, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import tensorflow` now raises ImportError
    status, out = run_doctor(capsys)
    assert status == 1, out
    assert "ERROR  tensorflow    TensorFlow cannot be imported" in out
    assert "fix: pip install -e '.[cpu]'" in out


def test_unexpected_versions_warn(monkeypatch):
    monkeypatch.setattr(doctor, "_pinned", lambda name: "==9.9.*")
    findings = {f.topic: f for f in doctor.check_frameworks()}
    assert findings["tensorflow"].level == doctor.WARN and "tested with ==9.9.*" in findings["tensorflow"].message
    assert findings["keras"].level == doctor.WARN


def test_declared_pins_are_read_from_the_package():
    from packaging.requirements import Requirement

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    declared = {Requirement(r).name: Requirement(r).specifier
                for r in project["dependencies"] + project["optional-dependencies"]["cpu"]}
    assert doctor._pinned("keras") == str(declared["keras"])
    assert doctor._pinned("tensorflow-cpu") == str(declared["tensorflow-cpu"])


def test_unknown_profile_fails(tiny_cache, monkeypatch):
    monkeypatch.setenv("GAN_COURSE_PROFILE", "turbo")
    (finding,) = doctor.check_profile()
    assert finding.level == doctor.ERROR and "turbo" in finding.message
    assert "GAN_COURSE_PROFILE=smoke|cpu|gpu" in finding.fix


def test_every_course_dataset_missing_is_a_warning_naming_its_standin(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_COURSE_DATA", str(tmp_path))
    findings = {f.topic: f for f in doctor.check_datasets()}
    assert set(findings) == set(data.DATASETS)
    assert all(f.level == doctor.WARN for f in findings.values())
    assert "stand-in (5,000 real MNIST digits" in findings["mnist"].message


def test_sources_without_a_mirror_name_the_public_source_and_ask_nobody(tiny_cache, monkeypatch):
    monkeypatch.delenv(data.ENV_MIRRORS, raising=False)
    monkeypatch.setattr(doctor, "_probe", lambda url: pytest.fail(f"asked {url}"))
    findings = [f for f in doctor.check_sources() if f.topic in ("mirrors", "sources")]
    assert findings[0].message.startswith("no campus mirror (GAN_COURSE_MIRRORS is not set)")
    assert any(f.message == "tiny/tiny.bin: from http://127.0.0.1:9/tiny.bin" for f in findings)


def test_a_mirror_setting_that_is_not_a_web_address_is_an_error(tiny_cache, monkeypatch, capsys):
    monkeypatch.delenv(data.ENV_OFFLINE, raising=False)  # CI runs offline: this fetch must be tried
    monkeypatch.setenv(data.ENV_MIRRORS, "/srv/gan-data")
    (finding,) = doctor.check_sources()
    assert finding.level == doctor.ERROR
    assert finding.message == "GAN_COURSE_MIRRORS holds '/srv/gan-data', not an http(s) address"
    file = data.DATASETS["tiny"].files[0]
    with pytest.raises(data.DataUnavailable, match=r"/srv/gan-data/tiny/tiny.bin: Invalid URL"):
        data.fetch("tiny", file, progress=False, retries=1, timeout=1)
