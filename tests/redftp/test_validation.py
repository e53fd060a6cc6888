"""Validation of sFTP user names and keys, UID choice, sshd path rules and the input-folder helper (no root)."""

from __future__ import annotations

import base64
import io
import os
import subprocess
from contextlib import redirect_stderr
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from redpss.cli import redftp_useradd, redftp_userdel
from redpss.core.paths import InstancePaths, create_instance_tree
from redpss.redftp.accounts import pick_uid
from redpss.redftp.errors import RedftpError, RedftpUsageError
from redpss.redftp.inputs import iter_input_folders, watched_input_folders
from redpss.redftp.keys import parse_public_key
from redpss.redftp.layout import RedftpLayout, unsafe_for_sshd
from redpss.redftp.names import SftpUserName, parse_system_name, sftp_user_name

OPENSSH = serialization.Encoding.OpenSSH


def public_line(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.public_key().public_bytes(OPENSSH, serialization.PublicFormat.OpenSSH).decode()


def private_text(key: ed25519.Ed25519PrivateKey) -> str:
    pem, fmt = serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH
    return key.private_bytes(pem, fmt, serialization.NoEncryption()).decode()


# --- names -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instance", "user", "system"),
    [
        ("tst1", "alice", "redftp_tst1_alice"),
        ("DEV1", "sap_export-2", "redftp_dev1_sap_export-2"),
        ("TST1", "redftp_tst1_alice", "redftp_tst1_alice"),
        ("abcdefgh", "a" * 16, "redftp_abcdefgh_" + "a" * 16),
    ],
)
def test_valid_names_give_the_system_user_name(instance: str, user: str, system: str) -> None:
    name = sftp_user_name(instance, user)
    assert name.system == system
    assert len(name.system) <= 32
    assert parse_system_name(system) == name


@pytest.mark.parametrize(
    ("instance", "user", "says"),
    [
        ("TST1", "../x", "'../x' is not a valid sFTP user name: use lower-case letters"),
        ("TST1", "Alice", "has upper-case letters; user names are lower case: use 'alice'"),
        ("TST1", "al ice", "is not a valid sFTP user name"),
        ("TST1", "1abc", "is not a valid sFTP user name"),
        ("TST1", "", "no sFTP user name given"),
        ("TST1", "a" * 21, "33 characters long"),
        ("abcdefgh", "a" * 17, "a user of ABCDEFGH may have at most 16 characters"),
        ("TST1", "redftp_dev1_alice", "is a user of instance DEV1, not of TST1"),
        ("TST1", "redftp_tst1", "is not an sFTP user name"),
        ("tst-1", "alice", "instance name 'tst-1' is not valid"),
        ("", "alice", "no instance given"),
    ],
)
def test_invalid_names_say_what_is_wrong(instance: str, user: str, says: str) -> None:
    with pytest.raises(RedftpUsageError) as caught:
        sftp_user_name(instance, user)
    assert says in str(caught.value)
    assert caught.value.exit_code == 2


def test_too_long_names_report_the_whole_system_name() -> None:
    with pytest.raises(RedftpUsageError) as caught:
        sftp_user_name("TST1", "a" * 21)
    assert "redftp_tst1_" + "a" * 21 in str(caught.value)
    assert "Linux allows at most 32" in str(caught.value)
    assert sftp_user_name("TST1", "a" * 20).system == "redftp_tst1_" + "a" * 20  # exactly 32


@pytest.mark.parametrize("system", ["redsys", "redftp_", "redftp_tst1", "redftp_TST1_alice", "redftp_tst-1_x"])
def test_foreign_account_names_are_not_sftp_users(system: str) -> None:
    assert parse_system_name(system) is None


# --- keys ------------------------------------------------------------------------------------------------------


def test_supported_public_keys_are_accepted_and_rewritten_with_restrict() -> None:
    keys: list[ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey] = [
        ed25519.Ed25519PrivateKey.generate(),
        rsa.generate_private_key(65537, 2048),
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP521R1()),
    ]
    for private in keys:
        line = public_line(private)
        parsed = parse_public_key(f"# a comment line\n{line} alice@laptop\n\n")
        assert parsed.authorized_keys_line() == f"restrict {line} alice@laptop\n"


def test_comment_is_reduced_to_harmless_characters() -> None:
    line = public_line(ed25519.Ed25519PrivateKey.generate())
    assert parse_public_key(f'{line} a"b\\c \x07d').comment == "abc d"


@pytest.mark.parametrize(
    ("make_text", "says"),
    [
        (lambda: private_text(ed25519.Ed25519PrivateKey.generate()), "is a PRIVATE key"),
        (lambda: "", "is empty"),
        (lambda: "hello world\n", "is not an OpenSSH public key line"),
        (lambda: "ssh-ed25519\n", "looks truncated"),
        (lambda: "ssh-ed25519 AAAA!!notbase64", "key data is damaged"),
        (lambda: public_line(ed25519.Ed25519PrivateKey.generate())[:40], "key data is damaged"),
        (lambda: 'from="10.0.0.1" ' + public_line(ed25519.Ed25519PrivateKey.generate()), "starts with options"),
        (lambda: public_line(ed25519.Ed25519PrivateKey.generate()) * 2, "damaged"),
        (lambda: "\n".join([public_line(ed25519.Ed25519PrivateKey.generate())] * 2), "holds 2 lines"),
        (
            lambda: "ssh-rsa " + public_line(ed25519.Ed25519PrivateKey.generate()).split()[1],
            "the line says ssh-rsa but the key data is ssh-ed25519",
        ),
        (lambda: public_line(rsa.generate_private_key(65537, 1024)), "1024-bit RSA key"),  # noqa: S505
        (lambda: "ssh-dss " + base64.b64encode(b"\0\0\0\x07ssh-dss").decode(), "must start with one of"),
        (lambda: "-----BEGIN PUBLIC KEY-----\nMCow\n-----END PUBLIC KEY-----\n", "ssh-keygen -i -m PKCS8"),
        (lambda: "x" * 20000, "characters long"),
    ],
)
def test_bad_keys_are_refused_with_the_reason(make_text: object, says: str) -> None:
    assert callable(make_text)
    with pytest.raises(RedftpUsageError) as caught:
        parse_public_key(make_text(), "key file k.pub")
    assert says in str(caught.value)
    assert str(caught.value).startswith("key file k.pub")


# --- UIDs --------------------------------------------------------------------------------------------------------


def test_first_free_uid_in_the_range_is_chosen() -> None:
    assert pick_uid([("root", 0), ("redsys", 1000)]) == 1200
    assert pick_uid([("redftp_tst1_a", 1200), ("redftp_tst1_b", 1202), ("x", 1300)]) == 1201


def test_a_full_range_names_the_accounts_that_do_not_belong_there() -> None:
    accounts = [(f"redftp_tst1_u{uid}", uid) for uid in range(1200, 1299)] + [("legacyapp", 1299)]
    with pytest.raises(RedftpError) as caught:
        pick_uid(accounts)
    message = str(caught.value)
    assert "UID range 1200-1299 is full: all 100 UIDs are in use" in message
    assert "legacyapp (1299)" in message
    assert "redftp_userdel" in message
    assert caught.value.exit_code == 1


# --- layout and sshd's rules -------------------------------------------------------------------------------------


def test_layout_follows_the_description() -> None:
    layout = RedftpLayout()
    name = SftpUserName("TST1", "alice")
    assert layout.chroot(name) == Path("/app/redftp/env/tst1/alice")
    assert layout.upload(name) == Path("/app/redftp/env/tst1/alice/upload")
    assert layout.key_file(name) == Path("/app/redftp/etc/authorized_keys/redftp_tst1_alice")


def test_sshd_path_rules_name_the_offending_folder(tmp_path: Path) -> None:
    assert unsafe_for_sshd(Path("/usr/bin")) is None
    assert "does not exist" in (unsafe_for_sshd(Path("/no/such/folder")) or "")
    assert unsafe_for_sshd(tmp_path) == "/tmp is writable by group or others (fix: chmod go-w /tmp)"


# --- data/input ---------------------------------------------------------------------------------------------------


def test_input_folders_are_data_input_and_its_linked_user_folders(tmp_path: Path) -> None:
    paths = InstancePaths.for_instance("TST1", tmp_path / "redsys")
    assert iter_input_folders(paths) == []
    create_instance_tree(paths)
    uploads = {name: tmp_path / "redftp" / name / "upload" for name in ("bob", "alice")}
    for name, upload in uploads.items():
        upload.mkdir(parents=True)
        (paths.data_input / name).symlink_to(upload)
    (paths.data_input / "plain.csv").write_text("a,b\n")
    (paths.data_input / "subdir").mkdir()
    (paths.data_input / "dangling").symlink_to(tmp_path / "gone")
    (paths.data_input / "to-file").symlink_to(paths.data_input / "plain.csv")
    folders = iter_input_folders(paths)
    assert folders == [paths.data_input, paths.data_input / "alice", paths.data_input / "bob"]
    assert folders[1].resolve() == uploads["alice"]


def test_watched_folders_are_the_input_folders_and_the_real_folders_below_them(tmp_path: Path) -> None:
    paths = InstancePaths.for_instance("TST1", tmp_path / "redsys")
    create_instance_tree(paths)
    upload = tmp_path / "redftp" / "alice" / "upload"
    (upload / "2026" / "11").mkdir(parents=True)
    (upload / ".tool-work").mkdir()
    (upload / "elsewhere").symlink_to(tmp_path / "redftp")  # not followed below a user's folder
    (paths.data_input / "alice").symlink_to(upload)
    (paths.data_input / "orders" / "eu").mkdir(parents=True)
    deep = paths.data_input / "a" / "b" / "c"
    deep.mkdir(parents=True)
    assert watched_input_folders(paths) == [
        paths.data_input,
        paths.data_input / "a",
        paths.data_input / "a" / "b",
        paths.data_input / "a" / "b" / "c",
        paths.data_input / "orders",
        paths.data_input / "orders" / "eu",
        paths.data_input / "alice",
        paths.data_input / "alice" / "2026",
        paths.data_input / "alice" / "2026" / "11",
    ]
    assert watched_input_folders(paths, depth=2)[:3] == [paths.data_input, paths.data_input / "a", deep.parent]


# --- the commands' argument errors ------------------------------------------------------------------------------------


def run_cli(main: object, argv: list[str]) -> tuple[int, str]:
    assert callable(main)
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def test_commands_report_bad_arguments_with_exit_code_2(tmp_path: Path) -> None:
    key_file = tmp_path / "id.pub"
    key_file.write_text(private_text(ed25519.Ed25519PrivateKey.generate()))
    code, err = run_cli(redftp_useradd.main, ["TST1", "../x", "--key", str(key_file)])
    assert code == 2
    assert err.startswith("redftp_useradd: '../x' is not a valid sFTP user name")
    code, err = run_cli(redftp_useradd.main, ["TST1", "alice", "--key", str(key_file)])
    assert code == 2
    assert "is a PRIVATE key" in err
    code, err = run_cli(redftp_useradd.main, ["TST1", "alice", "--key", str(tmp_path / "missing.pub")])
    assert code == 2
    assert "missing.pub does not exist" in err
    code, err = run_cli(redftp_useradd.main, ["TST1", "alice"])
    assert code == 2
    assert "--key" in err
    code, err = run_cli(redftp_userdel.main, ["BAD-1", "alice"])
    assert code == 2
    assert "instance name 'BAD-1' is not valid" in err
    code, err = run_cli(redftp_userdel.main, ["TST1", "redftp_dev1_alice"])
    assert code == 2
    assert "is a user of instance DEV1, not of TST1" in err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_without_root_and_without_sudo_rule_the_command_says_so(tmp_path: Path) -> None:
    """Run as an unprivileged user: the command re-runs through sudo -n, and says what to install if it cannot."""
    key_file = tmp_path / "id.pub"
    key_line = public_line(ed25519.Ed25519PrivateKey.generate())
    key_file.write_text(key_line)
    script = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "redftp_useradd"
    if not script.exists():
        pytest.skip(f"{script} is not installed (pip install -e .)")
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", str(script), "TST1", "alice"]
    env = {"PATH": "/usr/sbin:/usr/bin", "LANG": "C.UTF-8"}
    # The key is read with the caller's rights, before any sudo: a file nobody may not read is a usage error.
    done = subprocess.run(
        [*as_nobody, "--key", str(key_file)], capture_output=True, text=True, check=False, env=env, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert f"cannot read key file {key_file}: Permission denied" in done.stderr
    done = subprocess.run(
        [*as_nobody, "--key", "-"], input=key_line, capture_output=True, text=True, check=False, env=env, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("redftp_useradd: redftp_useradd must run as root")
    assert "sudo" in done.stderr
