"""The RPMs as built from this checkout: rpmlint clean, the layout of the description, scriptlets, dependencies.

Builds the RPMs itself (tests/rpm/build.py caches them per source state), as CI does from a fresh clone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.rpm.build import REPO, build, missing_tools, project_version

# The first test builds the RPMs (cached per source state) and rpmlint reads 100 MB of payload.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
SERIES = ".".join(project_version().split(".")[:2])
VENV = f"/app/redsys/lib/{SERIES}"


@pytest.fixture(scope="module")
def rpms() -> dict[str, Path]:
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    return build()


def query(rpm: Path, *args: str) -> str:
    return subprocess.run(["rpm", "-qp", *args, str(rpm)], check=True, capture_output=True, text=True).stdout


def listing(rpm: Path) -> dict[str, tuple[str, str, str]]:
    """path -> (mode, user, group) from rpm -qp --dump."""
    found = {}
    for line in query(rpm, "--dump").splitlines():
        parts = line.split()
        found[parts[0]] = (parts[4][-4:], parts[5], parts[6])
    return found


def test_rpmlint_reports_no_errors_and_no_unfiltered_warnings(rpms: dict[str, Path]) -> None:
    result = subprocess.run(
        ["rpmlint", "-c", str(REPO / "rpm/rpmlint.toml"), str(rpms["common"]), str(rpms["code"])],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = re.search(r"(\d+) errors, (\d+) warnings", result.stdout)
    assert summary, result.stdout[-3000:]
    assert summary.groups() == ("0", "0"), result.stdout[-5000:]


def test_common_package_holds_the_tree_units_snippets_and_launchers(rpms: dict[str, Path]) -> None:
    files = listing(rpms["common"])
    assert files["/app/redsys"] == ("0755", "root", "root")
    assert files["/app/redsys/bin"] == ("0755", "root", "root")
    for folder in ("env", "etc", "log", "tmp"):
        assert files[f"/app/redsys/{folder}"] == ("0750", "redsys", "redftp"), folder
    for prog in ("redsysctl", "redctl", "restctl", "redinfo", "redftp_useradd", "redftp_userdel"):
        assert f"/app/redsys/bin/{prog}" in files
    assert files["/app/redsys/bin/redpss-launch"] == ("0755", "root", "root")
    units = {f"/usr/lib/systemd/system/{unit.name}" for unit in (REPO / "units").iterdir()}
    assert units <= set(files), units - set(files)
    # where the units' Documentation= points
    assert "/app/redsys/doc/operations.md" in files
    for unit in (REPO / "units").iterdir():
        for doc in re.findall(r"^Documentation=file://(\S+)", unit.read_text(), re.M):
            assert doc in files, f"{unit.name} points at {doc}, which the RPM does not install"
    assert files["/etc/sudoers.d/redpss-redftp"] == ("0440", "root", "root")
    assert files["/etc/sudoers.d/redpss-units"] == ("0440", "root", "root")
    for path in ("/etc/polkit-1/rules.d/50-redpss.rules", "/etc/profile.d/redpss.sh"):
        assert path in files
    flags: dict[str, str] = {}
    for line in query(rpms["common"], "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]").splitlines():
        flag, path = line.split(" ", 1)
        flags[path] = flag
    etc = {path for path in files if path.startswith("/etc/")}
    assert {path: flags[path] for path in etc} == dict.fromkeys(etc, "cn")  # %config(noreplace)


def test_code_package_is_one_root_owned_venv_under_its_series(rpms: dict[str, Path]) -> None:
    files = listing(rpms["code"])
    assert all(path == "/app/redsys/lib" or path.startswith(VENV) for path in files)
    assert {(user, group) for _, user, group in files.values()} == {("root", "root")}  # sudo needs root-owned code
    for prog in ("redctl", "redsysctl", "redpss-jmon", "redpss-devdb", "redftp_useradd"):
        assert f"{VENV}/bin/{prog}" in files
    assert any(p.endswith(".pyc") and "/redpss/" in p for p in files)


def test_no_buildroot_path_and_no_automatic_dependencies_on_bundled_libraries(rpms: dict[str, Path]) -> None:
    requires = query(rpms["code"], "--requires")
    provides = query(rpms["code"], "--provides")
    assert ".so" not in requires and ".so" not in provides, (requires, provides)
    assert "python(abi)" not in requires
    scratch = Path(subprocess.run(["mktemp", "-d"], check=True, capture_output=True, text=True).stdout.strip())
    try:
        with subprocess.Popen(["rpm2cpio", str(rpms["code"])], stdout=subprocess.PIPE) as rpm2cpio:
            subprocess.run(["cpio", "-idm", "--quiet"], stdin=rpm2cpio.stdout, cwd=scratch, check=True)
        found = subprocess.run(
            ["grep", "-rlI", "BUILDROOT\\|redpss-rpmbuild", str(scratch)], check=False, capture_output=True
        )
        assert found.stdout == b"", found.stdout[:2000]
        shebang = (scratch / VENV.lstrip("/") / "bin/redctl").read_text().splitlines()[0]
        assert shebang == f"#!{VENV}/bin/python"
        assert f"{VENV}" in (scratch / VENV.lstrip("/") / "pyvenv.cfg").read_text()
    finally:
        shutil.rmtree(scratch)


def test_scriptlets_are_posix_sh(rpms: dict[str, Path]) -> None:
    dash = shutil.which("dash") or pytest.skip("no dash to check POSIX sh with")
    for rpm in rpms.values():
        text = query(rpm, "--scripts")
        scripts = re.split(r"^\S+ scriptlet \(using (\S+)\):\n", text, flags=re.M)
        assert len(scripts) > 1, text
        for interpreter, body in zip(scripts[1::2], scripts[2::2], strict=True):
            assert interpreter == "/bin/sh"
            checked = subprocess.run([dash, "-n"], input=body, capture_output=True, text=True, check=False)
            assert checked.returncode == 0, f"{rpm.name}: {checked.stderr}\n{body}"
