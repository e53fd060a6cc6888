"""CREATE ... SCRIPT and DROP SCRIPT as devdb reads them: the header with tokens, the body as raw text.

A script body is Python (or Lua, Java, R): an apostrophe in a comment or a triple-quoted string would derail SQL
tokenizing, so only the header up to the first `AS` is tokenized and everything after it is the body, exactly as
written. A last line holding only `/` (the terminator EXAplus and DBeaver use; drivers send the text without it) is
not part of the body. Only `PYTHON3 SCALAR SCRIPT ... RETURNS type` is accepted; SET/EMITS scripts, other
languages and Lua scripting programs are refused by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.errors import ParseError
from sqlglot.tokenizer_core import TokenType

from redpss.devdb.errors import DevDbError, Unsupported
from redpss.devdb.tokens import TokenCursor, strip_charset_suffixes
from redpss.devdb.types import ExaType, from_declared

_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.DOTALL)
_CREATE_SCRIPT = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:[A-Z0-9_]+\s+){0,2}SCRIPT\b", re.IGNORECASE)
_DROP_SCRIPT = re.compile(r"DROP\s+(?:(?:ADAPTER|LUA|PYTHON3)\s+)?SCRIPT\b", re.IGNORECASE)
_HEADER_END = re.compile(r"\bAS\b", re.IGNORECASE)
_TERMINATOR = re.compile(r"\n[ \t]*/[ \t\r\n]*\Z")
LANGUAGE = "PYTHON3"
_KINDS = ("SCALAR", "SET")


@dataclass(frozen=True)
class Parameter:
    """One input of a scalar script: the name `ctx` offers it under (as written) and its declared type."""

    name: str
    type: ExaType


@dataclass(frozen=True)
class CreateScript:
    schema: str | None
    name: str
    parameters: tuple[Parameter, ...]
    returns: ExaType
    body: str
    replace: bool


@dataclass(frozen=True)
class DropScript:
    schema: str | None
    name: str
    if_exists: bool


def parse_script_statement(sql: str) -> CreateScript | DropScript | None:
    """The statement as a script command, None when it is not CREATE/DROP SCRIPT; DevDbError/Unsupported say why
    a script statement cannot run."""
    start = _LEADING_COMMENTS.match(sql)
    text = sql[start.end() if start else 0 :]
    if _DROP_SCRIPT.match(text):
        return _drop(text)
    if not _CREATE_SCRIPT.match(text):
        return None
    header_end = _HEADER_END.search(text)
    if header_end is None:
        raise DevDbError("syntax error: CREATE SCRIPT needs AS followed by the script's code")
    header = TokenCursor(text[: header_end.start()])
    body = _body(text[header_end.end() :])
    header.expect("CREATE")
    replace = header.accept("OR", "REPLACE")
    language = "" if header.peek_word() in (*_KINDS, "SCRIPT") else header.take().text.upper()
    kind = header.take().text.upper() if header.peek_word() in _KINDS else ""
    header.expect("SCRIPT")
    _check_kind(language, kind)
    schema, name = header.qualified_name("a script name")
    parameters = _parameters(header)
    if header.accept("EMITS"):
        raise Unsupported("EMITS scripts", "devdb runs PYTHON3 SCALAR scripts with RETURNS <type>")
    header.expect("RETURNS")
    returns = _type(header.text_between(header.pos, len(header.tokens)), "the RETURNS type")
    if not body.strip():
        raise DevDbError(f"script {name} has no code after AS")
    return CreateScript(schema, name, parameters, returns, body, replace)


def _check_kind(language: str, kind: str) -> None:
    if language == LANGUAGE and kind == "SCALAR":
        return
    if language == LANGUAGE and kind == "SET":
        raise Unsupported("SET scripts", "devdb runs PYTHON3 SCALAR scripts (one call per row, RETURNS <type>)")
    if language in ("", "LUA") and not kind:
        raise Unsupported(
            "Lua scripting programs (CREATE SCRIPT ... AS)",
            "register a Python stand-in with redpss.devdb.scripts.register_script and call it with EXECUTE SCRIPT",
        )
    shown = " ".join(word for word in (language, kind) if word)
    raise Unsupported(f"CREATE {shown} SCRIPT", "devdb runs PYTHON3 SCALAR scripts only; other bodies are never run")


def _body(after_as: str) -> str:
    """The code after AS: the rest of the AS line is dropped when blank, a closing `/` line is not code."""
    first_line, newline, rest = after_as.partition("\n")
    body = rest if newline and not first_line.strip() else after_as.lstrip(" \t")
    return _TERMINATOR.sub("\n", body)


def _parameters(header: TokenCursor) -> tuple[Parameter, ...]:
    header.expect("(")
    if header.accept(")"):
        return ()
    if header.peek_word() == "." or header.accept("..."):
        raise Unsupported("scripts with a dynamic parameter list (...)", "declare each parameter with its type")
    parameters: list[Parameter] = []
    while True:
        token = header.peek()
        if token is None:
            header.fail("a parameter name")
        name = token.text
        header.pos += 1
        start = header.pos
        depth = 0
        while True:
            token = header.peek()
            if token is None:
                header.fail("')' closing the parameter list")
            if depth == 0 and token.token_type in (TokenType.COMMA, TokenType.R_PAREN):
                break
            depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(token.token_type, 0)
            header.pos += 1
        if any(p.name == name for p in parameters):
            raise DevDbError(f"syntax error: the parameter {name} is declared twice")
        parameters.append(Parameter(name, _type(header.text_between(start, header.pos), f"the type of {name}")))
        if header.accept(")"):
            return tuple(parameters)
        header.expect(",")


def _type(text: str, what: str) -> ExaType:
    declared = strip_charset_suffixes(text).strip()
    if not declared:
        raise DevDbError(f"syntax error: {what} is missing")
    try:
        node = exp.DataType.build(declared, dialect="exasol")
    except (ParseError, ValueError) as exc:
        raise DevDbError(f"syntax error: {what} {declared!r} is not a data type") from exc
    found = from_declared(node)
    if found.kind in ("VARCHAR", "CHAR") and text.strip().upper().endswith("ASCII"):
        return ExaType(found.kind, size=found.size, charset="ASCII")
    return found


def _drop(text: str) -> DropScript:
    cursor = TokenCursor(text)
    cursor.expect("DROP")
    if cursor.peek_word() in ("ADAPTER", "LUA", "PYTHON3"):
        cursor.take()
    cursor.expect("SCRIPT")
    if_exists = cursor.accept("IF", "EXISTS")
    schema, name = cursor.qualified_name("a script name")
    if not cursor.at_end():
        cursor.fail("the end of the statement")
    return DropScript(schema, name, if_exists)
