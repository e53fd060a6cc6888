"""The JSON2CSV and PARQ2CSV daemons: watch data/input and every user's folder in it, convert finished files to CSV.

One class, two daemons (each its own unit and process, so a Parquet file never waits behind a long JSON file):
the kind decides the suffixes, the reader and the tag of temporary names. Files are taken when they are finished
(core.filestable), converted one at a time in a worker thread (the event loop keeps the watchdog fed), and moved as
redpss.convert.files describes, so each is converted exactly once even when the daemon is killed.

Which files are finished is found once per pass, but a pass converts them one after another, for minutes when one is
big: each is looked at again just before it is taken, and one written to meanwhile waits for a later pass. A fault
of the converter's own with one file (any unexpected exception) holds that file, logged once; it never ends the
daemon, which would meet the same file first at every start and convert nothing after it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

from redpss.convert.convert import convert_file, use_memory_pool
from redpss.convert.crashes import ENDS_BEFORE_SET_ASIDE, CrashRecord
from redpss.convert.errors import BadInput, Cancelled
from redpss.convert.files import (
    Naming,
    ReplacedSince,
    SourceChanged,
    expire_archive,
    publish,
    publish_orphans,
    recover,
    reject,
    show,
    written_by_us,
)
from redpss.core.config import Config
from redpss.core.daemon import Service
from redpss.core.filestable import FileState, StabilityTracker, regular_file_state
from redpss.core.logging.recurring import RecurringProblems
from redpss.core.paths import InstancePaths
from redpss.core.services import service_spec
from redpss.core.setaside import MAKE_READABLE, SetAsideError, advice, printable
from redpss.redftp.inputs import watched_input_folders

log = logging.getLogger("redpss.convert")

RETENTION_INTERVAL = 3600.0  # archived sources are checked for expiry hourly
STALL_LIMIT = 600.0  # a conversion that reads no block for this long is stuck: unhealthy, the watchdog restarts us
HOLD_UNMOVABLE = 600.0  # a bad source that could not be moved to data/error is tried again after this long
HOLD_FAILED = 60  # seconds before a conversion that failed for want of space or access is tried again


class ConvertService(Service):
    tick_interval = 1.0

    def __init__(self, kind: str, config: Config, paths: InstancePaths) -> None:
        redctl = config.redctl
        if kind == "json":
            self.name = "json2csv"
            self.naming = Naming("json2csv", redctl.json2csv_json_suffix, redctl.json2csv_csv_suffix)
            self.retention = redctl.json2csv_retention
        else:
            self.name = "parq2csv"
            self.naming = Naming("parq2csv", redctl.parq2csv_parq_suffix, redctl.parq2csv_csv_suffix)
            self.retention = redctl.parq2csv_retention
        self.drain_timeout = service_spec(self.name).drain_timeout
        use_memory_pool(kind)
        self.kind = kind
        self.paths = paths
        self.tracker = StabilityTracker(redctl.ingest_stable_seconds)
        self.cancel = threading.Event()
        self.stopping = False
        self.wake = asyncio.Event()
        self.current: Path | None = None
        self.last_progress = time.monotonic()
        self.converted = 0
        self.rejected = 0
        self.rows = 0
        self.waiting: set[Path] = set()  # sources whose CSV name is still taken (said once in the log)
        self.held: dict[Path, float] = {}  # sources that failed or could not be moved -> monotonic time to try again
        self.broken: dict[Path, FileState | None] = {}  # sources the converter failed on -> the version it failed on
        self.problems = RecurringProblems(log)  # what each pass meets again, told when it appears
        self.next_retention = 0.0
        self.worker: asyncio.Task[None] | None = None
        self.crashes = CrashRecord(paths.tmp, self.name)

    async def start(self) -> None:
        for line in await asyncio.to_thread(recover, self.naming, self.paths, watched_input_folders(self.paths)):
            log.info("%s", line)
        await self._after_an_end_during_a_conversion()
        self.worker = self.spawn(self._work(), "convert")

    async def _after_an_end_during_a_conversion(self) -> None:
        """The source whose conversion the last run's process ended in (crashes.py): set aside the second time."""
        found = await asyncio.to_thread(self.crashes.found_at_start)
        if found is None:
            return
        source, ends = found
        if regular_file_state(source) is None:  # gone meanwhile (moved, deleted by its user)
            await asyncio.to_thread(self.crashes.forget)
            return
        if ends < ENDS_BEFORE_SET_ASIDE:
            log.warning(
                "the last run ended while it converted %s (%d time(s) now); it is converted again, and set aside to "
                "data/error if that ends the process again",
                printable(source),
                ends,
            )
            return
        await self._set_aside(
            source,
            f"its conversion ended the converter's process {ends} times in a row (a crash in the parser, or killed "
            f"for the memory it decodes to); `journalctl -u redpss-{self.name}@{self.paths.redenv}` tells how",
        )
        await asyncio.to_thread(self.crashes.forget)

    async def tick(self, now: float) -> None:
        self.wake.set()

    async def _work(self) -> None:
        while not self.stopping:
            await self.wake.wait()
            self.wake.clear()
            now = time.time()
            if now >= self.next_retention:
                self.next_retention = now + RETENTION_INTERVAL
                removed = await asyncio.to_thread(
                    expire_archive, self.paths, self.naming.source_suffix, self.retention, now
                )
                if removed:
                    log.info("removed %d archived source(s) older than %d days", removed, self.retention)
            unreadable: list[str] = []
            folders = watched_input_folders(self.paths, unreadable=unreadable)
            for problem in unreadable:
                self.problems.meet(problem)
            for line in await asyncio.to_thread(publish_orphans, self.naming, self.paths, folders):
                if line.startswith("cannot"):
                    self.problems.meet(line)
                else:
                    log.info("%s", line)
            self.held = {source: until for source, until in self.held.items() if until > time.monotonic()}
            self.broken = {
                source: state for source, state in self.broken.items() if regular_file_state(source) == state
            }
            for source in self.tracker.ready(self._candidates(folders), now):
                if self.stopping:
                    break
                if source not in self.held and source not in self.broken:
                    await self._take_one(source)
            self.problems.pass_done()

    async def _take_one(self, source: Path) -> None:
        """Take one source; a fault of the converter's own with it holds that source (until it is replaced or
        written to) and the pass goes on with the others."""
        try:
            await self._take(source)
        except Exception as exc:
            self.broken[source] = regular_file_state(source)
            log.exception(
                "%s could not be handled (%s: %s); it is left in place and taken again once it is replaced or "
                "written to, or at the next start",
                printable(source),
                type(exc).__name__,
                exc,
            )

    def _candidates(self, folders: list[Path]) -> list[Path]:
        found: list[Path] = []
        for folder in folders:
            try:
                found.extend(p for p in folder.iterdir() if self.naming.is_source(p))
            except FileNotFoundError:
                continue  # removed since the walk
            except OSError as exc:  # changed since the walk: the next pass sees it again
                self.problems.meet(f"cannot list {printable(folder)}: {exc.strerror or exc}")
        return sorted(found)

    async def _take(self, source: Path) -> None:
        state = self.tracker.still_ready(source, time.time())
        if state is None:
            return  # written to (or replaced) while the files before it were converted: a later pass takes it
        if (problem := self.naming.too_long(source) or self.naming.in_the_way(source)) is not None:
            await self._set_aside(source, problem)
            return
        target = self.naming.target(source)
        if target.exists():
            if source not in self.waiting:
                self.waiting.add(source)
                log.warning(
                    "%s waits: %s is still there (not yet loaded); it is converted once that is gone",
                    printable(source),
                    printable(target.name),
                )
            return
        self.waiting.discard(source)
        self.held.pop(source, None)
        self.current = source
        self.last_progress = time.monotonic()
        started = time.monotonic()
        try:
            await asyncio.to_thread(self.crashes.begin, source)
            converted = await asyncio.to_thread(self._convert, source, state)
        except BadInput as exc:
            await self._set_aside(source, str(exc))
        except Cancelled:
            log.info("conversion of %s stopped; it is converted again at the next start", printable(source))
        except SourceChanged:
            log.warning(
                "%s changed while it was converted; it is converted again once it stays unchanged", printable(source)
            )
        except SetAsideError as exc:  # converted, but the source cannot be archived: its folder is not ours to change
            self.held[source] = time.monotonic() + HOLD_UNMOVABLE
            log.error(
                "%s is converted but cannot be moved to data/archive (%s); the CSV waits, tried again in %d minutes%s",
                printable(source),
                exc,
                HOLD_UNMOVABLE // 60,
                advice(exc),
            )
        except OSError as exc:
            self.held[source] = time.monotonic() + HOLD_FAILED
            log.error("conversion of %s failed: %s; it is tried again in %d s", printable(source), exc, HOLD_FAILED)
        except Exception as exc:  # a file this converter cannot handle: set aside, never retried in a loop
            log.exception("conversion of %s failed unexpectedly", printable(source))
            reason = f"could not be converted ({type(exc).__name__}: {exc}); the converter's log has the details"
            await self._set_aside(source, reason)
        else:
            _log_done(source, target, time.monotonic() - started if converted else None)
        finally:
            self.crashes.end()  # whatever the outcome, the process saw it (only its end without a word leaves it)
            self.current = None
            self.tracker.forget(source)

    async def _set_aside(self, source: Path, reason: str) -> None:
        """A bad source to data/error with its reason; one that cannot be moved (its folder not writable by us) is
        left in place, logged, and tried again after HOLD_UNMOVABLE, never in a loop."""
        try:
            moved = await asyncio.to_thread(reject, self.paths, source, reason)
        except OSError as exc:
            self.held[source] = time.monotonic() + HOLD_UNMOVABLE
            log.error(
                "%s cannot be converted (%s) and cannot be moved to data/error (%s); left in place, tried again in "
                "%d minutes%s",
                printable(source),
                reason,
                exc,
                HOLD_UNMOVABLE // 60,
                advice(exc),
            )
            return
        self.rejected += 1
        log.error(
            "%s cannot be converted (%s); moved to %s with the reason beside it",
            printable(source),
            reason,
            printable(moved),
        )

    def _convert(self, source: Path, taken: FileState) -> bool:
        """Convert `source`, as it was when it was found steady (`taken`): a change after that, even before the
        first block was read, drops the output. False when only a CSV converted before was shown (its publishing
        had failed or been stopped), and a newer version of the source, if any, waits for its own turn."""
        earlier = self.naming.archiving_of(source)
        if earlier:  # converted and taken aside, but archiving or showing failed; or a newer upload came since
            for aside in earlier:
                show(self.naming, self.paths, aside)
            return False  # a newer source waits until the CSV shown is loaded
        if written_by_us(self.naming.ready(source)):  # converted before, but archiving or publishing failed: finish
            try:
                publish(self.naming, self.paths, source)
                return False
            except ReplacedSince as exc:  # a new version came while the CSV waited: it is converted now
                log.info("%s; its older CSV was removed, and it is converted again", exc)
        try:
            source.open("rb").close()
        except PermissionError as exc:
            raise BadInput("", f"the converter cannot read the file ({exc.strerror}); {MAKE_READABLE}") from None
        part = self.naming.part(source)
        rows = convert_file(self.kind, source, part, self.cancel, self._progress)
        if regular_file_state(source) != taken:  # replaced or rewritten meanwhile: what was read is gone
            part.unlink(missing_ok=True)
            raise SourceChanged(f"{printable(source)} changed while it was converted")
        part.rename(self.naming.ready(source))  # the commit point (see redpss.convert.files)
        try:
            publish(self.naming, self.paths, source, taken)
        except ReplacedSince as exc:  # replaced between the last look and the commit: converted again once steady
            raise SourceChanged(str(exc)) from None
        self.converted += 1
        self.rows += rows
        return True

    def _progress(self, rows: int) -> None:
        self.last_progress = time.monotonic()

    def status(self) -> str:
        text = f"{self.converted} file(s) converted ({self.rows} rows), {self.rejected} to data/error"
        if self.current is not None:
            text += f"; converting {printable(self.current.name)}"
        return text

    def healthy(self) -> bool:
        return self.current is None or time.monotonic() - self.last_progress < STALL_LIMIT

    async def drain(self) -> None:
        """Finish the file in progress (within the unit's stop timeout), take no new one."""
        self.stopping = True
        self.wake.set()
        if self.worker is not None:
            await asyncio.wait({self.worker})

    async def abort(self) -> None:
        """Stop the file in progress after its current block; its temporary output is removed."""
        self.stopping = True
        self.cancel.set()
        self.wake.set()
        if self.worker is not None:
            await asyncio.wait({self.worker}, timeout=5.0)


def _log_done(source: Path, target: Path, seconds: float | None) -> None:
    """The INFO line of a source taken: converted in `seconds`, or (None) only its CSV converted before shown."""
    if seconds is None:
        log.info("showed %s, converted before from %s", printable(target.name), printable(source))
    else:
        log.info("converted %s to %s in %.1f s", printable(source), printable(target.name), seconds)
