"""Database users, roles and system privileges, as Exasol has them, kept in the DuckDB file beside the data.

devdb starts with one administrator: `--user`/`--password`, holding the DBA role, its password never stored. Any
other user comes from `CREATE USER name IDENTIFIED BY "password"` and logs in like the administrator, with its
password RSA-encrypted by the client. What is supported (and refused by name otherwise):

- CREATE USER, ALTER USER ... IDENTIFIED BY ... [REPLACE "old"], DROP USER [IF EXISTS] ... [CASCADE]
- CREATE ROLE, DROP ROLE [IF EXISTS] ... [CASCADE]
- GRANT role[, ...] TO user-or-role[, ...] [WITH ADMIN OPTION], REVOKE role[, ...] FROM ...
- GRANT/REVOKE of system privileges (CREATE SESSION, ...): recorded; CREATE SESSION is checked at login, the others
  have no effect (devdb does not check privileges on data: every user may use every schema).
- GRANT/REVOKE of object privileges (SELECT ON ..., ACCESS ON CONNECTION ...) is refused: devdb could record it but
  would not enforce it, and a test relying on it would pass here and fail on Exasol.

Managing users, roles and grants needs the DBA role (held directly or through another role); a user may change
its own password with `ALTER USER me IDENTIFIED BY "new" REPLACE "old"`, as in Exasol. Every user holds PUBLIC.
Passwords are stored as salted PBKDF2-SHA256 hashes, never as text. The statements are transactional like any DDL
(written under the session's write lock; a ROLLBACK undoes them), and a dropped user can no longer log in (sessions
already open stay, as in Exasol).

The system views (EXA_DBA_USERS, EXA_DBA_ROLES, EXA_DBA_ROLE_PRIVS, EXA_USER_ROLE_PRIVS, EXA_ROLE_ROLE_PRIVS,
EXA_DBA_SYS_PRIVS, ...) are defined here and created by systables.setup; the EXA_USER_* ones read the session's
user from the DuckDB variable `devdb_user`, which bind_session sets on each session's connection.
"""

# DuckDB SQL is built here from fixed text; values travel as parameters.
# ruff: noqa: S608

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlglot.tokenizer_core import TokenType

from redpss.devdb.errors import AUTH_FAILED, SYNTAX_OR_ACCESS, DevDbError, Unsupported
from redpss.devdb.tokens import TokenCursor

META = '"REDPSS_DEVDB"'
LIVE = '"redpss_devdb_live"."main"'  # systables.LIVE_DATABASE: in memory, never in the file
_USERS = f'{META}."USERS"'
_ROLES = f'{META}."ROLES"'
_ROLE_GRANTS = f'{META}."ROLE_GRANTS"'
_SYS_PRIVS = f'{META}."SYS_PRIVS"'
_ADMIN = f'{LIVE}."ADMIN"'
_SETUP = (
    f"CREATE TABLE IF NOT EXISTS {_USERS} (USER_NAME VARCHAR PRIMARY KEY, PASSWORD_HASH VARCHAR NOT NULL, "
    "CREATED TIMESTAMP NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {_ROLES} (ROLE_NAME VARCHAR PRIMARY KEY, CREATED TIMESTAMP NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {_ROLE_GRANTS} (GRANTEE VARCHAR NOT NULL, GRANTED_ROLE VARCHAR NOT NULL, "
    "ADMIN_OPTION BOOLEAN NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {_SYS_PRIVS} (GRANTEE VARCHAR NOT NULL, PRIVILEGE VARCHAR NOT NULL, "
    "ADMIN_OPTION BOOLEAN NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {_ADMIN} (USER_NAME VARCHAR)",
)

DBA = "DBA"
PUBLIC = "PUBLIC"
BUILT_IN_ROLES = (PUBLIC, DBA)
CREATE_SESSION = "CREATE SESSION"
SESSION_VARIABLE = "devdb_user"
HASH_ITERATIONS = 60_000  # PBKDF2-SHA256; a test database needs no more, a login costs a few tens of ms
EPOCH = "TIMESTAMP '2000-01-01 00:00:00'"  # CREATED of what exists from the start (administrator, PUBLIC, DBA)

# Exasol's system privileges (GRANT <privilege> TO ...); devdb records them, only CREATE SESSION has an effect
_PRIVILEGE_TEXT = """
    GRANT ANY ROLE|GRANT ANY PRIVILEGE|GRANT ANY OBJECT PRIVILEGE|GRANT ANY CONNECTION|GRANT ANY PRIORITY GROUP
    |SET ANY CONSUMER GROUP|MANAGE CONSUMER GROUPS|IMPORT|EXPORT
    |CREATE SESSION|KILL ANY SESSION|ALTER SYSTEM|CREATE USER|ALTER USER|DROP USER|IMPERSONATE ANY USER
    |CREATE ROLE|DROP ANY ROLE|CREATE CONNECTION|ALTER ANY CONNECTION|DROP ANY CONNECTION|USE ANY CONNECTION
    |ACCESS ANY CONNECTION|CREATE SCHEMA|ALTER ANY SCHEMA|DROP ANY SCHEMA|CREATE VIRTUAL SCHEMA
    |ALTER ANY VIRTUAL SCHEMA|ALTER ANY VIRTUAL SCHEMA REFRESH|DROP ANY VIRTUAL SCHEMA|CREATE TABLE|CREATE ANY TABLE
    |ALTER ANY TABLE|DELETE ANY TABLE|DROP ANY TABLE|INSERT ANY TABLE|SELECT ANY TABLE|UPDATE ANY TABLE
    |CREATE VIEW|CREATE ANY VIEW|DROP ANY VIEW|CREATE FUNCTION|CREATE ANY FUNCTION|DROP ANY FUNCTION
    |EXECUTE ANY FUNCTION|CREATE SCRIPT|CREATE ANY SCRIPT|DROP ANY SCRIPT|EXECUTE ANY SCRIPT|SELECT ANY DICTIONARY
    |USE ANY SCHEMA|ALL PRIVILEGES"""
SYSTEM_PRIVILEGES = frozenset(" ".join(p.split()) for p in _PRIVILEGE_TEXT.split("|"))


# ------------------------------------------------------------------ storage
def setup(cursor: Any) -> None:
    """The tables of users, roles and grants (persistent) and of the administrator's name (in memory)."""
    for statement in _SETUP:
        cursor.execute(statement)


def set_admin(cursor: Any, name: str) -> None:
    """Name the administrator of this run (the --user): it is no stored user and its password is --password."""
    cursor.execute(f"DELETE FROM {_ADMIN}")
    cursor.execute(f"INSERT INTO {_ADMIN} VALUES (?)", [name.upper()])


def bind_session(cursor: Any, user: str) -> None:
    """Tell the session's DuckDB connection who is logged in, for the EXA_USER_* views."""
    cursor.execute(f"SET VARIABLE {SESSION_VARIABLE} = ?", [user])


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, HASH_ITERATIONS)
    return f"pbkdf2_sha256${HASH_ITERATIONS}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        computed = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(computed.hex(), digest)


def login_user(cursor: Any, admin: str, admin_password: str, user: str, password: str) -> str | None:
    """The session's user name when `user`/`password` may log in, else None (wrong user or password).

    User names ignore case (in Exasol even quoted ones). A right password without CREATE SESSION is refused with
    Exasol's reason.
    """
    if hmac.compare_digest(user.upper().encode(), admin.upper().encode()):
        return admin.upper() if hmac.compare_digest(password.encode(), admin_password.encode()) else None
    name = user.upper()
    row = cursor.execute(f"SELECT PASSWORD_HASH FROM {_USERS} WHERE USER_NAME = ?", [name]).fetchone()
    if row is None:
        hash_password(password)  # as slow as a known user: the time taken tells no one which users exist
        return None
    if not password_matches(password, row[0]):
        return None
    if CREATE_SESSION not in system_privileges(cursor, name) and DBA not in held_roles(cursor, name):
        raise DevDbError("Connection exception - insufficient privileges: CREATE SESSION.", AUTH_FAILED)
    return name


def _admin(cursor: Any) -> str:
    row = cursor.execute(f"SELECT USER_NAME FROM {_ADMIN}").fetchone()
    return str(row[0]) if row else "SYS"


def _grants(cursor: Any) -> dict[str, set[str]]:
    """Role grants by grantee, with the implicit ones: the administrator holds DBA, every user PUBLIC."""
    grants: dict[str, set[str]] = {_admin(cursor): {DBA, PUBLIC}}
    for (user,) in cursor.execute(f"SELECT USER_NAME FROM {_USERS}").fetchall():
        grants.setdefault(user, set()).add(PUBLIC)
    for grantee, role in cursor.execute(f"SELECT GRANTEE, GRANTED_ROLE FROM {_ROLE_GRANTS}").fetchall():
        grants.setdefault(grantee, set()).add(role)
    return grants


def held_roles(cursor: Any, grantee: str) -> set[str]:
    """Every role `grantee` holds, directly or through other roles."""
    grants = _grants(cursor)
    held: set[str] = set()
    todo = list(grants.get(grantee, ()))
    while todo:
        role = todo.pop()
        if role not in held:
            held.add(role)
            todo.extend(grants.get(role, ()))
    return held


def system_privileges(cursor: Any, user: str) -> set[str]:
    holders = [user, *held_roles(cursor, user)]
    marks = ", ".join("?" for _ in holders)
    rows = cursor.execute(f"SELECT PRIVILEGE FROM {_SYS_PRIVS} WHERE GRANTEE IN ({marks})", holders).fetchall()
    return {str(row[0]) for row in rows}


# ------------------------------------------------------------------ statements
@dataclass(frozen=True)
class CreateUser:
    name: str
    password: str


@dataclass(frozen=True)
class AlterUser:
    name: str
    password: str
    old_password: str | None


@dataclass(frozen=True)
class DropUser:
    name: str
    if_exists: bool


@dataclass(frozen=True)
class CreateRole:
    name: str


@dataclass(frozen=True)
class DropRole:
    name: str
    if_exists: bool


@dataclass(frozen=True)
class Grant:
    """GRANT (revoke=False) or REVOKE of roles and system privileges to users or roles."""

    roles: tuple[str, ...]
    privileges: tuple[str, ...]
    grantees: tuple[str, ...]
    admin_option: bool
    revoke: bool


UserCommand = CreateUser | AlterUser | DropUser | CreateRole | DropRole | Grant


def parse(cursor: TokenCursor) -> UserCommand | None:  # noqa: PLR0911 - one return per statement kind
    """The user/role statement at the cursor, or None (the cursor is left where it was) when it is none."""
    start = cursor.pos
    if cursor.accept("CREATE", "USER"):
        name = _name(cursor, "a user name")
        cursor.expect("IDENTIFIED")
        return _end(cursor, CreateUser(name, _password_after_by(cursor, "CREATE USER")))
    if cursor.accept("ALTER", "USER"):
        name = _name(cursor, "a user name")
        if not cursor.accept("IDENTIFIED"):
            raise Unsupported(f"ALTER USER ... {cursor.peek_word() or 'options'}", "only IDENTIFIED BY is supported")
        password = _password_after_by(cursor, "ALTER USER")
        old = _password(cursor, "the old password") if cursor.accept("REPLACE") else None
        return _end(cursor, AlterUser(name, password, old))
    if cursor.accept("DROP", "USER"):
        if_exists = cursor.accept("IF", "EXISTS")
        name = _name(cursor, "a user name")
        cursor.accept("CASCADE")  # devdb's objects belong to no user: CASCADE has nothing more to drop
        return _end(cursor, DropUser(name, if_exists))
    if cursor.accept("CREATE", "ROLE"):
        return _end(cursor, CreateRole(_name(cursor, "a role name")))
    if cursor.accept("DROP", "ROLE"):
        if_exists = cursor.accept("IF", "EXISTS")
        name = _name(cursor, "a role name")
        cursor.accept("CASCADE")
        return _end(cursor, DropRole(name, if_exists))
    if cursor.accept("GRANT"):
        return _grant(cursor, revoke=False)
    if cursor.accept("REVOKE"):
        return _grant(cursor, revoke=True)
    cursor.pos = start
    return None


def _end(cursor: TokenCursor, command: UserCommand) -> UserCommand:
    if not cursor.at_end():
        cursor.fail("the end of the statement")
    return command


def _password_after_by(cursor: TokenCursor, statement: str) -> str:
    if cursor.accept("AT", "LDAP"):
        raise Unsupported(f"{statement} ... IDENTIFIED AT LDAP", 'use IDENTIFIED BY "password"')
    cursor.expect("BY")
    word = cursor.peek_word()
    if word in ("KERBEROS", "OPENID"):
        raise Unsupported(f"{statement} ... IDENTIFIED BY {word}", 'use IDENTIFIED BY "password"')
    return _password(cursor, "the password")


def _password(cursor: TokenCursor, what: str) -> str:
    """A password, an identifier as in Exasol: "quoted" keeps its case, unquoted is upper case."""
    token = cursor.peek()
    if token is not None and token.token_type == TokenType.IDENTIFIER and token.text:
        cursor.pos += 1
        return token.text
    if token is None or token.token_type == TokenType.STRING or not _is_word(token.text):
        # the error never shows what was found: it may be the password
        raise DevDbError(f'syntax error: expected {what} as an identifier ("password" in double quotes)')
    cursor.pos += 1
    return token.text.upper()


def _is_word(text: str) -> bool:
    return bool(text) and (text[0].isalpha() or text[0] == "_") and text.replace("_", "").isalnum()


def _name(cursor: TokenCursor, what: str) -> str:
    """A user or role name: Exasol ignores case in these even when they are quoted."""
    return cursor.expect_identifier(what).upper()


def _grant(cursor: TokenCursor, *, revoke: bool) -> Grant:
    verb = "REVOKE" if revoke else "GRANT"
    items: list[list[Any]] = [[]]
    while not cursor.at_end() and cursor.peek_word() != ("FROM" if revoke else "TO"):
        token = cursor.take()
        if token.token_type == TokenType.COMMA:
            items.append([])
        else:
            items[-1].append(token)
    cursor.expect("FROM" if revoke else "TO")
    roles: list[str] = []
    privileges: list[str] = []
    for item in items:
        words = [t.text.upper() for t in item]
        if not item:
            cursor.fail(f"a role or privilege after {verb}")
        if "ON" in words or words[0] in ("CONNECTION", "IMPERSONATION", "PRIORITY", "ACCESS"):
            raise Unsupported(
                f"{verb} of object privileges ({' '.join(words)})",
                "devdb checks no privileges on data: every user may use every object",
            )
        if len(item) == 1 and " ".join(words) not in SYSTEM_PRIVILEGES:
            roles.append(words[0])  # role names ignore case, quoted or not
        elif " ".join(words) in SYSTEM_PRIVILEGES or words == ["ALL"]:
            privileges.append("ALL PRIVILEGES" if words == ["ALL"] else " ".join(words))
        else:
            raise DevDbError(f"{verb}: {' '.join(words)} is neither a role name nor a system privilege")
    grantees = [_name(cursor, "a user or role name")]
    while cursor.accept(","):
        grantees.append(_name(cursor, "a user or role name"))
    admin_option = not revoke and cursor.accept("WITH", "ADMIN", "OPTION")
    if not cursor.at_end():
        cursor.fail("the end of the statement")
    return Grant(tuple(roles), tuple(privileges), tuple(grantees), admin_option, revoke)


# ------------------------------------------------------------------ running them
def run(cursor: Any, session_user: str, command: UserCommand) -> int:
    """Carry out a user/role statement in the session's transaction; DevDbError when it may not or cannot."""
    if isinstance(command, AlterUser):
        _alter_user(cursor, session_user, command)
        return 0
    _require_dba(cursor, session_user, type(command).__name__)
    if isinstance(command, CreateUser):
        _check_new_name(cursor, command.name)
        cursor.execute(
            f"INSERT INTO {_USERS} VALUES (?, ?, CAST(now() AS TIMESTAMP))",
            [command.name, hash_password(command.password)],
        )
    elif isinstance(command, CreateRole):
        _check_new_name(cursor, command.name)
        cursor.execute(f"INSERT INTO {_ROLES} VALUES (?, CAST(now() AS TIMESTAMP))", [command.name])
    elif isinstance(command, DropUser):
        _drop_user(cursor, command)
    elif isinstance(command, DropRole):
        _drop_role(cursor, command)
    else:
        _grant_or_revoke(cursor, command)
    return 0


def _require_dba(cursor: Any, user: str, what: str) -> None:
    if DBA not in held_roles(cursor, user):
        words = {"CreateUser": "CREATE USER", "DropUser": "DROP USER", "CreateRole": "CREATE ROLE"}
        words |= {"DropRole": "DROP ROLE", "Grant": "GRANT/REVOKE"}
        raise DevDbError(
            f"insufficient privileges for {words.get(what, what)}: user {user} does not hold the role {DBA}",
            SYNTAX_OR_ACCESS,
        )


def _user_exists(cursor: Any, name: str) -> bool:
    row = cursor.execute(f"SELECT COUNT(*) FROM {_USERS} WHERE USER_NAME = ?", [name]).fetchone()
    return bool(row[0]) or name == _admin(cursor)


def _role_exists(cursor: Any, name: str) -> bool:
    row = cursor.execute(f"SELECT COUNT(*) FROM {_ROLES} WHERE ROLE_NAME = ?", [name]).fetchone()
    return bool(row[0]) or name in BUILT_IN_ROLES


def _check_new_name(cursor: Any, name: str) -> None:
    if _user_exists(cursor, name) or _role_exists(cursor, name):
        raise DevDbError(f"user or role name {name} conflicts with an existing user or role", "42500")


def _alter_user(cursor: Any, session_user: str, command: AlterUser) -> None:
    if command.name == _admin(cursor):
        raise Unsupported("ALTER USER of the administrator", "its password is devdb's --password")
    row = cursor.execute(f"SELECT PASSWORD_HASH FROM {_USERS} WHERE USER_NAME = ?", [command.name]).fetchone()
    if row is None:
        raise DevDbError(f"user {command.name} not found", SYNTAX_OR_ACCESS)
    if DBA not in held_roles(cursor, session_user):
        if command.name != session_user:
            raise DevDbError(f"insufficient privileges for ALTER USER of user {command.name}", SYNTAX_OR_ACCESS)
        if command.old_password is None:
            raise DevDbError('changing one\'s own password needs REPLACE "old password"', SYNTAX_OR_ACCESS)
    if command.old_password is not None and not password_matches(command.old_password, row[0]):
        raise DevDbError("the old password given after REPLACE is wrong", SYNTAX_OR_ACCESS)
    cursor.execute(
        f"UPDATE {_USERS} SET PASSWORD_HASH = ? WHERE USER_NAME = ?", [hash_password(command.password), command.name]
    )


def _drop_user(cursor: Any, command: DropUser) -> None:
    if command.name == _admin(cursor):
        raise Unsupported("DROP USER of the administrator", "it is devdb's --user")
    if not _user_exists(cursor, command.name):
        if command.if_exists:
            return
        raise DevDbError(f"user {command.name} not found", SYNTAX_OR_ACCESS)
    cursor.execute(f"DELETE FROM {_USERS} WHERE USER_NAME = ?", [command.name])
    _forget_grantee(cursor, command.name)


def _drop_role(cursor: Any, command: DropRole) -> None:
    if command.name in BUILT_IN_ROLES:
        raise DevDbError(f"the role {command.name} cannot be dropped", SYNTAX_OR_ACCESS)
    if not _role_exists(cursor, command.name):
        if command.if_exists:
            return
        raise DevDbError(f"role {command.name} not found", SYNTAX_OR_ACCESS)
    cursor.execute(f"DELETE FROM {_ROLES} WHERE ROLE_NAME = ?", [command.name])
    cursor.execute(f"DELETE FROM {_ROLE_GRANTS} WHERE GRANTED_ROLE = ?", [command.name])
    _forget_grantee(cursor, command.name)


def _forget_grantee(cursor: Any, name: str) -> None:
    cursor.execute(f"DELETE FROM {_ROLE_GRANTS} WHERE GRANTEE = ?", [name])
    cursor.execute(f"DELETE FROM {_SYS_PRIVS} WHERE GRANTEE = ?", [name])


def _grant_or_revoke(cursor: Any, command: Grant) -> None:
    for grantee in command.grantees:
        if not (_user_exists(cursor, grantee) or _role_exists(cursor, grantee)):
            raise DevDbError(f"user or role {grantee} not found", SYNTAX_OR_ACCESS)
    for role in command.roles:
        if not _role_exists(cursor, role):
            raise DevDbError(f"role {role} not found", SYNTAX_OR_ACCESS)
    for grantee in command.grantees:
        if command.revoke:
            _revoke(cursor, grantee, command.roles, command.privileges)
            continue
        for role in command.roles:
            if role == grantee or grantee in held_roles(cursor, role):
                raise DevDbError(f"circular role grant: {role} to {grantee}", SYNTAX_OR_ACCESS)
            cursor.execute(f"DELETE FROM {_ROLE_GRANTS} WHERE GRANTEE = ? AND GRANTED_ROLE = ?", [grantee, role])
            cursor.execute(f"INSERT INTO {_ROLE_GRANTS} VALUES (?, ?, ?)", [grantee, role, command.admin_option])
        for privilege in command.privileges:
            cursor.execute(f"DELETE FROM {_SYS_PRIVS} WHERE GRANTEE = ? AND PRIVILEGE = ?", [grantee, privilege])
            cursor.execute(f"INSERT INTO {_SYS_PRIVS} VALUES (?, ?, ?)", [grantee, privilege, command.admin_option])


def _revoke(cursor: Any, grantee: str, roles: Iterable[str], privileges: Iterable[str]) -> None:
    for table, column, names in ((_ROLE_GRANTS, "GRANTED_ROLE", roles), (_SYS_PRIVS, "PRIVILEGE", privileges)):
        for name in names:
            where = f"WHERE GRANTEE = ? AND {column} = ?"
            if not cursor.execute(f"SELECT COUNT(*) FROM {table} {where}", [grantee, name]).fetchone()[0]:
                raise DevDbError(f"{name} is not granted to {grantee}", SYNTAX_OR_ACCESS)
            cursor.execute(f"DELETE FROM {table} {where}", [grantee, name])


# ------------------------------------------------------------------ system views
_CURRENT = f"getvariable('{SESSION_VARIABLE}')"
_ALL_USERS = (
    f"SELECT USER_NAME, CREATED FROM {_USERS} UNION ALL SELECT USER_NAME, CAST({EPOCH} AS TIMESTAMP) FROM {_ADMIN}"
)
_ALL_ROLES = (
    f"SELECT ROLE_NAME, CREATED FROM {_ROLES} UNION ALL SELECT * FROM (VALUES ('{PUBLIC}', {EPOCH}), "
    f"('{DBA}', {EPOCH})) AS r(ROLE_NAME, CREATED)"
)
_ALL_GRANTS = (
    f"SELECT GRANTEE, GRANTED_ROLE, ADMIN_OPTION FROM {_ROLE_GRANTS} "
    f"UNION ALL SELECT USER_NAME, '{DBA}', TRUE FROM {_ADMIN} "
    f"UNION ALL SELECT USER_NAME, '{PUBLIC}', FALSE FROM ({_ALL_USERS})"
)
_USERS_VIEW = (
    "SELECT USER_NAME, CREATED, 'MEDIUM' AS USER_CONSUMER_GROUP, CAST(NULL AS VARCHAR) AS USER_COMMENT "
    f"FROM ({_ALL_USERS})"
)
_DBA_USERS_VIEW = (
    "SELECT USER_NAME, CREATED, CAST(NULL AS VARCHAR) AS DISTINGUISHED_NAME, "
    "CAST(NULL AS VARCHAR) AS KERBEROS_PRINCIPAL, CAST(NULL AS VARCHAR) AS PASSWORD, "
    "'MEDIUM' AS USER_CONSUMER_GROUP, CAST(NULL AS VARCHAR) AS USER_COMMENT "
    f"FROM ({_ALL_USERS})"
)
_ROLES_VIEW = (
    "SELECT ROLE_NAME, CREATED, CAST(NULL AS VARCHAR) AS ROLE_CONSUMER_GROUP, CAST(NULL AS VARCHAR) AS ROLE_COMMENT "
    f"FROM ({_ALL_ROLES})"
)
_ROLE_PRIVS = f"SELECT GRANTEE, GRANTED_ROLE, ADMIN_OPTION FROM ({_ALL_GRANTS})"
# roles the current user holds through other roles: each grant to a role the user holds (directly or not)
_ROLE_ROLE_PRIVS = f"""
WITH RECURSIVE held(ROLE) AS (
  SELECT GRANTED_ROLE FROM ({_ALL_GRANTS}) WHERE GRANTEE = {_CURRENT}
  UNION SELECT g.GRANTED_ROLE FROM ({_ALL_GRANTS}) g JOIN held h ON g.GRANTEE = h.ROLE
)
SELECT g.GRANTEE AS ROLE, g.GRANTED_ROLE, g.ADMIN_OPTION FROM ({_ALL_GRANTS}) g
WHERE g.GRANTEE IN (SELECT ROLE FROM held)
"""
_SYS_PRIVS_VIEW = f"SELECT GRANTEE, PRIVILEGE, ADMIN_OPTION FROM {_SYS_PRIVS}"


def system_views() -> dict[str, str]:
    """The SYS views of users, roles and grants, with the columns Exasol documents (devdb leaves unknowns NULL)."""
    return {
        "EXA_ALL_USERS": _USERS_VIEW,
        "EXA_USER_USERS": f"SELECT * FROM ({_USERS_VIEW}) WHERE USER_NAME = {_CURRENT}",
        "EXA_DBA_USERS": _DBA_USERS_VIEW,
        "EXA_ALL_ROLES": _ROLES_VIEW,
        "EXA_USER_ROLES": _ROLES_VIEW,
        "EXA_DBA_ROLES": _ROLES_VIEW,
        "EXA_DBA_ROLE_PRIVS": _ROLE_PRIVS,
        "EXA_USER_ROLE_PRIVS": f"SELECT * FROM ({_ROLE_PRIVS}) WHERE GRANTEE = {_CURRENT}",
        "EXA_ROLE_ROLE_PRIVS": _ROLE_ROLE_PRIVS,
        "EXA_DBA_SYS_PRIVS": _SYS_PRIVS_VIEW,
        "EXA_USER_SYS_PRIVS": f"SELECT * FROM ({_SYS_PRIVS_VIEW}) WHERE GRANTEE = {_CURRENT}",
    }
