"""A scratch root: a throw-away system root in which useradd, sshd and NSS act on their own /etc, not the host's.

Layout of the folder (on the host it is plain folders; everything mounted lives only in a private mount namespace):
  usr/                 the host's /usr, bind-mounted read-only (bin, lib, lib64, sbin are the host's usr-merge links)
  etc/                 a copy of the host's /etc: useradd writes here, sshd and NSS read here
  dev/ proc/           the host's /dev (bind) and a fresh proc mount (userdel and the commands scan /proc)
  run/ tmp/ var/ app/  empty folders of the scratch root; /app/redsys and /app/redftp are built by the tests
  work/main, <python prefix>   the project tree and the interpreter its venv uses, bind-mounted read-only at the
                       same paths, so the real installed commands run unchanged inside

One long-lived `unshare -m` process holds the namespace (its mounts vanish when the namespace's last process ends);
commands enter it with `nsenter --mount` and `chroot`. No network namespace: sshd inside binds the host's loopback.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

PROJECT = Path(__file__).resolve().parents[2]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_READONLY_BINDS = (PROJECT, Path(sys.base_prefix))


def missing_tools() -> list[str]:
    return [
        tool
        for tool in ("unshare", "nsenter", "chroot", "setpriv", "useradd", "ssh-keygen")
        if shutil.which(tool) is None
    ]


class ScratchRoot:
    def __init__(self, folder: Path) -> None:
        self.root = folder
        self._holder: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self._holder is not None, "the scratch root is not started"
        return self._holder.pid

    def path(self, inside: str | Path) -> Path:
        """The host path of a path inside the scratch root (for reading and checking from the test)."""
        return self.root / str(inside).lstrip("/")

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        for name in ("bin", "lib", "lib64", "sbin"):
            host = Path("/") / name
            if host.is_symlink():
                (self.root / name).symlink_to(host.readlink())
        shutil.copytree("/etc", self.root / "etc", symlinks=True)
        for name, mode in (
            ("usr", 0o755),
            ("dev", 0o755),
            ("proc", 0o555),
            ("run", 0o755),
            ("tmp", 0o1777),
            ("var/log", 0o755),
            ("var/tmp", 0o1777),
            ("var/spool/mail", 0o755),
            ("app", 0o755),
            ("root", 0o700),
        ):
            folder = self.root / name
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(mode)
        (self.root / "var" / "mail").symlink_to("spool/mail")
        mounts = [
            f"mount --bind /usr {self.root}/usr",
            f"mount -o remount,bind,ro {self.root}/usr",
            f"mount --rbind /dev {self.root}/dev",
            f"mount -t proc proc {self.root}/proc",
        ]
        for source in _READONLY_BINDS:
            target = self.path(source)
            target.mkdir(parents=True, exist_ok=True)
            for parent in target.relative_to(self.root).parents:
                (self.root / parent).chmod(0o755)  # redsys inside must reach the interpreter, e.g. under /root
            mounts += [f"mount --bind {source} {target}", f"mount -o remount,bind,ro {target}"]
        script = " && ".join(mounts) + " && echo ready && exec cat"
        self._holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-ec", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._holder.stdout is not None
        line = self._holder.stdout.readline()  # the holder prints one line once every mount is in place
        if line.strip() != "ready":
            _, err = self._holder.communicate(timeout=10)
            self._holder = None
            raise RuntimeError(f"could not set up the scratch root's mounts: {err.strip()}")

    def command(
        self, argv: Sequence[str], user: str | None = None, group: str | None = None, capabilities: Sequence[str] = ()
    ) -> list[str]:
        """argv run inside the scratch root, as root or as `user` (primary group `group`, default its namesake),
        keeping `capabilities` (names as setpriv spells them, e.g. "lease") as a unit's AmbientCapabilities= does."""
        prefix = ["nsenter", f"--target={self.pid}", "--mount", "--", "chroot", str(self.root)]
        if user is not None:
            prefix += ["setpriv", f"--reuid={user}", f"--regid={group or user}", "--init-groups"]
            if capabilities:
                kept = ",".join(f"+{name}" for name in capabilities)
                prefix += [f"--inh-caps={kept}", f"--ambient-caps={kept}"]
            prefix += ["--"]
        return [*prefix, *argv]

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/", "EXASOL_TELEMETRY_DISABLE": "1", **(extra or {})}

    def run(
        self,
        argv: Sequence[str],
        *,
        user: str | None = None,
        group: str | None = None,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.command(argv, user, group),
            input=stdin,
            capture_output=True,
            text=True,
            env=self.environment(env),
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def popen(self, argv: Sequence[str], log: IO[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log, text=True, env=self.environment()
        )

    def stop(self) -> None:
        """End the namespace holder, then delete the folder, but only once no host mount points into it."""
        if self._holder is not None:
            assert self._holder.stdin is not None
            self._holder.stdin.close()
            try:
                self._holder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._holder.kill()
                self._holder.wait()
            for stream in (self._holder.stdout, self._holder.stderr):
                if stream is not None:
                    stream.close()
            self._holder = None
        mounted = [
            line.split()[4]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(str(self.root))
        ]
        if mounted:
            raise RuntimeError(f"refusing to delete {self.root}: still mounted on the host: {mounted}")
        shutil.rmtree(self.root)
