"""Where sFTP users live, and the ownership rules sshd enforces on those places.

sshd's ChrootDirectory demands that the chroot and every folder above it are owned by root and writable by nobody
else, so the chroots cannot live in the redsys-owned /app/redsys tree: they live in /app/redftp/env/<instance>/<user>
(the description's tree), with the user's writable folder `upload/` inside. The authorized key sits outside every
chroot in /app/redftp/etc/authorized_keys/<system user>, root-owned, so neither the user nor redsys can add keys.
The sshd snippet (etc/sshd_config.d/redpss-redftp.conf) names these same places.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from redpss.redftp.names import SftpUserName
from redpss.redftp.safefs import Dir

REDFTP_ROOT = Path("/app/redftp")
UPLOAD_DIR = "upload"
# env/.units/<INSTANCE> -> ../<instance>: systemd 239 has no lower-case specifier, so the units that may write an
# instance's sFTP tree (redpss.cli.redsysctl.units) reach it through this root-owned link, made with the tree.
UNIT_LINKS = ".units"

# `redftp_userdel --keep-data` moves a user's uploads to data/archive/<this>: uploads never converted or loaded,
# which the converters' expiry of archived sources must leave alone (convert.files.expire_archive)
KEPT_UPLOADS = "redftp_{user}_{stamp}"
_KEPT_UPLOADS_NAME = re.compile(r"redftp_.+_[0-9]{8}T[0-9]{6}(-[0-9]+)?")


def kept_uploads_folder(name: str) -> bool:
    """Whether `name` (an entry of data/archive) is a folder of uploads kept by `redftp_userdel --keep-data`."""
    return _KEPT_UPLOADS_NAME.fullmatch(name) is not None


# Modes: public folders 0755; per-instance folder and chroot 0750 root:redftp, so accounts outside the group cannot
# even list who delivers files; upload 2770 user:redftp (setgid keeps the group on new files for redsys to read).
PUBLIC_DIR_MODE = 0o755
GROUP_DIR_MODE = 0o750
UPLOAD_MODE = 0o2770
KEY_FILE_MODE = 0o644


@dataclass(frozen=True)
class RedftpLayout:
    root: Path = REDFTP_ROOT

    @property
    def env(self) -> Path:
        return self.root / "env"

    @property
    def keys_dir(self) -> Path:
        return self.root / "etc" / "authorized_keys"

    @property
    def unit_links(self) -> Path:
        return self.env / UNIT_LINKS

    def instance_dir(self, name: SftpUserName) -> Path:
        return self.env / name.instance.lower()

    def chroot(self, name: SftpUserName) -> Path:
        """The chroot, which is also the account's home: the snippet says `ChrootDirectory %h`."""
        return self.instance_dir(name) / name.user

    def upload(self, name: SftpUserName) -> Path:
        return self.chroot(name) / UPLOAD_DIR

    def key_file(self, name: SftpUserName) -> Path:
        return self.keys_dir / name.system


def unsafe_for_sshd(path: Path) -> str | None:
    """Why sshd would refuse `path` as a chroot or key-file folder (first offending component), or None."""
    current = Path("/")
    for part in ("", *path.parts[1:]):
        current = current / part
        try:
            info = current.stat()  # sshd follows symbolic links here too
        except FileNotFoundError:
            return f"{current} does not exist"
        if info.st_uid != 0:
            return f"{current} is owned by UID {info.st_uid}, not root (fix: chown root {current})"
        if info.st_mode & 0o022:
            return f"{current} is writable by group or others (fix: chmod go-w {current})"
    return None


def ensure_root_dir(path: Path, mode: int, gid: int = 0) -> bool:
    """Create `path` root-owned with `mode` and group `gid`, or check an existing one; True when it was created.

    An existing folder that is not root-owned is never "fixed" silently (see safefs.Dir.ensure_root_dir).
    """
    with Dir.open(path.parent) as parent:
        return parent.ensure_root_dir(path.name, mode, gid)
