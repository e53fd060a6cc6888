"""db_install on devdb creates the REST API's roles once, with the grants an API user needs, and repeats the grants
on every run; a user granted the operator role then logs in and holds both roles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.core.config import Secret
from redpss.core.db import DbSession, DbSettings
from redpss.core.db.contract import API_OPERATOR_ROLE, API_READER_ROLE, install
from redpss.devdb.testing import InProcessDevDb


@pytest.fixture
def session(tmp_path: Path) -> Iterator[DbSession]:
    with InProcessDevDb(tmp_path / "devdb") as server:
        db = DbSession(DbSettings(dsn=server.dsn, user="sys", password=Secret("exasol"), encryption=False))
        yield db
        db.close()


def test_db_install_creates_the_api_roles_once(session: DbSession) -> None:
    first = install(session)
    assert first.roles == [API_READER_ROLE, API_OPERATOR_ROLE]
    assert f"created role {API_OPERATOR_ROLE}" in first.summary()

    session.execute(f"REVOKE CREATE SESSION FROM {API_READER_ROLE}")  # damaged by hand
    again = install(session)
    assert again.roles == []
    assert "created role" not in again.summary()

    roles = {row[0] for row in session.fetchall("SELECT ROLE_NAME FROM EXA_DBA_ROLES")}
    assert {API_READER_ROLE, API_OPERATOR_ROLE} <= roles
    privileges = set(session.fetchall("SELECT GRANTEE, PRIVILEGE FROM EXA_DBA_SYS_PRIVS"))
    assert {(API_READER_ROLE, "CREATE SESSION"), (API_OPERATOR_ROLE, "CREATE SESSION")} <= privileges
    grants = set(session.fetchall("SELECT GRANTEE, GRANTED_ROLE FROM EXA_DBA_ROLE_PRIVS"))
    assert (API_OPERATOR_ROLE, API_READER_ROLE) in grants


def test_an_operator_logs_in_and_holds_both_roles(session: DbSession) -> None:
    install(session)
    session.execute('CREATE USER op IDENTIFIED BY "op-pw"')
    session.execute(f"GRANT {API_OPERATOR_ROLE} TO op")
    settings = DbSettings(dsn=session.settings.dsn, user="op", password=Secret("op-pw"), encryption=False)
    operator = DbSession(settings)
    try:
        held = operator.fetchall(
            "SELECT GRANTED_ROLE FROM EXA_USER_ROLE_PRIVS UNION SELECT GRANTED_ROLE FROM EXA_ROLE_ROLE_PRIVS"
        )
    finally:
        operator.close()
    assert {row[0] for row in held} == {API_OPERATOR_ROLE, API_READER_ROLE, "PUBLIC"}
