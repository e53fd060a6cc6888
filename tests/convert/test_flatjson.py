"""JSON2CSV's compiled parser of flat records (redpss/convert/_flatjson.c) against pyarrow's reader: a block it
reads must come out exactly as pyarrow reads it with the same explicit schema, and a block pyarrow would read
otherwise (or refuse) must be declined, never read its own way."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.json as pajson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from redpss.convert import flatjson, jsonread
from redpss.convert.convert import convert_file
from redpss.convert.flatjson import flat_schema, read_flat
from tests.convert.roundtrip import csv_rows

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

SCHEMA = pa.schema([("i", pa.int64()), ("d", pa.float64()), ("b", pa.bool_()), ("s", pa.string())])
JSON_NUMBER = r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][-+]?[0-9]{1,3})?"


def pyarrows(block: bytes, schema: pa.Schema) -> pa.Table | None:
    """pyarrow's table of the block with `schema` explicit, as JSON2CSV's other path reads it; None if refused."""
    options = pajson.ReadOptions(block_size=max(1 << 20, len(block) + 1), use_threads=False)
    try:
        return pajson.read_json(
            pa.py_buffer(block), read_options=options, parse_options=pajson.ParseOptions(explicit_schema=schema)
        )
    except pa.ArrowInvalid:
        return None


def flats(block: bytes, schema: pa.Schema = SCHEMA) -> pa.Table | None:
    flat = flat_schema(schema)
    assert flat is not None
    return read_flat(block, flat)


def assert_read_as_pyarrow_would(block: bytes, schema: pa.Schema = SCHEMA) -> pa.Table | None:
    """The parser's table, which pyarrow's equals; or None (declined)."""
    ours = flats(block, schema)
    if ours is not None:
        theirs = pyarrows(block, schema)
        assert theirs is not None, f"pyarrow refuses what the parser read: {block[:200]!r}"
        assert ours.equals(theirs), f"{block[:200]!r}\nours: {ours.to_pylist()[:3]}\npyarrow: {theirs.to_pylist()[:3]}"
        assert repr(ours.to_pylist()) == repr(theirs.to_pylist()), block[:200]  # equals() takes -0.0 for 0.0
    return ours


def test_every_install_has_the_parser() -> None:
    """Without it JSON2CSV still converts, at about half the speed: a build that lost it must fail here."""
    assert flatjson.available()


def test_the_usual_records_are_read_as_pyarrow_reads_them() -> None:
    block = (
        b'{"i": 1, "d": 2.5, "b": true, "s": "plain"}\n'
        b'{"s": "keys in another order", "b": false, "d": -0.0, "i": -9223372036854775808}\n'
        b'{"i": 9223372036854775807}\n'
        b"{}\n"
        b'{"i": null, "d": null, "b": null, "s": null}\n'
        b'  {"s":"\\"\\\\\\/\\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00 \xc3\xbc",\t"d" : 1e-7 , "i":0 }  \n'
        b'{"d": 12345678901234567890123, "s": ""}\n'
        b'{"d": 0.1000000000000000055511151231257827, "s": "last line without a break"}'
    )
    table = assert_read_as_pyarrow_would(block)
    assert table is not None
    assert table.num_rows == 8
    assert table.column("s").to_pylist()[5] == '"\\/\b\f\n\r\t é 😀 ü'


@pytest.mark.parametrize(
    ("block", "why"),
    [
        (b'{"i": 1, "new": 2}\n', "a field the first block did not have"),
        (b'{"i": 1.5}\n', "a fraction in an integer field"),
        (b'{"i": 1e2}\n', "an exponent in an integer field"),
        (b'{"i": 9223372036854775808}\n', "an integer beyond int64"),
        (b'{"s": 5}\n', "a number in a text field"),
        (b'{"b": 1}\n', "a number in a boolean field"),
        (b'{"d": "1.5"}\n', "text in a number field"),
        (b'{"s": {"x": 1}}\n', "a nested object"),
        (b'{"s": ["x"]}\n', "a list"),
        (b'{"i": 1, "i": 2}\n', "a key twice"),
        (b'{"s": "a\\u0000b"}\n', "an escaped NUL"),
        (b'{"s": "\\ud800"}\n', "a lone surrogate"),
        (b'{"s": "a\tb"}\n', "a raw control character"),
        (b'{"s": "\\x"}\n', "an unknown escape"),
        (b'{"\\u0069": 1}\n', "an escaped key"),
        (b'{"i": 1}\r{"i": 2}\n', "a CR alone as a line end"),
        (b'{"i": 1\r\n}\n', "a CR inside a record"),
        (b'{"i": 1}\n\n{"i": 2}\n', "a blank line"),
        (b'{"i": 1} {"i": 2}\n', "two records on a line"),
        (b'{"i": 1,}\n', "a trailing comma"),
        (b"null\n", "a line that is not an object"),
        (b'{"i": 01}\n', "a leading zero"),
        (b'{"d": 1e400}\n', "a double that overflows"),
        (b'{"d": NaN}\n', "NaN"),
        (b'{"i": 1\n', "a record cut short"),
        (b"", "no record"),
    ],
)
def test_what_pyarrow_reads_its_own_way_is_declined(block: bytes, why: str) -> None:
    assert flats(block) is None, why


def test_names_that_json_writes_escaped_never_match() -> None:
    schema = pa.schema([('say "hi"', pa.int64()), ("plain", pa.int64())])
    assert flats(b'{"plain": 1}\n', schema) is not None
    assert flats(b'{"say \\"hi\\"": 1}\n', schema) is None


def test_types_the_parser_does_not_read_are_not_offered() -> None:
    assert flat_schema(pa.schema([("t", pa.timestamp("s"))])) is None
    assert flat_schema(pa.schema([("n", pa.null())])) is None
    assert flat_schema(pa.schema([])) is None


_texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_values = {
    "i": st.integers(-(2**63), 2**63 - 1),
    "d": st.one_of(
        st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False),
        st.integers(-(2**70), 2**70),
    ),
    "b": st.booleans(),
    "s": _texts,
}
_record = st.fixed_dictionaries({}, optional={k: st.one_of(st.none(), v) for k, v in _values.items()})


def _dumped(records: list[dict[str, object]], ascii_only: bool, compact: bool, line_end: str = "\n") -> bytes:
    separators = (",", ":") if compact else (", ", ": ")
    return "".join(json.dumps(r, ensure_ascii=ascii_only, separators=separators) + line_end for r in records).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_record, min_size=1, max_size=30), st.booleans(), st.booleans(), st.sampled_from(["\n", "\r\n"]))
def test_flat_records_of_the_known_fields_are_read_and_equal_pyarrows(
    records: list[dict[str, object]], ascii_only: bool, compact: bool, line_end: str
) -> None:
    block = _dumped(records, ascii_only, compact, line_end)
    assume("\\u0000" not in block.decode())  # an escaped NUL is declined
    assume(not any(isinstance(r.get("d"), float) and not math.isfinite(r["d"]) for r in records))  # type: ignore[arg-type]
    assume(all(abs(v) < 1e308 for r in records if isinstance(v := r.get("d"), int)))
    assert assert_read_as_pyarrow_would(block) is not None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.from_regex(JSON_NUMBER, fullmatch=True), min_size=1, max_size=20), st.sampled_from("id"))
def test_any_number_text_is_read_as_pyarrow_reads_it_or_declined(numbers: list[str], field: str) -> None:
    block = "".join(f'{{"{field}": {n}}}\n' for n in numbers).encode()
    assert_read_as_pyarrow_would(block)


_sample = _dumped(
    [
        {"i": 1, "d": 2.5, "b": True, "s": 'ä " \\ \n é'},
        {"s": "x", "i": -7},
        {"d": 1e-300, "b": None},
    ],
    ascii_only=False,
    compact=False,
) + _dumped([{"s": "\U0001f600\t", "d": 3}], ascii_only=True, compact=True, line_end="\r\n")


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_sample)), st.integers(0, 3), st.binary(max_size=3)), max_size=4))
def test_a_damaged_block_is_declined_or_read_as_pyarrow_reads_it(edits: list[tuple[int, int, bytes]]) -> None:
    """Bytes replaced, dropped or added anywhere in a block of records: never a crash, never a table of the
    parser's own. (The parser is given valid UTF-8 only, as JSON2CSV checks a block before it.)"""
    block = _sample
    for at, cut, added in edits:
        block = block[:at] + added + block[at + cut :]
    try:
        block.decode()
    except UnicodeDecodeError:
        assume(False)
    assert_read_as_pyarrow_would(block)


@pytest.fixture
def flat_reads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the compiled parser read each block it was given (True) or declined it, in the order asked."""
    reads: list[bool] = []

    def watched(data: ReadableBuffer, flat: flatjson.FlatSchema) -> pa.Table | None:
        table = read_flat(data, flat)
        reads.append(table is not None)
        return table

    monkeypatch.setattr(jsonread, "read_flat", watched)
    return reads


def test_a_file_is_converted_by_the_parser_after_its_first_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flat_reads: list[bool]
) -> None:
    """The first block is inferred by pyarrow; the blocks after it go to the parser, and the CSV is the same."""
    monkeypatch.setattr(jsonread, "READ_BYTES", 256)
    records = [{"id": n, "name": f'row {n}, "quoted"', "price": n / 4, "ok": n % 2 == 0} for n in range(200)]
    source = tmp_path / "in.json"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    convert_file("json", source, tmp_path / "out.csv")
    assert len(flat_reads) > 20
    assert all(flat_reads)
    rows = csv_rows(tmp_path / "out.csv")
    assert rows[0] == ["id", "name", "price", "ok"]
    assert rows[1:] == [[str(n), f'row {n}, "quoted"', _double(n / 4), "1" if n % 2 == 0 else "0"] for n in range(200)]


def test_a_file_whose_blocks_it_declines_stops_being_offered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flat_reads: list[bool]
) -> None:
    """Records of the later blocks all bring a new field: the parser declines two blocks (and those already being
    parsed beside them), then is not asked; 40 blocks."""
    monkeypatch.setattr(jsonread, "READ_BYTES", 64)
    lines = [json.dumps({"a": n}) for n in range(5)] + [json.dumps({"a": n, f"k{n}": n}) for n in range(5, 60)]
    source = tmp_path / "in.json"
    source.write_text("\n".join(lines) + "\n")
    convert_file("json", source, tmp_path / "out.csv")
    assert not any(flat_reads)
    assert flatjson.DECLINES_BEFORE_GIVING_UP <= len(flat_reads) < flatjson.DECLINES_BEFORE_GIVING_UP + jsonread.PARSERS
    assert len(csv_rows(tmp_path / "out.csv")) == 61


def test_an_odd_record_now_and_then_does_not_cost_a_file_its_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flat_reads: list[bool]
) -> None:
    """Every 25th record holds an escaped NUL (declined): blocks between such records are still read by the parser."""
    monkeypatch.setattr(jsonread, "READ_BYTES", 64)
    lines = [json.dumps({"a": n, "s": "\u0000" if n % 25 == 24 else "x"}) for n in range(200)]
    source = tmp_path / "in.json"
    source.write_text("\n".join(lines) + "\n")
    convert_file("json", source, tmp_path / "out.csv")
    assert flat_reads.count(False) >= 7  # asked again after each: not given up
    assert flat_reads.count(True) > 3 * flat_reads.count(False)
    assert [row[1] for row in csv_rows(tmp_path / "out.csv")[1:]] == [
        "\x00" if n % 25 == 24 else "x" for n in range(200)
    ]


def test_blocks_of_doubles_beyond_2_53_count_as_declined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flat_reads: list[bool]
) -> None:
    """A DOUBLE field that later holds integers of 2^53 or more: such a block goes to pyarrow's inference (and on to
    Python's parser, which keeps the digits), so the compiled parser stops being asked after two of them."""
    monkeypatch.setattr(jsonread, "READ_BYTES", 64)
    values = [n + 0.5 for n in range(3)] + [2**60 + n for n in range(60)]
    source = tmp_path / "in.json"
    source.write_text("".join(json.dumps({"v": v}) + "\n" for v in values))
    convert_file("json", source, tmp_path / "out.csv")
    assert flatjson.DECLINES_BEFORE_GIVING_UP <= len(flat_reads) < flatjson.DECLINES_BEFORE_GIVING_UP + jsonread.PARSERS
    assert [row[0] for row in csv_rows(tmp_path / "out.csv")[1:]][3:] == [str(2**60 + n) for n in range(60)]


_UNDER_SANITIZERS = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("redpss.convert._flatjson", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
sys.modules["redpss.convert._flatjson"] = module
import pytest
sys.exit(pytest.main([sys.argv[2], "-q", "-s", "-p", "no:cacheprovider", "-k", "not sanitizers"]))
"""


@pytest.mark.slow
def test_the_tests_above_pass_with_the_parser_under_address_and_undefined_behaviour_sanitizers(tmp_path: Path) -> None:
    """The parser reads untrusted uploads: its every read and write is checked by AddressSanitizer (and
    UBSan) while this file's tests run, each Python object its own allocation (PYTHONMALLOC=malloc), so a byte read
    past a block's end is caught too."""
    gcc = shutil.which("gcc")
    assert gcc, "gcc is needed (scripts/setup installs it)"
    source = Path(jsonread.__file__).with_name("_flatjson.c")
    built = tmp_path / "_flatjson.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=all", "-std=c11", "-D_GNU_SOURCE", f"-I{sysconfig.get_paths()['include']}",
         str(source), "-o", str(built)],
        check=True,
    )  # fmt: skip
    runtimes = [
        subprocess.run([gcc, f"-print-file-name={name}"], check=True, capture_output=True, text=True).stdout.strip()
        for name in ("libasan.so", "libubsan.so")
    ]
    env = {
        "PATH": "/usr/bin:/bin",
        "LD_PRELOAD": " ".join(runtimes),
        "ASAN_OPTIONS": "detect_leaks=0",  # the interpreter keeps what it allocates until exit
        "UBSAN_OPTIONS": "print_stacktrace=1",
        "PYTHONMALLOC": "malloc",
        "PYTHONPATH": str(Path(__file__).parents[2]),
        "EXASOL_TELEMETRY_DISABLE": "1",
    }
    run = subprocess.run(
        [sys.executable, "-c", _UNDER_SANITIZERS, str(built), __file__],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout


def _double(value: float) -> str:
    return re.sub(r"\.0$", "", repr(value))
