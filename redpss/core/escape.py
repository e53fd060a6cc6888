"""One character that a line of text cannot hold, written as Python's repr writes it.

Text from outside (file names from uploaders, names and messages from the database) goes into log lines, `.reason`
files and terminal tables; a line break or an escape sequence in it would forge a line or steer a terminal. Where
such text is shown, every character that is not printable is replaced by this escape (`\\n`, `\\x1b`, `\\u2028`).
"""

from __future__ import annotations


def escaped_char(char: str) -> str:
    """`char` (not printable) as repr writes it; a lone surrogate that stands for an undecodable byte of a file name
    (os.fsdecode's surrogateescape) as that byte, `\\xff`."""
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return repr(char)[1:-1]
