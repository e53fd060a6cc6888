"""JSON to CSV: both forms, the naming rules, mid-file columns, mixed types, and bad input named precisely."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redpss.convert import csvout, jsonread
from redpss.convert.convert import convert_file
from redpss.convert.errors import BadInput
from redpss.convert.jsonread import MAX_DEPTH, PYTHON_RECORD_BYTES
from tests.convert.roundtrip import converted_apart, csv_rows, imported


def convert(tmp_path: Path, text: str | bytes, name: str = "in.json") -> list[list[str]]:
    source = tmp_path / name
    source.write_bytes(text.encode() if isinstance(text, str) else text)
    output = tmp_path / "out.csv"
    convert_file("json", source, output)
    return csv_rows(output)


def bad(tmp_path: Path, text: str | bytes) -> str:
    source = tmp_path / "bad.json"
    source.write_bytes(text.encode() if isinstance(text, str) else text)
    output = tmp_path / "bad.csv"
    with pytest.raises(BadInput) as caught:
        convert_file("json", source, output)
    assert not output.exists() and not list(tmp_path.glob("bad.csv*"))  # nothing half-written is left
    return str(caught.value)


def test_ndjson_and_array_give_the_same_csv(tmp_path: Path) -> None:
    records = [{"id": 1, "name": 'say "hi", then\nleave', "ok": True}, {"id": 2, "name": "ünï €", "ok": False}]
    ndjson = convert(tmp_path, "".join(json.dumps(r) + "\n" for r in records))
    array = convert(tmp_path, json.dumps(records, indent=2, ensure_ascii=False))
    assert ndjson == array == [["id", "name", "ok"], ["1", 'say "hi", then\nleave', "1"], ["2", "ünï €", "0"]]


@pytest.mark.parametrize("line_break", ["\n", "\r\n", "\r"])
def test_a_raw_line_break_inside_a_string_of_an_array_is_refused_with_its_position(
    tmp_path: Path, line_break: str
) -> None:
    """Not JSON (a string writes it as \\n), and refused in NDJSON; in an array the scan made every line break a
    blank, the ones inside strings too, so `Main St 1<LF>Berlin` was loaded as `Main St 1 Berlin` without a word.
    Line breaks between the values (pretty-printed arrays) stay fine."""
    text = f'[\n  {{"id": 1, "addr": "ok"}},\n  {{"id": 2, "addr": "Main St 1{line_break}Berlin"}}\n]'
    reason = bad(tmp_path, text)
    assert "a line break inside a string" in reason and "line 3" in reason, reason
    assert convert(tmp_path, '[\n {"id": 1, "addr": "a\\nb"}\n]') == [["id", "addr"], ["1", "a\nb"]]


def test_nested_objects_become_dotted_columns_and_arrays_json_text(tmp_path: Path) -> None:
    rows = convert(tmp_path, '{"a": {"b": {"c": 1}, "d": "x"}, "tags": ["p", "q"], "n": null}\n')
    assert rows == [["a.b.c", "a.d", "tags", "n"], ["1", "x", '["p","q"]', ""]]


def test_a_column_first_seen_mid_file_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonread, "READ_BYTES", 64)  # many blocks: the new column arrives in a later one
    monkeypatch.setattr(csvout, "WRITEBACK_BYTES", 100)  # segments and the joined file handed to writeback on the way
    early = "".join(f'{{"id": {i}, "t": "a,\\"b\\"\\nc"}}\n' for i in range(30))
    rows = convert(tmp_path, early + '{"id": 99, "late": "L"}\n{"id": 100}\n')
    assert rows[0] == ["id", "t", "late"]
    assert rows[1] == ["0", 'a,"b"\nc', ""] and len(rows) == 33
    assert rows[31] == ["99", "", "L"] and rows[32] == ["100", "", ""]


def test_records_without_fields_before_the_first_column_become_rows_of_nulls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonread, "READ_BYTES", 16)  # the empty records fill blocks of their own, before any column
    rows = convert(tmp_path, "{}\n" * 12 + '{"id": 1, "t": "x"}\n{}\n')
    assert rows[0] == ["id", "t"]
    assert rows[1:13] == [["", ""]] * 12 and rows[13] == ["1", "x"] and rows[14] == ["", ""] and len(rows) == 15


@pytest.mark.parametrize("text", ["{}\n{}\n", "[{}, {}, {}]"], ids=["ndjson", "array"])
def test_a_file_whose_records_have_no_field_is_refused_not_emptied(tmp_path: Path, text: str) -> None:
    reason = bad(tmp_path, text)
    assert "has a field" in reason and "record(s)" in reason


def test_a_field_whose_type_changes_is_kept_as_text(tmp_path: Path) -> None:
    rows = convert(tmp_path, '{"v": 1, "w": true}\n{"v": "one", "w": [1]}\n{"v": {"x": 2}}\n')
    assert rows == [["v", "w", "v.x"], ["1", "1", ""], ["one", "[1]", ""], ["", "", "2"]]


def test_later_blocks_are_parsed_with_the_first_blocks_types(tmp_path: Path) -> None:
    """The first block's scalar fields (the timestamp-like one as text) become the explicit schema of the later
    blocks' parse; nested, list and all-null fields are left to inference."""
    source = tmp_path / "in.json"
    text = b'{"n": 1, "s": "x", "ts": "2024-01-01 10:00:00", "b": true, "f": 0.5, "o": {"k": 1}, "l": [1], "z": null}\n'
    field_types = jsonread.FieldTypes()
    table = jsonread.parse_block(source, jsonread.Block(text, 0), field_types, first=True)
    assert table.column_names == ["n", "s", "ts", "b", "f", "o.k", "l", "z"]
    options = field_types.options()
    assert options is not None
    assert dict(zip(options.explicit_schema.names, map(str, options.explicit_schema.types), strict=True)) == {
        "n": "int64", "s": "string", "ts": "string", "b": "bool", "f": "double"
    }  # fmt: skip


def test_later_blocks_whose_values_do_not_fit_the_first_blocks_types_are_written_as_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonread, "READ_BYTES", 64)  # about one record per block
    first = "".join(f'{{"n": {i}, "s": "t{i}", "b": true, "f": 0.5}}\n' for i in range(8))
    odd = '{"n": 2.5, "s": 7, "b": "yes", "f": 3}\n{"n": 1, "s": [1], "b": 1, "f": "x"}\n'
    after = "".join(f'{{"n": {i}, "s": "u{i}", "b": false, "f": 1.25}}\n' for i in range(8))
    rows = convert(tmp_path, first + odd + after)
    assert rows[0] == ["n", "s", "b", "f"]
    assert rows[1:9] == [[str(i), f"t{i}", "1", "0.5"] for i in range(8)]
    assert rows[9:11] == [["2.5", "7", "yes", "3"], ["1", "[1]", "1", "x"]]
    assert rows[11:] == [[str(i), f"u{i}", "0", "1.25"] for i in range(8)]


def test_a_big_integer_in_a_field_the_first_block_had_as_double_stays_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyarrow reads an integer into a DOUBLE field without complaint; 2**53 + 1 has no DOUBLE of its own."""
    monkeypatch.setattr(jsonread, "READ_BYTES", 64)
    first = "".join(f'{{"id": {i}, "f": 0.5}}\n' for i in range(8))
    rows = convert(tmp_path, first + '{"id": 8, "f": 9007199254740993}\n{"id": 9, "f": -9007199254740995}\n')
    assert rows[9:] == [["8", "9007199254740993"], ["9", "-9007199254740995"]]


@pytest.mark.parametrize("size", [16, 50, 4096])
def test_array_elements_cut_anywhere_between_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    monkeypatch.setattr(jsonread, "READ_BYTES", size)
    records = [{"id": i, "s": 'x],[{"y\\\\', "o": {"k": [i, {"z": "}"}]}} for i in range(40)]
    rows = convert(tmp_path, json.dumps(records))
    assert rows[0] == ["id", "s", "o.k"]
    assert rows[1:] == [[str(i), 'x],[{"y\\\\', f'[{i},{{"z":"}}"}}]'] for i in range(40)]


def test_an_empty_array_gives_an_empty_file(tmp_path: Path) -> None:
    assert convert(tmp_path, " [ ]\n") == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"a": 1}\n{"a": 2,}\n', "line 2, character 9: invalid JSON: Expecting property name"),
        ('{"a": 1}\n\n  {"a": tru}\n', "line 3, character 9: invalid JSON: Expecting value"),
        ('{"a": 1}\n[1, 2]\n', "line 2, character 1: a record must be a JSON object, found list"),
        ('[{"a": 1},\n {"a": 2}\n', "the file ends before the array's closing ']'"),
        ('[{"a": 1}]\n{"b": 2}\n', "line 2, character 1: there is more after the array's closing ']'"),
        ('[{"a": 1},\n 7]', "line 2, character 2: a record must be a JSON object, found int"),
        ("<xml/>", "line 1, character 1: the file starts with neither '{'"),
        ("  \n", "the file holds no JSON records"),
        (b'{"a": "\xff"}\n', "line 1, character 8: the text is not UTF-8"),
        ('{"a.b": 1, "a": {"b": 2}}\n', "column a.b: two fields become the column name 'a.b'"),
        ('{"a": 1.5}\n{"a": -Infinity}\n', "row 2, column a: -inf cannot be loaded (Exasol's DOUBLE has no infinity)"),
        ('{"a": 1.5}\n{"a": 1e400}\n', "line 2, character 1: the record holds 1e400, a number beyond DOUBLE's range"),
        ('{"a": "x"}\n{"a": Infinity}\n', "line 2, character 1: the record holds Infinity, which cannot be loaded"),
        # what pyarrow's parser takes without a word: a null record became a row of NULLs, the others were read
        ('{"a": 1}\nnull\n{"a": 2}\n', "line 2, character 1: a record must be a JSON object, found null"),
        ('{"a": 1}\n{"a": 2} {"a": 3}\n', "line 2, character 10: more than one JSON value on this line"),
        ('[{"a": 1}, null, {"a": 2}]', "line 1, character 12: a record must be a JSON object, found null"),
        ('[{"a": 1},,{"a": 2}]', "line 1, character 11: an element of the array is missing"),
        ('[{"a": 1},\n]', "line 1, character 11: an element of the array is missing"),
        ('[,{"a": 1}]', "line 1, character 2: an element of the array is missing"),
        ('[{"a": 1} {"a": 2}]', "line 1, character 11: more than one JSON value between two commas of the array"),
        ('{"a": "\\ud83d\\ude00"}\n{"a": "x\\ud800y"}\n', "line 2, character 1: a string holds half of a UTF-16"),
        ('{"a": 1}\nnull', "line 2, character 1: a record must be a JSON object, found null"),  # a block alone
        ('[{"a": 1}, null]', "line 1, character 12: a record must be a JSON object, found null"),  # the last one
        ('{"a": 1}\n{"a": 2} {"a": 3}\n\n', "line 2, character 10: more than one JSON value on this line"),
        ('{"a":1}\n{"a":2} {"a":3}\n \n{"a":4}\n', "line 2, character 9: more than one JSON value on this line"),
        ("[null x]", "line 1, character 2: invalid JSON: Extra data"),
        ('[{"a": 1}, null {"b": 2}]', "line 1, character 12: more than one JSON value between two commas of the"),
        ('[{"a": 1}, {"b": 2} null]', "line 1, character 21: more than one JSON value between two commas of the"),
    ],
)
def test_bad_json_is_refused_with_its_place(tmp_path: Path, text: str | bytes, reason: str) -> None:
    assert reason in bad(tmp_path, text)


def test_a_block_of_null_records_alone_is_refused_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pyarrow's parser crashes the process (SIGSEGV) on a block of nothing but `null` lines: such a last line of a
    file took the converter down at every start."""
    monkeypatch.setattr(jsonread, "READ_BYTES", 16)
    assert "line 3, character 1: a record must be a JSON object, found null" in bad(
        tmp_path, '{"a": 1}\n{"a": 2}\nnull\nnull\n'
    )
    assert "line 2, character 6: more than one JSON value on this line" in bad(tmp_path, '{"a": 1}\nnull x\n')
    assert "line 2, character 2: more than one JSON value between two commas" in bad(
        tmp_path, '[{"a": 1},\n null {"b": 2}]'
    )


@pytest.mark.parametrize("form", ["ndjson", "array"])
def test_records_holding_only_empty_objects_keep_their_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """`{"b": {}}` has no column: flattened alone in its block, pyarrow's table kept no row either (a row lost)."""
    monkeypatch.setattr(jsonread, "READ_BYTES", 8)  # each record in a block of its own
    records = ['{"a": 1}', '{"b": {}}', '{"a": 2}', '{"b": {}}']
    text = "\n".join(records) + "\n" if form == "ndjson" else "[" + ",".join(records) + "]"
    assert convert(tmp_path, text) == [["a"], ["1"], [""], ["2"], [""]]


def test_lines_ending_in_a_carriage_return_alone_are_still_records(tmp_path: Path) -> None:
    assert convert(tmp_path, '{"a": 1}\r{"a": 2}\r') == [["a"], ["1"], ["2"]]


def test_nan_is_written_as_null(tmp_path: Path) -> None:
    """NaN (not JSON, but what numpy-based writers send for a missing number) has no Exasol value: NULL, also in a
    column kept as text and inside a list."""
    assert convert(tmp_path, '{"a": 1.5, "l": [1.5]}\n{"a": NaN, "l": [NaN, 2.5]}\n') == [
        ["a", "l"],
        ["1.5", "[1.5]"],
        ["", "[null,2.5]"],
    ]
    assert convert(tmp_path, '{"a": "x", "b": 1}\n{"a": NaN, "b": 2}\n')[1:] == [["x", "1"], ["", "2"]]


def test_a_syntax_error_deep_in_a_big_file_names_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonread, "READ_BYTES", 1000)
    good = "".join(f'{{"id": {i}, "t": "€uro"}}\n' for i in range(500))
    assert "line 501, character 12: invalid JSON" in bad(tmp_path, good + '{"id": 500 "t": 1}\n' + good)


def test_strings_that_look_like_timestamps_are_written_as_sent(tmp_path: Path) -> None:
    text = '{"day": "2024-02-29", "at": "2024-01-02T03:04:05+02:00", "n": {"t": "2024-01-01 10:00:00", "k": 1}}\n'
    rows = convert(tmp_path, text + '{"day": null, "n": {"k": 2}}\n')
    assert rows == [
        ["day", "at", "n.t", "n.k"],
        ["2024-02-29", "2024-01-02T03:04:05+02:00", "2024-01-01 10:00:00", "1"],
        ["", "", "", "2"],
    ]


def test_columns_keep_their_order_beside_strings_that_look_like_timestamps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Those fields are parsed as text by an explicit schema, which pyarrow puts first: the order stays the file's."""
    monkeypatch.setattr(jsonread, "READ_BYTES", 64)
    lines = [f'{{"id": {i}, "ts": "2024-01-0{1 + i % 9} 12:34:56", "k": "v{i}"}}\n' for i in range(20)]
    rows = convert(tmp_path, "".join(lines))
    assert rows[0] == ["id", "ts", "k"]
    assert rows[1:] == [[str(i), f"2024-01-0{1 + i % 9} 12:34:56", f"v{i}"] for i in range(20)]


def test_values_reach_the_table_as_exasol_import_stores_them(tmp_path: Path) -> None:
    text = json.dumps(
        {"i": -(2**53), "f": 1.25e-7, "d": "12.50", "b": True, "ts": "2024-02-29 23:59:58.123456", "day": "2024-02-29"}
    )
    convert(tmp_path, text + "\n")
    columns = {"i": "BIGINT", "f": "DOUBLE", "d": "DECIMAL(18,2)", "b": "BOOLEAN", "ts": "TIMESTAMP", "day": "DATE"}
    assert imported(tmp_path / "out.csv", columns) == [
        (
            -(2**53),
            1.25e-7,
            decimal.Decimal("12.50"),
            True,
            dt.datetime(2024, 2, 29, 23, 59, 58, 123456),
            dt.date(2024, 2, 29),
        )
    ]


_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20)
_records = st.lists(
    st.fixed_dictionaries(
        {
            "i": st.none() | st.integers(-(2**62), 2**62),
            "f": st.none() | st.floats(allow_nan=False, allow_infinity=False, width=64),
            "s": st.none() | _text,
            "b": st.none() | st.booleans(),
        }
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=_records, as_array=st.booleans())
def test_property_values_round_trip_through_devdb_import(
    tmp_path: Path, records: list[dict[str, object]], as_array: bool
) -> None:
    text = json.dumps(records) if as_array else "".join(json.dumps(r) + "\n" for r in records)
    convert(tmp_path, text)
    stored = imported(tmp_path / "out.csv", {"i": "BIGINT", "f": "DOUBLE", "s": "VARCHAR", "b": "BOOLEAN"})
    # Exasol stores an empty string as NULL; everything else comes back as it was
    expected = [(r["i"], r["f"], r["s"] if r["s"] != "" else None, r["b"]) for r in records]
    assert stored == expected


def test_a_row_holding_only_null_is_a_quoted_empty_field_not_an_empty_line(tmp_path: Path) -> None:
    # Exasol's IMPORT may skip an empty line: each NULL of a one-column file is written "" (read back as NULL)
    rows = convert(tmp_path, '{"v": 1}\n{"v": null}\n{}\n{"v": 3}\n')
    assert rows == [["v"], ["1"], [""], [""], ["3"]]  # csv.reader gives [] for an empty line
    assert b"\n\n" not in (tmp_path / "out.csv").read_bytes()
    assert imported(tmp_path / "out.csv", {"v": "BIGINT"}) == [(1,), (None,), (None,), (3,)]
    rows = convert(tmp_path, '{"s": null}\n{"s": "a,b"}\n{"s": ""}\n')
    assert rows == [["s"], [""], ["a,b"], [""]]
    assert imported(tmp_path / "out.csv", {"s": "VARCHAR"}) == [(None,), ("a,b",), (None,)]


def test_rows_of_a_single_null_column_padded_when_a_column_arrives_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonread, "READ_BYTES", 16)  # the later column arrives in a later block
    rows = convert(tmp_path, '{"v": null}\n{"v": 2}\n{"v": null, "w": "x"}\n')
    assert rows == [["v", "w"], ["", ""], ["2", ""], ["", "x"]]


def test_columns_that_grow_in_hundreds_of_blocks_hold_few_descriptors(tmp_path: Path) -> None:
    """Each new column starts a segment of the CSV; each segment's file stayed open until the end, so a file whose
    columns grew in ~4,000 blocks ran out of descriptors (EMFILE) at every try. Converted here under a limit of 64
    open files with 300 segments."""
    source = tmp_path / "growing.json"
    source.write_text("".join(json.dumps({"id": i, f"c{i}": i}) + "\n" for i in range(300)))
    script = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from redpss.convert import jsonread\n"
        "from redpss.convert.convert import convert_file\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
        "jsonread.READ_BYTES = 16\n"  # a block per record: a new segment each
        "print(convert_file('json', Path(sys.argv[1]), Path(sys.argv[2])))\n"
    )
    output = tmp_path / "out.csv"
    assert converted_apart(script, source, output).strip() == "300"
    rows = csv_rows(output)
    assert len(rows[0]) == 301 and len(rows) == 301
    assert rows[300][0] == "299" and rows[300][300] == "299" and rows[300][1] == ""


def test_read_buffers_used_again_keep_every_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # blocks of ~256 bytes: each buffer is read into again while the blocks after it are parsed and written
    monkeypatch.setattr(jsonread, "READ_BYTES", 256)
    records = [{"id": i, "s": "x" * (i % 97), "t": f"r{i}\n"} for i in range(3000)]
    rows = convert(tmp_path, "".join(json.dumps(r) + "\n" for r in records))
    assert rows == [["id", "s", "t"]] + [[str(r["id"]), r["s"], r["t"]] for r in records]


def test_numbers_in_a_block_python_parses_are_written_as_sent(tmp_path: Path) -> None:
    """A fraction beyond DOUBLE's exact integers sends its block to Python's parser, whose floats would write
    1.2345678901234568e+16 (the DECIMAL column loses its cents), 1.5 and 100.0."""
    text = '{"x": 12345678901234567.25, "y": 1.50, "z": 1E2, "l": [1.50, {"k": -0.0e-5}], "n": 7}\n'
    rows = convert(tmp_path, text + '{"x": 0.1, "y": null, "z": -2.5e-3, "l": [], "n": -12}\n')
    assert rows == [
        ["x", "y", "z", "l", "n"],
        ["12345678901234567.25", "1.50", "1E2", '[1.50,{"k":-0.0e-5}]', "7"],
        ["0.1", "", "-2.5e-3", "[]", "-12"],
    ]
    columns = {"x": "DECIMAL(20,2)", "y": "DECIMAL(3,2)", "z": "DOUBLE", "l": "VARCHAR", "n": "BIGINT"}
    assert imported(tmp_path / "out.csv", columns)[0][:3] == (
        decimal.Decimal("12345678901234567.25"),
        decimal.Decimal("1.50"),
        100.0,
    )


def test_two_paths_giving_one_column_name_are_refused_across_records_and_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within one record pyarrow's table has the name twice; across records of a block Python parses, or across
    blocks, one value would silently take the other's place (or share its column)."""
    python_block = '{"v": 1, "a.b": 1, "a": {"b": 2}}\n{"v": "x"}\n'  # v's changing type: Python's parser
    assert "line 1, character 1, column a.b: two fields become the column name 'a.b'" in bad(tmp_path, python_block)
    records = '{"v": "x", "a.b": 1}\n{"v": 2, "a": {"b": 2}}\n'
    assert "line 2, character 1, column a.b: two fields become the column name 'a.b'" in bad(tmp_path, records)
    monkeypatch.setattr(jsonread, "READ_BYTES", 64)  # the two paths in different blocks
    nested_first = "".join(f'{{"id": {i}, "a": {{"b": {i}}}}}\n' for i in range(10)) + '{"id": 10, "a.b": 1}\n'
    assert "column a.b: two fields become the column name 'a.b'" in bad(tmp_path, nested_first)
    dotted_first = "".join(f'{{"id": {i}, "a.b": {i}}}\n' for i in range(10)) + '{"id": 10, "a": {"b": 1}}\n'
    assert "column a.b: two fields become the column name 'a.b'" in bad(tmp_path, dotted_first)
    same_path = "".join(f'{{"id": {i}, "a": {{"b": {i}}}, "x.y": {i}}}\n' for i in range(10))
    assert convert(tmp_path, same_path + '{"id": 10, "a": {"b": "text"}}\n')[-1] == ["10", "text", ""]


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (['{"a": 12345678901234567890123}', '{"a": 1}'], ["12345678901234567890123", "1"]),  # beyond int64
        (['{"a": 1.5}', '{"a": 9007199254740993}'], ["1.5", "9007199254740993"]),  # beside a fraction
        (['{"o": {"a": 0.5}}', '{"o": {"a": -18446744073709551615}}'], ["0.5", "-18446744073709551615"]),  # nested
        (['{"l": [12345678901234567, 2]}', '{"l": [0.5]}'], ["[12345678901234567,2]", "[0.5]"]),  # in a list
        (['{"l": [18446744073709551615]}'], ["[18446744073709551615]"]),  # in a list, beyond int64
        (['{"l": [{"x": 12345678901234567890}]}'], ['[{"x":12345678901234567890}]']),  # in a record in a list
    ],
)
def test_an_integer_a_double_cannot_hold_keeps_its_digits_in_any_block(
    tmp_path: Path, records: list[str], expected: list[str]
) -> None:
    rows = convert(tmp_path, "\n".join(records) + "\n")
    assert [row[0] for row in rows[1:]] == expected


@pytest.mark.parametrize("form", ["ndjson", "array"])
def test_a_record_longer_than_the_limit_is_refused_where_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """One line of gigabytes (a whole API response on one line) was held whole, read again at every block and never
    refused: the converter's memory grew with it until it was killed, and took the same file again at its start."""
    monkeypatch.setattr(jsonread, "READ_BYTES", 64)
    monkeypatch.setattr(jsonread, "MAX_RECORD_BYTES", 1000)
    short, long = {"id": 1, "s": "x"}, {"id": 2, "s": "y" * 2000}
    text = f"{json.dumps(short)}\n{json.dumps(long)}\n" if form == "ndjson" else json.dumps([short, long])
    reason = bad(tmp_path, text)
    what = "a line" if form == "ndjson" else "an element of the array"
    assert f"{what} is longer than 1,000 bytes, more than one record may be" in reason
    assert reason.startswith("line 2, character 1" if form == "ndjson" else "line 1, character ")


def _nested(depth: int, kind: str = "object") -> str:
    return '{"a":' * depth + "1" + "}" * depth if kind == "object" else "[" * depth + "1" + "]" * depth


@pytest.mark.parametrize("form", ["ndjson", "array"])
def test_a_record_nested_deeper_than_json2csv_reads_is_refused_naming_its_line(tmp_path: Path, form: str) -> None:
    """Nesting was not limited: pyarrow's parser crashed the whole daemon (SIGSEGV) from ~50,000 levels (a 100 KB
    line), again at every restart on the same file; from ~5,000 flattening ended in a RecursionError."""
    lines = ['{"x":1}', '{"x":2,"deep":' + _nested(MAX_DEPTH + 5) + "}", '{"x":3}']
    text = "\n".join(lines) + "\n" if form == "ndjson" else "[" + ",\n".join(lines) + "]"
    reason = bad(tmp_path, text)
    assert f"nested more than {MAX_DEPTH} levels deep" in reason and "line 2" in reason, reason


def test_many_brackets_on_a_line_are_no_deep_nesting(tmp_path: Path) -> None:
    items = ",".join(f'{{"n":{n}}}' for n in range(3 * MAX_DEPTH))
    rows = convert(tmp_path, '{"x":1,"items":[' + items + ']}\n{"x":"[[[[{{{{","items":[]}\n')
    assert rows[0] == ["x", "items"] and len(rows) == 3


@pytest.mark.parametrize(("kind", "blank_lines"), [("object", 0), ("array", 0), ("array", 60_000)])
def test_nesting_deep_enough_to_crash_the_parser_ends_in_a_reason_not_a_crash(
    tmp_path: Path, kind: str, blank_lines: int
) -> None:
    """Lines of blanks (which hold no bracket) beside the deep one must not let it pass a count of brackets."""
    source = tmp_path / "deep.json"
    source.write_text('{"x":1}\n{"x":2,"a":' + _nested(60_000, kind) + "}\n" + (" " * 12 + "\n") * blank_lines)
    script = (
        "import sys\nfrom pathlib import Path\nfrom redpss.convert.convert import convert_file\n"
        "from redpss.convert.errors import BadInput\n"
        "try:\n    convert_file('json', Path(sys.argv[1]), Path(sys.argv[2]))\n"
        "except BadInput as exc:\n    print(exc)\n    raise SystemExit(7)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(source), str(tmp_path / "out.csv")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 7, (done.returncode, done.stderr[-2000:])
    assert "nested more than" in done.stdout and "line 2" in done.stdout


def test_a_record_only_pythons_parser_reads_is_refused_beyond_its_limit(tmp_path: Path) -> None:
    """A 60 MiB line of doubles pyarrow could not keep exactly (2^53 or more) went to Python's parser, whose objects
    took ~40 times its size (2.4 GiB; four such lines at once, 6.8 GiB)."""
    numbers = ",".join(["1.5e20"] * (PYTHON_RECORD_BYTES // 7 + 10))
    reason = bad(tmp_path, '{"x":1}\n{"a":[' + numbers + "]}\n")
    assert "line 2" in reason and f"read up to {PYTHON_RECORD_BYTES >> 20} MiB" in reason, reason
    small = ",".join(["1.5e20"] * 100)  # below the limit: read exactly, as before
    assert convert(tmp_path, '{"a":[' + small + "]}\n") == [["a"], ["[" + small + "]"]]
