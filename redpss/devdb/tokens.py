"""Exasol SQL as tokens (sqlglot's exasol tokenizer), for the statements sqlglot does not parse.

COMMIT, OPEN SCHEMA, EXECUTE SCRIPT, IMPORT, EXPORT and CREATE CONNECTION are read here with a small cursor over
tokens, so string literals, comments and quoted identifiers are never mistaken for keywords.
"""

from __future__ import annotations

from typing import NoReturn

from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import TokenError
from sqlglot.tokenizer_core import Token, TokenType

from redpss.devdb.errors import DevDbError

_DIALECT = Dialect.get_or_raise("exasol")
_CHARSETS = ("UTF8", "ASCII")
_TEXT_TYPES = (TokenType.VARCHAR, TokenType.CHAR, TokenType.NVARCHAR, TokenType.NCHAR, TokenType.TEXT)


def tokenize(sql: str) -> list[Token]:
    try:
        return list(_DIALECT.tokenize(sql))
    except TokenError as exc:
        raise DevDbError(f"syntax error: {exc}") from exc


def strip_charset_suffixes(sql: str) -> str:
    """Remove the UTF8/ASCII suffix of text type declarations (VARCHAR(20) UTF8), which sqlglot cannot parse.

    Only the character set name that directly follows a text type (or its size) is removed; devdb stores text as
    UTF-8 either way and the shadow catalog records UTF8 (ASCII declarations are reported as declared).
    """
    tokens = tokenize(sql)
    cuts: list[tuple[int, int]] = []
    for index, token in enumerate(tokens):
        if token.token_type != TokenType.VAR or token.text.upper() not in _CHARSETS or index == 0:
            continue
        before = tokens[index - 1]
        if before.token_type in _TEXT_TYPES or (
            before.token_type == TokenType.R_PAREN and _closes_text_size(tokens, index - 1)
        ):
            cuts.append((token.start, token.end + 1))
    if not cuts:
        return sql
    parts: list[str] = []
    position = 0
    for start, end in cuts:
        parts.append(sql[position:start])
        position = end
    parts.append(sql[position:])
    return "".join(parts)


def ascii_columns(sql: str) -> set[str]:
    """Upper-case names of columns declared with an ASCII character set (to report them as declared)."""
    tokens = tokenize(sql)
    found: set[str] = set()
    for index, token in enumerate(tokens):
        if token.token_type == TokenType.VAR and token.text.upper() == "ASCII" and index > 0:
            # walk back to the column name: NAME TYPE [ ( n ) ] ASCII
            back = index - 1
            if tokens[back].token_type == TokenType.R_PAREN:
                while back > 0 and tokens[back].token_type != TokenType.L_PAREN:
                    back -= 1
                back -= 1
            if back >= 1 and tokens[back].token_type in _TEXT_TYPES:
                name = tokens[back - 1]
                found.add(name.text if name.token_type == TokenType.IDENTIFIER else name.text.upper())
    return found


def _closes_text_size(tokens: list[Token], close: int) -> bool:
    index = close - 1
    while index > 0 and tokens[index].token_type != TokenType.L_PAREN:
        index -= 1
    return index > 0 and tokens[index - 1].token_type in _TEXT_TYPES


class TokenCursor:
    """Reads a token list left to right; `expect_*` raise a syntax error that names what was expected."""

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.tokens = tokenize(sql)
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.tokens)

    def peek(self, offset: int = 0) -> Token | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def peek_word(self, offset: int = 0) -> str:
        token = self.peek(offset)
        if token is None or token.token_type in (TokenType.STRING, TokenType.IDENTIFIER):
            return ""
        return token.text.upper()

    def accept(self, *words: str) -> bool:
        """Consume the words if they come next (case-insensitive), else consume nothing."""
        for offset, word in enumerate(words):
            if self.peek_word(offset) != word:
                return False
        self.pos += len(words)
        return True

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            self.fail(" ".join(words))

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            self.fail("more text")
        self.pos += 1
        return token

    def expect_string(self, what: str) -> str:
        token = self.peek()
        if token is None or token.token_type != TokenType.STRING:
            self.fail(f"a quoted string ({what})")
        self.pos += 1
        return token.text

    def expect_identifier(self, what: str) -> str:
        """An identifier as Exasol stores it: unquoted names in upper case, quoted names as written."""
        token = self.peek()
        if token is None or token.token_type in (TokenType.STRING, TokenType.NUMBER) or not token.text:
            self.fail(what)
        self.pos += 1
        if token.token_type == TokenType.IDENTIFIER:
            return token.text
        if not (token.text[0].isalpha() or token.text[0] == "_"):
            self.fail(what)
        return token.text.upper()

    def qualified_name(self, what: str) -> tuple[str | None, str]:
        first = self.expect_identifier(what)
        if self.peek_word() == ".":
            self.pos += 1
            return first, self.expect_identifier(what)
        return None, first

    def rest_from(self, start_token: int) -> str:
        """The original SQL text from a token to the end of the statement."""
        return self.sql[self.tokens[start_token].start :] if start_token < len(self.tokens) else ""

    def text_between(self, start_token: int, end_token: int) -> str:
        """The original SQL text of tokens start_token .. end_token-1."""
        if start_token >= end_token:
            return ""
        return self.sql[self.tokens[start_token].start : self.tokens[end_token - 1].end + 1]

    def fail(self, expected: str) -> NoReturn:
        token = self.peek()
        found = f"'{token.text}'" if token is not None else "the end of the statement"
        raise DevDbError(f"syntax error: expected {expected} but found {found}")
