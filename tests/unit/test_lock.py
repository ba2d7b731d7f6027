"""One resolution for every install: the development venv, the tests and the Lambda layer take the same versions.

`requirements/lock.txt` pins every range of pyproject.toml (all extras, Python 3.11 to 3.13); the layer's
`shared/requirements.txt`, which `sam build` installs, pins the layer's own requirements at the lock's versions for
Lambda (Linux, Python 3.13). Before the lock, the layer resolved on its own and deployed a pydantic the tests
never ran. `make lock` rewrites both files; these tests fail until it has.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = canonicalize_name(PYPROJECT["project"]["name"])

LAMBDA = {
    **default_environment(),
    "python_version": "3.13",
    "python_full_version": "3.13.0",
    "platform_machine": "aarch64",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
"""What Lambda's python3.13 on arm64 reports, for the markers of the lock."""


def pins(path: Path) -> list[tuple[str, str, str]]:
    """(name, version, marker) of each `name==version ; marker` line of a file uv wrote."""
    found = []
    for line in path.read_text().splitlines():
        if not line or line[0] in "# ":
            continue
        requirement, _, marker = line.partition(";")
        name, _, version = requirement.partition("==")
        found.append((canonicalize_name(name.split("[")[0].strip()), version.strip(), marker.strip()))
    return found


def locked(environment: dict[str, str]) -> dict[str, str]:
    """The lock's version of each package that installs where `environment` says."""
    chosen: dict[str, str] = {}
    for name, version, marker in pins(ROOT / "requirements" / "lock.txt"):
        if not marker or Marker(marker).evaluate(environment):
            assert chosen.setdefault(name, version) == version, f"{name} locked twice for one environment"
    return chosen


def ranges() -> list[Requirement]:
    """Every requirement pyproject.toml and the layer's requirements.in give, as ranges."""
    listed = [*PYPROJECT["project"]["dependencies"]]
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        listed.extend(extra)
    layer = (ROOT / "shared" / "requirements.in").read_text().splitlines()
    listed.extend(line for line in layer if line and not line.startswith("#"))
    return [requirement for requirement in map(Requirement, listed) if canonicalize_name(requirement.name) != PROJECT]


@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
def test_the_lock_satisfies_every_range_on_every_supported_python(python: str) -> None:
    environment = {**default_environment(), "python_version": python, "python_full_version": f"{python}.0"}
    versions = locked(environment)
    outside = {
        str(requirement): versions.get(canonicalize_name(requirement.name))
        for requirement in ranges()
        if requirement.marker is None or requirement.marker.evaluate(environment)
        if not requirement.specifier.contains(versions.get(canonicalize_name(requirement.name), "0"), prereleases=True)
    }
    assert outside == {}, "run `make lock`"


def test_the_layer_installs_the_lock_s_versions_for_lambda() -> None:
    """shared/requirements.txt pins, for Linux on Python 3.13, exactly the lock's version of everything."""
    versions = locked(LAMBDA)
    layer = pins(ROOT / "shared" / "requirements.txt")
    assert all(not marker for _, _, marker in layer), "the layer is for one platform: no markers"
    assert {name: version for name, version, _ in layer if versions.get(name) != version} == {}, "run `make lock`"
    own = (ROOT / "shared" / "requirements.in").read_text().splitlines()
    wanted = {canonicalize_name(Requirement(line).name) for line in own if line and not line.startswith("#")}
    assert wanted - {name for name, _, _ in layer} == set()


def test_this_environment_runs_the_locked_versions() -> None:
    """The venv the tests run in was installed from the lock (`make setup` passes it as constraints)."""
    versions = locked(dict(default_environment()))
    drifted = {}
    for name, version in versions.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            drifted[name] = (installed, version)
    assert drifted == {}, "(installed, locked): run `make setup` (or `make lock` after changing a dependency)"
