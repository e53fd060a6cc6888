"""Reads red_params.conf into a frozen Config, with ONE validation step that reports every problem at once.

Every message names the file, the section, the key, the value and what is allowed, because the operator reading it
has the file open in an editor and nothing else.
"""

from __future__ import annotations

import contextlib
import stat
from pathlib import Path

from redpss.core.config.ini import Entry, IniDocument, read_ini
from redpss.core.config.kinds import Kind, Secret
from redpss.core.config.schema import (
    INHERITED_FROM_DEFAULT,
    KEY_ALIASES,
    REQUIRED,
    SECTIONS,
    Config,
    DefaultSettings,
    RedctlSettings,
    RedinfoSettings,
    RestSettings,
    section_fields,
)
from redpss.core.errors import ConfigError
from redpss.core.record import Field

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any


def load_config(path: Path, *, check_permissions: bool = True) -> Config:
    """Read and validate `path`; ConfigError lists every problem found."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            str(path), ["the file does not exist; create it from etc/red_params.conf.sample (mode 0600)"]
        ) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"the file cannot be read: {exc.strerror or exc}"]) from None
    mode = path.stat().st_mode if check_permissions else None
    return parse_config(data, str(path), mode=mode)


def parse_config(text: str | bytes, path: str, *, mode: int | None = None) -> Config:
    """Validate config text (or the file's bytes); `mode` (st_mode of the file) enables the check that passwords
    are not readable. ConfigError lists every problem, each with its line where it has one."""
    document = read_ini(text)
    problems = Problems(document)
    for section, line in document.section_lines.items():
        if section not in SECTIONS:
            problems.add(
                f"[{section}]: unknown section{_suggest(section, list(SECTIONS))}; known: "
                f"{', '.join(f'[{s}]' for s in SECTIONS)}",
                line,
            )

    # [DEFAULT] is a plain section (configparser would copy its keys into every section and hide typos); only
    # INHERITED_FROM_DEFAULT keys are inherited.
    raw_default = document.sections.get("DEFAULT", {})
    values: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        raw = dict(document.sections.get(section, {}))
        values[section] = _read_section(section, raw, raw_default, problems)

    _check_relations(values, problems)
    if mode is not None:
        _check_secrets_private(path, mode, values, problems)
    if problems:
        raise ConfigError(path, problems.sorted())
    return Config(
        path=path,
        default=DefaultSettings(**values["DEFAULT"]),
        redctl=RedctlSettings(**values["redctl"]),
        redinfo=RedinfoSettings(**values["redinfo"]),
        rest=RestSettings(**values["rest"]),
    )


class Problems:
    """The problems found so far, each with the line it is on (0: none), and where each key was set."""

    def __init__(self, document: IniDocument) -> None:
        self.items: list[tuple[int, str]] = list(document.problems)
        self.undecodable = document.undecodable_lines
        self.lines = {
            (section, key): entry.line
            for section, entries in document.sections.items()
            for key, entry in entries.items()
        }

    def add(self, text: str, line: int = 0) -> None:
        self.items.append((line, text))

    def at_key(self, section: str, key: str, text: str) -> None:
        self.add(text, self.lines.get((section, key), 0))

    def where(self, section: str, key: str) -> str:
        line = self.lines.get((section, key))
        return f" (line {line})" if line else ""

    def __bool__(self) -> bool:
        return bool(self.items)

    def sorted(self) -> list[str]:
        """By line, problems without a line last; each as `line N: ...`."""
        ordered = sorted(self.items, key=lambda item: item[0] or 1 << 30)
        return [f"line {line}: {text}" if line else text for line, text in ordered]


def _read_section(
    section: str, raw: dict[str, Entry], raw_default: dict[str, Entry], problems: Problems
) -> dict[str, Any]:
    fields = {f.name: f for f in section_fields(section)}
    for key in list(raw):
        canonical = KEY_ALIASES.get((section, key))
        if canonical is not None:
            if canonical in raw:
                problems.add(f"[{section}] {key}: set twice, also as {canonical}; keep only {canonical}", raw[key].line)
            raw[canonical] = raw.pop(key)
            problems.lines[(section, canonical)] = raw[canonical].line
    result: dict[str, Any] = {}
    for key, entry in raw.items():
        if key not in fields:
            problems.add(f"[{section}] {key}: unknown key{_suggest(key, list(fields))}", entry.line)
    for name, field in fields.items():
        kind: Kind = field.metadata["kind"]
        given = raw.get(name)
        if given is None and section != "DEFAULT" and name in INHERITED_FROM_DEFAULT:
            inherited = {f.name: f for f in section_fields("DEFAULT")}[name]
            with contextlib.suppress(ValueError):  # a bad [DEFAULT] value is reported once, for [DEFAULT]
                result[name] = kind.parse(raw_default[name].value) if name in raw_default else inherited.default
            continue
        if given is None:
            if field.default is REQUIRED:
                problems.add(f"[{section}] {name}: missing; {field.metadata['doc']}")
            else:
                result[name] = field.default
            continue
        _parse_value(section, field, given, problems, result)
    return result


def _parse_value(section: str, field: Field, given: Entry, problems: Problems, result: dict[str, Any]) -> None:
    """Parse one given value into `result`, or add the problem it has."""
    kind: Kind = field.metadata["kind"]
    name = field.name
    secret = isinstance(field.default, Secret) or kind.name == "secret"
    if secret and given.comment_cut:
        problems.add(
            f"[{section}] {name}: ' #' starts a comment, which would cut the password short; if ' #' is part "
            f'of the password, put it in quotes: {name} = "..."',
            given.line,
        )
        return
    try:
        result[name] = kind.parse(given.value)
    except ValueError as exc:
        if given.line in problems.undecodable:
            return  # the line's encoding problem is reported already; its value means nothing
        shown = "********" if secret else given.value.strip()
        problems.add(f"[{section}] {name} = {shown!r}: {exc}", given.line)


def _check_relations(values: dict[str, dict[str, Any]], problems: Problems) -> None:
    """Rules that span keys: port ranges, port clashes, credentials that come in pairs.

    Keys that did not parse are absent from `values`; a rule that needs one of them is skipped, since that key's own
    problem is already listed.
    """
    redctl, rest, default = values["redctl"], values["rest"], values["DEFAULT"]
    if "exa_password" in default and not default["exa_password"]:
        problems.at_key(
            "DEFAULT",
            "exa_password",
            "[DEFAULT] exa_password: empty; the database password of exa_username is required",
        )
    start, end = redctl.get("cfi_pasv_port_start", 0), redctl.get("cfi_pasv_port_end", 0)
    if start > end:
        problems.at_key(
            "redctl",
            "cfi_pasv_port_start",
            f"[redctl] cfi_pasv_port_start = {start} is above cfi_pasv_port_end = {end}; the range must go upwards",
        )
    ports: dict[int, str] = {}
    used = [
        ("redctl", "sched_service_port", True),
        ("redctl", "dbls_port", True),
        ("redctl", "jexec_port", True),
        ("redctl", "sendmail_port", True),
        ("redctl", "sendfile_port", True),
        ("redctl", "cfi_port", redctl.get("cfi_enabled", True)),
        ("redctl", "cfi_explicit_port", redctl.get("cfi_enabled", True) and redctl.get("cfi_explicit_port") != 0),
        ("redctl", "mail2cmd_port", redctl.get("mail2cmd_enabled", True)),
        ("rest", "gu_port", rest.get("rest_enabled", True)),
    ]
    for section, key, enabled in used:
        port = values[section].get(key)
        if not enabled or port is None:
            continue
        if port in ports:
            problems.at_key(
                section,
                key,
                f"[{section}] {key} = {port}: already used by {ports[port]}; every service needs its own port",
            )
        elif redctl.get("cfi_enabled") and start <= port <= end:
            problems.at_key(section, key, f"[{section}] {key} = {port}: inside the CFI passive range {start}-{end}")
        else:
            ports[port] = f"[{section}] {key}{problems.where(section, key)}"
    if redctl.get("sendmail_smtp_user") and not redctl.get("sendmail_smtp_pass", True):
        problems.at_key(
            "redctl",
            "sendmail_smtp_user",
            "[redctl] sendmail_smtp_pass: empty while sendmail_smtp_user is set; set both or neither",
        )
    if rest.get("rest_enabled") and not rest.get("exa_password", True):
        problems.at_key(
            "rest",
            "rest_enabled",
            "[rest] exa_password: empty while rest_enabled = true; the REST API needs its TU password",
        )


def _check_secrets_private(path: str, mode: int, values: dict[str, dict[str, Any]], problems: Problems) -> None:
    holds_secret = any(isinstance(v, Secret) and v for section in values.values() for v in section.values())
    if holds_secret and stat.S_IMODE(mode) & 0o077:
        problems.add(
            f"the file holds a password and its mode is {stat.S_IMODE(mode):04o} (group or others may read it); "
            f"run: chmod 600 {path}"
        )


def _suggest(word: str, candidates: list[str]) -> str:
    import difflib  # noqa: PLC0415 - only for a misspelt name; every CLI loads the config

    close = difflib.get_close_matches(word, candidates, n=1)
    return f" (did you mean {close[0]}?)" if close else ""
