"""Text from the database made safe for a terminal table: one line, no control characters, a bounded width.

Names and messages come from rows anyone with write access to an application schema can fill: a newline would
break a table's rows apart, an escape sequence would steer the operator's terminal. Tables show such text escaped
(``\\n``, ``\\x1b``) and cut to DISPLAY_WIDTH characters with a trailing "..."; `--json` keeps the exact value.
"""

from __future__ import annotations

from redpss.core.escape import escaped_char

DISPLAY_WIDTH = 60


def display_text(value: str, width: int = DISPLAY_WIDTH) -> str:
    """`value` on one line with control and format characters escaped, at most `width` characters long."""
    shown = "".join(_escaped(char) for char in value)
    return shown if len(shown) <= width else shown[: max(0, width - 3)] + "..."


def _escaped(char: str) -> str:
    return char if char.isprintable() else escaped_char(char)  # line and paragraph separators are not printable
