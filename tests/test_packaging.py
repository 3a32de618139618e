"""environment.yml and pyproject.toml describe the same installation."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    name = re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0]
    return name.lower().replace("_", "-")


def pyproject_names() -> set:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    reqs = project["dependencies"] + extras["cpu"] + extras["dev"]
    return {_name(r) for r in reqs}


def environment_names() -> set:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {_name(r) for r in dep["pip"] if not r.startswith("-")}
        else:
            names.add(_name(dep.replace("=", "==", 1) if "=" in dep and "==" not in dep and ">" not in dep and "<" not in dep else dep))
    return names - {"python", "pip"}


def test_environment_matches_pyproject():
    assert environment_names() == pyproject_names(), (
        f"only in environment.yml: {sorted(environment_names() - pyproject_names())}; "
        f"only in pyproject.toml: {sorted(pyproject_names() - environment_names())}"
    )


def test_tensorflow_pins_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    cpu_pin = project["optional-dependencies"]["cpu"][0]
    env_text = (ROOT / "environment.yml").read_text()
    assert cpu_pin in env_text
    gpu_pin = project["optional-dependencies"]["gpu"][0]
    assert gpu_pin.split("==")[1] == cpu_pin.split("==")[1]


def test_python_version_within_supported_range():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    minor = int(python.split("=")[1].split(".")[1])
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    low, high = re.findall(r"3\.(\d+)", requires)
    assert int(low) <= minor < int(high)
