"""The checks of one log request (redpss.dbls.batch) on blocks made by the database's client, without sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from redpss.dbls import heads
from redpss.dbls.batch import BatchError, parse_blocks
from redpss.dbls.files import IOV_MAX, SchemaFiles
from redpss.sql.udf.pss_client import log_line, log_request

STAMP = "2026-11-30 01:02:03.123"


def request(blocks: dict[str, list[str]]) -> tuple[object, bytes]:
    header, payload = log_request(blocks)
    return header["blocks"], payload


def test_blocks_are_kept_per_schema_in_order_and_errors_become_rows() -> None:
    blocks, payload = request(
        {
            "app1": [log_line("INFO", STAMP, "APP1.J", "first")],
            "APP2": [log_line("error", STAMP, "APP2.J", "two\nlines\n\tindented")],
            "App1": [log_line("ALERT", "2026-11-30T01:02:03", "", "third ERROR: not a level")],
        }
    )
    batch = parse_blocks(blocks, payload)
    assert batch.files == {
        "APP1": [f"{STAMP} INFO APP1.J: first\n".encode(), b"2026-11-30T01:02:03 ALERT : third ERROR: not a level\n"],
        "APP2": [f"{STAMP} ERROR APP2.J: two\n\tlines\n\t\tindented\n".encode()],
    }
    assert (batch.lines, batch.size) == (3, len(payload))
    assert [line.row() for line in batch.to_database] == [
        {"LOG_TIME": STAMP, "LOG_LEVEL": "ERROR", "SOURCE": "APP2.J", "MESSAGE": "two\nlines\n\tindented"},
        {
            "LOG_TIME": "2026-11-30 01:02:03",
            "LOG_LEVEL": "ALERT",
            "SOURCE": None,
            "MESSAGE": "third ERROR: not a level",
        },
    ]


def test_a_text_that_names_a_level_is_not_a_row() -> None:
    batch = parse_blocks(*request({"APP1": [log_line("INFO", STAMP, "s", "ERROR ALERT\nERROR x: y")]}))
    assert batch.to_database == [] and batch.lines == 1


GOOD = f"{STAMP} INFO s: fine\n".encode()


@pytest.mark.parametrize(
    ("schema", "after", "message"),
    [
        ("../../etc", b"", "schema '../../etc' is not a valid Exasol identifier"),
        ("A/B", b"", "is not a valid Exasol identifier"),
        ("A" * 129, b"", "at most 128 characters"),
        ("APP2", f"{STAMP} info s: t\n".encode(), "schema APP2: line 2: level 'info' is not one of ALERT, DEBUG"),
        ("APP2", b"2026-11-30 INFO s: t\n", "line 2: '2026-11-30 INFO s: t' does not start with a timestamp"),
        ("APP2", f"{STAMP} INFO a b: t\n".encode(), "line 2: after the level comes the source"),
        ("APP2", f"{STAMP} INFO s t\n".encode(), "line 2: after the level comes the source"),
        ("APP2", b"no head\n", "line 2: 'no head' does not start with a timestamp"),
        ("APP2", b"\n", "line 2: '' does not start with a timestamp"),
        ("APP2", GOOD[:-1], "line 2: every line ends with a line break"),
        ("APP2", f"{STAMP} INFO s: a\rb\n".encode(), "line 2: a carriage return"),
        ("APP2", f"{STAMP} INFO s: \xff\n".encode("latin-1"), "line 2: not UTF-8"),
    ],
)
def test_a_bad_block_refuses_the_whole_request_naming_the_line(schema: str, after: bytes, message: str) -> None:
    block = GOOD + after
    with pytest.raises(BatchError) as refused:
        parse_blocks([["APP1", len(GOOD)], [schema, len(block)]], GOOD + block)
    assert message in str(refused.value)


@pytest.mark.parametrize("bad", [b"no head\n", b"\n", b"\xc3\xa9t\xc3\xa9\n", f"{STAMP} NOTICE s: t\n".encode()])
def test_a_bad_line_among_error_and_continuation_lines_is_found(bad: bytes) -> None:
    block = f"{STAMP} ERROR s: one\n\tmore\n{STAMP} ALERT s: two\n".encode() + bad + GOOD
    with pytest.raises(BatchError, match="schema APP1: line 4: "):
        parse_blocks([["APP1", len(block)]], block)


@pytest.mark.parametrize(
    ("stamp", "filler"), [(STAMP, 0), ("2026-11-30 01:02:03.123456", 300)], ids=["patterns", "columns"]
)
def test_rows_come_in_payload_order_with_their_schema_and_texts_naming_levels_are_no_rows(
    stamp: str, filler: int
) -> None:
    """Both ways of checking: a small payload (patterns), and a large one in the client's layout (columns)."""
    blocks, payload = request(
        {
            "APP1": [
                *(log_line("INFO", stamp, "s", f"filler {n} with an ERROR in it") for n in range(filler)),
                log_line("INFO", stamp, "s", "an ERROR here"),
                log_line("ALERT", stamp, "s", "first ERROR \nsecond line ALERT x"),
                log_line("INFO", stamp, "s", "no ALERT here\n ERROR neither"),
            ],
            "APP2": [log_line("ERROR", stamp, "t", "third"), log_line("DEBUG", stamp, "t", " ALERT ")],
            "APP3": [log_line("ALERT", stamp, "u", "fourth"), log_line("ERROR", stamp, "u", "fifth ALERT ")],
        }
    )
    assert (heads.usual_heads(payload) is not None) == bool(filler)
    batch = parse_blocks(blocks, payload)
    assert batch.lines == 7 + filler
    assert [(line.schema, line.level, line.text) for line in batch.to_database] == [
        ("APP1", "ALERT", "first ERROR \nsecond line ALERT x"),
        ("APP2", "ERROR", "third"),
        ("APP3", "ALERT", "fourth"),
        ("APP3", "ERROR", "fifth ALERT "),
    ]


def test_a_block_may_not_start_with_a_continuation_line() -> None:
    block = b"\tcontinued\n" + GOOD
    with pytest.raises(BatchError, match="line 1: a block starts with a line of its own"):
        parse_blocks([["APP1", len(block)]], block)


@pytest.mark.parametrize(
    ("blocks", "payload", "message"),
    [
        (None, GOOD, "a log request \\(protocol 2\\) is"),
        ([], GOOD, "a log request \\(protocol 2\\) is"),
        ([["APP1", len(GOOD)]], None, "a log request \\(protocol 2\\) is"),
        ([["APP1", "12"]], GOOD, "a log request \\(protocol 2\\) is"),
        ([["APP1", -1]], GOOD, "a log request \\(protocol 2\\) is"),
        ([["APP1"]], GOOD, "a log request \\(protocol 2\\) is"),
        ([["APP1", len(GOOD) + 1]], GOOD, "add up to more than the payload"),
        ([["APP1", len(GOOD)]], GOOD + b"x", "1 bytes beyond its blocks"),
        ([["APP1", 0]], b"", "an empty block"),
    ],
)
def test_blocks_that_do_not_cut_the_payload_are_refused(blocks: object, payload: object, message: str) -> None:
    with pytest.raises(BatchError, match=message):
        parse_blocks(blocks, payload)


def test_more_blocks_of_one_schema_than_one_writev_takes_are_written_in_order(tmp_path: Path) -> None:
    files = SchemaFiles(tmp_path)
    lines = [log_line("INFO", STAMP, "s", f"line {n}") for n in range(IOV_MAX + 5)]
    _, payload = log_request({"APP1": lines})
    blocks = [["APP1", len(line.encode())] for line in lines]  # one block per line, all of one schema
    batch = parse_blocks(blocks, payload)
    files.write(batch.files)
    files.close()
    assert (tmp_path / "APP1" / "APP1.log").read_text() == "".join(lines)


def test_only_the_schemas_written_last_keep_their_file_open(tmp_path: Path) -> None:
    """A database with many schemas (or a client naming new ones without end) must not use up DBLS's file
    descriptors: beyond the limit the least recently written file is closed, and reopened when written again."""
    files = SchemaFiles(tmp_path, max_open=2)
    for round_ in range(2):
        for schema in ("A", "B", "C"):
            files.write({schema: [f"{schema} {round_}\n".encode()]})
            assert files.open_files <= 2
    files.write({"A": [b"A and\n"], "B": [b"B and\n"], "C": [b"C and\n"]})  # one request, more schemas than kept
    assert files.open_files == 2
    files.close()
    for schema in ("A", "B", "C"):
        assert (tmp_path / schema / f"{schema}.log").read_text() == f"{schema} 0\n{schema} 1\n{schema} and\n"
