"""The RED-PSS RPMs of this checkout, built once per source state and cached for the tests that need them.

`bash rpm/build` does the work (wheelhouse from the pinned lock, offline rpmbuild); the RPMs are kept in
~/.cache/redpss-rpm/dist/<key>/ where the key is a hash of the files the build reads, the version and the release,
so a second test run of the same tree, and every test of one run, reuse them. REDPSS_RPM_REUSE=1 takes the newest
cached build of a version-release whatever the tree (for iterating on the tests only).
On this Debian machine the venv is
built on /usr/bin/python3.11: the booted test container (Debian bookworm) has the same interpreter at that path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("REDPSS_RPM_CACHE", "~/.cache/redpss-rpm")).expanduser()
PYTHON = "/usr/bin/python3.11"
# Folders of the checkout nothing in the RPMs comes from: editing them keeps the cached RPMs.
NOT_INSTALLED = ("tests/", "bench/", ".ci/")


# rpm/build signs each build with a throw-away key of its own and writes its public key beside the RPMs.
SIGNING_KEY = "RPM-GPG-KEY-redpss"
KEEP_BUILDS = 6  # about 100 MB each: the newest few source states stay cached


def _prune(keep: int) -> None:
    """Drop all but the newest `keep` finished builds (a build in progress elsewhere is in a .new folder)."""
    finished = [p for p in (CACHE / "dist").iterdir() if ".new" not in p.name]
    builds = sorted(finished, key=lambda p: p.stat().st_mtime, reverse=True)
    for old in builds[keep:]:
        shutil.rmtree(old, ignore_errors=True)


class BuildError(RuntimeError):
    """rpm/build failed."""


def missing_tools() -> str | None:
    """None when the RPMs can be built here, else why not (for pytest.skip)."""
    for tool in ("rpmbuild", "rpmsign", "gpg", "rpmlint", "git"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (bash scripts/setup with REDPSS_SETUP_SYSTEM_TOOLS=1 installs it)"
    if not Path(PYTHON).is_file():
        return f"no {PYTHON} to build the virtualenv on"
    return None


def source_key(version: str, release: int) -> str:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    digest = hashlib.sha256(f"{version}-{release}".encode())
    for name in sorted(listed):
        path = REPO / name
        if path.is_file() and not name.startswith(NOT_INSTALLED):
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def project_version() -> str:
    for line in (REPO / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise BuildError("no version in pyproject.toml")


def public_key(rpms: dict[str, Path]) -> Path:
    """The public key the RPMs of one build are signed with (rpm/build writes it beside them)."""
    return rpms["common"].parent / SIGNING_KEY


def build(version: str | None = None, release: int = 1) -> dict[str, Path]:
    """The built RPMs of this tree: {'common': redpss-common-*.rpm, 'code': redpss<series>-*.rpm}."""
    version = version or project_version()
    if os.environ.get("REDPSS_RPM_REUSE") == "1":  # iterating on tests: the newest build of that version-release
        built = sorted(
            CACHE.glob(f"dist/*/redpss-common-{version}-{release}.noarch.rpm"), key=lambda p: p.stat().st_mtime
        )
        if built:
            common = built[-1]
            return {"common": common, "code": next(common.parent.glob(f"redpss[0-9]*-{version}-{release}.*.rpm"))}
    out = CACHE / "dist" / source_key(version, release)
    rpms = sorted(out.glob("*.rpm")) if out.is_dir() else []
    if len(rpms) != 2 or not (out / SIGNING_KEY).is_file():
        shutil.rmtree(out, ignore_errors=True)
        tmp = out.with_name(out.name + f".new{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        argv = ["bash", str(REPO / "rpm/build"), "--python", PYTHON, "--version", version]
        argv += ["--release", str(release), "--outdir", str(tmp)]
        result = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=1800)
        if result.returncode != 0:
            raise BuildError(f"rpm/build exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        tmp.rename(out)
        rpms = sorted(out.glob("*.rpm"))
        _prune(keep=KEEP_BUILDS)
    common = next(p for p in rpms if p.name.startswith("redpss-common-"))
    code = next(p for p in rpms if not p.name.startswith("redpss-common-"))
    return {"common": common, "code": code}
