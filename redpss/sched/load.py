"""LOAD jobs: CSV files below data/input imported into a table by the database itself, through CFISRV.

A LOAD job's COMMAND (docs/db-contract.md) names the target table, a glob of files below `$REDENV_HOME/data/input`
and the CSV options. For each settled file the worker sends `IMPORT INTO <table> FROM CSV AT REDSYS_CFI FILE
'input/...'`: the database pulls the file from CFISRV over FTPS, so the rows never pass through this process. The
file then moves to data/archive; a file the database rejects moves to data/error with `<file>.reason` holding the
database's message, and so does a file the instance user cannot read (CFISRV, which serves it, could not either). A
failure that is not the file's fault (database or CFISRV away, table missing, timeout) leaves the file where it is
for the next run and ends the run. One file that cannot be moved (its folder not writable by the instance user) is
left in place and named in the run's message; the files after it are loaded all the same.

The database reads the file under a name of the run's own: the run first renames it in its folder to
`.redpss-loading.<name>` (CLAIM_PREFIX), so a new version uploaded under the name meanwhile is a new file, left for
the next run, and never read by an IMPORT recorded as the old one (which the next run then loaded a second time).
Exactly once: the IMPORT and a row in REDSYS.ADM_LOAD_FILE commit together. A run that ends between that COMMIT and
the move (worker killed, disk error) leaves the file in place (or aside); the next run finds its row and archives
the file without importing it again. Two runs that match the same file (a second run of the job, another job whose glob
overlaps) never both load it: each file is loaded under an exclusive flock, and a run that cannot have it leaves it
to the one that has.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import io
import itertools
import logging
import os
import re
import shlex
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from redpss.core.config import Config, load_config
from redpss.core.db import DbSession
from redpss.core.db.contract import CFI_CONNECTION
from redpss.core.db.errors import DatabaseError, DatabaseQueryError
from redpss.core.db.sqltext import quoted_name, sql_literal
from redpss.core.digits import is_decimal
from redpss.core.durable import rename_without_replacing
from redpss.core.filestable import FileState, finished, is_temporary_name, regular_file_state
from redpss.core.paths import InstancePaths
from redpss.core.setaside import MAKE_READABLE, NAME_MAX, advice, move_file, printable
from redpss.redftp.inputs import folders_a_glob_cannot_search, not_searched, reachable_below_data
from redpss.sched.commit import in_one_transaction
from redpss.sched.runs import RunRequest, note_partial

log = logging.getLogger("redpss.sched.load")

CONNECTION = CFI_CONNECTION  # REDSYS_CFI, which db_install creates: ftps://<db_callback_host>:<cfi_port>/
LEDGER = "REDSYS.ADM_LOAD_FILE"
CLAIM_PREFIX = ".redpss-loading."  # a file taken aside while it loads: a hidden name, passed over as uploads' are
EXAMPLE = "table=APP1.ORDERS files='orders/*.csv' skip=1 column_separator=';'"
HEADER_MAX_CHARS = 1024 * 1024  # columns=header: the longest header line read (a table has at most 10,000 columns)
ROW_SEPARATORS = ("LF", "CRLF", "CR")
_NAME = r"[A-Za-z][A-Za-z0-9_]{0,127}"
_TABLE = re.compile(rf"{_NAME}(\.{_NAME})?")
_COLUMN = re.compile(_NAME)
_ENCODING = re.compile(r"[A-Za-z0-9_-]{1,32}")
# Database messages that say the file could not be fetched or the statement cannot work at all: not the file's fault.
# They are looked for in the message without its quoted parts: a value of the file it quotes ("Value: 'item does not
# exist'") must not decide the file's fate.
_NOT_THE_FILE = re.compile(
    r"IMPORT from ftps?://|external connection|ETL-5\d\d\d|connection \S+ not found|"
    r"object \S+ not found|table \S+ not found|not found in|insufficient privileges|does not exist",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"'(?:[^']|'')*'")
_DATA_ERRORS = ("22", "23")  # SQL classes: data exception, integrity constraint violation (a value of the file)


class LoadCommandError(ValueError):
    """A LOAD job's COMMAND that cannot be carried out; the message names what is wrong and shows a valid one."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"LOAD command: {problem}; write it as key=value words, e.g. {EXAMPLE}")


@dataclass(frozen=True)
class LoadCommand:
    """What a LOAD job's COMMAND says: where the rows go, which files, how the CSV is written."""

    table: str
    files: str  # glob relative to data/input
    skip: int = 1  # header lines (JSON2CSV and PARQ2CSV write one)
    column_separator: str = ","
    column_delimiter: str = '"'
    row_separator: str = "LF"
    encoding: str = "UTF8"
    null: str = ""
    columns: tuple[str, ...] = ()
    header_columns: bool = False  # columns=header: each file's header line names the columns (any order)

    def import_statement(self, remote: str, header: Sequence[str] = ()) -> str:
        """The IMPORT of one file, `remote` being its path as CFISRV serves it (below data/); `header`: the table's
        columns the file's fields go to, in file order (found from its header line), quoted as the table has them."""
        names = [quoted_name(name) for name in header] if header else list(self.columns)
        columns = f" ({', '.join(names)})" if names else ""
        options = [
            f"ENCODING = {sql_literal(self.encoding)}",
            f"ROW SEPARATOR = {sql_literal(self.row_separator)}",
            f"COLUMN SEPARATOR = {sql_literal(self.column_separator)}",
            f"COLUMN DELIMITER = {sql_literal(self.column_delimiter)}",
            f"SKIP = {self.skip}",
        ]
        if self.null:
            options.append(f"NULL = {sql_literal(self.null)}")
        return f"IMPORT INTO {self.table}{columns} FROM CSV AT {CONNECTION} FILE {sql_literal(remote)} " + " ".join(
            options
        )


def parse_command(text: str) -> LoadCommand:
    """The LoadCommand of a COMMAND text, or LoadCommandError naming the key and the value that are wrong."""
    try:
        words = shlex.split(text, comments=False, posix=True)
    except ValueError as exc:
        raise LoadCommandError(f"cannot split {text!r} into words ({exc})") from None
    known = {f.name for f in dataclasses.fields(LoadCommand)} - {"header_columns"}
    given: dict[str, str] = {}
    for word in words:
        key, equals, value = word.partition("=")
        key = key.strip().lower()
        if not equals:
            raise LoadCommandError(f"{word!r} is not key=value")
        if key not in known:
            raise LoadCommandError(f"unknown key {key!r} (known: {', '.join(sorted(known))})")
        if key in given:
            raise LoadCommandError(f"{key} is given twice")
        given[key] = value
    for required in ("table", "files"):
        if not given.get(required):
            raise LoadCommandError(f"{required}= is missing")
    return LoadCommand(
        table=_checked_table(given["table"]),
        files=_checked_glob(given["files"]),
        skip=_checked_skip(given.get("skip", "1")),
        column_separator=_one_character("column_separator", given.get("column_separator", ",")),
        column_delimiter=_one_character("column_delimiter", given.get("column_delimiter", '"')),
        row_separator=_checked_row_separator(given.get("row_separator", "LF")),
        encoding=_checked_encoding(given.get("encoding", "UTF8")),
        null=given.get("null", ""),
        columns=() if _header_columns(given) else _checked_columns(given.get("columns", "")),
        header_columns=_header_columns(given),
    )


def _header_columns(given: dict[str, str]) -> bool:
    if given.get("columns", "").lower() != "header":
        return False
    if given.get("skip", "1") == "0":
        raise LoadCommandError("columns=header reads the names from the header line: it needs skip=1 or more")
    return True


def _checked_table(value: str) -> str:
    if not _TABLE.fullmatch(value):
        raise LoadCommandError(f"table={value!r} is not a table name (SCHEMA.TABLE or TABLE: letters, digits, _)")
    return value.upper()


def _checked_glob(value: str) -> str:
    pattern = PurePosixPath(value)
    if value.startswith("/") or ".." in pattern.parts or not value.strip():
        raise LoadCommandError(f"files={value!r} must be a glob relative to data/input without '..', e.g. orders/*.csv")
    return value


def _checked_skip(value: str) -> int:
    if not is_decimal(value) or int(value) > 1000:
        raise LoadCommandError(f"skip={value!r} must be the number of header lines, 0 to 1000")
    return int(value)


def _one_character(key: str, value: str) -> str:
    if len(value) != 1 or value in "\r\n":
        raise LoadCommandError(f"{key}={value!r} must be exactly one character (not a line break)")
    return value


def _checked_row_separator(value: str) -> str:
    if value.upper() not in ROW_SEPARATORS:
        raise LoadCommandError(f"row_separator={value!r} must be one of {', '.join(ROW_SEPARATORS)}")
    return value.upper()


def _checked_encoding(value: str) -> str:
    if not _ENCODING.fullmatch(value):
        raise LoadCommandError(f"encoding={value!r} is not an encoding name such as UTF8 or ISO-8859-1")
    return value.upper()


def _checked_columns(value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    for name in names:
        if not _COLUMN.fullmatch(name):
            raise LoadCommandError(f"columns: {name!r} is not a column name (letters, digits, _)")
    return tuple(name.upper() for name in names)


@dataclass
class LoadReport:
    """What one run did, file by file; `message` is the run's log MESSAGE."""

    loaded: list[tuple[str, int]] = dataclasses.field(default_factory=list)  # (file, rows)
    rejected: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (file, reason)
    waiting: int = 0  # matching files not settled yet
    skipped: list[str] = dataclasses.field(default_factory=list)  # files reached through a link CFISRV does not follow
    stuck: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (file, why it could not be moved)
    unsearchable: list[str] = dataclasses.field(default_factory=list)  # folders of the glob the user may not read

    @property
    def rows(self) -> int:
        return sum(rows for _, rows in self.loaded)

    @property
    def message(self) -> str:
        parts = [f"{self.rows} row(s) from {len(self.loaded)} file(s)"]
        if self.loaded:
            more = f" and {len(self.loaded) - 20} more" if len(self.loaded) > 20 else ""
            parts.append(", ".join(f"{name}: {rows}" for name, rows in self.loaded[:20]) + more)
        if self.rejected:
            parts.append(
                f"{len(self.rejected)} file(s) rejected to data/error: "
                + "; ".join(f"{name}: {reason}" for name, reason in self.rejected[:5])
            )
        if self.waiting:
            parts.append(f"{self.waiting} file(s) still being written, left for the next run")
        if self.stuck:
            parts.append(
                f"{len(self.stuck)} file(s) could not be moved out of data/input, left in place: "
                + "; ".join(f"{name}: {why}" for name, why in self.stuck[:5])
            )
        if self.skipped:
            parts.append(
                f"{len(self.skipped)} file(s) skipped, reached through a link CFISRV does not follow: "
                + ", ".join(self.skipped[:5])
            )
        if self.unsearchable:
            parts.append(not_searched(self.unsearchable))
        return "; ".join(parts)


class LoadRejected(ValueError):
    """Some files of the run were rejected or could not be moved: the run fails, and its log row still counts the
    rows loaded."""

    def __init__(self, report: LoadReport) -> None:
        super().__init__(report.message)
        self.report = report
        self.extra = {"rows_loaded": report.rows}  # runners.execute hands it to the run's log row


def load_files(
    request: RunRequest, command: LoadCommand, session: DbSession, paths: InstancePaths, config: Config | None = None
) -> LoadReport:
    """Load every settled file `command` names; what was loaded and left waiting. LoadRejected when the database
    rejected a file (the others are loaded all the same); the config is the instance's, read at each run."""
    config = config or load_config(paths.config_file)
    if not config.redctl.cfi_enabled:
        raise ValueError(
            f"LOAD jobs need CFISRV, through which the database fetches the files: set cfi_enabled = true in "
            f"{paths.config_file}, run `redctl db_install` (it creates CONNECTION {CONNECTION}) and restart"
        )
    report = LoadReport()
    _forget_old(session, config.redctl.log_retention)
    interval, now = config.redctl.ingest_stable_seconds, time.time()
    for problem in folders_a_glob_cannot_search(paths.data_input, command.files):
        report.unsearchable.append(problem)
        log.warning("files=%r: %s", command.files, problem)
    # first the files an earlier run took aside and did not finish with (the same rule: nothing written for the
    # interval), then those under their own names (pathlib's glob also gives hidden names: skipped as uploads are)
    fresh = [p for p in sorted(paths.data_input.glob(command.files)) if not is_temporary_name(p.name)]
    files = [*taken_aside(paths.data_input, command.files), *fresh]
    try:
        _load_each(request, command, session, paths, files=files, report=report, settled=(interval, now))
    except (DatabaseError, OSError) as exc:  # the database or CFISRV went away, a statement timed out: the run ends
        if report.loaded:  # the files loaded before are archived: the run's log row must say so
            note_partial(exc, report.message, {"rows_loaded": report.rows})
        raise
    if report.rejected or report.stuck:
        raise LoadRejected(report)
    return report


def _load_each(
    request: RunRequest,
    command: LoadCommand,
    session: DbSession,
    paths: InstancePaths,
    *,
    files: list[Path],
    report: LoadReport,
    settled: tuple[float, float],
) -> None:
    """Load the files one by one into `report`; `settled`: (ingest_stable_seconds, the run's start) for the rule
    that decides which files are finished."""
    interval, now = settled
    for path in files:
        state = regular_file_state(path)
        if state is None:
            continue  # a folder or a link
        if not reachable_below_data(paths.data, path):
            _skip_unreachable(path, paths, report)
            continue
        if not finished(path, state, interval, now):  # core.filestable's rule, as everywhere
            report.waiting += 1
            continue
        problem = _unnameable(str(_original(path).relative_to(paths.data_input)))
        if problem:
            _reject(path, paths, report, problem)
            continue
        try:
            with _claimed(path) as claimed:
                if claimed is not None:  # else another LOAD run has it (globs overlap, or a second run of this one)
                    _load_file(request, session, paths, command, path=claimed, report=report)
        except Unreadable as exc:  # the database, through CFISRV, could not read it either
            _reject(path, paths, report, str(exc))


class Unreadable(Exception):
    """The instance user may not read the file (an upload made private)."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(
            f"the instance user cannot read the file ({exc.strerror}), nor can CFISRV for the database; "
            f"{MAKE_READABLE}, then move it back to data/input"
        )


def _claimed_glob(files: str) -> str | None:
    """The glob of the files of `files` that a run took aside (CLAIM_PREFIX) and did not finish with; None when the
    last part is `**` (folders, no files: pathlib refuses `**` beside other characters)."""
    pattern = PurePosixPath(files)
    return None if "**" in pattern.name else str(pattern.with_name(CLAIM_PREFIX + pattern.name))


def taken_aside(data_input: Path, files: str) -> list[Path]:
    """The files of the glob `files` below `data_input` that a LOAD run took aside and did not finish with (killed,
    or a failure it could not put back under the name): the next run of a job whose glob names them loads them, and
    a FILE watcher of that glob counts them, as it would have counted them under their own names."""
    claimed = _claimed_glob(files)
    return [p for p in sorted(data_input.glob(claimed)) if regular_file_state(p) is not None] if claimed else []


def _original(path: Path) -> Path:
    """The name a file had before a run took it aside (CLAIM_PREFIX): the one it is known, logged and moved by."""
    return path.with_name(path.name.removeprefix(CLAIM_PREFIX))


def _taken_aside(path: Path, handle: IO[bytes]) -> Path | None:
    """`path`, the file open as `handle` (flock held), renamed within its folder to its CLAIM_PREFIX name: the
    database then reads exactly this file, also when its sender uploads a new version under the name meanwhile (a
    new file, left for the next run). The path as it is for a name too long to take the prefix (loaded in place).
    None when the file is not ours to load: another run holds a file taken aside under that name (this one is left
    for the next run), the name is gone, or what was renamed is not the file we hold (a new version renamed over the
    name just before: put back). OSError when the folder does not let us rename it."""
    if path.name.startswith(CLAIM_PREFIX):
        return path
    aside = path.with_name(CLAIM_PREFIX + path.name)
    if len(os.fsencode(aside.name)) > NAME_MAX:
        return path
    try:
        rename_without_replacing(path, aside)
    except (FileExistsError, FileNotFoundError):
        return None
    held, renamed = os.fstat(handle.fileno()), aside.lstat()
    if (held.st_dev, held.st_ino) != (renamed.st_dev, renamed.st_ino):
        _put_back(aside)
        return None
    return aside


def _put_back(path: Path) -> None:
    """A file taken aside and not moved out goes back to its own name, unless a new version was uploaded under that
    name meanwhile (never replaced: `rename_without_replacing`): it then stays aside, and the next run of the job
    (or of a job a FILE watcher of its glob starts: `taken_aside`) loads it from there."""
    original = _original(path)
    if original == path:
        return
    with contextlib.suppress(OSError):
        rename_without_replacing(path, original)


@contextlib.contextmanager
def _claimed(path: Path) -> Iterator[Path | None]:
    """An exclusive flock on the file while this run loads it, and the file taken aside (`_taken_aside`): where it
    lies now, or None when another run has it. A failure that is not the file's fault puts it back under its name
    (`_put_back`). In a folder that does not let us rename it, it is loaded in place (as before that protection):
    it cannot be archived either, which the run's message names with the fix."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        yield None  # loaded and moved by another run since the glob
        return
    except PermissionError as exc:
        raise Unreadable(exc) from exc
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        try:
            mine = os.fstat(handle.fileno())
            still = (path.stat().st_dev, path.stat().st_ino) == (mine.st_dev, mine.st_ino)
        except FileNotFoundError:
            still = False  # moved by the run that held the lock before us
        try:
            aside = _taken_aside(path, handle) if still else None
        except OSError as exc:
            log.info("%s is loaded in place: it cannot be taken aside (%s)", printable(path), exc)
            aside = path
        if aside is None:
            yield None
            return
        try:
            yield aside
        except BaseException:
            _put_back(aside)
            raise


def _load_file(
    request: RunRequest,
    session: DbSession,
    paths: InstancePaths,
    command: LoadCommand,
    *,
    path: Path,
    report: LoadReport,
) -> None:
    """Load the file lying at `path` (taken aside, or in place) and archive it, or reject it to data/error."""
    relative = _original(path).relative_to(paths.data_input)
    remote = str(PurePosixPath("input", *relative.parts))  # the file's name, in the ledger and the messages
    read_from = str(PurePosixPath("input", *path.relative_to(paths.data_input).parts))  # what the database fetches
    stat = path.stat()
    key = f"{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"  # a rename changes none of them
    loaded_version = FileState.of(stat)
    done = session.fetchall(
        f"SELECT ROWS_LOADED, RUN_ID FROM {LEDGER} WHERE FILE_PATH = {{path}} AND FILE_KEY = {{key}}",  # noqa: S608
        {"path": remote, "key": key},
    )
    if done:
        rows = int(done[0][0])
        log.info("%s was loaded by run %s (%d rows) but not archived; archiving it now", remote, done[0][1], rows)
        session.execute(  # kept from expiring (log_retention) while the file waits: it must never load twice
            f"UPDATE {LEDGER} SET LOADED_AT = CURRENT_TIMESTAMP WHERE FILE_PATH = {{path}} AND FILE_KEY = {{key}}",  # noqa: S608
            {"path": remote, "key": key},
        )
    else:
        try:
            header = _file_columns(session, command, path)
            rows = _import(
                request, session, command.import_statement(read_from, header), key, remote=remote, table=command.table
            )
        except BadHeader as exc:
            _reject(path, paths, report, str(exc))
            return
        except DatabaseQueryError as exc:
            if not _the_files_fault(exc):
                raise
            _reject(path, paths, report, str(exc).replace(read_from, remote))  # the reason names the file's own name
            return
    report.loaded.append((str(relative), rows))
    if regular_file_state(path) != loaded_version:  # written again in place (a writer that had it open before)
        log.warning("input/%s was written again while it was loaded; its new version waits for the next run", relative)
        _put_back(path)
        return
    try:
        _set_aside(path, paths.data_input, paths.data_archive, None)
    except OSError as exc:
        _cannot_move(
            path, paths, report, exc, to="data/archive", then="the next run archives it without loading it again"
        )
        return
    log.info("%s: %d row(s) into %s, file archived", remote, rows, command.table)


def _the_files_fault(exc: DatabaseQueryError) -> bool:
    """Whether an IMPORT failed because of what the file holds (it goes to data/error), not because the database
    could not fetch it or cannot run the statement at all (it stays in data/input for the next run)."""
    if exc.passing:
        return False
    if exc.code[:2] in _DATA_ERRORS:
        return True
    return _NOT_THE_FILE.search(_QUOTED.sub("''", exc.reason)) is None


def _unnameable(relative: str) -> str:
    """Why the database cannot ask CFISRV for a file by this name ("" when it can): IMPORT names the file in SQL
    text, which is UTF-8, and in an FTP command, which a line break would end."""
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        return (
            "its name is not UTF-8 (written by a client using another character set), so IMPORT cannot name it; "
            "rename it in UTF-8 and move it back to data/input"
        )
    if any(ord(char) < 32 or 127 <= ord(char) < 160 for char in relative):  # C0 and C1, DEL: not (no-break) spaces
        return (
            "its name holds a control character (a line break, a tab), which IMPORT cannot pass on to CFISRV; "
            "rename it and move it back to data/input"
        )
    return ""


def _skip_unreachable(path: Path, paths: InstancePaths, report: LoadReport) -> None:
    """A file the glob reached through a link that leads out of the data tree or out of a user's upload folder:
    CFISRV would refuse it to the database, and it is not ours to move (it may be another user's file, loaded in its
    own right through that user's folder). Left where it is, with a WARNING; the run goes on with the other files."""
    relative = _original(path).relative_to(paths.data_input)
    report.skipped.append(printable(relative))
    log.warning(
        "input/%s skipped: it is reached through a link leading out of %s; CFISRV does not serve such paths "
        "(remove the link, or load the file where it lies)",
        printable(relative),
        "the data tree" if len(relative.parts) < 2 else f"data/input/{printable(relative.parts[0])}",
    )


def _reject(path: Path, paths: InstancePaths, report: LoadReport, reason: str) -> None:
    relative = _original(path).relative_to(paths.data_input)
    try:
        _set_aside(path, paths.data_input, paths.data_error, reason)
    except OSError as exc:
        _cannot_move(
            path, paths, report, exc, to="data/error", then=f"it was rejected ({reason}); the next run tries again"
        )
        return
    report.rejected.append((printable(relative), reason))
    log.warning("input/%s rejected, moved to data/error: %s", printable(relative), reason)


def _cannot_move(path: Path, paths: InstancePaths, report: LoadReport, exc: OSError, *, to: str, then: str) -> None:
    """A file that stays in data/input because it cannot be moved to `to`: named in the run's message and logged at
    ERROR with what to do; `then` says what happens to it. A file taken aside goes back under its name."""
    _put_back(path)
    relative = _original(path).relative_to(paths.data_input)
    why = f"cannot be moved to {to} ({exc}){advice(exc)}; {then}"
    report.stuck.append((printable(relative), why))
    log.error("input/%s %s", printable(relative), why)


class BadHeader(ValueError):
    """columns=header, and the file's first line names no usable columns."""


def header_names(path: Path, command: LoadCommand) -> list[str]:
    """The column names of the file's header line, read with the COMMAND's separator, delimiter and encoding."""
    first, _ = _first_rows(path, command)
    return _names_of(first)


def _names_of(first: list[str]) -> list[str]:
    """The column names a header line's fields give; BadHeader for an empty one or one given twice."""
    names = [name.strip() for name in first]
    if not names or any(not name for name in names):
        raise BadHeader(f"line 1: columns=header needs a header line naming every column, found {first!r}")
    if len(set(names)) != len(names):
        raise BadHeader(f"line 1: the header line names a column twice: {first!r}")
    return names


def _first_rows(path: Path, command: LoadCommand) -> tuple[list[str], list[str] | None]:
    """The fields of the file's header line, and of its first row after the `skip` lines (None when there is none,
    or it is too long to tell), read with the csv module from the file's first characters (bounded: a file without
    line breaks is not read whole), so a quoted line break (a converted file's text, or a JSON key) is kept."""
    # UTF-8 as Exasol spells it, either way; "-sig": a byte order mark (Excel's "CSV UTF-8") is no part of a name
    codec = "utf-8-sig" if command.encoding.upper().replace("-", "") == "UTF8" else command.encoding
    try:
        with path.open(encoding=codec, newline="") as handle:
            text = handle.read(2 * HEADER_MAX_CHARS)
        stream = io.StringIO(text)
        reader = csv.reader(stream, delimiter=command.column_separator, quotechar=command.column_delimiter)
        header = next(reader, [])
    except (UnicodeDecodeError, LookupError, csv.Error) as exc:
        raise BadHeader(f"line 1: the header line cannot be read as {command.encoding} CSV ({exc})") from None
    if stream.tell() > HEADER_MAX_CHARS:
        raise BadHeader(f"line 1: the header line is longer than {HEADER_MAX_CHARS} characters; is it a CSV file?")
    try:
        rows = [row for row in itertools.islice(reader, max(0, command.skip - 1), command.skip + 2) if row]
    except csv.Error:
        return header, None
    complete = len(text) < 2 * HEADER_MAX_CHARS or len(rows) > 1  # the first row may be cut short by the bound
    return header, (rows[0] if rows and complete else None)


def _file_columns(session: DbSession, command: LoadCommand, path: Path) -> Sequence[str]:
    """The table's columns the file's values go to by its header line, () for the COMMAND's columns or the
    table's order.

    columns=header: the header must name columns of the table (BadHeader: the file goes to data/error). Without
    `columns`, a file with a header line that names only columns of the table, as many as its first row has
    fields, is loaded by those names too: a converted JSON file has its fields in the order they came (another
    file, another order; a field first seen late last), and loaded by position its values would land in other
    columns without a word. A header naming anything else is another system's: its file is loaded by position, as
    documented. A name matches a column as it is written, else in any case (a table made with quoted lower-case
    names for a JSON feed's keys): the IMPORT names the column as the table has it.
    """
    if path.stat().st_size == 0:
        return ()  # no line at all (a JSON file that was `[]`): nothing to name, nothing to load
    if command.header_columns:
        return _named_by_header(session, command, path)
    if command.columns or command.skip < 1:
        return ()
    return _named_if_all(session, command, path)


def _named_if_all(session: DbSession, command: LoadCommand, path: Path) -> list[str]:
    """Without columns=: the table's columns the header names, if it names only columns of the table, each once,
    and as many as the first row has fields; else [] (by position)."""
    try:
        first, first_row = _first_rows(path, command)
        header = _names_of(first)
    except BadHeader:
        return []
    if first_row is not None and len(first_row) != len(header):
        return []  # a header that does not name every field: the rows are meant by position
    columns = _table_columns(session, command.table)
    named = [_column_named(name, columns) for name in header]
    if None in named or len(set(named)) != len(named):
        return []
    return [name for name in named if name is not None]


def _named_by_header(session: DbSession, command: LoadCommand, path: Path) -> list[str]:
    """columns=header: the table's columns the header names; BadHeader for a name the table lacks, or two that
    name one column."""
    header = header_names(path, command)
    columns = _table_columns(session, command.table)
    unknown = [name for name in header if _column_named(name, columns) is None]
    if unknown:
        raise BadHeader(f"line 1: the header names column(s) {', '.join(unknown)} that {command.table} does not have")
    named = [_column_named(name, columns) or name for name in header]
    if len(set(named)) != len(named):
        raise BadHeader(f"line 1: the header names a column of {command.table} twice: {header!r}")
    return named


def _table_columns(session: DbSession, table: str) -> list[str]:
    return [str(name) for name in session.execute(f"SELECT * FROM {table} WHERE 1 = 0").column_names()]  # noqa: S608


def _column_named(name: str, columns: Sequence[str]) -> str | None:
    """The table's column `name` stands for: the one written so, else the one an unquoted name means (upper case),
    else the only one of that name in any case."""
    if name in columns:
        return name
    if name.upper() in columns:
        return name.upper()
    matches = [column for column in columns if column.upper() == name.upper()]
    return matches[0] if len(matches) == 1 else None


def _import(request: RunRequest, session: DbSession, statement: str, key: str, *, remote: str, table: str) -> int:
    """IMPORT the file (`statement`) and record it in the ledger in one transaction; the rows imported."""

    def work() -> int:
        rows = int(session.execute(statement).rowcount())
        ledger = {
            "FILE_PATH": remote,
            "FILE_KEY": key,
            "TARGET_TABLE": table,
            "SCHEMA_NAME": request.schema,
            "JOB_ID": request.id,
            "RUN_ID": request.run_id,
            "ROWS_LOADED": rows,
        }
        names = ", ".join(ledger)
        values = ", ".join(sql_literal(v) for v in ledger.values())
        session.execute(f"INSERT INTO {LEDGER} ({names}, LOADED_AT) VALUES ({values}, CURRENT_TIMESTAMP)")  # noqa: S608
        return rows

    return in_one_transaction(session, work, f"the next run finds {remote} in {LEDGER} if it was loaded")


def _forget_old(session: DbSession, retention_days: int) -> None:
    if retention_days > 0:
        session.execute(
            f"DELETE FROM {LEDGER} WHERE LOADED_AT < ADD_DAYS(CURRENT_TIMESTAMP, -{int(retention_days)})"  # noqa: S608
        )


def _set_aside(path: Path, source_root: Path, target_root: Path, reason: str | None) -> Path:
    """Move `path` to the same relative place below `target_root`, named as JSON2CSV and PARQ2CSV name their
    sources (core.setaside), by the name it had before it was taken aside; with a reason, `<file>.reason` beside
    it, written first."""
    original = _original(path)
    folder = target_root / original.relative_to(source_root).parent
    return move_file(path, folder, None if reason is None else reason.rstrip() + "\n", name=original.name)
