"""SENDFILE's own settings: sFTP targets and the mail size limit, in $REDENV_HOME/etc/sendfile.conf.

red_params.conf has fixed sections and keys; a target is a group of keys under a name the operator chooses, so the
targets live in a file of their own beside it (INI, one `[target NAME]` section each, read at each request so a new
target needs no restart). The host keys SENDFILE accepts are in etc/sendfile_known_hosts (OpenSSH format; ssh-keyscan
output checked by the operator): a host missing there, or presenting another key, is refused.

    [mail]
    max_mb = 20            ; a file above this is refused for mail (SENDMAIL takes 25 MiB of attachments)

    [target partner1]
    host = sftp.partner.example
    port = 22
    user = redpss
    key = etc/ssh/partner1_ed25519     ; relative to $REDENV_HOME, or absolute; mode 0600
    folder = /upload
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

from redpss.core.digits import is_decimal
from redpss.core.paths import InstancePaths

CONFIG_NAME = "sendfile.conf"
KNOWN_HOSTS_NAME = "sendfile_known_hosts"
DEFAULT_MAIL_MAX_MB = 20.0
MAIL_CEILING_MB = 25.0  # SENDMAIL refuses more attachment bytes per mail
_TARGET_KEYS = {"host", "port", "user", "key", "folder", "timeout"}
DEFAULT_TIMEOUT = 120.0  # seconds an upload may make no progress before it is given up (and tried again later)
TIMEOUT_CEILING = 3600.0


class TargetError(ValueError):
    """A target or the settings file is missing or wrong; the text names file, section and key."""


@dataclass(frozen=True)
class SftpTarget:
    name: str
    host: str
    port: int
    user: str
    key: Path
    folder: str
    timeout: float = DEFAULT_TIMEOUT

    def describe(self) -> str:
        return f"{self.user}@{self.host}:{self.port}{self.folder}"


@dataclass(frozen=True)
class SendfileSettings:
    mail_max_bytes: int
    targets: dict[str, SftpTarget]
    known_hosts: Path


def settings_file(paths: InstancePaths) -> Path:
    return paths.etc / CONFIG_NAME


def known_hosts_file(paths: InstancePaths) -> Path:
    return paths.etc / KNOWN_HOSTS_NAME


def load_settings(paths: InstancePaths) -> SendfileSettings:
    """Read etc/sendfile.conf (absent: no targets, the default mail limit); TargetError naming what is wrong."""
    path = settings_file(paths)
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise TargetError(f"{path}: cannot be read: {exc}") from None
    max_mb = DEFAULT_MAIL_MAX_MB
    targets: dict[str, SftpTarget] = {}
    for section in parser.sections():
        values = parser[section]
        if section == "mail":
            max_mb = _bounded(
                f"{path}: [mail]", "max_mb", values.get("max_mb", str(DEFAULT_MAIL_MAX_MB)), MAIL_CEILING_MB, "a number"
            )
        elif section.startswith("target "):
            target = _target(paths, path, section[len("target ") :].strip(), values)
            targets[target.name] = target
        else:
            raise TargetError(f"{path}: [{section}] is not known; use [mail] or [target NAME]")
    return SendfileSettings(int(max_mb * 1024 * 1024), targets, known_hosts_file(paths))


def _bounded(where: str, key: str, text: str, ceiling: float, unit: str) -> float:
    """`text` as a number above 0 and at most `ceiling`; TargetError naming where, the key and the range."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= ceiling:
        raise TargetError(f"{where}: {key} = {text!r}: {unit} above 0 and at most {ceiling:g}")
    return value


def _target(paths: InstancePaths, path: Path, name: str, values: configparser.SectionProxy) -> SftpTarget:
    where = f"{path}: [target {name}]"
    unknown = sorted(set(values) - _TARGET_KEYS)
    missing = sorted({"host", "user", "key", "folder"} - set(values))
    if unknown:
        raise TargetError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_TARGET_KEYS))}")
    if missing:
        raise TargetError(f"{where}: missing {', '.join(missing)}")
    port_text = values.get("port", "22")
    if not is_decimal(port_text) or not 0 < int(port_text) < 65536:
        raise TargetError(f"{where}: port = {port_text!r} is not a port number")
    key = Path(values["key"])
    folder = values["folder"].rstrip("/") or "/"
    if not folder.startswith("/"):
        raise TargetError(f"{where}: folder = {folder!r} must be an absolute remote path such as /upload")
    timeout = _bounded(where, "timeout", values.get("timeout", f"{DEFAULT_TIMEOUT:g}"), TIMEOUT_CEILING, "seconds")
    home_key = key if key.is_absolute() else paths.home / key
    return SftpTarget(name, values["host"], int(port_text), values["user"], home_key, folder, timeout)


def target(settings: SendfileSettings, name: str) -> SftpTarget:
    try:
        return settings.targets[name]
    except KeyError:
        known = ", ".join(sorted(settings.targets)) or "none"
        raise TargetError(f"sFTP target {name!r} is not defined in etc/{CONFIG_NAME} (defined: {known})") from None
