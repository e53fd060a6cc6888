"""Whether a text is a plain decimal number, for every parser of numbers from outside.

`str.isdigit()` is also true for '²' and for digits of other scripts: `int()` refuses the first (a ValueError where
a clear refusal was meant) and reads the others, so a check with `isdigit` alone lets through what it was written
to refuse.
"""

from __future__ import annotations


def is_decimal(text: str) -> bool:
    """Only the ASCII digits 0-9, at least one."""
    return text.isascii() and text.isdigit()
