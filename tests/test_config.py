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


# Settings in the table that are not amounts of work: they need not grow with the profile.
NOT_SIZES = {"dcgan_learning_rate", "biggan_g_learning_rate"}  # a laptop's short budget takes a larger step


def test_every_size_has_three_values_and_grows_with_the_profile():
    for key, values in config.SIZES.items():
        assert len(values) == 3, key
        if key in NOT_SIZES:
            continue
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


# ----------------------------------------------------------------------------- GAN_COURSE_STEPS_SCALE
@pytest.mark.parametrize("text, expected", [(None, 1.0), ("", 1.0), ("  ", 1.0), ("1", 1.0), ("0.5", 0.5),
                                            (" 0.01 ", 0.01), ("1e-3", 0.001)])
def test_steps_scale_reads_a_number_in_zero_one(monkeypatch, text, expected):
    if text is None:
        monkeypatch.delenv(config.ENV_STEPS_SCALE, raising=False)
    else:
        monkeypatch.setenv(config.ENV_STEPS_SCALE, text)
    assert config.steps_scale() == expected


@pytest.mark.parametrize("text", ["0", "-0.5", "1.5", "2", "abc", "nan", "inf", "1/2", "0,5"])
def test_a_bad_steps_scale_is_a_one_line_error_that_says_what_to_set(monkeypatch, text):
    monkeypatch.setenv(config.ENV_STEPS_SCALE, text)
    monkeypatch.setenv(config.ENV_PROFILE, "gpu")
    with pytest.raises(ValueError) as caught:
        config.profile()
    message = str(caught.value)
    assert "\n" not in message and repr(text) in message
    assert f"export {config.ENV_STEPS_SCALE}=0.01" in message and "(0, 1]" in message
    assert config.ENV_STEPS_SCALE in caught.value.fix


def test_doctor_names_the_steps_scale_to_fix(monkeypatch):
    from gan_course import doctor

    monkeypatch.setenv(config.ENV_PROFILE, "gpu")
    monkeypatch.setenv(config.ENV_STEPS_SCALE, "0")
    (finding,) = doctor.check_profile()
    assert finding.level == doctor.ERROR and config.ENV_STEPS_SCALE in finding.fix
    assert config.ENV_PROFILE not in finding.fix


def test_the_precision_is_auto_unless_set(monkeypatch):
    monkeypatch.delenv(config.ENV_PRECISION, raising=False)
    assert config.precision_setting() == "auto"
    for policy in config.PRECISIONS:
        monkeypatch.setenv(config.ENV_PRECISION, f" {policy} ")
        assert config.precision_setting() == policy


@pytest.mark.parametrize("text", ["bf16", "float16", "FLOAT32", "mixed"])
def test_a_bad_precision_is_a_one_line_error_that_says_what_to_set(monkeypatch, text):
    monkeypatch.setenv(config.ENV_PRECISION, text)
    with pytest.raises(ValueError) as caught:
        config.precision_setting()
    message = str(caught.value)
    assert "\n" not in message and repr(text) in message
    assert f"export {config.ENV_PRECISION}=auto|float32|mixed_bfloat16|mixed_float16" == caught.value.fix.split(" (")[0]


def test_the_precision_set_chooses_for_the_labs_but_not_over_an_explicit_policy(monkeypatch):
    from gan_course import train

    monkeypatch.setenv(config.ENV_PRECISION, "float32")
    with train.precision() as policy:
        assert policy == "float32" == train.keras.mixed_precision.global_policy().name
    with train.precision("mixed_bfloat16") as policy:
        assert policy == "mixed_bfloat16" == train.keras.mixed_precision.global_policy().name
    monkeypatch.setenv(config.ENV_PRECISION, "mixed_bfloat16")
    with train.precision() as policy:
        assert policy == "mixed_bfloat16"
    monkeypatch.delenv(config.ENV_PRECISION)
    with train.precision() as policy:
        assert policy == train.auto_precision()
    assert train.keras.mixed_precision.global_policy().name == "float32"


def test_doctor_says_which_precision_the_labs_get_and_why(monkeypatch):
    from gan_course import doctor, train

    monkeypatch.setenv(config.ENV_PRECISION, "half")
    (finding,) = doctor.check_precision()
    assert finding.level == doctor.ERROR and finding.fix.startswith(f"export {config.ENV_PRECISION}=auto|")
    monkeypatch.setenv(config.ENV_PRECISION, "float32")
    (finding,) = doctor.check_precision()
    assert finding.level == doctor.OK and finding.message == f"float32 (set by {config.ENV_PRECISION})"
    monkeypatch.delenv(config.ENV_PRECISION)
    (finding,) = doctor.check_precision()
    assert finding.level == doctor.OK and finding.message.startswith(train.auto_precision() + ": ")
    assert finding.message.endswith(doctor.PRECISION_REASONS[train.auto_precision()])


def test_every_size_counted_in_steps_is_classified():
    """A new size named like a step count must say whether the scale shortens it."""
    stepwise = {key for key in config.SIZES if key.endswith(("_steps", "_every", "_epochs", "_head_start"))}
    known = set(config.SCALED_STEPS) | set(config.SCALED_WITH) | set(config.NOT_STEPS)
    assert stepwise <= known, f"say how GAN_COURSE_STEPS_SCALE treats: {sorted(stepwise - known)}"
    assert known <= set(config.SIZES), sorted(known - set(config.SIZES))
    assert set(config.SCALED_WITH.values()) <= set(config.SCALED_STEPS)
    assert not set(config.NOT_STEPS) & (set(config.SCALED_STEPS) | set(config.SCALED_WITH))


def _sizes(monkeypatch, name, scale):
    monkeypatch.setenv(config.ENV_PROFILE, name)
    if scale is None:
        monkeypatch.delenv(config.ENV_STEPS_SCALE, raising=False)
    else:
        monkeypatch.setenv(config.ENV_STEPS_SCALE, str(scale))
    return config.profile()


@pytest.mark.parametrize("name", config.PROFILES)
@pytest.mark.parametrize("scale", [0.5, 0.01, 1e-6])
def test_the_scale_shortens_steps_and_nothing_else(monkeypatch, name, scale):
    full, short = _sizes(monkeypatch, name, None), _sizes(monkeypatch, name, scale)
    assert short.steps_scale == scale and short.scaled and not full.scaled
    scaled_keys = set(config.SCALED_STEPS) | set(config.SCALED_WITH)
    for key in config.SIZES:
        if key not in scaled_keys:  # networks, image counts, metric samples, interpolation points
            assert short.sizes[key] == full.sizes[key], key
    for key, floor in config.SCALED_STEPS.items():
        value = short.sizes[key]
        assert isinstance(value, int) and value <= full.sizes[key], key
        assert value >= min(floor, full.sizes[key]), key
        assert abs(value - full.sizes[key] * scale) <= 0.5 or value == min(floor, full.sizes[key]), key
    for key, parent in config.SCALED_WITH.items():
        # sampling, evaluation and the critic's head start still happen, within the shortened run
        assert 1 <= short.sizes[key] <= short.sizes[parent], key
        assert short.sizes[key] <= full.sizes[key], key


def test_the_gpu_profile_at_one_percent(monkeypatch):
    full, p = _sizes(monkeypatch, "gpu", None), _sizes(monkeypatch, "gpu", 0.01)
    for key in ("dcgan_steps", "infogan_steps", "acgan_steps", "compare_steps", "folder_steps"):
        assert p.sizes[key] == round(full.sizes[key] / 100) >= 2, key
    # lab 03 samples and evaluates as often per run as the full profile does
    assert p.dcgan_steps // p.dcgan_sample_every == full.dcgan_steps // full.dcgan_sample_every
    assert p.dcgan_steps // p.dcgan_eval_every == full.dcgan_steps // full.dcgan_eval_every
    assert p.metrics_classifier_epochs == max(1, round(full.metrics_classifier_epochs / 100))
    assert p.dcgan_g_filters == full.dcgan_g_filters and p.metrics_samples == full.metrics_samples
    assert p.compare_datasets == full.compare_datasets and p.faces_images == full.faces_images
    tiny = _sizes(monkeypatch, "gpu", 1e-9)
    assert tiny.dcgan_steps == 2 and tiny.dcgan_steps // 2 == 1  # lab 03 trains half, then resumes
    assert tiny.metrics_classifier_epochs == 1 and tiny.dcgan_eval_every == 1


def test_a_scaled_run_says_so_and_keeps_its_own_folder(monkeypatch, tmp_path, capsys):
    from gan_course import i18n

    monkeypatch.setenv("GAN_COURSE_OUT", str(tmp_path))
    monkeypatch.setenv(i18n.ENV_LANG, "en")
    p = _sizes(monkeypatch, "gpu", 0.01)
    config.setup(seed=0)
    line = capsys.readouterr().out
    assert "profile gpu" in line and "steps x0.01" in line and "GAN_COURSE_STEPS_SCALE" in line
    assert config.output_dir("03") == tmp_path / "03" / "gpu-steps0.01"
    monkeypatch.setenv(i18n.ENV_LANG, "zh")
    assert "x0.01" in str(p) and "GAN_COURSE_STEPS_SCALE" in str(p) and "缩短" in str(p)
    monkeypatch.setenv(i18n.ENV_LANG, "en")
    full = _sizes(monkeypatch, "gpu", 1)
    assert "steps x" not in str(full) and config.output_dir("03") == tmp_path / "03" / "gpu"


def test_doctor_shows_scaled_steps(monkeypatch):
    from gan_course import doctor

    monkeypatch.setenv(config.ENV_PROFILE, "gpu")
    monkeypatch.setenv(config.ENV_STEPS_SCALE, "0.05")
    (finding,) = doctor.check_profile()
    assert finding.level == doctor.OK and "steps x0.05" in finding.message
    monkeypatch.delenv(config.ENV_STEPS_SCALE)
    (finding,) = doctor.check_profile()
    assert "steps x" not in finding.message
