"""The one error a conversion raises for bad input: where it is and what is wrong, for <file>.reason."""

from __future__ import annotations

from redpss.core.errors import RedpssError


class BadInput(RedpssError):
    """The source cannot be converted; the file goes to data/error with this text as its reason.

    `where` names the place (line and character, or row group, row and column); `what` says what is wrong and,
    where the sender can do something about it, how to fix it.
    """

    def __init__(self, where: str, what: str) -> None:
        self.where = where
        self.what = what
        super().__init__(f"{where}: {what}" if where else what)


class Cancelled(Exception):
    """The daemon stops: the conversion in progress is abandoned (its temporary output removed) and redone later."""
