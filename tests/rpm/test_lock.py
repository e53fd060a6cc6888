"""The RPM wheel lock covers the runtime dependencies: a new dependency fails here, fast, not in rpmbuild."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.version import Version

from tests.rpm.build import REPO

TARGET = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux", "extra": ""}


def locked() -> dict[str, Version]:
    pins = {}
    for name in ("wheels.lock", "sdists.lock"):
        for line in (REPO / "rpm" / name).read_text().splitlines():
            found = re.match(r"([A-Za-z0-9_.-]+)==(\S+) --hash=sha256:[0-9a-f]{64}$", line)
            if found:
                pins[re.sub(r"[-_.]+", "-", found[1]).lower()] = Version(found[2])
            else:
                assert line.startswith("#") or not line.strip(), (
                    f"rpm/{name}: not name==version --hash=sha256:…: {line}"
                )
    return pins


def test_every_runtime_dependency_is_locked_at_a_version_it_accepts() -> None:
    pins = locked()
    wrong = []
    for text in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate(TARGET):
            continue
        pin = pins.get(re.sub(r"[-_.]+", "-", req.name).lower())
        if pin is None or pin not in req.specifier:
            wrong.append(f"{req} (locked: {pin or 'missing'})")
    assert not wrong, (
        f"rpm/wheels.lock does not match pyproject.toml: {wrong}; refresh it: .venv/bin/python rpm/lock.py"
    )


def test_build_tools_are_locked() -> None:
    assert {"pip", "setuptools", "wheel"} <= set(locked())
