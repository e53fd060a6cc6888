"""sFTP users end to end: the real commands, a real sshd with the shipped snippet, a real SFTP client (paramiko).

How: a scratch root (tests/redftp/scratchroot.py) gives useradd, NSS and sshd their own copy of /etc inside a private
mount namespace, with the host's /usr and this project bind-mounted read-only, so neither the host's sshd nor its
/etc is touched. Inside it the test creates group redftp, a redsys user in that group and the instance trees of TST1
and DEV1 (what the RPM and `redsysctl create` would do), then starts `/usr/sbin/sshd -D -e` on a free 127.0.0.1 port
with a minimal main config that ends with `Include` of etc/sshd_config.d/redpss-redftp.conf. The commands run as
installed (.venv/bin/redftp_useradd) with no test-only options; the client connects from the host over loopback.
Cleanup (sshd stopped, namespace ended, folder deleted) happens in fixture finalisers, also when a test fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from paramiko.sftp import CMD_EXTENDED

from tests.redftp.scratchroot import PROJECT
from tests.redftp.sftpsite import (
    PYTHON,
    USERADD,
    USERDEL,
    Key,
    Session,
    Site,
    ed25519_key,
    module_site,
    put,
    rsa_key,
)

pytestmark = [pytest.mark.slow, pytest.mark.root]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with module_site(tmp_path_factory, "redftp") as running:
        yield running


@pytest.fixture(scope="module")
def users(site: Site) -> dict[str, Key]:
    """alice (ed25519, key on stdin) and bob (RSA, key from a file) of TST1."""
    keys = {"alice": ed25519_key("alice@partner"), "bob": rsa_key("bob@partner")}
    done = site.useradd("alice", keys["alice"])
    assert done.returncode == 0, done.stderr
    assert "added redftp_tst1_alice (UID 1200) for instance TST1" in done.stdout
    # the units that move uploads were started without this tree: they need a restart, and are told so once
    assert "the first sFTP user of TST1" in done.stderr
    assert "systemctl restart redpss-{cfi,json2csv,parq2csv,sched}@TST1.service" in done.stderr
    site.root.path("/tmp/bob.pub").write_text(keys["bob"].public_line)
    done = site.root.run([USERADD, "tst1", "bob", "--key", "/tmp/bob.pub"])
    assert done.returncode == 0, done.stderr
    assert "UID 1201" in done.stdout and "first sFTP user" not in done.stderr
    return keys


def test_useradd_builds_account_jail_key_and_link(site: Site, users: dict[str, Key]) -> None:
    entry = next(
        line for line in site.root.path("/etc/passwd").read_text().splitlines() if line.startswith("redftp_tst1_alice:")
    )
    name, _, uid, gid, comment, home, shell = entry.split(":")
    assert (uid, home) == ("1200", "/app/redftp/env/tst1/alice")
    assert shell in ("/sbin/nologin", "/usr/sbin/nologin")
    assert "sFTP user alice of TST1" in comment
    redftp_gid = next(
        line.split(":")[2]
        for line in site.root.path("/etc/group").read_text().splitlines()
        if line.startswith("redftp:")
    )
    assert gid == redftp_gid
    shadow = next(line for line in site.root.path("/etc/shadow").read_text().splitlines() if line.startswith(name))
    assert shadow.split(":")[1] == "*"
    for inside in (
        "/app/redftp",
        "/app/redftp/env",
        "/app/redftp/env/tst1",
        "/app/redftp/env/tst1/alice",
        "/app/redftp/etc/authorized_keys",
    ):
        info = site.root.path(inside).stat()
        assert info.st_uid == 0, inside
        assert info.st_mode & 0o022 == 0, inside
    upload = site.root.path("/app/redftp/env/tst1/alice/upload").stat()
    assert (upload.st_uid, upload.st_gid, oct(upload.st_mode & 0o7777)) == (1200, int(redftp_gid), "0o2770")
    key_file = site.root.path("/app/redftp/etc/authorized_keys/redftp_tst1_alice")
    assert (key_file.stat().st_uid, oct(key_file.stat().st_mode & 0o777)) == (0, "0o644")
    assert key_file.read_text() == "restrict " + users["alice"].public_line
    link = site.root.path("/app/redsys/env/tst1/data/input/alice")
    assert link.readlink() == Path("/app/redftp/env/tst1/alice/upload")
    assert link.lstat().st_uid == site.uid("redsys")
    # the root-owned link through which the ingest units get exactly this instance's sFTP tree writable
    unit_link = site.root.path("/app/redftp/env/.units/TST1")
    assert unit_link.readlink() == Path("../tst1")
    assert unit_link.lstat().st_uid == 0 and site.root.path("/app/redftp/env/.units").stat().st_uid == 0


def test_key_login_lands_in_upload_and_files_are_readable_by_group(site: Site, users: dict[str, Key]) -> None:
    with Session(site, "redftp_tst1_alice", users["alice"]) as session:
        assert session.sftp.normalize(".") == "/upload"
        put(session, "orders.csv", b"id,amount\n1,9.50\n")
        session.sftp.mkdir("batch")
        put(session, "batch/part1.json", b'{"id": 1}')
    stored = site.root.path("/app/redftp/env/tst1/alice/upload/orders.csv")
    assert stored.read_bytes() == b"id,amount\n1,9.50\n"
    info = stored.stat()
    assert info.st_uid == 1200
    assert oct(info.st_mode & 0o777) == "0o660"  # -u 0007 from the snippet
    # a folder the user makes stays open to group redftp, so that LOAD jobs can move files out of it
    made = site.root.path("/app/redftp/env/tst1/alice/upload/batch").stat()
    assert oct(made.st_mode & 0o7777) == "0o2770"


def test_password_and_wrong_keys_are_refused(site: Site, users: dict[str, Key]) -> None:
    transport = site.transport()
    try:
        with pytest.raises(paramiko.BadAuthenticationType) as caught:
            transport.auth_none("redftp_tst1_alice")
        assert caught.value.allowed_types == ["publickey"]  # although the main config allows passwords
        with pytest.raises(paramiko.BadAuthenticationType):
            transport.auth_password("redftp_tst1_alice", "anything")
        with pytest.raises(paramiko.AuthenticationException):
            transport.auth_publickey("redftp_tst1_alice", users["bob"].private)
    finally:
        transport.close()


def test_exec_and_shell_get_only_sftp(site: Site, users: dict[str, Key]) -> None:
    with Session(site, "redftp_tst1_alice", users["alice"]) as session:
        channel = session.transport.open_session()
        try:
            with pytest.raises(paramiko.SSHException):
                channel.get_pty()
        finally:
            channel.close()
    for request in ("exec", "shell"):
        # A session of its own per request: sshd may end the connection once the refused session has exited.
        with Session(site, "redftp_tst1_alice", users["alice"]) as session:
            channel = session.transport.open_session(timeout=10)
            try:
                channel.settimeout(10)
                if request == "exec":
                    channel.exec_command("echo SHELL-RAN; id")
                else:
                    channel.invoke_shell()
                    _send_unless_closed(channel, b"echo SHELL-RAN\n")
                output = _read_all(channel)
                # sshd's answer to anything but the sftp subsystem when ForceCommand is internal-sftp.
                assert b"This service allows sftp connections only." in output, request
                assert b"SHELL-RAN" not in output
                assert channel.recv_exit_status() != 0
            finally:
                channel.close()


def _send_unless_closed(channel: paramiko.Channel, data: bytes) -> None:
    """Send a command line; sshd may already have refused the shell and closed the channel, which is what we test."""
    try:
        channel.sendall(data)
    except OSError:
        assert channel.closed


def _read_all(channel: paramiko.Channel) -> bytes:
    data = b""
    while True:
        chunk = channel.recv(4096)
        if not chunk:
            return data + channel.recv_stderr(4096)
        data += chunk


def test_port_forwarding_is_refused(site: Site, users: dict[str, Key]) -> None:
    with Session(site, "redftp_tst1_alice", users["alice"]) as session:
        with pytest.raises(paramiko.ChannelException):
            session.transport.open_channel("direct-tcpip", ("127.0.0.1", site.port), ("127.0.0.1", 40000), timeout=10)
        with pytest.raises(paramiko.SSHException):
            session.transport.request_port_forward("127.0.0.1", 0)


def test_chroot_cannot_be_left_and_links_cannot_be_made(site: Site, users: dict[str, Key]) -> None:
    with Session(site, "redftp_tst1_alice", users["alice"]) as session:
        sftp = session.sftp
        sftp.chdir("..")
        assert sftp.getcwd() == "/"
        sftp.chdir("../../..")
        assert sftp.getcwd() == "/"
        assert sftp.listdir("/") == ["upload"]
        assert sftp.listdir("/../..") == ["upload"]
        for outside in ("/etc/passwd", "/app", "/../bob", "/app/redsys/env/tst1/etc/red_params.conf"):
            with pytest.raises(FileNotFoundError):
                sftp.stat(outside)
        with pytest.raises(OSError):
            sftp.mkdir("/escape")  # the chroot itself is root's
        with pytest.raises(OSError):
            sftp.symlink("/app/redsys/env/tst1/etc/red_params.conf", "/upload/config.csv")
        with pytest.raises(FileNotFoundError):
            sftp.lstat("/upload/config.csv")
        # a hard link to an upload would let the user rewrite it after it was taken in and archived (same file
        # system): OpenSSH's `ln` sends the hardlink@openssh.com extension, which paramiko has no method for
        put(session, "/upload/linked.csv", b"a\n")
        with pytest.raises(OSError):
            request = sftp._request  # type: ignore[attr-defined]  # paramiko's own, for an extension it lacks
            request(CMD_EXTENDED, "hardlink@openssh.com", "/upload/linked.csv", "/upload/second.csv")
        with pytest.raises(FileNotFoundError):
            sftp.lstat("/upload/second.csv")
        sftp.remove("/upload/linked.csv")


def test_users_cannot_see_each_other(site: Site, users: dict[str, Key]) -> None:
    with Session(site, "redftp_tst1_bob", users["bob"]) as session:
        put(session, "/upload/bob-secret.csv", b"secret\n")
    with Session(site, "redftp_tst1_alice", users["alice"]) as session:
        assert "bob-secret.csv" not in session.sftp.listdir("/upload")
        assert session.sftp.listdir("/") == ["upload"]
        for path in ("/app/redftp/env/tst1/bob/upload/bob-secret.csv", "/../bob/upload/bob-secret.csv"):
            with pytest.raises(FileNotFoundError):
                session.sftp.stat(path)


def test_redsys_reads_uploads_through_data_input(site: Site, users: dict[str, Key]) -> None:
    with Session(site, "redftp_tst1_alice", users["alice"]) as session:
        put(session, "for-redsys.csv", b"a,b\n1,2\n")
    done = site.root.run(["cat", "/app/redsys/env/tst1/data/input/alice/for-redsys.csv"], user="redsys")
    assert (done.returncode, done.stdout) == (0, "a,b\n1,2\n"), done.stderr
    listing = (
        "from redpss.core.paths import InstancePaths\nfrom redpss.redftp.inputs import iter_input_folders\n"
        "for f in iter_input_folders(InstancePaths.for_instance('TST1')):\n"
        "    print(f, *sorted(p.name for p in f.iterdir()))"
    )
    done = site.root.run([PYTHON, "-c", listing], user="redsys", check=True)
    lines = done.stdout.splitlines()
    assert lines[0] == "/app/redsys/env/tst1/data/input alice bob"
    assert lines[1].startswith("/app/redsys/env/tst1/data/input/alice ")
    assert "for-redsys.csv" in lines[1].split()
    assert lines[2].startswith("/app/redsys/env/tst1/data/input/bob")
    # An account outside group redftp cannot read the uploads.
    done = site.root.run(["cat", "/app/redftp/env/tst1/alice/upload/for-redsys.csv"], user="nobody", group="nogroup")
    assert done.returncode != 0
    assert "Permission denied" in done.stderr


def test_commands_refuse_what_is_not_their_job(site: Site, users: dict[str, Key]) -> None:
    done = site.useradd("alice", ed25519_key("again"))
    assert done.returncode == 1
    assert "user redftp_tst1_alice already exists (UID 1200)" in done.stderr
    done = site.useradd("carol", ed25519_key("x"), instance="NOPE1")
    assert done.returncode == 1
    assert "instance NOPE1 does not exist" in done.stderr
    done = site.root.run([USERADD, "TST1", "Carol", "--key", "-"], stdin=ed25519_key("x").public_line)
    assert done.returncode == 2
    assert "use 'carol'" in done.stderr
    done = site.userdel("redftp_tst1_alice", instance="DEV1")
    assert done.returncode == 2
    assert "is a user of instance TST1, not of DEV1" in done.stderr
    done = site.userdel("nobody-here")
    assert done.returncode == 1
    assert "no sFTP user redftp_tst1_nobody-here exists" in done.stderr
    # An account that only looks like an sFTP user (made by hand) is not removed.
    site.root.run(
        ["useradd", "--uid", "1290", "--home-dir", "/tmp", "--no-create-home", "redftp_dev1_mallory"], check=True
    )
    try:
        done = site.userdel("mallory", instance="DEV1")
        assert done.returncode == 1
        assert "refusing to remove redftp_dev1_mallory: its home is /tmp" in done.stderr
    finally:
        site.root.run(["userdel", "redftp_dev1_mallory"], check=True)
    assert site.uid("redftp_tst1_alice") == 1200  # nothing of alice was touched by the refusals


def test_userdel_ends_sessions_and_removes_everything(site: Site) -> None:
    key = ed25519_key("carol")
    assert site.useradd("carol", key).returncode == 0
    with Session(site, "redftp_tst1_carol", key) as session:
        put(session, "data.csv", b"1\n")
        done = site.userdel("carol")  # while the session is open
        assert done.returncode == 0, done.stderr
        assert "running process(es) of the user" in done.stdout  # the session's sshd and sftp processes
        with pytest.raises((OSError, EOFError, paramiko.SSHException)):
            session.sftp.listdir("/upload")
    with pytest.raises(KeyError):
        site.uid("redftp_tst1_carol")
    for inside in (
        "/app/redftp/env/tst1/carol",
        "/app/redftp/etc/authorized_keys/redftp_tst1_carol",
        "/app/redsys/env/tst1/data/input/carol",
    ):
        assert not site.root.path(inside).exists() and not site.root.path(inside).is_symlink(), inside
    transport = site.transport()
    try:
        with pytest.raises(paramiko.AuthenticationException):
            transport.auth_publickey("redftp_tst1_carol", key.private)
    finally:
        transport.close()


def test_userdel_keep_data_archives_the_uploads_for_redsys(site: Site) -> None:
    key = ed25519_key("dave")
    assert site.useradd("dave", key).returncode == 0
    with Session(site, "redftp_tst1_dave", key) as session:
        put(session, "one.csv", b"1\n")
        session.sftp.mkdir("sub")
        put(session, "sub/two.csv", b"2\n")
    done = site.userdel("dave", "--keep-data")
    assert done.returncode == 0, done.stderr
    assert "kept 2 uploaded file(s) in /app/redsys/env/tst1/data/archive/redftp_dave_" in done.stdout
    archives = list(site.root.path("/app/redsys/env/tst1/data/archive").glob("redftp_dave_*"))
    assert len(archives) == 1
    assert (archives[0] / "one.csv").read_bytes() == b"1\n"
    assert (archives[0] / "sub" / "two.csv").read_bytes() == b"2\n"
    redsys = site.uid("redsys")
    assert {p.stat().st_uid for p in [archives[0], *archives[0].rglob("*")]} == {redsys}
    assert not site.root.path("/app/redftp/env/tst1/dave").exists()


def test_userdel_leaves_a_data_input_entry_it_did_not_make_and_says_so(site: Site) -> None:
    """redsys repointed data/input/<user> (or put a folder there): userdel removes the user, keeps that, and warns."""
    link = site.root.path("/app/redsys/env/tst1/data/input/gina")
    for replacement in ("link", "folder"):
        assert site.useradd("gina", ed25519_key("gina")).returncode == 0
        link.unlink()
        if replacement == "link":
            link.symlink_to("/app/redsys/env/tst1/data/work")
            says = (
                "warning: left /app/redsys/env/tst1/data/input/gina in place: it is a symbolic link to "
                "/app/redsys/env/tst1/data/work, not the link to /app/redftp/env/tst1/gina/upload that "
                "redftp_useradd made"
            )
        else:
            link.mkdir()
            says = "warning: left /app/redsys/env/tst1/data/input/gina in place: it is not a symbolic link"
        done = site.userdel("gina")
        assert done.returncode == 0, done.stderr
        assert "removed redftp_tst1_gina" in done.stdout
        assert says in done.stderr
        assert "remove it yourself if nothing uses it" in done.stderr
        assert link.is_symlink() if replacement == "link" else link.is_dir()
        if replacement == "link":
            link.unlink()
        else:
            link.rmdir()
    # The link useradd made is removed without a word.
    assert site.useradd("gina", ed25519_key("gina")).returncode == 0
    done = site.userdel("gina")
    assert (done.returncode, done.stderr) == (0, "")
    assert not link.is_symlink()


def test_freed_uid_is_reused_and_the_101st_user_gets_a_clear_error(site: Site, users: dict[str, Key]) -> None:
    """Fill 1200-1299 with placeholder accounts (cheap: lines in the scratch root's passwd), one of them foreign."""
    passwd = site.root.path("/etc/passwd")
    original = passwd.read_text()
    taken = {site.uid("redftp_tst1_alice"), site.uid("redftp_tst1_bob")}
    free = [uid for uid in range(1200, 1300) if uid not in taken]
    placeholders = [f"redftp_dev1_fill{uid}:x:{uid}:65534::/nonexistent:/usr/sbin/nologin" for uid in free[1:]]
    placeholders.append(f"legacyapp:x:{free[0]}:65534::/nonexistent:/usr/sbin/nologin")
    passwd.write_text(original + "\n".join(placeholders) + "\n")
    try:
        assert len(taken) + len(placeholders) == 100
        done = site.useradd("erin", ed25519_key("erin"))
        assert done.returncode == 1
        assert "the sFTP UID range 1200-1299 is full: all 100 UIDs are in use" in done.stderr
        assert f"legacyapp ({free[0]})" in done.stderr
        assert not site.root.path("/app/redftp/env/tst1/erin").exists()
        assert not site.root.path("/app/redsys/env/tst1/data/input/erin").is_symlink()
    finally:
        passwd.write_text(original)
    done = site.useradd("erin", ed25519_key("erin"))
    assert done.returncode == 0, done.stderr
    assert f"(UID {free[0]})" in done.stdout


SUDOERS = PROJECT / "etc" / "sudoers.d" / "redpss-redftp"


def test_redsys_works_through_the_shipped_sudo_rule_and_only_with_it(site: Site) -> None:
    """The launchers where the rule names them (root-owned, like an RPM installs them); the rule file unchanged.

    Every folder above them must be root's too: REDHOME root-owned, only env/ below it redsys's.
    """
    if shutil.which("sudo") is None or not site.root.path("/etc/sudoers").exists():
        pytest.skip("sudo is not installed on this machine (apt-get install sudo)")
    launchers = site.root.path("/app/redsys/bin")
    launchers.mkdir(mode=0o755)
    for command in (USERADD, USERDEL):
        target = launchers / Path(command).name
        shutil.copyfile(command, target)
        target.chmod(0o755)
    key = ed25519_key("frank")
    site.root.path("/tmp/frank.pub").write_text(key.public_line)
    site.root.path("/tmp/frank.pub").chmod(0o644)
    useradd = ["/app/redsys/bin/redftp_useradd", "TST1", "frank", "--key", "/tmp/frank.pub"]
    userdel = ["/app/redsys/bin/redftp_userdel", "TST1", "frank"]
    rule = site.root.path("/etc/sudoers.d/redpss-redftp")
    redhome = site.root.path("/app/redsys")
    owner = redhome.stat()
    try:
        done = site.root.run(useradd, user="redsys")
        assert done.returncode == 1
        assert "redftp_useradd must run as root, and sudo refused to run it" in done.stderr
        assert "as /etc/sudoers.d/redpss-redftp" in done.stderr
        shutil.copyfile(SUDOERS, rule)
        rule.chmod(0o440)
        site.root.run(["visudo", "-cf", "/etc/sudoers.d/redpss-redftp"], check=True)
        # The key is read with redsys's rights: a file only root may read is not read for redsys by sudo.
        site.root.path("/tmp/root-only.pub").write_text(key.public_line)
        site.root.path("/tmp/root-only.pub").chmod(0o600)
        done = site.root.run([*useradd[:-1], "/tmp/root-only.pub"], user="redsys")
        assert done.returncode == 2
        assert "cannot read key file /tmp/root-only.pub: Permission denied" in done.stderr
        # REDHOME owned by redsys (as prepared): redsys could rename bin/ aside and sudo would run its own code.
        done = site.root.run(useradd, user="redsys")
        assert done.returncode == 1
        assert (
            "refusing to run redftp_useradd as root through sudo: the folder /app/redsys (above "
            "/app/redsys/bin/redftp_useradd) is not owned by root"
        ) in done.stderr
        assert not site.root.path("/app/redftp/env/tst1/frank").exists()
        os.chown(redhome, 0, 0)
        redhome.chmod(0o755)
        moved = site.root.run(["mv", "/app/redsys/bin", "/app/redsys/bin.mine"], user="redsys")
        assert moved.returncode != 0 and "Permission denied" in moved.stderr
        # sudo run directly with a key file: root opens it with redsys's rights only (not /etc/shadow's contents)
        direct = site.root.run(["sudo", "-n", *useradd[:-1], "/tmp/root-only.pub"], user="redsys")
        assert direct.returncode == 2, direct.stderr
        assert "cannot read key file /tmp/root-only.pub: Permission denied" in direct.stderr
        done = site.root.run(useradd, user="redsys")
        assert done.returncode == 0, done.stderr
        assert "added redftp_tst1_frank" in done.stdout
        with Session(site, "redftp_tst1_frank", key) as session:
            assert session.sftp.listdir("/") == ["upload"]
        # Launcher code redsys could change would hand redsys root: refused.
        (launchers / "redftp_userdel").chmod(0o775)
        done = site.root.run(userdel, user="redsys")
        assert done.returncode == 1
        assert "refusing to run redftp_userdel as root through sudo" in done.stderr
        (launchers / "redftp_userdel").chmod(0o755)
        done = site.root.run(userdel, user="redsys")
        assert done.returncode == 0, done.stderr
        assert "removed redftp_tst1_frank" in done.stdout
    finally:
        rule.unlink(missing_ok=True)
        shutil.rmtree(launchers)
        os.chown(redhome, owner.st_uid, owner.st_gid)
        redhome.chmod(owner.st_mode & 0o7777)


REDSYSCTL = str(Path(PYTHON).parent / "redsysctl")


def test_drop_refuses_while_sftp_users_remain_and_never_leaves_half_an_instance(site: Site) -> None:
    """`redsysctl drop` deleted the instance and left its sFTP users able to log in and upload into it; and a file
    redsys could not delete (a root-owned leftover) stopped it half-way with a traceback, the instance still listed
    but neither usable nor droppable. Now it refuses while users remain, naming the commands, and an instance is
    renamed aside before it is deleted."""
    create = (
        "from redpss.core.paths import InstancePaths, create_instance_tree\n"
        "create_instance_tree(InstancePaths.for_instance('TST4'))"
    )
    site.root.run([PYTHON, "-c", create], user="redsys", check=True)
    assert site.useradd("gina", ed25519_key("gina"), instance="TST4").returncode == 0
    refused = site.root.run([REDSYSCTL, "drop", "TST4", "--yes"], user="redsys")
    assert refused.returncode != 0, refused
    assert "still has 1 sFTP user(s)" in refused.stderr and "redftp_userdel TST4 gina" in refused.stderr
    assert site.root.path("/app/redsys/env/tst4/etc").is_dir()
    assert site.userdel("gina", instance="TST4").returncode == 0
    leftover = site.root.path("/app/redsys/env/tst4/data/archive/leftover")  # as `userdel --keep-data` may leave
    leftover.mkdir()
    (leftover / "f.csv").write_text("1\n")  # root's, in root's folder: redsys cannot delete it
    dropped = site.root.run([REDSYSCTL, "drop", "TST4", "--yes"], user="redsys")
    assert dropped.returncode == 1, dropped
    assert "Traceback" not in dropped.stderr
    assert "dropped instance TST4, but 1 file(s) or folder(s) could not be deleted" in dropped.stderr
    assert "Permission denied" in dropped.stderr and "remove it as root" in dropped.stderr
    assert not site.root.path("/app/redsys/env/tst4").exists()
    listed = site.root.run([REDSYSCTL, "list"], user="redsys")
    assert listed.returncode == 0 and "TST4" not in listed.stdout, listed
    (aside,) = site.root.path("/app/redsys/env").glob(".dropped-*")
    shutil.rmtree(aside)
