"""`gan-course doctor`: is this machine ready for the labs, and if not, what to do.

One line per finding, each `ok`, `warn` or `ERROR`; an error comes with the command
or setting that fixes it, and makes the command exit non-zero.  An error is something
that stops a lab (TensorFlow missing, a cache the labs cannot write to, a dataset file
that fails its checksum); a warning is something a lab works around (a dataset not yet
downloaded: the lab fetches it on first use, or runs on a labelled stand-in offline).
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gan_course.i18n import N_, _

OK, WARN, ERROR = "ok", "warn", "ERROR"


@dataclass(frozen=True)
class Finding:
    level: str  # OK, WARN or ERROR
    topic: str
    message: str
    fix: str = ""


def _pinned(distribution: str) -> str | None:
    """The version specifier gan-course declares for `distribution` (from its metadata), if any."""
    try:
        from packaging.requirements import Requirement

        requirements = importlib.metadata.requires("gan-course") or []
    except (ImportError, importlib.metadata.PackageNotFoundError):
        return None
    for line in requirements:
        requirement = Requirement(line)
        if requirement.name.lower() == distribution:
            return str(requirement.specifier)
    return None


def _version_ok(version: str, specifier: str | None) -> bool:
    if not specifier:
        return True
    try:
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version
    except ImportError:  # pragma: no cover - packaging comes with pip and Jupyter
        return True
    return Version(version) in SpecifierSet(specifier)


INSTALL_TF = N_("pip install -e '.[cpu]' (or '.[gpu]' on an NVIDIA machine) from the course folder")


# ----------------------------------------------------------------------------- checks
def check_python() -> list[Finding]:
    return [Finding(OK, "python", f"Python {platform.python_version()} ({sys.executable})")]


def check_frameworks() -> list[Finding]:
    """TensorFlow and Keras importable, at the versions the course is tested with."""
    findings = []
    try:
        import tensorflow as tf
    except ImportError as err:
        return [Finding(ERROR, "tensorflow", _("TensorFlow cannot be imported ({error})").format(error=err), _(INSTALL_TF))]
    tf_pin = _pinned("tensorflow-cpu") or _pinned("tensorflow")
    if _version_ok(tf.__version__, tf_pin):
        findings.append(Finding(OK, "tensorflow", f"TensorFlow {tf.__version__}"))
    else:
        findings.append(Finding(WARN, "tensorflow", _("TensorFlow {version}; the course is tested with {pin}").format(
            version=tf.__version__, pin=tf_pin), _(INSTALL_TF)))
    try:
        import keras
    except ImportError as err:
        findings.append(Finding(ERROR, "keras", _("Keras cannot be imported ({error})").format(error=err),
                                "pip install 'keras>=3.15,<3.16'"))
        return findings
    keras_pin = _pinned("keras")
    if not keras.__version__.startswith("3."):
        findings.append(Finding(ERROR, "keras", _("Keras {version}: the labs need Keras 3").format(version=keras.__version__),
                                f"pip install 'keras{keras_pin or '>=3.15'}'"))
    elif _version_ok(keras.__version__, keras_pin):
        findings.append(Finding(OK, "keras", _("Keras {version} (backend {backend})").format(
            version=keras.__version__, backend=keras.backend.backend())))
    else:
        findings.append(Finding(WARN, "keras", _("Keras {version}; the course is tested with {pin}").format(
            version=keras.__version__, pin=keras_pin),
                                f"pip install 'keras{keras_pin}'"))
    return findings


def _nvidia_smi() -> list[str]:
    """`name, used MiB, total MiB` per GPU as the driver sees it (empty without a driver)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.used,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def check_gpus() -> list[Finding]:
    """The GPUs TensorFlow sees, with memory growth turned on as every lab does."""
    try:
        import tensorflow as tf
    except ImportError:
        return []  # already reported by check_frameworks
    from gan_course.config import enable_memory_growth

    gpus = tf.config.list_physical_devices("GPU")
    driver = _nvidia_smi()
    if not gpus:
        if driver:
            return [Finding(WARN, "gpu", _("the driver sees {n} GPU(s) ({name}) but TensorFlow sees none: it is the "
                                           "CPU build").format(n=len(driver), name=driver[0].split(",")[0]),
                            _("pip install -e '.[gpu]' (tensorflow[and-cuda]) after `pip uninstall tensorflow-cpu`"))]
        return [Finding(OK, "gpu", _("no GPU: the labs run on the CPU (profile cpu, or smoke)"))]
    enable_memory_growth()
    findings = []
    for i, gpu in enumerate(gpus):
        details = tf.config.experimental.get_device_details(gpu)
        name = details.get("device_name", gpu.name)
        memory = ""
        if i < len(driver):
            parts = [p.strip() for p in driver[i].split(",")]
            if len(parts) == 3:
                memory = _(", {used:.1f} of {total:.1f} GiB in use").format(
                    used=int(parts[1]) / 1024, total=int(parts[2]) / 1024)
        growth = tf.config.experimental.get_memory_growth(gpu)
        if growth:
            findings.append(Finding(OK, "gpu", _("{device}: {name}{memory}, memory growth on").format(
                device=gpu.name, name=name, memory=memory)))
        else:
            findings.append(Finding(WARN, "gpu", _("{device}: {name}{memory}, memory growth OFF: one kernel takes all "
                                                   "the GPU memory").format(device=gpu.name, name=name, memory=memory),
                                    _("start each lab with gc.setup(), or export TF_FORCE_GPU_ALLOW_GROWTH=true")))
    return findings


def check_profile() -> list[Finding]:
    from gan_course.config import ENV_PROFILE, ENV_STEPS_SCALE, PROFILES, profile

    try:
        p = profile()
    except ValueError as err:  # a bad GAN_COURSE_STEPS_SCALE says what to set (`fix`), a bad profile name here
        return [Finding(ERROR, "profile", str(err), getattr(err, "fix", None) or _(
            "export {variable}={choices} (or unset it)").format(variable=ENV_PROFILE, choices="|".join(PROFILES)))]
    except ImportError:  # choosing automatically needs TensorFlow, already reported
        return [Finding(WARN, "profile", _("cannot choose a profile without TensorFlow"))]
    standin = _("stand-in data allowed") if p.allow_standin else _("real data only")
    message = _("{name} ({reason}; {standin})").format(name=p.name, reason=_(p.reason), standin=standin)
    if p.scaled:  # GAN_COURSE_STEPS_SCALE: say so, as gc.setup() does
        message += ", " + _("steps x{scale:g} (set by {variable}): a shortened run, not the profile's quality").format(
            scale=p.steps_scale, variable=ENV_STEPS_SCALE)
    return [Finding(OK, "profile", message)]


PRECISION_REASONS = {
    "mixed_bfloat16": N_("this CPU has bfloat16 instructions (AVX512_BF16 or AMX), so labs 03, 05 and 06 "
                         "build their GANs in bfloat16"),
    "mixed_float16": N_("the GPU has tensor cores, so labs 03, 05 and 06 build their GANs in float16"),
    "float32": N_("no bfloat16 instructions on this CPU (or no tensor cores on the GPU), so labs 03, 05 and 06 "
                  "train in float32 and take longer (the README's time table)"),
}


def check_precision() -> list[Finding]:
    """The arithmetic `train.precision()` picks for the labs' GANs here, and why."""
    from gan_course.config import ENV_PRECISION, precision_setting

    try:
        chosen = precision_setting()
    except ValueError as err:
        return [Finding(ERROR, "precision", str(err), err.fix)]
    if chosen != "auto":
        return [Finding(OK, "precision", _("{policy} (set by {variable})").format(policy=chosen,
                                                                                 variable=ENV_PRECISION))]
    try:
        from gan_course.train import auto_precision
    except ImportError:  # TensorFlow missing, already reported
        return [Finding(WARN, "precision", _("cannot choose a precision without TensorFlow"))]
    policy = auto_precision()
    return [Finding(OK, "precision", _("{policy}: {reason}").format(policy=policy,
                                                                     reason=_(PRECISION_REASONS[policy])))]


def writable(folder: Path) -> str | None:
    """None if a file can be created in `folder` (made if missing), else why not.

    Tried for real rather than read from the permission bits: root ignores them, and a
    read-only mount or a quota says no only when a file is written.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".doctor-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        return err.strerror or str(err)
    return None


def check_cache() -> list[Finding]:
    from gan_course import data

    cache = data.cache_dir()
    reason = writable(cache)
    if reason is None:
        return [Finding(OK, "cache", _("{folder} is writable").format(folder=cache))]
    return [Finding(ERROR, "cache", _("the data cache {folder} is not writable ({reason})").format(folder=cache, reason=reason),
                    _("export {variable}=<a folder you can write to>, e.g. {variable}=$HOME/gan_course_data").format(
                        variable=data.ENV_DATA))]


def check_datasets() -> list[Finding]:
    from gan_course import data

    findings = []
    for name, dataset in data.DATASETS.items():
        missing, corrupted = [], []
        if dataset.fallback and data.is_cached(name) and not all(
                data.verify(data.dataset_dir(name) / f.name, f) for f in dataset.files):
            findings.append(Finding(OK, name, _("present as {files}, checksums verified ({folder})").format(
                files=", ".join(f.name for f in dataset.fallback), folder=data.dataset_dir(name))))
            continue
        for file in dataset.files:
            path = data.dataset_dir(name) / file.name
            if not path.is_file():
                missing.append(file)
            elif not data.verify(path, file):
                corrupted.append(path)
        fetch = f"gan-course download {name}"
        if corrupted:
            findings.append(Finding(
                ERROR, name, _("{files} in {folder} fails its checksum").format(
                    files=", ".join(p.name for p in corrupted), folder=data.dataset_dir(name)),
                _("{command} (it replaces a damaged file with a fresh copy)").format(command=fetch)))
        elif missing:
            local = all(any(Path(p).is_file() for p, _checksum in f.local) for f in missing)
            where = _("from this machine's copy, no network needed") if local else _("needs the network")
            standin = _("; offline, labs use a labelled stand-in ({description})").format(
                description=_(data.STANDINS[dataset.standin[0]][0])) \
                if dataset.standin and dataset.standin[0] in data.STANDINS else ""
            findings.append(Finding(WARN, name, _("not downloaded yet{standin}").format(standin=standin),
                                    _("{command} ({where})").format(command=fetch, where=where)))
        else:
            findings.append(Finding(OK, name, _("present, checksums verified ({folder})").format(
                folder=data.dataset_dir(name))))
    return findings


def _probe(url: str, timeout: float = 3.0) -> tuple[bool, str]:
    """Whether a mirror serves `url` (a HEAD request, redirects followed), and what it answered."""
    import requests

    try:
        r = requests.head(url, timeout=(timeout, timeout), allow_redirects=True)
    except requests.RequestException as err:
        from gan_course.data import _reason

        return False, _reason(err)
    if r.status_code != 200:
        return False, f"HTTP {r.status_code}"
    if "text/html" in r.headers.get("Content-Type", ""):
        return False, _("an HTML page")
    size = r.headers.get("Content-Length")
    return True, f"{int(size) / 1e6:.1f} MB" if size and size.isdigit() else "HTTP 200"


def check_sources() -> list[Finding]:
    """Where each file would come from: the cache, this machine's copy, a campus mirror (asked), or the public source.

    Only the campus mirrors are asked (a HEAD request each, a few seconds at most): the
    public sources are named, not contacted, so the doctor stays quick offline.
    """
    from gan_course import data

    bases = data.mirrors()
    wrong = [base for base in bases if not base.lower().startswith(("http://", "https://"))]
    if wrong:
        return [Finding(ERROR, "mirrors", _("{variable} holds {values}, not an http(s) address").format(
            variable=data.ENV_MIRRORS, values=", ".join(map(repr, wrong))),
            _("export {variable}=http://<server>:<port> (the folder `gan-course mirror` laid out, served by a web "
              "server)").format(variable=data.ENV_MIRRORS))]
    if bases:
        findings = [Finding(OK, "mirrors", _("{variable}: {mirrors} (tried before the public sources)").format(
            variable=data.ENV_MIRRORS, mirrors=", ".join(bases)))]
    else:
        findings = [Finding(OK, "mirrors", _("no campus mirror ({variable} is not set): files come from the public "
                                             "sources below").format(variable=data.ENV_MIRRORS))]
    for dataset, file in data.mirror_entries():
        name = f"{dataset}/{file.name}"
        ds = data.DATASETS.get(dataset)
        if ds is not None and file in ds.fallback:
            name += _(" (fallback for {files})").format(files=", ".join(f.name for f in ds.files))
        if data.verify(data.dataset_dir(dataset) / file.name, file):
            findings.append(Finding(OK, "sources", _("{name}: in the cache").format(name=name)))
            continue
        local = next((path for path, _checksum in file.local if Path(path).is_file()), None)
        if local:
            findings.append(Finding(OK, "sources", _("{name}: from this machine's copy {path}").format(name=name, path=local)))
            continue
        answers = []
        for base in bases:
            url = data.mirror_url(base, dataset, file)
            served, answer = _probe(url)
            if served:
                findings.append(Finding(OK, "sources", _("{name}: from {url} (campus mirror, {answer})").format(
                    name=name, url=url, answer=answer)))
                break
            answers.append(f"{url}: {answer}")
        else:
            public = file.urls[0] if file.urls else _("nowhere")
            if bases:
                findings.append(Finding(WARN, "sources", _("{name}: no campus mirror has it ({answers}); it would come "
                                                           "from {url}").format(name=name, answers="; ".join(answers),
                                                                                 url=public),
                                        _("gan-course download {dataset}, then gan-course mirror DIR on the mirror").format(
                                            dataset=dataset)))
            else:
                findings.append(Finding(OK, "sources", _("{name}: from {url}").format(name=name, url=public) +
                                        (_(" (then {n} more)").format(n=len(file.urls) - 1) if len(file.urls) > 1 else "")))
    return findings


def check_widgets() -> list[Finding]:
    try:
        import ipywidgets
    except ImportError:
        return [Finding(WARN, "widgets", _("ipywidgets is missing: the sliders will not appear"), "pip install ipywidgets")]
    try:
        widgets_lab = importlib.metadata.version("jupyterlab_widgets")
    except importlib.metadata.PackageNotFoundError:
        return [Finding(WARN, "widgets", _("ipywidgets {version} without its JupyterLab extension").format(
            version=ipywidgets.__version__),
                        "pip install jupyterlab_widgets")]
    return [Finding(OK, "widgets", _("ipywidgets {version}, JupyterLab extension {extension}").format(
        version=ipywidgets.__version__, extension=widgets_lab))]


def check_hub_cache() -> list[Finding]:
    folder = os.environ.get("TFHUB_CACHE_DIR")
    if not folder:
        return []
    modules = [p for p in Path(folder).glob("*") if p.is_dir()] if Path(folder).is_dir() else []
    return [Finding(OK, "tfhub", _("TF Hub cache {folder} ({n} module(s))").format(folder=folder, n=len(modules)))]


def check_cjk_font() -> list[Finding]:
    from gan_course.plotting import cjk_font_report

    found, message, fix = cjk_font_report()
    return [Finding(OK if found else WARN, "cjk font", message, fix)]


def check_grading_sandbox() -> list[Finding]:
    """Where the course's solutions are (an instructor's clone or image): can `gan-course grade` sandbox?"""
    from gan_course.grader.read import course_root

    root = course_root()
    if not (root / "solutions").is_dir():
        return []  # a student's environment: nothing is graded here
    from gan_course.grader import run

    usable, why = run.sandbox_status([], [str(root / "solutions")], dict(os.environ))
    if usable:
        return [Finding(OK, "grading", "bubblewrap sandbox usable: `gan-course grade` runs each exercise in it")]
    return [Finding(WARN, "grading", f"no sandbox for `gan-course grade` ({why}): it would grade with process "
                    "isolation only", "install bubblewrap on a Linux host (apt-get install bubblewrap)")]


CHECKS = (check_python, check_frameworks, check_gpus, check_profile, check_precision, check_cache, check_datasets,
          check_sources, check_widgets, check_hub_cache, check_cjk_font, check_grading_sandbox)


def run_checks() -> list[Finding]:
    findings = []
    for check in CHECKS:
        findings.extend(check())
    return findings


def report(findings: list[Finding], out=None) -> int:
    """Print the findings; return the exit status (1 when any is an error)."""
    out = out or sys.stdout
    print(_("GAN Lab doctor"), file=out)
    for f in findings:
        print(f"  {f.level:<5}  {f.topic:<13} {f.message}", file=out)
        if f.fix and f.level != OK:
            print(f"  {'':<5}  {'':<13} " + _("fix: {fix}").format(fix=f.fix), file=out)
    errors = sum(f.level == ERROR for f in findings)
    warnings = sum(f.level == WARN for f in findings)
    if errors:
        print(_("{n} problem(s) stop the labs: apply the fixes above, then run `gan-course doctor` again.").format(
            n=errors), file=out)
    else:
        print(_("Ready for the labs ({n} warning(s)).").format(n=warnings), file=out)
    return 1 if errors else 0


def main() -> int:
    return report(run_checks())
