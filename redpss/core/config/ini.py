"""A line-numbered INI reader for red_params.conf that keeps going after a problem.

configparser stops at the first duplicate key and names bytes by file offset ("position 4031"); an operator needs
every problem at once, each with its line. This reader accepts the INI dialect the sample file uses:

- `[section]` headers, `key = value` (or `key: value`) lines, keys case-insensitive, leading blanks ignored;
- full-line comments starting with `#` or `;`, and an inline comment: `#` after a blank ends the value;
- a value in double or single quotes is taken literally between them, so a password may hold ` #` or blanks at
  either end; a UTF-8 byte order mark at the start is ignored; lines may end in CRLF.

There are no continuation lines: a value is one line. Everything else is a problem naming the line.
"""

from __future__ import annotations

import re

from redpss.core.record import Record

_INLINE_COMMENT = re.compile(r"\s#")
_SECTION_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_BOM = "\ufeff"


class Entry(Record):
    """One `key = value` line: the value after quotes and comment are removed, and how it was written."""

    key: str
    value: str
    line: int
    quoted: bool = False
    comment_cut: bool = False  # an inline ` #` comment was removed from an unquoted value


class IniDocument:
    """What was read: section -> key -> first Entry; the header line of each section; problems by line."""

    def __init__(self) -> None:
        self.sections: dict[str, dict[str, Entry]] = {}
        self.section_lines: dict[str, int] = {}
        self.problems: list[tuple[int, str]] = []
        self.undecodable_lines: set[int] = set()

    def problem(self, line: int, text: str) -> None:
        self.problems.append((line, text))


def decode_lines(data: bytes | str, document: IniDocument) -> list[str]:
    """The file's lines as text; a line that is not UTF-8 is a problem naming its first bad byte and column."""
    if isinstance(data, str):
        return data.removeprefix(_BOM).splitlines()
    data = data.removeprefix(_BOM.encode("utf-8"))
    lines: list[str] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        raw = line.removesuffix(b"\r")
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            column = len(raw[: exc.start].decode("utf-8", "replace")) + 1
            document.problem(
                number, f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {column}); save the file as UTF-8"
            )
            document.undecodable_lines.add(number)
            lines.append(raw.decode("utf-8", "replace"))
    if lines and lines[-1] == "":
        lines.pop()  # the newline ending the last line opens no further line
    return lines


def read_ini(data: bytes | str) -> IniDocument:
    """Read the whole text; never raises: every problem is recorded with its line number."""
    document = IniDocument()
    section: str | None = None
    for number, line in enumerate(decode_lines(data, document), start=1):
        text = line.strip()
        if not text or text[0] in "#;":
            continue
        if text.startswith("["):
            section = _read_header(text, number, document)
            continue
        entry = _read_entry(text, number, document, section)
        if entry is None or section is None:
            continue
        keys = document.sections[section]
        if entry.key in keys:
            document.problem(
                number, f"duplicate key {entry.key} in [{section}] (first at line {keys[entry.key].line}); keep one"
            )
            continue
        keys[entry.key] = entry
    return document


def _read_header(text: str, number: int, document: IniDocument) -> str | None:
    if not text.endswith("]"):
        document.problem(number, f"{text!r} opens a section header but does not close it with ]")
        return None
    name = text[1:-1].strip()
    if not _SECTION_NAME.fullmatch(name):
        document.problem(number, f"{text!r} is not a section header; sections look like [redctl]")
        return None
    if name in document.section_lines:
        document.problem(
            number, f"section [{name}] appears again (first at line {document.section_lines[name]}); merge them"
        )
    else:
        document.section_lines[name] = number
        document.sections[name] = {}
    return name


def _read_entry(text: str, number: int, document: IniDocument, section: str | None) -> Entry | None:
    positions = [p for p in (text.find("="), text.find(":")) if p > 0]
    if not positions:
        # The text is not shown: a line without `=` may well be a password pasted on its own line.
        document.problem(number, "not a `key = value` line, a [section] header or a # comment")
        return None
    split = min(positions)
    key, raw = text[:split].strip().lower(), text[split + 1 :].strip()
    if section is None:
        document.problem(number, f"key {key} comes before any [section]; put it below [DEFAULT] or its section")
        return None
    if raw and raw[0] in "\"'":
        return _read_quoted(key, raw, number, document, section)
    match = _INLINE_COMMENT.search(raw)
    if match is None:
        return Entry(key, raw, number)
    return Entry(key, raw[: match.start()].rstrip(), number, comment_cut=True)


def _read_quoted(key: str, raw: str, number: int, document: IniDocument, section: str) -> Entry | None:
    quote = raw[0]
    end = raw.find(quote, 1)
    if end < 0:
        document.problem(number, f"[{section}] {key}: the value opens a {quote} quote but never closes it")
        return None
    rest = raw[end + 1 :].strip()
    if rest and not rest.startswith("#"):
        document.problem(
            number, f"[{section}] {key}: text after the closing {quote} quote; only a # comment may follow it"
        )
        return None
    return Entry(key, raw[1:end], number, quoted=True)
