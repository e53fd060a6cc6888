"""devdb's users and roles through the real pyexasol driver: created users log in with their own password (RSA
encrypted as with Exasol), roles show in Exasol's system views, refusals name what is wrong, and all of it survives a
restart with the password stored only as a hash."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyexasol
import pytest

from redpss.devdb.testing import InProcessDevDb

_names = itertools.count(1)


@pytest.fixture
def admin(devdb: InProcessDevDb) -> Iterator[Any]:
    connection = devdb.connect()
    yield connection
    connection.close()


def new_user(admin: Any, password: str = "pass word 1", *, session: bool = True) -> str:  # noqa: S107 - test value
    name = f"USER{next(_names)}"
    admin.execute(f'CREATE USER {name} IDENTIFIED BY "{password}"')
    if session:
        admin.execute(f"GRANT CREATE SESSION TO {name}")
    return name


def refused_login(devdb: InProcessDevDb, user: str, password: str) -> pyexasol.ExaAuthError:
    """The error of a refused login, its half-open connection closed (pyexasol leaves it to the garbage collector)."""
    with pytest.raises(pyexasol.ExaAuthError) as caught:
        devdb.connect(user=user, password=password)
    error = caught.value
    half_open = getattr(error, "connection", None)
    if half_open is not None:
        half_open.close(disconnect=False)
    return error


def test_a_created_user_logs_in_with_its_password_and_sees_its_roles(devdb: InProcessDevDb, admin: Any) -> None:
    user = new_user(admin)
    admin.execute("CREATE ROLE inner_role")
    admin.execute("CREATE ROLE outer_role")
    admin.execute("GRANT inner_role TO outer_role")
    admin.execute(f"GRANT outer_role TO {user} WITH ADMIN OPTION")

    with devdb.connect(user=user.lower(), password="pass word 1") as connection:
        assert connection.execute("SELECT CURRENT_USER FROM DUAL").fetchval() == user
        own = connection.execute("SELECT GRANTEE, GRANTED_ROLE, ADMIN_OPTION FROM EXA_USER_ROLE_PRIVS").fetchall()
        assert sorted(own) == [(user, "OUTER_ROLE", True), (user, "PUBLIC", False)]
        indirect = connection.execute("SELECT ROLE, GRANTED_ROLE, ADMIN_OPTION FROM EXA_ROLE_ROLE_PRIVS").fetchall()
        assert indirect == [("OUTER_ROLE", "INNER_ROLE", False)]
        assert connection.execute("SELECT GRANTEE, PRIVILEGE FROM EXA_USER_SYS_PRIVS").fetchall() == [
            (user, "CREATE SESSION")
        ]

    every = admin.execute("SELECT GRANTEE, GRANTED_ROLE FROM EXA_DBA_ROLE_PRIVS").fetchall()
    assert {("SYS", "DBA"), (user, "OUTER_ROLE"), ("OUTER_ROLE", "INNER_ROLE")} <= set(every)
    roles = {row[0] for row in admin.execute("SELECT ROLE_NAME FROM EXA_DBA_ROLES").fetchall()}
    assert {"PUBLIC", "DBA", "INNER_ROLE", "OUTER_ROLE"} <= roles
    users = admin.execute("SELECT USER_NAME, PASSWORD FROM EXA_DBA_USERS").fetchall()
    assert ("SYS", None) in users and (user, None) in users  # the hash is never shown


def test_names_ignore_case_and_passwords_are_identifiers(devdb: InProcessDevDb, admin: Any) -> None:
    """As in Exasol: "Mixed" and MIXED are one user; an unquoted password is upper case; a 'string' is no password."""
    admin.execute('CREATE USER "Mixed" IDENTIFIED BY unquoted_pw')
    admin.execute("GRANT CREATE SESSION TO mixed")
    with pytest.raises(pyexasol.ExaQueryError, match="conflicts"):
        admin.execute('CREATE USER MIXED IDENTIFIED BY "x"')
    with devdb.connect(user="mixed", password="UNQUOTED_PW") as connection:
        assert connection.execute("SELECT CURRENT_USER FROM DUAL").fetchval() == "MIXED"
    with pytest.raises(pyexasol.ExaQueryError, match="identifier") as caught:
        admin.execute("CREATE USER literal_pw IDENTIFIED BY 'not-shown-pw'")
    assert "not-shown-pw" not in caught.value.message  # the error never quotes what may be the password


def test_wrong_password_unknown_user_and_missing_create_session_are_refused(devdb: InProcessDevDb, admin: Any) -> None:
    user = new_user(admin)
    for name, password in ((user, "wrong"), ("NOBODY", "pass word 1")):
        error = refused_login(devdb, name, password)
        assert error.code == "08004"
        assert "authentication failed" in error.message

    no_session = new_user(admin, session=False)
    assert "CREATE SESSION" in refused_login(devdb, no_session, "pass word 1").message
    admin.execute("CREATE ROLE may_log_in")
    admin.execute("GRANT CREATE SESSION TO may_log_in")
    admin.execute(f"GRANT may_log_in TO {no_session}")  # the privilege through a role is enough
    devdb.connect(user=no_session, password="pass word 1").close()


def test_a_dropped_user_can_no_longer_log_in(devdb: InProcessDevDb, admin: Any) -> None:
    user = new_user(admin)
    admin.execute("CREATE ROLE dropped_with_user")
    admin.execute(f"GRANT dropped_with_user TO {user}")
    admin.execute(f"DROP USER {user} CASCADE")
    refused_login(devdb, user, "pass word 1")
    assert admin.execute(f"SELECT COUNT(*) FROM EXA_DBA_ROLE_PRIVS WHERE GRANTEE = '{user}'").fetchval() == 0
    admin.execute(f"DROP USER IF EXISTS {user}")
    with pytest.raises(pyexasol.ExaQueryError, match=f"user {user} not found"):
        admin.execute(f"DROP USER {user}")


def test_alter_user_changes_the_password_and_a_user_changes_its_own_with_replace(
    devdb: InProcessDevDb, admin: Any
) -> None:
    user = new_user(admin)
    admin.execute(f'ALTER USER {user} IDENTIFIED BY "second"')
    refused_login(devdb, user, "pass word 1")
    with devdb.connect(user=user, password="second") as own:
        with pytest.raises(pyexasol.ExaQueryError, match="REPLACE"):
            own.execute(f'ALTER USER {user} IDENTIFIED BY "third"')
        with pytest.raises(pyexasol.ExaQueryError, match="old password"):
            own.execute(f'ALTER USER {user} IDENTIFIED BY "third" REPLACE "not it"')
        own.execute(f'ALTER USER {user} IDENTIFIED BY "third" REPLACE "second"')
    devdb.connect(user=user, password="third").close()


def test_only_a_dba_manages_users_and_roles(devdb: InProcessDevDb, admin: Any) -> None:
    user = new_user(admin)
    with devdb.connect(user=user, password="pass word 1") as plain:
        for statement in ('CREATE USER sneaky IDENTIFIED BY "x"', "CREATE ROLE sneaky", f"GRANT DBA TO {user}"):
            with pytest.raises(pyexasol.ExaQueryError, match="insufficient privileges") as caught:
                plain.execute(statement)
            assert caught.value.code == "42000"
    admin.execute(f"GRANT DBA TO {user}")
    with devdb.connect(user=user, password="pass word 1") as dba:
        dba.execute("CREATE ROLE made_by_a_dba")


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        ("GRANT SELECT ON SYS.EXA_SCHEMAS TO PUBLIC", "GRANT of object privileges"),
        ("GRANT ACCESS ON CONNECTION c TO PUBLIC", "GRANT of object privileges"),
        ("REVOKE SELECT ON t FROM PUBLIC", "REVOKE of object privileges"),
        ("CREATE USER k IDENTIFIED BY KERBEROS PRINCIPAL 'k@R'", "IDENTIFIED BY KERBEROS"),
        ("CREATE USER l IDENTIFIED AT LDAP AS 'cn=l'", "IDENTIFIED AT LDAP"),
        ('ALTER USER sys IDENTIFIED BY "new"', "ALTER USER of the administrator"),
        ("DROP USER sys", "DROP USER of the administrator"),
        ("ALTER USER sys SET CONSUMER_GROUP = x", "ALTER USER"),
    ],
)
def test_what_is_not_supported_is_refused_by_name(admin: Any, statement: str, named: str) -> None:
    with pytest.raises(pyexasol.ExaQueryError) as caught:
        admin.execute(statement)
    assert named.lower() in caught.value.message.lower()


def test_grants_are_checked(admin: Any) -> None:
    user = new_user(admin)
    admin.execute("CREATE ROLE ring_a")
    admin.execute("CREATE ROLE ring_b")
    admin.execute("GRANT ring_a TO ring_b")
    with pytest.raises(pyexasol.ExaQueryError, match="circular role grant"):
        admin.execute("GRANT ring_b TO ring_a")
    with pytest.raises(pyexasol.ExaQueryError, match="role NO_SUCH_ROLE not found"):
        admin.execute(f"GRANT no_such_role TO {user}")
    with pytest.raises(pyexasol.ExaQueryError, match="conflicts"):
        admin.execute("CREATE ROLE ring_a")
    with pytest.raises(pyexasol.ExaQueryError, match="conflicts"):
        admin.execute('CREATE USER ring_a IDENTIFIED BY "x"')
    with pytest.raises(pyexasol.ExaQueryError, match="neither a role name nor a system privilege"):
        admin.execute(f"GRANT FLY ME TO {user}")
    admin.execute(f"GRANT ring_b TO {user}")
    admin.execute(f"REVOKE ring_b FROM {user}")
    with pytest.raises(pyexasol.ExaQueryError, match="not granted"):
        admin.execute(f"REVOKE ring_b FROM {user}")
    admin.execute("DROP ROLE ring_a CASCADE")
    assert admin.execute("SELECT COUNT(*) FROM EXA_DBA_ROLE_PRIVS WHERE GRANTED_ROLE = 'RING_A'").fetchval() == 0
    admin.execute("DROP ROLE IF EXISTS ring_a")


def test_user_statements_are_transactional(devdb: InProcessDevDb, admin: Any) -> None:
    admin.set_autocommit(False)
    admin.execute('CREATE USER rolled_back IDENTIFIED BY "x"')
    admin.execute("GRANT CREATE SESSION TO rolled_back")
    admin.rollback()
    admin.set_autocommit(True)
    assert admin.execute("SELECT COUNT(*) FROM EXA_DBA_USERS WHERE USER_NAME = 'ROLLED_BACK'").fetchval() == 0


def test_users_and_grants_survive_a_restart_with_the_password_only_hashed(tmp_path: Path) -> None:
    password = "a-very-distinct-password-31337"
    with InProcessDevDb(tmp_path / "db") as server:
        with server.connect() as admin:
            admin.execute(f'CREATE USER keeper IDENTIFIED BY "{password}"')
            admin.execute("CREATE ROLE kept_role")
            admin.execute("GRANT CREATE SESSION, kept_role TO keeper")
        server.restart()
        with server.connect(user="keeper", password=password) as keeper:
            roles = keeper.execute("SELECT GRANTED_ROLE FROM EXA_USER_ROLE_PRIVS ORDER BY 1").fetchall()
            assert roles == [("KEPT_ROLE",), ("PUBLIC",)]
    stored = b"".join(path.read_bytes() for path in (tmp_path / "db").rglob("*") if path.is_file())
    assert password.encode() not in stored
    assert b"pbkdf2_sha256$" in stored  # the hash is what was kept
