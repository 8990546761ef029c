"""The lock file is the single source of installed versions: it must satisfy pyproject.toml."""

import re
import sys
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent


def _pins(python: str) -> dict[str, str]:
    """name -> version of the lock's pins that apply on CPython `python` on Linux."""
    env = dict(default_environment(), python_version=python, python_full_version=f"{python}.0", sys_platform="linux")
    pins = {}
    for line in (REPO / "requirements" / "lock.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == "==", f"not a pin: {line}"
        if req.marker is None or req.marker.evaluate(env):
            pins[_norm(req.name)] = next(iter(req.specifier)).version
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_every_declared_dependency_is_pinned_within_its_range_on_each_supported_python():
    for python in ("3.11", "3.12", "3.13"):
        pins = _pins(python)
        for req in _declared():
            name = _norm(req.name)
            assert name in pins, f"{req.name} is in pyproject.toml but not in the lock (run 'make lock')"
            assert req.specifier.contains(pins[name], prereleases=True), (
                f"lock pins {req.name}=={pins[name]}, outside pyproject's {req.specifier} (run 'make lock')"
            )


def test_the_stack_is_the_one_this_project_is_defined_by():
    pins = _pins(f"{sys.version_info[0]}.{sys.version_info[1]}")
    assert pins["tfx"] == "1.21.0"
    for name, prefix in {
        "tensorflow": "2.21.", "tensorflow-transform": "1.21.", "tensorflow-model-analysis": "0.52.",
        "tensorflow-data-validation": "1.21.", "ml-metadata": "1.21.", "tf-keras": "2.21.",
    }.items():
        assert pins[name].startswith(prefix), (name, pins[name])
    assert "tensorboard" in pins and "apache-beam" in pins


def test_installed_versions_match_the_lock():
    from importlib.metadata import version

    pins = _pins(f"{sys.version_info[0]}.{sys.version_info[1]}")
    for name in ("tfx", "tensorflow", "apache-beam", "ml-metadata", "tf-keras", "protobuf", "numpy"):
        assert version(name) == pins[name], name
