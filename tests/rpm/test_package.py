"""The RPMs as built from this checkout: rpmlint clean, the layout of the description, scriptlets, dependencies.

Builds the RPMs itself (tests/rpm/build.py caches them per source state), as CI does from a fresh clone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.rpm.build import REPO, build, missing_tools, project_version, public_key

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


FINDING = re.compile(r"^\S+: ([EW]): \S+.*$", re.M)


@pytest.fixture(scope="module")
def keyed_home(rpms: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME whose ~/.rpmmacros points rpm at a private database holding the build's public key."""
    home = tmp_path_factory.mktemp("rpmhome")
    (home / ".rpmmacros").write_text(f"%_dbpath {home / 'rpmdb'}\n")
    env = {**os.environ, "HOME": str(home)}
    subprocess.run(["rpm", "--initdb"], env=env, check=True, timeout=60)
    subprocess.run(["rpm", "--import", str(public_key(rpms))], env=env, check=True, timeout=60)
    return home


def rpmlint(rpms: dict[str, Path], home: Path, config: Path) -> str:
    result = subprocess.run(
        ["rpmlint", "-c", str(config), str(rpms["common"]), str(rpms["code"])],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HOME": str(home)},
    )
    assert re.search(r"\d+ errors, \d+ warnings", result.stdout), result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_packages_are_signed_with_the_key_written_beside_them(rpms: dict[str, Path], keyed_home: Path) -> None:
    for rpm in (rpms["common"], rpms["code"]):
        checked = subprocess.run(
            ["rpm", "-Kv", str(rpm)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "HOME": str(keyed_home)},
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert re.search(r"Header V4 RSA/SHA\d+ Signature, key ID \w+: OK", checked.stdout), checked.stdout


def test_rpmlint_reports_no_errors_and_no_unfiltered_warnings(rpms: dict[str, Path], keyed_home: Path) -> None:
    out = rpmlint(rpms, keyed_home, REPO / "rpm/rpmlint.toml")
    assert re.search(r" 0 errors, 0 warnings", out), out[-5000:]


def test_rpmlint_settings_leave_no_error_and_filters_match_only_warnings(
    rpms: dict[str, Path], keyed_home: Path, tmp_path: Path
) -> None:
    """Without its Filters the config still yields 0 errors: no filter hides one, and none could match an error."""
    config = tomllib.loads((REPO / "rpm/rpmlint.toml").read_text())
    filters = [re.compile(pattern) for pattern in config.pop("Filters")]
    # settings only; nothing that re-grades a finding (Scoring can turn an error into a warning)
    assert set(config) == {"SystemLibPaths"}, set(config)
    assert all(path.endswith("/") and path.startswith("/app/redsys/lib") for path in config["SystemLibPaths"])
    settings = tmp_path / "settings.toml"
    settings.write_text("".join(f"{key} = {value!r}\n" for key, value in config.items()).replace("'", '"'))
    out = rpmlint(rpms, keyed_home, settings)
    findings = [m.group(0) for m in FINDING.finditer(out)]
    errors = [line for line in findings if ": E: " in line]
    assert errors == [], "\n".join(errors[:50])
    assert re.search(r" 0 errors, \d+ warnings", out), out[-3000:]
    for line in findings:
        assert any(f.search(line) for f in filters), f"warning no filter names: {line}"
        as_error = line.replace(": W: ", ": E: ", 1)
        assert not any(f.search(as_error) for f in filters), f"a filter would hide this as an error: {as_error}"
    unused = [f.pattern for f in filters if not any(f.search(line) for line in findings)]
    assert unused == [], f"filters that match nothing (drop them): {unused}"


def test_common_package_holds_the_tree_units_snippets_and_launchers(rpms: dict[str, Path]) -> None:
    files = listing(rpms["common"])
    assert files["/app/redsys"] == ("0755", "root", "root")
    assert files["/app/redsys/bin"] == ("0755", "root", "root")
    # env/, etc/, log/, tmp/ (redsys's alone) come from the tmpfiles.d file applied in %post, not from the payload
    assert not {f"/app/redsys/{folder}" for folder in ("env", "etc", "log", "tmp")} & set(files)
    assert files["/usr/lib/tmpfiles.d/redpss.conf"] == ("0644", "root", "root")
    entries = [line.split() for line in (REPO / "rpm/redpss.tmpfiles").read_text().splitlines() if line[:1] == "d"]
    assert entries == [
        ["d", f"/app/redsys/{folder}", "0750", "redsys", "redftp", "-"] for folder in ("env", "etc", "log", "tmp")
    ]
    assert "systemd-tmpfiles --create /usr/lib/tmpfiles.d/redpss.conf" in query(rpms["common"], "--scripts")
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
    # the sudo rules ship readable and %post installs them 0440 (tests/system/test_rpm.py); all else is readable
    for rule in ("redpss-redftp", "redpss-units"):
        assert files[f"/usr/share/redpss/sudoers.d/{rule}"] == ("0644", "root", "root")
        assert (REPO / "etc/sudoers.d" / rule).read_bytes() == extracted(
            rpms["common"], f"/usr/share/redpss/sudoers.d/{rule}"
        )
    assert not any(path.startswith("/etc/sudoers.d/") for path in files)
    for path in ("/etc/polkit-1/rules.d/50-redpss.rules", "/etc/profile.d/redpss.sh"):
        assert path in files
    assert files["/etc/ssh/sshd_config.d/redpss-redftp.conf"] == ("0644", "root", "root")
    assert all(int(mode, 8) & 0o444 == 0o444 for mode, _, _ in files.values()), "every file readable by all"
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
        # console scripts: /bin/sh execs the venv's python on them (rpm/shebang.py)
        head = (scratch / VENV.lstrip("/") / "bin/redctl").read_text().splitlines()[:3]
        assert head == ["#!/bin/sh", "'''exec' " + f'{VENV}/bin/python "$0" "$@"', "' '''"]
        for script in (scratch / VENV.lstrip("/") / "bin").iterdir():
            if script.is_file() and not script.is_symlink() and script.read_bytes()[:2] == b"#!":
                assert script.read_bytes().startswith(b"#!/bin/sh\n"), script.name
        assert f"{VENV}" in (scratch / VENV.lstrip("/") / "pyvenv.cfg").read_text()
    finally:
        shutil.rmtree(scratch)


def extracted(rpm: Path, path: str) -> bytes:
    with subprocess.Popen(["rpm2cpio", str(rpm)], stdout=subprocess.PIPE) as rpm2cpio:
        return subprocess.run(
            ["cpio", "-i", "--quiet", "--to-stdout", "." + path], stdin=rpm2cpio.stdout, capture_output=True, check=True
        ).stdout


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
