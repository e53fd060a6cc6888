"""A SENDFILE request, checked whole before anything is exported: what to export, how, and where it goes.

Fields (JSON on the wire, in a SENDFILE job's COMMAND and in PSS_SENDFILE's arguments): `source` (SCHEMA.NAME of a
table or view; unquoted names are upper-cased as in Exasol, "quoted" ones kept), `where` (optional SQL condition),
`format` (CSV or PARQUET), exactly one destination: `to` (mail recipients) or `sftp` (a target's name from
etc/sendfile.conf), and optionally `file_name`, `subject`, `body`, `schema` (whose LOG_MESSAGES gets the outcome) and
`key` (the caller's name for the request: the same key again gets the first request's outcome, see outcomes.py).

The condition is SQL run with RED-PSS's database user, as the database's own scripts and job definitions are: it may
hold any expression, but neither a second statement, a comment, nor a parenthesis that would close the EXPORT's
query early (the checks below), so it can only narrow the rows of `source`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from redpss.mail.client import recipient_list
from redpss.mail.message import is_one_line

FORMATS = {"CSV": ".csv", "PARQUET": ".parquet"}
MAX_WHERE = 10_000
_PLAIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")
_QUOTED_NAME = re.compile(r'"[^"\x00-\x1f]{1,128}"')
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")
_TARGET = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")
_SCHEMA = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")
_KEY = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
_KNOWN = {"source", "where", "format", "to", "sftp", "file_name", "subject", "body", "schema", "column_names", "key"}


class RequestInvalid(ValueError):
    """The request is refused as a whole; the text names the field, what was wrong and what is allowed."""


@dataclass(frozen=True)
class FileRequest:
    schema_name: str  # of the source object, as the database stores it
    object_name: str
    where: str
    format: str  # CSV | PARQUET
    to: tuple[str, ...]  # mail recipients, or empty
    sftp: str  # an sFTP target's name, or empty
    file_name: str
    subject: str
    body: str
    schema: str | None  # the application schema to report to (LOG_MESSAGES)
    column_names: bool  # CSV: the first line names the columns (Exasol's WITH COLUMN NAMES)
    key: str = ""  # the caller's name for the request, "" for none (requests spooled before keys have none)

    @property
    def source(self) -> str:
        return f"{_quote(self.schema_name)}.{_quote(self.object_name)}"

    def query(self) -> str:
        """The SELECT the EXPORT runs."""
        # Names quoted, the condition checked by check_where: it can narrow the rows, not change the statement.
        where = f" WHERE ({self.where})" if self.where else ""
        return f"SELECT * FROM {self.source}{where}"  # noqa: S608

    def destination(self) -> str:
        return f"sftp target {self.sftp}" if self.sftp else f"mail to {', '.join(self.to)}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FileRequest:
        fields = json.loads(text)
        fields["to"] = tuple(fields["to"])
        return cls(**fields)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _identifier(text: str, shown: str) -> str:
    if _PLAIN_NAME.fullmatch(text):
        return text.upper()
    if _QUOTED_NAME.fullmatch(text):
        return text[1:-1]
    raise RequestInvalid(
        f'"source" {shown!r}: {text[:140]!r} is not a name (letters, digits, _; or "Quoted Name" without quotes inside)'
    )


def _source(value: object) -> tuple[str, str]:
    if not isinstance(value, str) or not value.strip():
        raise RequestInvalid('"source" is missing: name the table or view as SCHEMA.NAME')
    text = value.strip()
    parts = re.findall(r'"[^"]*"|[^."]+', text)
    if len(parts) != 2 or ".".join(parts) != text:
        raise RequestInvalid(f'"source" {text[:200]!r} must be SCHEMA.NAME (one dot between schema and object)')
    return _identifier(parts[0], text), _identifier(parts[1], text)


def check_where(value: object) -> str:  # noqa: PLR0912 - one branch per kind of character
    """The condition as given, or RequestInvalid: one expression, nothing that ends or escapes the query."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RequestInvalid('"where" must be an SQL condition (a string) or absent')
    text = value.strip()
    if len(text) > MAX_WHERE:
        raise RequestInvalid(f'"where" is {len(text)} characters long; at most {MAX_WHERE}')
    depth = 0
    quote = ""
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""  # a doubled quote closes and reopens: still balanced
            continue
        if char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise RequestInvalid(f'"where": a ")" at position {index + 1} closes a parenthesis never opened')
        elif char == ";":
            raise RequestInvalid('"where" holds ";": the condition is one expression, not a statement')
        elif text.startswith(("--", "/*"), index):
            raise RequestInvalid('"where" holds a comment ("--" or "/*"); remove it')
        elif char in "\x00\r":
            raise RequestInvalid('"where" holds a control character')
    if quote:
        raise RequestInvalid(f'"where": a {quote} string or name is never closed')
    if depth:
        raise RequestInvalid('"where": a "(" is never closed')
    return text


def _recipients(value: object) -> tuple[str, ...]:
    try:
        return recipient_list(value)  # SENDMAIL's own check: a mail it would refuse is refused before the export
    except ValueError as exc:
        raise RequestInvalid(str(exc)) from None


def _one_line(request: dict[str, Any], key: str, default: str, limit: int) -> str:
    value = request.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str) or len(value) > limit or not is_one_line(value):
        raise RequestInvalid(f'"{key}" must be one line of at most {limit} characters, without control characters')
    return value


def parse_request(request: dict[str, Any], now: dt.datetime | None = None) -> FileRequest:
    """Check a request's fields (unknown ones are refused, so a typo never silently changes what is sent)."""
    unknown = sorted(set(request) - _KNOWN - {"op", "seq", "wait"})
    if unknown:
        raise RequestInvalid(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_KNOWN))}")
    schema_name, object_name = _source(request.get("source"))
    kind = request.get("format") or "CSV"
    if not isinstance(kind, str) or kind.upper() not in FORMATS:
        raise RequestInvalid(f'"format" {kind!r} is not known; use CSV or PARQUET')
    kind = kind.upper()
    has_mail, has_sftp = bool(request.get("to")), bool(request.get("sftp"))
    if has_mail == has_sftp:
        raise RequestInvalid('name exactly one destination: "to" (mail recipients) or "sftp" (a target\'s name)')
    to = _recipients(request["to"]) if has_mail else ()
    target = request.get("sftp") or ""
    if has_sftp and not (isinstance(target, str) and _TARGET.fullmatch(target)):
        raise RequestInvalid(f'"sftp" {str(target)[:80]!r} is not a target name (letters, digits, _ . -)')
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d_%H%M%S")
    default_name = f"{object_name.lower() if _PLAIN_NAME.fullmatch(object_name) else 'export'}_{stamp}{FORMATS[kind]}"
    file_name = _one_line(request, "file_name", default_name, 200)
    if not _FILE_NAME.fullmatch(file_name):
        raise RequestInvalid(
            f'"file_name" {file_name[:80]!r}: letters, digits, _ . - only, not starting with "." or "-"'
        )
    schema = request.get("schema")
    if schema is not None and not (isinstance(schema, str) and _SCHEMA.fullmatch(schema)):
        raise RequestInvalid('"schema" must be an application schema\'s name or absent')
    column_names = request.get("column_names", True)
    if not isinstance(column_names, bool):
        raise RequestInvalid('"column_names" must be true or false')
    key = request.get("key") or ""
    if not (isinstance(key, str) and (not key or _KEY.fullmatch(key))):
        raise RequestInvalid('"key" must be 1 to 128 letters, digits, _ . : - or absent')
    body = request.get("body") or f"{schema_name}.{object_name} as {kind}, attached."
    if not isinstance(body, str) or len(body) > 100_000:
        raise RequestInvalid('"body" must be text of at most 100000 characters')
    return FileRequest(
        schema_name=schema_name,
        object_name=object_name,
        where=check_where(request.get("where")),
        format=kind,
        to=to,
        sftp=target,
        file_name=file_name,
        subject=_one_line(request, "subject", f"{schema_name}.{object_name}: {file_name}", 900),
        body=body,
        schema=schema.upper() if isinstance(schema, str) else None,
        column_names=column_names,
        key=key,
    )
