"""One log buffer from the database, checked and turned into file lines per schema and rows for LOG_MESSAGES.

A buffer is a list of lines `[schema, level, timestamp, source, text]`. It is accepted whole or refused whole, with
a message naming the first bad line and what is allowed, so a client never has to guess which part arrived. The
schema name becomes a folder name: it must be an Exasol identifier (letters, digits, _; starting with a letter),
which leaves no room for `/`, `..` or anything else that could lead outside log/DB.

This runs for every line DBLS receives, so it is written for speed: one pass, lookups in sets and a cache of the
schema names already checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

LEVELS = frozenset({"DEBUG", "INFO", "WARN", "ERROR", "ALERT"})
TO_DATABASE = frozenset({"ERROR", "ALERT"})  # these also go to LOG_MESSAGES and journald
_SCHEMA = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?")
SOURCE_MAX = 256  # LOG_MESSAGES.SOURCE is VARCHAR(256)
_is_timestamp = _TIMESTAMP.fullmatch
_SHAPE = "a line is [schema, level, timestamp, source, text] (all strings)"
_checked_schemas: dict[str, str] = {}  # as sent -> upper case, for names already found valid


class BatchError(ValueError):
    """The buffer is refused as a whole; the message names the bad line and what is allowed."""


@dataclass(frozen=True)
class DbLine:
    """An ERROR or ALERT line: it also becomes a LOG_MESSAGES row and a journald entry."""

    schema: str
    level: str
    timestamp: str
    source: str
    text: str

    def row(self) -> dict[str, Any]:
        return {
            "LOG_TIME": self.timestamp.replace("T", " "),
            "LOG_LEVEL": self.level,
            "SOURCE": self.source[:SOURCE_MAX] or None,
            "MESSAGE": self.text,
        }


@dataclass
class Batch:
    files: dict[str, list[str]] = field(default_factory=dict)  # schema (upper case) -> its file lines, in order
    to_database: list[DbLine] = field(default_factory=list)
    lines: int = 0
    size: int = 0  # characters of text written to the files


def schema_folder_name(name: object) -> str:
    """The schema's name in upper case, fit to be a folder below log/DB; BatchError saying what is allowed."""
    if isinstance(name, str) and _SCHEMA.fullmatch(name):
        return name.upper()
    shown = repr(name)[:60]
    raise BatchError(
        f"schema {shown} is not a valid Exasol identifier: letters, digits and _, starting with a letter, "
        "at most 128 characters"
    )


def parse_batch(lines: object) -> Batch:
    """Check every line of a buffer and format it; BatchError for the first line that is not acceptable."""
    if not isinstance(lines, list) or not lines:
        raise BatchError('a log request needs "lines": a non-empty list of [schema, level, timestamp, source, text]')
    batch = Batch(lines=len(lines))
    files = batch.files
    checked = _checked_schemas
    size = 0
    known = checked.get
    for index, line in enumerate(lines):
        # The usual line passes these checks inline; any other goes to _checked_line, which names what is wrong
        # (or admits a schema name not seen before).
        try:
            schema, level, stamp, source, text = line
            folder = known(schema)
        except (TypeError, ValueError):
            folder = None
        if (
            folder is None
            or level not in LEVELS
            or type(text) is not str
            or type(source) is not str
            or type(stamp) is not str
            or not _is_timestamp(stamp)
        ):
            folder, level, stamp, source, text = _checked_line(line, index, checked)
        if "\n" in text or "\r" in text:  # one entry per line: continuation lines start with a tab
            text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\n\t")
        if "\n" in source or "\r" in source:
            source = source.replace("\r", " ").replace("\n", " ")
        entry = f"{stamp} {level} {source}: {text}\n"
        size += len(entry)
        out = files.get(folder)
        if out is None:
            files[folder] = out = []
        out.append(entry)
        if level in TO_DATABASE:
            batch.to_database.append(DbLine(folder, level, stamp, source, text))
    batch.size = size
    return batch


def _checked_line(line: Any, index: int, checked: dict[str, str]) -> tuple[str, str, str, str, str]:
    """The fields of one line with the schema as its folder name; BatchError naming the line when it is bad."""
    try:
        schema, level, stamp, source, text = line
        folder = checked.get(schema)
        if folder is None:
            folder = schema_folder_name(schema)
            if len(checked) < 10000:
                checked[schema] = folder
        if level not in LEVELS:
            raise BatchError(f"level {str(level)[:20]!r} is not one of {', '.join(sorted(LEVELS))}")
        if type(text) is not str or type(source) is not str:
            raise BatchError(_SHAPE)
        if not _TIMESTAMP.fullmatch(stamp):
            raise BatchError(f"timestamp {str(stamp)[:40]!r} is not YYYY-MM-DD HH:MM:SS[.ffffff]")
    except BatchError as exc:
        raise BatchError(f"line {index + 1}: {exc}") from None
    except (TypeError, ValueError):
        raise BatchError(f"line {index + 1}: {_SHAPE}") from None
    return folder, level, stamp, source, text
