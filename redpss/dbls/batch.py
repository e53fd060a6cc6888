"""One log request from the database: per-schema blocks of file lines, checked whole and kept as they came.

The client sends each schema's lines as one block of bytes in the very form they take in the file
(`timestamp LEVEL source: text`, a line break after each, continuation lines starting with a tab), so DBLS neither
decodes nor formats line by line: it checks a block with a few passes of compiled patterns and C string methods and
writes it unchanged. A request is accepted whole or refused whole, with a message naming the schema, the first bad
line and what is allowed. The schema name becomes a folder name: it must be an Exasol identifier (letters, digits,
_; starting with a letter), which leaves no room for `/`, `..` or anything else that could lead outside log/DB.

How a block is checked without a loop per line: the first line must start with a valid head (timestamp, level,
source, ": "); every other line must too, or be a continuation line (a tab first). One compiled pattern, `_EACH`,
stops at every line break that is followed by anything: a line of the usual levels matches capturing nothing (b"",
one shared object), any other line captures what it starts with: a tab (a continuation line), the head of an ERROR
or ALERT line, or else one character, which marks the line as bad. So one `findall` both checks every line and
counts the lines and the continuation lines; no second pass counts line breaks. A large payload whose lines are all
in the client's own layout is checked faster column by column (redpss.dbls.heads), which also says where its ERROR
and ALERT lines start; anything else goes to the patterns, and its ERROR and ALERT lines are found afterwards with
`bytes.find` of their level. Either way they are parsed on their own, only in a payload that has them.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from redpss.dbls import heads

LEVELS = frozenset({"DEBUG", "INFO", "WARN", "ERROR", "ALERT"})
TO_DATABASE = frozenset({"ERROR", "ALERT"})  # these also go to LOG_MESSAGES and journald
SOURCE_MAX = 256  # LOG_MESSAGES.SOURCE is VARCHAR(256)
_SCHEMA = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")
_TS = rb"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
# INFO first: the level most lines have. Only ERROR and ALERT are captured: findall gives b"" (one shared object, no
# allocation) for every other line, and the lines that need a database row are found by their non-empty level.
_SOURCE = rb"[^ \t\n\r\x0b\x0c:]{0,1024}+: "  # [^\s:], spelled out: a table look-up per byte, not a category test
_HEAD = _TS + rb" (?:INFO|DEBUG|WARN|(ERROR|ALERT)) " + _SOURCE
_FIRST = re.compile(_HEAD)
# The same timestamp with possessive repeats (nothing after a repeat could match what it gives back, so the result is
# the same, without the engine noting positions to backtrack to); INFO first: the level most lines have.
_TS_FAST = rb"[0-9]{4}+-[0-9]{2}+-[0-9]{2}+[ T][0-9]{2}+:[0-9]{2}+:[0-9]{2}+(?:\.[0-9]{1,6}+)?+"
_EACH = re.compile(
    rb"\n(?:"
    + _TS_FAST
    + rb" (?:INFO|DEBUG|WARN) "
    + _SOURCE
    + rb"|(?=(\t|"
    + _TS_FAST
    + rb" (?:ERROR|ALERT) "
    + _SOURCE
    + rb"|.)))",
    re.DOTALL,
)
_STAMP_ONLY = re.compile(_TS + rb" ")
_DB_LINE = re.compile(rb"(" + _TS + rb") (ERROR|ALERT) ([^\s:]{0,1024}): ([^\n]*(?:\n\t[^\n]*)*)")
_DB_LEVELS = (b" ERROR ", b" ALERT ")
_checked_schemas: dict[str, str] = {}  # as sent -> upper case, for names already found valid
SHAPE = (
    'a log request (protocol 2) is {"op": "log", "blocks": [[schema, bytes], ...], "payload": N} followed by N bytes: '
    "each schema's lines, one after the other (docs/dbls.md)"
)


class BatchError(ValueError):
    """The request is refused as a whole; the message names the bad schema or line and what is allowed."""


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
    files: dict[str, list[memoryview]] = field(default_factory=dict)  # schema (upper case) -> its blocks, in order
    to_database: list[DbLine] = field(default_factory=list)
    lines: int = 0
    size: int = 0  # bytes written to the files


def schema_folder_name(name: object) -> str:
    """The schema's name in upper case, fit to be a folder below log/DB; BatchError saying what is allowed."""
    if isinstance(name, str) and _SCHEMA.fullmatch(name):
        return name.upper()
    shown = repr(name)[:60]
    raise BatchError(
        f"schema {shown} is not a valid Exasol identifier: letters, digits and _, starting with a letter, "
        "at most 128 characters"
    )


def parse_blocks(blocks: object, payload: object) -> Batch:
    """Check every block of a request (`blocks`: [[schema, length], ...] cutting `payload`); BatchError if bad.

    The payload is checked as a whole (each block ends with a line break, so the first line of the next one follows
    a line break like any other line); only the first line of each block is looked at on its own. The blocks in
    `files` are views of the payload: nothing is copied on the way to the files.
    """
    if not isinstance(payload, bytes | bytearray) or not isinstance(blocks, list) or not blocks:
        raise BatchError(SHAPE)
    cuts: list[tuple[str, int, int]] = []
    position = 0
    starts_ok = True
    for entry in blocks:
        if not isinstance(entry, list) or len(entry) != 2 or type(entry[1]) is not int or entry[1] < 0:
            raise BatchError(SHAPE)
        name, length = entry
        folder = _checked_schemas.get(name) if isinstance(name, str) else None
        if folder is None:
            folder = schema_folder_name(name)
            if len(_checked_schemas) < 10000:
                _checked_schemas[name] = folder
        end = position + length
        if end > len(payload):
            raise BatchError(f"the blocks' lengths add up to more than the payload's {len(payload)} bytes; {SHAPE}")
        starts_ok = starts_ok and length > 0 and payload[end - 1] == 10 and _FIRST.match(payload, position) is not None
        cuts.append((folder, position, end))
        position = end
    if position != len(payload):
        raise BatchError(f"the payload has {len(payload) - position} bytes beyond its blocks; {SHAPE}")
    levels = _levels(payload) if starts_ok else None
    if levels is None:
        for folder, start, end in cuts:
            _checked_levels(payload[start:end], folder)  # names the schema and the line
        raise BatchError(f"the payload is not lines of text; {SHAPE}")  # not reached: a block is at fault
    batch = Batch(size=len(payload), lines=levels.lines)
    view = memoryview(payload)
    for folder, start, end in cuts:
        batch.files.setdefault(folder, []).append(view[start:end])
    if levels.to_database:
        batch.to_database = _db_lines(payload, cuts, levels)
    return batch


class Levels(NamedTuple):
    """What the check of a payload counted."""

    lines: int  # not counting continuation lines
    to_database: int  # ERROR and ALERT lines
    db_starts: list[int] | None = None  # where those lines start, when the check found them (the columns do)


def _levels(text: bytes | bytearray) -> Levels | None:
    """How many lines (not counting continuation lines) and how many of them are ERROR or ALERT; None when a line
    does not start with a head (nor a tab: a continuation line)."""
    first = _FIRST.match(text)
    if first is None or not text.endswith(b"\n") or b"\r" in text or not (text.isascii() or _utf8(text)):
        return None
    if len(text) >= heads.MIN_BYTES:
        usual = heads.usual_heads(text)
        if usual is not None:
            return Levels(usual[0], len(usual[1]), usual[1])
    return levels_by_patterns(text, first)


def levels_by_patterns(text: bytes | bytearray, first: re.Match[bytes]) -> Levels | None:
    """`_levels` by the compiled patterns, whatever the lines' layout (`first`: the first line's head, matched)."""
    found: list[bytes] = _EACH.findall(text)  # one per line break but the last
    captured = len(found) - found.count(b"")
    continued = found.count(b"\t") if captured else 0
    to_database = captured - continued
    # what is left is the head of an ERROR/ALERT line, or one character: a line without a head
    if to_database and any(len(start) == 1 and start != b"\t" for start in set(found)):
        return None
    return Levels(len(found) + 1 - continued, to_database + (first.group(1) is not None))


def _checked_levels(block: bytes | bytearray, folder: str) -> Levels:
    """`_levels` of a block; BatchError naming the first line that is not acceptable."""
    levels = _levels(block)
    if levels is None:
        raise BatchError(f"schema {folder}: {_first_fault(bytes(block))}; nothing was written")
    return levels


def _utf8(block: bytes | bytearray) -> bool:
    try:
        block.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _first_fault(block: bytes) -> str:
    """What is wrong with a block that failed the quick check (the slow way: line by line)."""
    if not block:
        return "an empty block (leave the schema out instead)"
    try:
        block.decode("utf-8")
    except UnicodeDecodeError as exc:
        number = block.count(b"\n", 0, exc.start) + 1
        return f"line {number}: not UTF-8 ({exc.reason})"
    lines = block.split(b"\n")
    if lines[-1]:
        return f"line {len(lines)}: every line ends with a line break (\\n), the last one too"
    for number, line in enumerate(lines[:-1], 1):
        if line.startswith(b"\t"):
            if number == 1:
                return "line 1: a block starts with a line of its own, not a continuation line (tab)"
            continue
        fault = _line_fault(line)
        if fault:
            return f"line {number}: {fault}"
    return "a line does not start with timestamp, level and source"  # not reached: the quick check would pass


def _line_fault(line: bytes) -> str:
    """What is wrong with one line (not a continuation line), or "" when it is fine."""
    if b"\r" in line:
        return "a carriage return; lines end with \\n and text lines go on after \\n\\t"
    stamp = _STAMP_ONLY.match(line)
    if stamp is None:
        shown = line[:40].decode("utf-8", "replace")
        return f"{shown!r} does not start with a timestamp YYYY-MM-DD HH:MM:SS[.ffffff]"
    level = line[stamp.end() :].split(b" ", 1)[0].decode("utf-8", "replace")
    if level not in LEVELS:
        return f"level {level[:20]!r} is not one of {', '.join(sorted(LEVELS))}"
    if _FIRST.match(line) is None:
        return (
            f"after the level comes the source (at most {SOURCE_MAX} characters, no spaces or ':', may be "
            "empty) and ': ', then the text"
        )
    return ""


def _db_lines(payload: bytes | bytearray, cuts: list[tuple[str, int, int]], levels: Levels) -> list[DbLine]:
    """The ERROR and ALERT lines of a checked payload, in order, their continuation lines joined back into one text.

    Where the check found them (`levels.db_starts`), they are parsed there. Otherwise `bytes.find` looks for the level
    with a space on each side; a find counts only where it is the level of a line's head (the text of a line may say
    ERROR too), and the search goes on at the next line. It stops once the lines the check counted are found, so a
    payload without ALERT lines is not searched for them.
    """
    starts = [start for _, start, _ in cuts]
    if levels.db_starts is not None:
        known = [_db_line(payload, line_start, cuts, starts) for line_start in levels.db_starts]
        return [line for line in known if line is not None]
    found: list[tuple[int, DbLine]] = []
    for level in _DB_LEVELS:
        at = payload.find(level) if len(found) < levels.to_database else -1
        while at >= 0:
            line_start = payload.rfind(b"\n", 0, at) + 1
            line = _db_line(payload, line_start, cuts, starts, level_at=at + 1)
            if line is not None:
                found.append((line_start, line))
            next_line = payload.find(b"\n", at)
            at = payload.find(level, next_line) if next_line >= 0 and len(found) < levels.to_database else -1
    found.sort(key=lambda pair: pair[0])
    return [line for _, line in found]


def _db_line(
    payload: bytes | bytearray, line_start: int, cuts: list[tuple[str, int, int]], starts: list[int], level_at: int = -1
) -> DbLine | None:
    """The ERROR or ALERT line starting at `line_start` (its level at `level_at`, when given), or None."""
    match = _DB_LINE.match(payload, line_start)
    if match is None or (level_at >= 0 and match.start(2) != level_at):
        return None
    stamp, name, source, text = match.groups()
    return DbLine(
        cuts[bisect.bisect_right(starts, line_start) - 1][0],
        name.decode(),
        stamp.decode(),
        source.decode("utf-8"),
        text.decode("utf-8").replace("\n\t", "\n"),
    )
