"""deploy/requirements.lock pins what the image installs: every runtime dependency of
pyproject.toml and everything they need, each to one version with its files' hashes, and none of
the `dev` and `local` extras; the Dockerfile installs exactly that."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from dataclasses import dataclass

import deploy_files
import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = deploy_files.DEPLOY / "requirements.lock"
PYPROJECT = tomllib.loads((deploy_files.REPO / "pyproject.toml").read_text())
RUNTIME = [Requirement(text) for text in PYPROJECT["project"]["dependencies"]]
BUILD = [Requirement(text) for text in PYPROJECT["build-system"]["requires"]]
# The image's interpreter and platform (deploy/Dockerfile: python:3.11-slim, Linux).
IMAGE_ENVIRONMENT = {
    **default_environment(),
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
}
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str
    hashes: int


def pins() -> dict[str, Pin]:
    """The lock's requirements by canonical name; each must be `name==version` with hashes."""
    text = re.sub(r"\\\n", " ", LOCK.read_text())
    found = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        requirement_text, *options = line.split(" --")
        requirement = Requirement(requirement_text)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{requirement} is not pinned to one version"
        hashes = [option for option in options if HASH.fullmatch("--" + option.strip())]
        name = canonicalize_name(requirement.name)
        found[name] = Pin(name, specifier.version, len(hashes))
    return found


def _requires(requirement: Requirement, extras: set[str]) -> list[Requirement]:
    """What the installed distribution of `requirement` needs with `extras`, in the image."""
    needed = []
    for text in importlib.metadata.requires(requirement.name) or []:
        dependency = Requirement(text)
        marker = dependency.marker
        applies = marker is None or any(
            marker.evaluate({**IMAGE_ENVIRONMENT, "extra": extra}) for extra in extras | {""}
        )
        if applies:
            needed.append(dependency)
    return needed


def closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution `requirements` need in the image, themselves included, as installed
    in the test environment (the lock may pin other versions, with the same names)."""
    seen: set[str] = set()
    pending = list(requirements)
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        extras = {canonicalize_name(extra) for extra in requirement.extras}
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen.add(key)
        pending.extend(_requires(requirement, extras))
    return {key.split("[")[0] for key in seen}


def test_every_requirement_of_the_lock_is_pinned_with_hashes() -> None:
    locked = pins()

    assert locked
    assert all(pin.hashes for pin in locked.values()), [p for p in locked.values() if not p.hashes]


@pytest.mark.parametrize("requirement", RUNTIME + BUILD, ids=str)
def test_every_runtime_and_build_dependency_is_locked_within_its_range(
    requirement: Requirement,
) -> None:
    pin = pins().get(canonicalize_name(requirement.name))

    assert pin is not None, (
        f"{requirement} of pyproject.toml is not in the lock: run deploy/lock.sh"
    )
    assert requirement.specifier.contains(pin.version, prereleases=True), (
        f"the lock pins {pin.name}=={pin.version}, outside {requirement}: run deploy/lock.sh"
    )


def test_what_the_runtime_dependencies_need_is_locked_too() -> None:
    missing = closure(RUNTIME) - set(pins())

    assert not missing, f"needed in the image but not locked: {sorted(missing)}: run deploy/lock.sh"


def test_no_extra_of_the_project_reaches_the_image() -> None:
    runtime = closure(RUNTIME) | closure(BUILD)
    extras = {
        canonicalize_name(Requirement(text).name)
        for group in PYPROJECT["project"]["optional-dependencies"].values()
        for text in group
    }

    assert not (extras - runtime) & set(pins()), "a dev or local package is in the lock"


def test_the_image_installs_the_lock_alone_and_checks_it() -> None:
    runs = [" ".join(run.split()) for run in deploy_files.run_instructions()]
    ignored = (deploy_files.DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()

    locked = [run for run in runs if "requirements.lock" in run]
    (project,) = [run for run in runs if re.search(r"pip install [^&]* \.( |$)", run)]
    assert len(locked) == 1 and "--require-hashes" in locked[0], locked
    assert "--no-deps" in project and "--no-build-isolation" in project, project
    assert "pip check" in project, project
    assert "!deploy/requirements.lock" in ignored, "the lock is not in the build context"
    assert runs.index(locked[0]) < runs.index(project)
