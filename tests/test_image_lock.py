"""The image's lock files (requirements/, written by .ci/lock) agree with pyproject.toml and the Dockerfile.

The image build installs from these files in pip's hash-checking mode, so a dependency added to
pyproject.toml without `bash .ci/lock` would break the image build; these tests say so before it runs.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
IMAGE_LOCK = ROOT / "requirements" / "image.txt"
BUILD_LOCK = ROOT / "requirements" / "build.txt"


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _runtime_extras() -> set[str]:
    return set(_pyproject()["project"].get("optional-dependencies", {})) - {"test"}


def _lock(path: Path) -> dict[str, tuple[Version, list[str]]]:
    """name -> (pinned version, sha256 hashes) from a `--generate-hashes` requirements file."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pins: dict[str, tuple[Version, list[str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *rest = line.split(" --hash=")
        req = Requirement(spec.strip())
        (pin,) = list(req.specifier)
        assert pin.operator == "==", f"{path.name}: {spec} is not pinned with =="
        hashes = [h.strip() for h in rest]
        pins[canonicalize_name(req.name)] = (Version(pin.version), hashes)
    return pins


def _requirements(specs: list[str]) -> list[Requirement]:
    reqs = [Requirement(s) for s in specs]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"python_version": "3.11"})]


def test_every_runtime_dependency_is_pinned_within_pyproject_range():
    project = _pyproject()["project"]
    wanted = list(project["dependencies"])
    for extra in sorted(_runtime_extras()):
        wanted += project["optional-dependencies"][extra]
    pins = _lock(IMAGE_LOCK)
    for req in _requirements(wanted):
        name = canonicalize_name(req.name)
        if name == "ssdns":
            continue
        assert name in pins, (
            f"{req.name} is in pyproject.toml but not in {IMAGE_LOCK.name}: run bash .ci/lock"
        )
        version = pins[name][0]
        assert req.specifier.contains(version, prereleases=True), (
            f"{IMAGE_LOCK.name} pins {req.name}=={version}, outside pyproject.toml's {req}: run bash .ci/lock"
        )


def test_build_backend_is_pinned_within_build_system_requires():
    pins = _lock(BUILD_LOCK)
    for req in _requirements(_pyproject()["build-system"]["requires"]):
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} (build-system.requires) is not in {BUILD_LOCK.name}"
        assert req.specifier.contains(pins[name][0], prereleases=True), (req, pins[name][0])


def test_every_pin_carries_sha256_hashes_and_no_index():
    for path in (IMAGE_LOCK, BUILD_LOCK):
        pins = _lock(path)
        assert pins, f"{path.name} pins nothing"
        for name, (_, hashes) in pins.items():
            assert hashes, f"{path.name}: {name} has no --hash"
            assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), (name, hashes)
        text = path.read_text()
        assert "://" not in text, (
            f"{path.name} names a URL: a lock names packages, never where they came from"
        )
        assert not re.search(
            r"^\s*(-i|-f|--index-url|--extra-index-url|--find-links)", text, re.MULTILINE
        )


def test_dockerfile_installs_from_the_locks_in_hash_checking_mode():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install --require-hashes -r requirements/build\.txt", text)
    assert re.search(r"pip wheel --require-hashes -r requirements/image\.txt", text)
    assert re.search(r"--no-build-isolation", text), (
        "ssdns's wheel must be built with the locked backend"
    )
    assert "!requirements/" in (ROOT / ".dockerignore").read_text(), (
        "the locks must reach the build context"
    )


def test_lock_resolves_the_extras_the_image_installs():
    extras = set(re.findall(r"--extra (\w+)", (ROOT / ".ci" / "lock").read_text()))
    assert extras == _runtime_extras()
