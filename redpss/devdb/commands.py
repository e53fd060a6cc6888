"""The statements devdb reads itself because sqlglot does not parse them (or would change their meaning).

COMMIT/ROLLBACK, OPEN/CLOSE SCHEMA, EXECUTE SCRIPT, IMPORT/EXPORT ... CSV, CREATE/DROP CONNECTION, CREATE/DROP
SCRIPT (udf_parse.py, read before tokenizing: a script's body is not SQL), plus clear refusals for CREATE FUNCTION
and ALTER SESSION. `parse_command` returns None for every other statement, which then
goes through translate.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from sqlglot.tokenizer_core import TokenType

from redpss.devdb import users
from redpss.devdb.errors import DevDbError, Unsupported
from redpss.devdb.tokens import TokenCursor
from redpss.devdb.udf_parse import CreateScript, DropScript, parse_script_statement

if TYPE_CHECKING:
    from redpss.devdb.database import SessionDirectory


@dataclass(frozen=True)
class Commit:
    pass


@dataclass(frozen=True)
class Rollback:
    pass


@dataclass(frozen=True)
class OpenSchema:
    name: str


@dataclass(frozen=True)
class CloseSchema:
    pass


@dataclass(frozen=True)
class ExecuteScript:
    schema: str | None
    name: str
    args: tuple[Any, ...]


KILL_WAIT = 5.0  # seconds KILL SESSION waits for the killed session to end
KILL_POLL = 0.05


@dataclass(frozen=True)
class Kill:
    """KILL SESSION id (ends that session's connection) or KILL STATEMENT IN SESSION id (aborts its statement)."""

    session_id: int | None  # None: CURRENT_SESSION
    statement_only: bool

    def run(self, sessions: SessionDirectory, current: int) -> int:
        target = current if self.session_id is None else self.session_id
        handle = sessions.find(target)
        if handle is None:
            raise DevDbError(f"session {target} not found")
        if self.statement_only:
            handle.cancel("abort")
            return 0
        handle.drop()
        # A statement the session starts just after the drop would miss the abort: repeat it until the session ends.
        deadline = time.monotonic() + KILL_WAIT
        while target != current and sessions.find(target) is not None and time.monotonic() < deadline:
            handle.cancel("abort")
            time.sleep(KILL_POLL)
        return 0


@dataclass(frozen=True)
class CreateConnection:
    name: str
    address: str
    user: str | None
    password: str | None
    replace: bool


@dataclass(frozen=True)
class DropConnection:
    name: str
    if_exists: bool


@dataclass
class CsvOptions:
    """The CSV file options of IMPORT/EXPORT, with Exasol's defaults."""

    column_separator: str = ","
    column_delimiter: str = '"'
    row_separator: str = "LF"
    null: str = ""
    encoding: str = "UTF8"
    skip: int = 0
    trim: str | None = None
    delimit: str = "AUTO"
    with_column_names: bool = False


@dataclass
class Location:
    """Where the files are: a URL (ftp, ftps, http, https) or a CONNECTION object, plus credentials."""

    url: str | None = None
    connection: str | None = None
    user: str | None = None
    password: str | None = None
    public_key: str | None = None
    files: list[str] = field(default_factory=list)


@dataclass
class Import:
    schema: str | None
    table: str
    columns: list[str] | None
    locations: list[Location]
    options: CsvOptions


@dataclass
class Export:
    query: str | None  # the text of the query inside EXPORT ( ... )
    schema: str | None
    table: str | None
    columns: list[str] | None
    locations: list[Location]
    options: CsvOptions


Command = (
    Commit
    | Rollback
    | OpenSchema
    | CloseSchema
    | ExecuteScript
    | Kill
    | CreateConnection
    | DropConnection
    | Import
    | Export
    | CreateScript
    | DropScript
    | users.UserCommand
)
_T = TypeVar("_T")
_ROW_SEPARATORS = ("LF", "CRLF", "CR")


def parse_command(sql: str) -> Command | None:  # noqa: PLR0911, PLR0912 - one return per statement kind
    script = parse_script_statement(sql)
    if script is not None:
        return script
    cursor = TokenCursor(sql)
    if cursor.at_end():
        return None
    if cursor.accept("COMMIT"):
        cursor.accept("WORK")
        return _end(cursor, Commit())
    if cursor.accept("ROLLBACK"):
        cursor.accept("WORK")
        return _end(cursor, Rollback())
    if cursor.accept("OPEN", "SCHEMA"):
        return _end(cursor, OpenSchema(cursor.expect_identifier("a schema name")))
    if cursor.accept("CLOSE", "SCHEMA"):
        return _end(cursor, CloseSchema())
    first = cursor.peek()
    if first is not None and first.text.upper() == "EXECUTE":
        # the exasol tokenizer reads EXECUTE as a command and the rest as one string: read the rest again
        rest = TokenCursor(sql[first.end + 1 :])
        rest.expect("SCRIPT")
        return _execute_script(rest)
    if cursor.accept("KILL"):
        return _kill(cursor)
    if cursor.accept("IMPORT"):
        return _import(cursor)
    if cursor.accept("EXPORT"):
        return _export(cursor)
    user_command = users.parse(cursor)  # CREATE/ALTER/DROP USER, CREATE/DROP ROLE, GRANT, REVOKE
    if user_command is not None:
        return user_command
    if cursor.peek_word() == "CREATE":
        return _create(cursor)
    if cursor.accept("DROP", "CONNECTION"):
        if_exists = cursor.accept("IF", "EXISTS")
        return _end(cursor, DropConnection(cursor.expect_identifier("a connection name"), if_exists))
    if cursor.accept("ALTER", "SESSION"):
        raise Unsupported("ALTER SESSION", "session settings are fixed in devdb (UTF8, '.' decimal point, ISO formats)")
    if cursor.accept("ALTER", "CONNECTION"):
        raise Unsupported("ALTER CONNECTION", "use CREATE OR REPLACE CONNECTION")
    return None


def _kill(cursor: TokenCursor) -> Kill:
    statement_only = cursor.accept("STATEMENT")
    if statement_only:
        token = cursor.peek()
        if token is not None and token.token_type == TokenType.NUMBER:
            raise Unsupported("KILL STATEMENT with a statement id", "KILL STATEMENT IN SESSION id aborts the current")
        cursor.expect("IN")
    cursor.expect("SESSION")
    if cursor.accept("CURRENT_SESSION"):
        return _end(cursor, Kill(None, statement_only))
    token = cursor.take()
    if token.token_type != TokenType.NUMBER or not token.text.isdigit():
        cursor.pos -= 1
        cursor.fail("a session id or CURRENT_SESSION")
    return _end(cursor, Kill(int(token.text), statement_only))


def _end(cursor: TokenCursor, command: _T) -> _T:
    if not cursor.at_end():
        cursor.fail("the end of the statement")
    return command


def _create(cursor: TokenCursor) -> Command | None:
    cursor.expect("CREATE")
    replace = cursor.accept("OR", "REPLACE")
    if cursor.accept("CONNECTION"):
        name = cursor.expect_identifier("a connection name")
        cursor.expect("TO")
        address = cursor.expect_string("the connection address")
        user = password = None
        if cursor.accept("USER"):
            user = cursor.expect_string("the user name")
        if cursor.accept("IDENTIFIED", "BY"):
            password = cursor.expect_string("the password")
        return _end(cursor, CreateConnection(name, address, user, password, replace))
    words = [cursor.peek_word(i) for i in range(4)]
    if "FUNCTION" in words:
        raise Unsupported(
            "CREATE FUNCTION (function bodies are never run)",
            "write a PYTHON3 SCALAR SCRIPT, or register a Python stand-in with redpss.devdb.scripts.register_script",
        )
    return None


def _literal(cursor: TokenCursor) -> Any:
    negative = cursor.accept("-")
    token = cursor.take()
    if token.token_type == TokenType.NUMBER:
        value = Decimal(token.text)
        number: Any = int(value) if value == value.to_integral_value() and "." not in token.text else value
        return -number if negative else number
    if negative:
        cursor.fail("a number after '-'")
    if token.token_type == TokenType.STRING:
        return token.text if token.text != "" else None
    word = token.text.upper()
    if word in ("NULL", "TRUE", "FALSE"):
        return {"NULL": None, "TRUE": True, "FALSE": False}[word]
    raise Unsupported(
        f"the script argument {token.text!r}",
        "EXECUTE SCRIPT takes literal arguments (numbers, strings, NULL, TRUE, FALSE)",
    )


def _execute_script(cursor: TokenCursor) -> ExecuteScript:
    schema, name = cursor.qualified_name("a script name")
    args: list[Any] = []
    if cursor.accept("(") and not cursor.accept(")"):
        while True:
            args.append(_literal(cursor))
            if cursor.accept(")"):
                break
            cursor.expect(",")
    if cursor.accept("WITH", "OUTPUT"):
        raise Unsupported("EXECUTE SCRIPT ... WITH OUTPUT")
    return _end(cursor, ExecuteScript(schema, name, tuple(args)))


def _columns(cursor: TokenCursor) -> list[str] | None:
    if not cursor.accept("("):
        return None
    names = [cursor.expect_identifier("a column name")]
    while cursor.accept(","):
        names.append(cursor.expect_identifier("a column name"))
    cursor.expect(")")
    return names


def _locations(cursor: TokenCursor, direction: str) -> list[Location]:
    locations: list[Location] = []
    while cursor.accept("AT"):
        location = Location()
        token = cursor.peek()
        if token is not None and token.token_type == TokenType.STRING:
            location.url = cursor.expect_string("the file location")
        else:
            location.connection = cursor.expect_identifier("a URL or connection name")
        if cursor.accept("USER"):
            location.user = cursor.expect_string("the user name")
        if cursor.accept("IDENTIFIED", "BY"):
            location.password = cursor.expect_string("the password")
        if cursor.accept("PUBLIC", "KEY"):
            location.public_key = cursor.expect_string("the public key")
        for word in ("VERIFY", "IGNORE"):
            if cursor.peek_word() == word:
                raise Unsupported(f"{word} CERTIFICATE", "devdb never verifies file server certificates")
        while cursor.accept("FILE"):
            location.files.append(cursor.expect_string("a file name"))
            if cursor.peek_word() == "(":
                raise Unsupported("column selections in FILE '...' (...)", "list the target columns instead")
        if not location.files:
            cursor.fail("FILE 'name'")
        locations.append(location)
    if not locations:
        cursor.fail(f"AT '<url>' or AT <connection> ({direction})")
    return locations


def _options(cursor: TokenCursor, *, export: bool) -> CsvOptions:  # noqa: PLR0912 - one branch per option
    options = CsvOptions()
    while not cursor.at_end():
        if cursor.accept("ENCODING"):
            cursor.accept("=")
            options.encoding = cursor.expect_string("an encoding").upper().replace("-", "")
            if options.encoding != "UTF8":
                raise Unsupported(f"ENCODING = '{options.encoding}'", "devdb reads and writes UTF8 only")
        elif cursor.accept("NULL"):
            cursor.accept("=")
            options.null = cursor.expect_string("the NULL text")
        elif cursor.accept("ROW", "SEPARATOR"):
            cursor.accept("=")
            options.row_separator = cursor.expect_string("the row separator").upper()
            if options.row_separator not in _ROW_SEPARATORS:
                raise Unsupported(f"ROW SEPARATOR = '{options.row_separator}'", "use LF, CRLF or CR")
        elif cursor.accept("COLUMN", "SEPARATOR"):
            cursor.accept("=")
            options.column_separator = _one_character(cursor.expect_string("the column separator"), "COLUMN SEPARATOR")
        elif cursor.accept("COLUMN", "DELIMITER"):
            cursor.accept("=")
            options.column_delimiter = _one_character(cursor.expect_string("the column delimiter"), "COLUMN DELIMITER")
        elif not export and cursor.accept("SKIP"):
            cursor.accept("=")
            token = cursor.take()
            if token.token_type != TokenType.NUMBER:
                cursor.fail("a number of rows to skip")
            options.skip = int(token.text)
        elif not export and cursor.peek_word() in ("TRIM", "LTRIM", "RTRIM"):
            options.trim = cursor.take().text.upper()
        elif export and cursor.accept("DELIMIT"):
            cursor.accept("=")
            options.delimit = cursor.take().text.upper()
            if options.delimit not in ("AUTO", "ALWAYS", "NEVER"):
                cursor.fail("AUTO, ALWAYS or NEVER")
        elif export and cursor.accept("WITH", "COLUMN", "NAMES"):
            options.with_column_names = True
        else:
            raise Unsupported(f"the IMPORT/EXPORT option {cursor.peek_word() or cursor.take().text!r}")
    return options


def _one_character(value: str, option: str) -> str:
    if len(value) != 1:
        raise Unsupported(f"{option} = '{value}'", "devdb supports single characters here")
    return value


def _import(cursor: TokenCursor) -> Import:
    cursor.expect("INTO")
    schema, table = cursor.qualified_name("a table name")
    columns = _columns(cursor)
    cursor.expect("FROM")
    if not cursor.accept("CSV"):
        raise Unsupported(f"IMPORT FROM {cursor.peek_word()}", "devdb imports CSV files (FROM CSV AT ...)")
    locations = _locations(cursor, "IMPORT")
    return Import(schema, table, columns, locations, _options(cursor, export=False))


def _export(cursor: TokenCursor) -> Export:
    query = None
    schema = table = None
    columns = None
    if cursor.peek_word() == "(":
        start = cursor.pos + 1
        depth = 0
        while True:
            token = cursor.take()
            if token.token_type == TokenType.L_PAREN:
                depth += 1
            elif token.token_type == TokenType.R_PAREN:
                depth -= 1
                if depth == 0:
                    break
        query = cursor.text_between(start, cursor.pos - 1)
    else:
        schema, table = cursor.qualified_name("a table name or ( query )")
        columns = _columns(cursor)
    cursor.expect("INTO")
    if not cursor.accept("CSV"):
        raise Unsupported(f"EXPORT INTO {cursor.peek_word()}", "devdb exports CSV files (INTO CSV AT ...)")
    locations = _locations(cursor, "EXPORT")
    return Export(query, schema, table, columns, locations, _options(cursor, export=True))
