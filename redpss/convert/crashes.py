"""The source a converter was converting when its process ended without a word, remembered across restarts.

Some inputs end the whole process where no handler can catch it: a crash inside a parser's native code, or the
kernel killing it for the memory a file decodes to. Restarted, the converter would take the same file again at once
and end the same way, until systemd gave up on the unit and no file of any user was converted. So the source being
converted is written to `tmp/<converter>-converting.json` before its conversion and removed after it, whatever
its outcome (a graceful stop included); a record found at the start names a source whose conversion ended the
process. The second such end of the same source sets it aside to data/error with the reason: once could be an
operator's `kill -9` or a power cut, twice in a row on the same file is the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from redpss.core.durable import write_atomically

ENDS_BEFORE_SET_ASIDE = 2  # ends of the process during one source's conversion, then it goes to data/error


class CrashRecord:
    """tmp/<converter>-converting.json: the source under conversion and how often the process ended during it."""

    def __init__(self, tmp: Path, converter: str) -> None:
        self.path = tmp / f"{converter}-converting.json"
        # the source named at the start and its count, kept until that source's own conversion ends (other sources
        # may be converted before it: a user's upload sorting before it must not set its count back)
        self._suspect: tuple[Path, int] | None = None
        self._current: Path | None = None

    def found_at_start(self) -> tuple[Path, int] | None:
        """The source whose conversion the process's end interrupted, and how often that has happened now; None
        when the last run ended between conversions. The count is kept for the source's next conversion."""
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
            source, ends = Path(record["source"]), int(record["ends"]) + 1
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):  # torn or foreign: it names nothing reliably
            self.path.unlink(missing_ok=True)
            return None
        self._write(source, ends)
        self._suspect = (source, ends)
        return source, ends

    def begin(self, source: Path) -> None:
        """`source` is converted now (on disk before the first byte of it is read)."""
        self._current = source
        suspect = self._suspect
        self._write(source, suspect[1] if suspect is not None and suspect[0] == source else 0)

    def end(self) -> None:
        """The conversion ended in the process's hands (converted, refused, failed, stopped)."""
        self.path.unlink(missing_ok=True)
        if self._suspect is not None and self._suspect[0] == self._current:
            self._suspect = None
        self._current = None

    def forget(self) -> None:
        """The source named at the start is dealt with (set aside, or gone)."""
        self.path.unlink(missing_ok=True)
        self._suspect = None

    def _write(self, source: Path, ends: int) -> None:
        data = json.dumps({"source": str(source), "ends": ends}).encode() + b"\n"
        write_atomically(self.path, [data])
