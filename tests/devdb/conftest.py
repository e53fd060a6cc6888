"""Fixtures: one in-process devdb per module (fresh schema per test), helpers to connect through real pyexasol."""

from __future__ import annotations

import os

os.environ.setdefault("EXASOL_TELEMETRY_DISABLE", "1")

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redpss.devdb.testing import InProcessDevDb

_schemas = itertools.count(1)


@pytest.fixture(scope="module")
def devdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessDevDb]:
    server = InProcessDevDb(tmp_path_factory.mktemp("devdb"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def schema(devdb: InProcessDevDb) -> str:
    """A fresh schema name, created by the test's first connection via `conn`."""
    return f"T{next(_schemas)}"


@pytest.fixture
def conn(devdb: InProcessDevDb, schema: str) -> Iterator[Any]:
    """A plain pyexasol connection with a fresh schema open."""
    connection = devdb.connect()
    connection.execute(f"CREATE SCHEMA {schema}")
    connection.execute(f"OPEN SCHEMA {schema}")
    yield connection
    connection.close()


def cert_dir(devdb: InProcessDevDb) -> Path:
    return devdb.data_dir / "tls"
