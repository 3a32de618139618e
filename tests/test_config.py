"""Profiles: chosen from the environment, every size defined for every profile."""
import pytest

from gan_course import config


def test_env_selects_profile(monkeypatch):
    for name in config.PROFILES:
        monkeypatch.setenv(config.ENV_PROFILE, name)
        assert config.profile().name == name


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(config.ENV_PROFILE, "fast")
    with pytest.raises(ValueError, match="use one of smoke, cpu, gpu"):
        config.profile()


def test_auto_profile_without_gpu_is_cpu(monkeypatch):
    monkeypatch.delenv(config.ENV_PROFILE, raising=False)
    monkeypatch.setattr(config, "_gpu_present", lambda: False)
    assert config.profile().name == "cpu"
    monkeypatch.setattr(config, "_gpu_present", lambda: True)
    assert config.profile().name == "gpu"


def test_every_size_has_three_values_and_grows_with_the_profile():
    for key, values in config.SIZES.items():
        assert len(values) == 3, key
        numbers = [v for v in values if isinstance(v, (int, float))]  # None means "all of it"
        assert numbers == sorted(numbers), f"{key}: smoke <= cpu <= gpu expected, got {values}"


def test_unknown_size_names_the_known_ones(monkeypatch):
    monkeypatch.setenv(config.ENV_PROFILE, "smoke")
    with pytest.raises(AttributeError, match="known sizes"):
        config.profile().no_such_size


def test_standin_policy(monkeypatch):
    monkeypatch.delenv("GAN_COURSE_ALLOW_STANDIN", raising=False)
    for name, allowed in config.STANDIN_ALLOWED.items():
        monkeypatch.setenv(config.ENV_PROFILE, name)
        assert config.profile().allow_standin is allowed
    monkeypatch.setenv(config.ENV_PROFILE, "gpu")
    monkeypatch.setenv("GAN_COURSE_ALLOW_STANDIN", "1")
    assert config.profile().allow_standin is True


def test_setup_prints_profile_and_seeds(monkeypatch, capsys):
    import numpy as np

    monkeypatch.setenv(config.ENV_PROFILE, "smoke")
    p = config.setup(seed=3)
    a = np.random.rand()
    config.setup(seed=3, quiet=True)
    assert np.random.rand() == a
    assert p.name == "smoke" and "profile smoke" in capsys.readouterr().out


def test_each_profile_writes_to_its_own_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("GAN_COURSE_OUT", str(tmp_path))
    folders = {}
    for name in ("smoke", "cpu"):
        monkeypatch.setenv("GAN_COURSE_PROFILE", name)
        folders[name] = config.output_dir("05")
    assert folders["smoke"] == tmp_path / "05" / "smoke" and folders["cpu"] == tmp_path / "05" / "cpu"
    assert all(folder.is_dir() for folder in folders.values())
