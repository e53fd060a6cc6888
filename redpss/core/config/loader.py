"""Reads red_params.conf into a frozen Config, with ONE validation step that reports every problem at once.

Every message names the file, the section, the key, the value and what is allowed, because the operator reading it
has the file open in an editor and nothing else.
"""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import difflib
import stat
from pathlib import Path
from typing import Any

from redpss.core.config.kinds import Kind, Secret
from redpss.core.config.schema import (
    INHERITED_FROM_DEFAULT,
    KEY_ALIASES,
    REQUIRED,
    SECTIONS,
    Config,
    section_fields,
)
from redpss.core.errors import ConfigError

# configparser's own DEFAULT handling would copy every [DEFAULT] key into every section and hide typos; [DEFAULT]
# is read as a plain section instead and only INHERITED_FROM_DEFAULT keys are inherited.
_NO_IMPLICIT_DEFAULTS = "\x00implicit-defaults"


def load_config(path: Path, *, check_permissions: bool = True) -> Config:
    """Read and validate `path`; ConfigError lists every problem found."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            str(path), ["the file does not exist; create it from etc/red_params.conf.sample (mode 0600)"]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"the file cannot be read: {exc}"]) from None
    mode = path.stat().st_mode if check_permissions else None
    return parse_config(text, str(path), mode=mode)


def parse_config(text: str, path: str, *, mode: int | None = None) -> Config:
    """Validate config text; `mode` (st_mode of the file) enables the check that passwords are not readable."""
    problems: list[str] = []
    parser = configparser.ConfigParser(interpolation=None, default_section=_NO_IMPLICIT_DEFAULTS, strict=True)
    parser.optionxform = str.lower  # type: ignore[assignment, method-assign]
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        raise ConfigError(path, [f"not a valid INI file: {exc}".replace("\n", " ")]) from None

    for section in parser.sections():
        if section not in SECTIONS:
            problems.append(
                f"[{section}]: unknown section{_suggest(section, list(SECTIONS))}; known: "
                f"{', '.join(f'[{s}]' for s in SECTIONS)}"
            )

    raw_default = dict(parser["DEFAULT"]) if parser.has_section("DEFAULT") else {}
    values: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        raw = dict(parser[section]) if parser.has_section(section) else {}
        values[section] = _read_section(section, raw, raw_default, problems)

    _check_relations(values, problems)
    if mode is not None:
        _check_secrets_private(path, mode, values, problems)
    if problems:
        raise ConfigError(path, problems)
    return Config(
        path=path,
        default=SECTIONS["DEFAULT"](**values["DEFAULT"]),
        redctl=SECTIONS["redctl"](**values["redctl"]),
        redinfo=SECTIONS["redinfo"](**values["redinfo"]),
        rest=SECTIONS["rest"](**values["rest"]),
    )


def _read_section(
    section: str, raw: dict[str, str], raw_default: dict[str, str], problems: list[str]
) -> dict[str, Any]:
    fields = {f.name: f for f in section_fields(section)}
    for key in list(raw):
        canonical = KEY_ALIASES.get((section, key))
        if canonical is not None:
            if canonical in raw:
                problems.append(f"[{section}] {key}: set twice, also as {canonical}; keep only {canonical}")
            raw[canonical] = raw.pop(key)
    result: dict[str, Any] = {}
    for key in raw:
        if key not in fields:
            problems.append(f"[{section}] {key}: unknown key{_suggest(key, list(fields))}")
    for name, field in fields.items():
        kind: Kind = field.metadata["kind"]
        text = raw.get(name)
        if text is None and section != "DEFAULT" and name in INHERITED_FROM_DEFAULT:
            inherited = {f.name: f for f in dataclasses.fields(SECTIONS["DEFAULT"])}[name]
            with contextlib.suppress(ValueError):  # a bad [DEFAULT] value is reported once, for [DEFAULT]
                result[name] = kind.parse(raw_default[name]) if name in raw_default else inherited.default
            continue
        if text is None:
            if field.default is REQUIRED:
                problems.append(f"[{section}] {name}: missing; {field.metadata['doc']}")
            else:
                result[name] = field.default
            continue
        try:
            result[name] = kind.parse(text)
        except ValueError as exc:
            shown = "********" if isinstance(field.default, Secret) or kind.name == "secret" else text.strip()
            problems.append(f"[{section}] {name} = {shown!r}: {exc}")
    return result


def _check_relations(values: dict[str, dict[str, Any]], problems: list[str]) -> None:
    """Rules that span keys: port ranges, port clashes, credentials that come in pairs.

    Keys that did not parse are absent from `values`; a rule that needs one of them is skipped, since that key's own
    problem is already listed.
    """
    redctl, rest, default = values["redctl"], values["rest"], values["DEFAULT"]
    if "exa_password" in default and not default["exa_password"]:
        problems.append("[DEFAULT] exa_password: empty; the database password of exa_username is required")
    start, end = redctl.get("cfi_pasv_port_start", 0), redctl.get("cfi_pasv_port_end", 0)
    if start > end:
        problems.append(
            f"[redctl] cfi_pasv_port_start = {start} is above cfi_pasv_port_end = {end}; the range must go upwards"
        )
    ports: dict[int, str] = {}
    used = [
        ("redctl", "sched_service_port", True),
        ("redctl", "dbls_port", True),
        ("redctl", "jexec_port", True),
        ("redctl", "sendmail_port", True),
        ("redctl", "sendfile_port", True),
        ("redctl", "cfi_port", redctl.get("cfi_enabled", True)),
        ("redctl", "mail2cmd_port", redctl.get("mail2cmd_enabled", True)),
        ("rest", "gu_port", rest.get("rest_enabled", True)),
    ]
    for section, key, enabled in used:
        port = values[section].get(key)
        if not enabled or port is None:
            continue
        if port in ports:
            problems.append(
                f"[{section}] {key} = {port}: already used by {ports[port]}; every service needs its own port"
            )
        elif redctl.get("cfi_enabled") and start <= port <= end:
            problems.append(f"[{section}] {key} = {port}: inside the CFI passive range {start}-{end}")
        else:
            ports[port] = f"[{section}] {key}"
    if redctl.get("sendmail_smtp_user") and not redctl.get("sendmail_smtp_pass", True):
        problems.append("[redctl] sendmail_smtp_pass: empty while sendmail_smtp_user is set; set both or neither")
    if rest.get("rest_enabled") and not rest.get("exa_password", True):
        problems.append("[rest] exa_password: empty while rest_enabled = true; the REST API needs its TU password")


def _check_secrets_private(path: str, mode: int, values: dict[str, dict[str, Any]], problems: list[str]) -> None:
    holds_secret = any(isinstance(v, Secret) and v for section in values.values() for v in section.values())
    if holds_secret and stat.S_IMODE(mode) & 0o077:
        problems.append(
            f"the file holds a password and its mode is {stat.S_IMODE(mode):04o} (group or others may read it); "
            f"run: chmod 600 {path}"
        )


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1)
    return f" (did you mean {close[0]}?)" if close else ""
