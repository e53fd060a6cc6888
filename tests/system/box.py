"""A real systemd for the system tests: a Debian bookworm container booted with systemd-nspawn.

The machine running the tests need not run systemd itself. The harness:

- installs the host tools it needs with apt-get (systemd-container, mmdebstrap);
- builds a bookworm rootfs once and caches it (~/.cache/redpss-systemd/rootfs, or $REDPSS_SYSTEMD_CACHE); a stamp
  holding the package list decides whether it is current;
- builds a venv with the project's dependencies inside that rootfs's Python, cached beside it and rebuilt when
  pyproject.toml changes; the project itself is the repository, bound read-only, installed editable;
- boots containers with --volatile=overlay, so the cached rootfs is never written and every boot starts clean;
- runs commands inside with nsenter into the namespaces of the container's PID 1;
- stops a container with an orderly poweroff, then SIGKILL of its PID namespace, and removes its cgroups.

Each container runs in its own sub-cgroup of the caller's cgroup, so several boxes (and other test runs) do not
collide; --register=no and --keep-unit because the host has no systemd-machined.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("REDPSS_SYSTEMD_CACHE", "~/.cache/redpss-systemd")).expanduser()
ROOTFS = CACHE / "rootfs"
VENV = CACHE / "venv"
SUITE = "bookworm"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "polkitd",
    "sudo",
    "python3",
    "python3-venv",
    "procps",
    "iproute2",
    "util-linux",
    "less",
)
# Inside the container: where the venv and the repository are bound (the venv records these paths).
VENV_IN_BOX = "/opt/redpss/venv"
SRC_IN_BOX = "/opt/redpss/src"
IN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Host folders that hold the pip index/wheels this machine uses; bound read-only while the venv is built.
PIP_SOURCES = ("/opt/wheels", "/opt/pypi", "/opt/pypi-more")


class BoxError(RuntimeError):
    """The container could not be built, booted or reached."""


def _run(argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=False, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def host_ready() -> str | None:
    """None when system tests can run here, else the reason they cannot (for pytest.skip)."""
    if os.geteuid() != 0:
        return "system tests need root (systemd-nspawn, cgroups)"
    if not Path("/sys/fs/cgroup").is_dir():
        return "no cgroup filesystem"
    return None


def ensure_host_tools() -> None:
    """Install systemd-nspawn and mmdebstrap with apt-get when missing."""
    missing = [
        pkg
        for tool, pkg in (("systemd-nspawn", "systemd-container"), ("mmdebstrap", "mmdebstrap"))
        if shutil.which(tool) is None
    ]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-qq"],
        ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        result = _run(argv, env=env)
        if result.returncode != 0:
            raise BoxError(f"{' '.join(argv)} failed: {result.stderr[-2000:]}")


def _stamp(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure_rootfs() -> Path:
    """The cached rootfs, built with mmdebstrap when missing or built from another package list."""
    stamp = _stamp(f"{SUITE} {','.join(PACKAGES)}")
    stamp_file = ROOTFS / ".redpss-stamp"
    if stamp_file.is_file() and stamp_file.read_text().strip() == stamp:
        return ROOTFS
    ensure_host_tools()
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / f"rootfs.new.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    result = _run(["mmdebstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(tmp)])
    (CACHE / "bootstrap.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BoxError(f"mmdebstrap failed (see {CACHE / 'bootstrap.log'}): {result.stderr[-2000:]}")
    _configure_rootfs(tmp)
    (tmp / ".redpss-stamp").write_text(stamp + "\n")
    shutil.rmtree(ROOTFS, ignore_errors=True)
    shutil.rmtree(VENV, ignore_errors=True)  # the venv belongs to the rootfs's Python
    tmp.rename(ROOTFS)
    return ROOTFS


def _configure_rootfs(root: Path) -> None:
    """Make the rootfs boot quickly and quietly in a container; keep the journal in memory, unthrottled."""
    (root / "etc/hostname").unlink(missing_ok=True)  # keep the hostname nspawn sets
    machine_id = root / "etc/machine-id"
    if not machine_id.is_file() or not machine_id.read_text().strip():
        machine_id.write_text(uuid.uuid4().hex + "\n")
    masked = (
        "getty@tty1.service",
        "console-getty.service",
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "dpkg-db-backup.timer",
        "e2scrub_all.timer",
        "e2scrub_reap.service",
        "fstrim.timer",
        "systemd-timesyncd.service",
        "systemd-pstore.service",
        "systemd-networkd-wait-online.service",
    )
    for unit in masked:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    journald = root / "etc/systemd/journald.conf.d"
    journald.mkdir(parents=True, exist_ok=True)
    (journald / "50-redpss-box.conf").write_text(
        "[Journal]\nStorage=volatile\nRateLimitIntervalSec=0\nRateLimitBurst=0\n"
    )
    manager = root / "etc/systemd/system.conf.d"
    manager.mkdir(parents=True, exist_ok=True)
    (manager / "50-redpss-box.conf").write_text("[Manager]\nDefaultTimeoutStopSec=15s\nDefaultTimeoutStartSec=30s\n")


def ensure_venv() -> Path:
    """A venv of the rootfs's Python with the project's dependencies, rebuilt when pyproject.toml or setup.py
    changes."""
    ensure_rootfs()
    build = (REPO / "pyproject.toml").read_text() + (REPO / "setup.py").read_text()
    stamp = _stamp(build + (ROOTFS / ".redpss-stamp").read_text())
    stamp_file = VENV / ".redpss-stamp"
    if stamp_file.is_file() and stamp_file.read_text().strip() == stamp:
        return VENV
    shutil.rmtree(VENV, ignore_errors=True)
    VENV.mkdir(parents=True)
    binds = [f"--bind={VENV}:{VENV_IN_BOX}", f"--bind-ro={REPO}:{SRC_IN_BOX}"]
    binds += [f"--bind-ro={p}" for p in PIP_SOURCES if Path(p).is_dir()]
    pip_env = [f"--setenv={k}={v}" for k, v in os.environ.items() if k.startswith("PIP_") and k != "PIP_CERT"]
    host_ca = Path(os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"))
    if host_ca.is_file():  # the host's CA bundle may hold the CA of a proxy in front of the index
        binds.append(f"--bind-ro={host_ca}:/opt/redpss/host-ca.crt")
        pip_env.append("--setenv=PIP_CERT=/opt/redpss/host-ca.crt")
    script = (
        f"set -e; python3 -m venv {VENV_IN_BOX}; "
        f"{VENV_IN_BOX}/bin/pip install -q {' '.join(_pip_config_args())} setuptools wheel; "
        f"{VENV_IN_BOX}/bin/pip install -q --no-build-isolation {' '.join(_pip_config_args())} -e {SRC_IN_BOX}"
    )
    # Not booted: nspawn runs the one command; the host's network is shared so pip reaches its index.
    result = _run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            'mount -t tmpfs -o mode=0755,size=4m redpss-box-run /run && exec "$@"',
            "build",
            "systemd-nspawn",
            "--quiet",
            f"--directory={ROOTFS}",
            "--volatile=overlay",
            "--register=no",
            "--keep-unit",
            "--resolv-conf=bind-host",
            "--timezone=off",
            *binds,
            *pip_env,
            "/bin/sh",
            "-c",
            script,
        ],
        env=_cgroup_env(),
    )
    if result.returncode != 0:
        raise BoxError(f"building the venv failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    stamp_file.write_text(stamp + "\n")
    return VENV


def _pip_config_args() -> list[str]:
    """The host's pip index settings, so the container installs what this machine is allowed to install."""
    result = _run([str(REPO / ".venv/bin/pip"), "config", "list"])
    args: list[str] = []
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        value = value.strip().strip("'")
        if key.endswith(".extra-index-url"):
            for url in value.split():
                args += ["--extra-index-url", url]
        elif key.endswith(".find-links"):
            args += ["--find-links", value]
    return args


def _cgroup_env() -> dict[str, str]:
    return dict(os.environ)


def _own_cgroups(name: str) -> list[Path]:
    """Sub-cgroups of the caller's cgroup for one box, in the hierarchies nspawn uses on this host."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hid, controllers, path = line.split(":", 2)
        own[controllers if hid != "0" else ""] = path
    root = Path("/sys/fs/cgroup")
    if _fs_type(root) == "cgroup2fs":
        return [root / own[""].lstrip("/") / f"redpss-box-{name}"]
    found = []
    if (root / "systemd").is_dir():
        found.append(root / "systemd" / own.get("name=systemd", "/").lstrip("/") / f"redpss-box-{name}")
    if (root / "unified").is_dir() and _fs_type(root / "unified") == "cgroup2fs":
        found.append(root / "unified" / own.get("", "/").lstrip("/") / f"redpss-box-{name}")
    return found


def _fs_type(path: Path) -> str:
    return _run(["stat", "-fc", "%T", str(path)]).stdout.strip()


@dataclass
class Box:
    """One booted container; use as a context manager so it is stopped whatever happens."""

    name: str
    binds: list[str] = field(default_factory=list)  # extra --bind/--bind-ro arguments
    boot_timeout: float = 90.0
    nspawn: subprocess.Popen[bytes] | None = None
    leader: int | None = None
    cgroups: list[Path] = field(default_factory=list)
    console: Path | None = None

    def __enter__(self) -> Box:
        try:
            self.boot()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def boot(self) -> None:
        rootfs = ensure_rootfs()
        venv = ensure_venv()
        self.cgroups = _own_cgroups(self.name)
        for cg in self.cgroups:
            cg.mkdir(parents=True, exist_ok=True)
        self.console = CACHE / "logs" / f"{self.name}.console.log"
        self.console.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            "systemd-nspawn",
            "--boot",
            f"--directory={rootfs}",
            f"--machine={self.name}",
            f"--hostname={self.name}",
            "--register=no",
            "--keep-unit",
            "--volatile=overlay",
            "--link-journal=no",
            "--resolv-conf=off",
            "--timezone=off",
            "--console=read-only",
            "--private-network",
            f"--bind-ro={venv}:{VENV_IN_BOX}",
            f"--bind-ro={REPO}:{SRC_IN_BOX}",
            *self.binds,
        ]
        # The launcher joins the box's cgroups and gets a private /run so nspawn's lock files stay off the host;
        # every step execs, so the Popen pid is nspawn's.
        launcher = (
            'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs"; shift; done; shift; '
            'mount -t tmpfs -o mode=0755,size=4m redpss-box-run /run; exec "$@"'
        )
        with self.console.open("wb") as console:
            self.nspawn = subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    "/bin/bash",
                    "-c",
                    launcher,
                    "launch",
                    *[str(c) for c in self.cgroups],
                    "--",
                    *argv,
                ],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=_cgroup_env(),
            )
        deadline = time.monotonic() + self.boot_timeout
        while self.leader is None:
            self._check_alive()
            self.leader = self._find_leader()
            if time.monotonic() > deadline:
                raise BoxError(f"container {self.name}: PID 1 did not appear\n{self.console_text()}")
            time.sleep(0.05)
        while True:
            self._check_alive()
            state = self.run(["systemctl", "is-system-running", "--wait"], timeout=15).stdout.strip()
            if state in ("running", "degraded"):
                return
            if time.monotonic() > deadline:
                raise BoxError(f"container {self.name}: boot timed out in state {state!r}\n{self.console_text()}")
            time.sleep(0.1)

    def console_text(self) -> str:
        return self.console.read_text(errors="replace")[-4000:] if self.console and self.console.exists() else ""

    def _check_alive(self) -> None:
        if self.nspawn is None or self.nspawn.poll() is not None:
            raise BoxError(f"container {self.name}: systemd-nspawn exited\n{self.console_text()}")

    def _find_leader(self) -> int | None:
        """The container's PID 1, as a host pid: the child of nspawn in another PID namespace."""
        assert self.nspawn is not None
        children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children")
        with contextlib.suppress(OSError):
            own_ns = Path("/proc/self/ns/pid").readlink()
            for pid in children.read_text().split():
                if Path(f"/proc/{pid}/ns/pid").readlink() != own_ns:
                    return int(pid)
        return None

    def command(self, argv: Sequence[str], env: dict[str, str] | None = None) -> list[str]:
        """The host argv that runs `argv` inside the container with a clean environment."""
        if self.leader is None:
            raise BoxError(f"container {self.name} is not running")
        base = {
            "PATH": IN_PATH,
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "SYSTEMD_PAGER": "cat",
            "SYSTEMD_COLORS": "0",
            "TERM": "dumb",
        }
        base.update(env or {})
        return [
            "nsenter",
            f"--target={self.leader}",
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--pid",
            "--cgroup",
            "--root",
            "--wd",
            "--",
            "/usr/bin/env",
            "-i",
            *[f"{k}={v}" for k, v in base.items()],
            "/usr/bin/setpriv",
            "--pdeathsig",
            "KILL",
            "--",
            *argv,
        ]

    def run(
        self, argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 60.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside; the result holds returncode, stdout and stderr."""
        return subprocess.run(
            self.command(argv, env), check=False, text=True, capture_output=True, timeout=timeout, input=input
        )

    def sh(self, script: str, *, user: str | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a shell script inside, as root or (login shell) as `user`."""
        if user is None:
            return self.run(["/bin/bash", "-c", script], timeout=timeout)
        return self.run(["runuser", "-l", user, "-c", script], timeout=timeout)

    def check(self, script: str, *, user: str | None = None, timeout: float = 60.0) -> str:
        """Run a shell script inside and return its stdout; fail with its output when it exits non-zero."""
        result = self.sh(script, user=user, timeout=timeout)
        if result.returncode != 0:
            raise BoxError(
                f"in {self.name} as {user or 'root'}: {script!r} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result.stdout

    def stop(self, timeout: float = 30.0) -> None:
        """Orderly poweroff (nspawn turns SIGTERM into one), then SIGKILL of the PID namespace, then cgroups."""
        if self.nspawn is not None and self.nspawn.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.nspawn.send_signal(signal.SIGTERM)
            try:
                self.nspawn.wait(timeout)
            except subprocess.TimeoutExpired:
                if self.leader is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.leader, signal.SIGKILL)
                try:
                    self.nspawn.wait(10)
                except subprocess.TimeoutExpired:
                    self.nspawn.kill()
                    self.nspawn.wait(10)
        self.leader = None
        for cg in self.cgroups:
            for _ in range(50):
                procs = [p.read_text().split() for p in cg.rglob("cgroup.procs")] if cg.is_dir() else []
                if not any(procs):
                    break
                time.sleep(0.1)
            for sub in sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            with contextlib.suppress(OSError):
                cg.rmdir()


@contextlib.contextmanager
def booted(name: str, binds: Sequence[str] = ()) -> Iterator[Box]:
    with Box(name, list(binds)) as box:
        yield box
