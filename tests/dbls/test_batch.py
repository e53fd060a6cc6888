"""The checks and the formatting of one log buffer (redpss.dbls.batch), without sockets."""

from __future__ import annotations

import pytest

from redpss.dbls.batch import BatchError, parse_batch

STAMP = "2026-11-30 01:02:03.123"


def test_lines_are_grouped_by_schema_in_order_and_errors_become_rows() -> None:
    batch = parse_batch(
        [
            ["app1", "INFO", STAMP, "APP1.J", "first"],
            ["APP2", "ERROR", STAMP, "APP2.J", "two\nlines"],
            ["App1", "ALERT", "2026-11-30T01:02:03", "", "third"],
        ]
    )
    assert batch.files == {
        "APP1": [f"{STAMP} INFO APP1.J: first\n", "2026-11-30T01:02:03 ALERT : third\n"],
        "APP2": [f"{STAMP} ERROR APP2.J: two\n\tlines\n"],
    }
    assert [line.row() for line in batch.to_database] == [
        {"LOG_TIME": STAMP, "LOG_LEVEL": "ERROR", "SOURCE": "APP2.J", "MESSAGE": "two\n\tlines"},
        {"LOG_TIME": "2026-11-30 01:02:03", "LOG_LEVEL": "ALERT", "SOURCE": None, "MESSAGE": "third"},
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (["../../etc", "INFO", STAMP, "s", "t"], "line 2: schema '../../etc' is not a valid Exasol identifier"),
        (["A/B", "INFO", STAMP, "s", "t"], "is not a valid Exasol identifier"),
        (["A" * 129, "INFO", STAMP, "s", "t"], "at most 128 characters"),
        ([["APP1"], "INFO", STAMP, "s", "t"], "line 2: a line is [schema, level, timestamp, source, text]"),
        (["APP1", "info", STAMP, "s", "t"], "level 'info' is not one of ALERT, DEBUG, ERROR, INFO, WARN"),
        (["APP1", "INFO", "2026-11-30", "s", "t"], "timestamp '2026-11-30' is not YYYY-MM-DD HH:MM:SS"),
        (["APP1", "INFO", STAMP, "s", 5], "a line is [schema, level, timestamp, source, text]"),
        (["APP1", "INFO", STAMP, "s"], "a line is [schema, level, timestamp, source, text]"),
        ("APP1 INFO text", "a line is [schema, level, timestamp, source, text]"),
    ],
)
def test_a_bad_line_refuses_the_whole_buffer_naming_the_line(line: object, message: str) -> None:
    with pytest.raises(BatchError) as refused:
        parse_batch([["APP1", "INFO", STAMP, "s", "fine"], line])
    assert message in str(refused.value)


@pytest.mark.parametrize("lines", [None, [], "lines", {"a": 1}])
def test_a_request_without_a_list_of_lines_is_refused(lines: object) -> None:
    with pytest.raises(BatchError, match='a log request needs "lines"'):
        parse_batch(lines)
