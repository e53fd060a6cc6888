"""The column-by-column check of lines' heads never says yes where the patterns say no, and counts as they do."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from redpss.dbls import batch, heads
from redpss.sql.udf.pss_client import log_line, log_request, now_text

USUAL_STAMP = "2026-11-30 01:02:03.456789"
STAMPS = st.sampled_from(
    [USUAL_STAMP, "2026-11-30 01:02:03", "2026-11-30T01:02:03.456789", "2026-11-30 01:02:03.4567",
     "2026-11-30 01:02:03.4567890", "2026-11-3x 01:02:03.456789", "2026-11-30 01:02:03:456789",
     "2026/11/30 01:02:03.456789", "2026-11-30 01:02:3.456789"]
)  # fmt: skip
LEVELS = st.sampled_from(["INFO", "WARN", "DEBUG", "ERROR", "ALERT", "INF", "info", "ERRORS", "NOTICE", ""])
SOURCES = st.one_of(
    st.sampled_from(["APP.JOB_1", "", "a" * 29, "a" * 30, "a" * 31, "a" * 40, "a b", "a:b", "a\x01b", "a\tb", "ü"]),
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=40),
)
SEPARATORS = st.sampled_from([": ", ":", " : ", ":  ", ";", ": \n"])
TEXTS = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=80)


@st.composite
def lines(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["head", "head", "head", "continued", "other"]))
    if kind == "continued":
        return "\t" + draw(TEXTS) + "\n"
    if kind == "other":
        return draw(st.sampled_from(["", " ", "x", "\t", "2026"])) + draw(TEXTS) + "\n"
    return f"{draw(STAMPS)} {draw(LEVELS)} {draw(SOURCES)}{draw(SEPARATORS)}{draw(TEXTS)}\n"


@st.composite
def nearly_usual_lines(draw: st.DrawFn) -> str:
    """Lines in the client's layout but for their source and text: whole buffers of them are often valid, so a
    difference in one line decides the answer."""
    if draw(st.integers(0, 4)) == 0:
        return "\t" + draw(TEXTS) + "\n"
    level = draw(st.sampled_from(["INFO", "WARN", "DEBUG", "ERROR", "ALERT"]))
    return f"{USUAL_STAMP} {level} {draw(SOURCES)}: {draw(TEXTS)}\n"


@st.composite
def texts(draw: st.DrawFn) -> bytes:
    usual = [log_line(level, USUAL_STAMP, "APP.JOB", "text") for level in ("INFO", "ERROR")]
    kinds = st.one_of(lines(), st.sampled_from(usual)) if draw(st.booleans()) else nearly_usual_lines()
    body = draw(st.lists(kinds, min_size=1, max_size=30))
    text = bytearray("".join(body).encode())
    for at, byte in draw(st.lists(st.tuples(st.integers(0, len(text) - 1), st.integers(0, 255)), max_size=3)):
        text[at] = byte  # any byte anywhere, a line break or a colon too
    return bytes(text)


def patterns_say(text: bytes) -> tuple[int, int] | None:
    first = batch._FIRST.match(text)
    if first is None or not text.endswith(b"\n") or b"\r" in text or not batch._utf8(text):
        return None
    levels = batch.levels_by_patterns(text, first)
    return None if levels is None else (levels.lines, levels.to_database)


def columns_say(text: bytes) -> tuple[int, int] | None:
    """The column check's counts; every line start it gives for the database is the head of an ERROR/ALERT line."""
    found = heads.usual_heads(text)
    if found is None:
        return None
    lines, db_starts = found
    for start in db_starts:
        assert start == 0 or text[start - 1] == 10
        assert text[start + 27 : start + 33] in (b"ERROR ", b"ALERT ")
    return lines, len(db_starts)


@settings(max_examples=3000, deadline=None)
@given(texts())
@example(f"{USUAL_STAMP} INFO {'s' * 30}: x\n".encode())  # the source's ': ' at the end of the row
@example(f"{USUAL_STAMP} DEBUG {'s' * 29}: x\n".encode())
@example(f"{USUAL_STAMP} INFO : empty source\n{USUAL_STAMP} ALERT : too\n\tcontinued\n".encode())
@example(f"{USUAL_STAMP} INFO a\tb: x\n{USUAL_STAMP} INFO a: x\n".encode())  # a tab in the source
@example(f"{USUAL_STAMP} INFO a: x\n\t{'c' * 26}ERROR y\n".encode())  # a continuation line that reads like ERROR
def test_the_columns_accept_only_what_the_patterns_accept_and_count_the_same(text: bytes) -> None:
    expected = patterns_say(text)
    if not text.endswith(b"\n") or b"\r" in text or not batch._utf8(text):
        return  # the caller refuses these before either check
    found = columns_say(text)
    assert found is None or found == expected


def test_the_clients_own_buffers_are_accepted_by_the_columns() -> None:
    """What PSS_LOG sends (the client's timestamps, continuation lines, ERROR lines) takes the quick way."""
    lines = [
        log_line("ERROR" if number % 7 == 0 else "INFO", now_text(), "APP.JOB_1",
                 f"line {number}" + ("\nsecond line" if number % 5 == 0 else ""))
        for number in range(2000)
    ]  # fmt: skip
    _, payload = log_request({"APP1": lines})
    assert len(payload) >= heads.MIN_BYTES
    assert columns_say(payload) == patterns_say(payload) == (2000, 286)


@pytest.mark.parametrize("where", [0, 1000, 1999])
@pytest.mark.parametrize(
    "bad", [f"{USUAL_STAMP} INFO  APP: two spaces\n", f"{USUAL_STAMP} INFO APP:no space\n", "no head\n", "\n"]
)
def test_a_bad_line_anywhere_in_a_large_buffer_is_left_to_the_patterns(where: int, bad: str) -> None:
    """The first line, one in the middle, and the last (whose row reaches beyond the buffer)."""
    lines = [log_line("INFO", USUAL_STAMP, "APP.JOB_1", f"line {number}") for number in range(2000)]
    lines[where] = bad
    _, payload = log_request({"APP1": lines})
    assert columns_say(payload) is None and patterns_say(payload) is None
    lines[where] = log_line("ALERT", USUAL_STAMP, "", "fine\nand continued")
    _, payload = log_request({"APP1": lines})
    assert columns_say(payload) == patterns_say(payload) == (2000, 1)


def test_a_buffer_of_short_lines_goes_to_the_patterns_and_one_larger_than_a_piece_is_checked_piece_by_piece() -> None:
    """Rows of 64 bytes for lines of two would cost 30 times the payload: such a buffer is left to the patterns.
    A buffer of several pieces is counted across them, a continuation line right at a piece's start included."""
    for continued in (b"\t\n", b"\t1234567\n"):  # two line breaks in a word of eight bytes, or one in each
        short = log_line("INFO", USUAL_STAMP, "APP", "x").encode() + continued * 100_000
        assert heads.usual_heads(short) is None and patterns_say(short) == (1, 0)
    line = log_line("INFO", USUAL_STAMP, "APP.JOB_1", "y" * 100).encode()
    alert = log_line("ALERT", USUAL_STAMP, "APP.JOB_1", "z").encode()
    body = line * (heads.PIECE_BYTES // len(line))
    body += b"\t" * (heads.PIECE_BYTES - len(body) - 1) + b"\n"  # ends one byte before the piece's end: a tab line
    payload = body + b"\tcontinued at the next piece's start\n" + (alert + line * 1000) * 20
    assert len(payload) > heads.PIECE_BYTES + 2 * len(line)
    assert columns_say(payload) == patterns_say(payload) == (payload.count(b"\n2026") + 1, 20)


@settings(max_examples=2000, deadline=None)
@given(st.binary(min_size=1, max_size=200).map(lambda data: data.replace(b"\x0b", b"\n")))
def test_the_line_breaks_found_eight_bytes_at_a_time_are_those_of_a_byte_wise_search(data: bytes) -> None:
    """Words of the mask with one line break, with two (a line shorter than eight bytes), a buffer whose length is
    not a multiple of eight; more line breaks than SHORTEST_LINES allows: None."""
    found = heads._line_ends(np.frombuffer(data, np.uint8))
    expected = np.flatnonzero(np.frombuffer(data, np.uint8) == 10).tolist()
    if found is None:
        assert len(expected) > len(data) // heads.SHORTEST_LINES
    else:
        assert found.tolist() == expected


def test_a_piece_of_more_lines_than_the_kept_layout_rows_is_checked_whole() -> None:
    lines = [log_line("INFO" if number % 100 else "ERROR", USUAL_STAMP, "A", "x") for number in range(20_000)]
    _, payload = log_request({"APP1": lines})
    assert payload.count(b"\n") > heads.KEPT_LAYOUT_ROWS and len(payload) < heads.PIECE_BYTES
    assert columns_say(payload) == patterns_say(payload) == (20_000, 200)
    for bad in (f"{USUAL_STAMP} INFO A:x\n", f"{USUAL_STAMP.replace('30', '3x')} INFO A: x\n"):
        _, payload = log_request({"APP1": [*lines[:-1], bad]})
        assert columns_say(payload) is None and patterns_say(payload) is None
    _, payload = log_request({"APP1": [*lines[:-1], f"{USUAL_STAMP.replace(' ', 'T')} INFO A: x\n"]})
    assert columns_say(payload) is None and patterns_say(payload) == (20_000, 200)  # valid, not in the usual layout
