"""Text from the database made safe for a terminal table: one line, no control characters, a bounded width.

Names and messages come from rows anyone with write access to an application schema can fill: a newline would
break a table's rows apart, an escape sequence would steer the operator's terminal. Tables show such text escaped
(``\\n``, ``\\x1b``) and cut to DISPLAY_WIDTH characters with a trailing "..."; `--json` keeps the exact value.
"""

from __future__ import annotations

import unicodedata

DISPLAY_WIDTH = 60


def display_text(value: str, width: int = DISPLAY_WIDTH) -> str:
    """`value` on one line with control and format characters escaped, at most `width` characters long."""
    shown = "".join(_escaped(char) for char in value)
    return shown if len(shown) <= width else shown[: max(0, width - 3)] + "..."


def _escaped(char: str) -> str:
    if char.isprintable() and unicodedata.category(char) not in ("Zl", "Zp"):
        return char
    if char in "\n\r\t":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
