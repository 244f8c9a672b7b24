"""A PEP 517 build backend for the ``pantheon-verify`` wheel, in the standard library alone.

Why not setuptools: the wheel ships ``proof/``, which lives beside this directory, not
under it, and an auditor should be able to build it offline from a copy of the
repository with nothing but Python. A wheel is a zip of the package files plus four
metadata files (PEP 427, PEP 566, the entry-points format); that is all this writes.
Everything it says about the distribution comes from ``pyproject.toml`` here.

The wheel is reproducible: files in sorted order with a fixed timestamp, so two builds
of one tree are byte-identical.
"""

from __future__ import annotations

import base64
import hashlib
import tomllib
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
"""Earliest time a zip entry can carry: fixed, so the wheel does not depend on file dates."""


class BuildError(Exception):
    """The tree cannot be packaged: a package directory is missing or has no module."""


def _project() -> dict:
    return tomllib.loads((HERE / "pyproject.toml").read_text())


def _dist_name(name: str) -> str:
    return name.replace("-", "_")


def _metadata(project: dict) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project['description']}",
        f"Requires-Python: {project['requires-python']}",
        f"License: {project['license']}",
    ]
    lines += [f"Requires-Dist: {requirement}" for requirement in project.get("dependencies", [])]
    return "\n".join(lines) + "\n"


def _entry_points(project: dict) -> str:
    scripts = project.get("scripts", {})
    return "[console_scripts]\n" + "".join(f"{name} = {target}\n" for name, target in sorted(scripts.items()))


def _package_files(packages: list[str]) -> list[tuple[str, bytes]]:
    files = []
    for package in packages:
        directory = ROOT / package
        modules = sorted(directory.rglob("*.py"))
        if not modules:
            raise BuildError(f"package {package!r}: no modules under {directory}")
        files += [(path.relative_to(ROOT).as_posix(), path.read_bytes()) for path in modules]
    return files


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(wheel_directory: str, config_settings: dict | None = None, metadata_directory: str | None = None) -> str:
    """Write ``pantheon_verify-VERSION-py3-none-any.whl`` into ``wheel_directory``; return its name."""
    pyproject = _project()
    project = pyproject["project"]
    dist = f"{_dist_name(project['name'])}-{project['version']}"
    info = f"{dist}.dist-info"
    files = _package_files(pyproject["tool"]["pantheon-verify"]["packages"])
    files += [
        (f"{info}/METADATA", _metadata(project).encode()),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: pantheon-verify backend\nRoot-Is-Purelib: true\n"
                          b"Tag: py3-none-any\n"),
        (f"{info}/entry_points.txt", _entry_points(project).encode()),
    ]
    record = "".join(_record_line(name, data) + "\n" for name, data in files) + f"{info}/RECORD,,\n"
    files.append((f"{info}/RECORD", record.encode()))
    wheel_name = f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(Path(wheel_directory) / wheel_name, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files:
            entry = zipfile.ZipInfo(name, ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            wheel.writestr(entry, data)
    return wheel_name


def get_requires_for_build_wheel(config_settings: dict | None = None) -> list[str]:
    """Nothing: the backend is the standard library."""
    return []
