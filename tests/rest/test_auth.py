"""The REST API's authentication against a real devdb: HTTP Basic credentials become a database login, the roles
db_install creates decide what the caller may do, logins are cached and failures rate-limited, and the password
never reaches a log line or an exception."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterator

import pytest

from redpss.core.config import Config, Secret, parse_config, render_config
from redpss.core.db import DbSession, DbSettings
from redpss.core.db.contract import install
from redpss.core.net import free_port
from redpss.devdb.testing import InProcessDevDb
from redpss.rest.auth import (
    OPERATOR_ROLE,
    READER_ROLE,
    Authenticator,
    AuthRefused,
    CannotCheck,
    NoApiRole,
    Principal,
    TooManyAttempts,
)

READER_PASSWORD = "reader:pass with colon"  # a colon inside the password is allowed
OPERATOR_PASSWORD = "operator-Secret-4711"
CLIENT = "192.0.2.10"


@pytest.fixture(scope="module")
def devdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessDevDb]:
    """A devdb after db_install, with a reader, an operator and a user holding no API role."""
    server = InProcessDevDb(tmp_path_factory.mktemp("devdb"))
    server.start()
    session = DbSession(DbSettings(dsn=server.dsn, user="sys", password=Secret("exasol"), encryption=False))
    install(session)
    for user, password, role in (
        ("api_reader", READER_PASSWORD, READER_ROLE),
        ("api_operator", OPERATOR_PASSWORD, OPERATOR_ROLE),
        ("no_api", "no-api-pw", None),
    ):
        session.execute(f'CREATE USER {user} IDENTIFIED BY "{password}"')
        session.execute(f"GRANT {role} TO {user}" if role else f"GRANT CREATE SESSION TO {user}")
    session.close()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def config(devdb: InProcessDevDb) -> Config:
    text = render_config(
        {
            "DEFAULT": {
                "exa_password": "exasol",
                "exa_connection": devdb.dsn,
                "exa_encryption": "false",
                "exa_dbname": "DEVDB",
            }
        }
    )
    return parse_config(text, "red_params.conf")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def logins(devdb: InProcessDevDb) -> int:
    assert devdb.server is not None
    return devdb.server.logins


def authenticate(auth: Authenticator, header: str | None, client: str = CLIENT) -> Principal:
    return asyncio.run(auth.authenticate(header, client))


def refusal(auth: Authenticator, header: str | None, client: str = CLIENT) -> AuthRefused:
    with pytest.raises(AuthRefused) as caught:
        authenticate(auth, header, client)
    return caught.value


def test_roles_from_the_database_decide_what_a_caller_may_do(config: Config) -> None:
    auth = Authenticator(config)
    reader = authenticate(auth, basic("api_reader", READER_PASSWORD))
    assert reader.user == "api_reader"
    assert READER_ROLE in reader.roles and not reader.may_operate
    operator = authenticate(auth, basic("api_operator", OPERATOR_PASSWORD))
    assert operator.may_operate
    assert {OPERATOR_ROLE, READER_ROLE} <= operator.roles  # db_install grants the reader role to the operator role
    dba = authenticate(auth, basic("sys", "exasol"))
    assert dba.may_operate and "DBA" in dba.roles

    no_role = refusal(auth, basic("no_api", "no-api-pw"))
    assert isinstance(no_role, NoApiRole)
    assert READER_ROLE in str(no_role) and OPERATOR_ROLE in str(no_role)


def test_a_wrong_password_is_refused_and_logged_without_the_password(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    auth = Authenticator(config)
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-Password-9931"
    refused = refusal(auth, basic("api_reader", wrong))
    assert "refused the login" in str(refused)
    assert refused.__cause__ is None and refused.__suppress_context__  # no database exception chained
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "redpss.rest.auth"]
    assert len(warnings) == 1
    assert "api_reader" in warnings[0].getMessage() and CLIENT in warnings[0].getMessage()
    authenticate(auth, basic("api_reader", READER_PASSWORD))
    for secret in (wrong, READER_PASSWORD, base64.b64encode(f"api_reader:{wrong}".encode()).decode()):
        assert secret not in caplog.text
        assert secret not in repr(refused) and secret not in str(refused)


def test_a_checked_login_is_cached_briefly(devdb: InProcessDevDb, config: Config) -> None:
    auth = Authenticator(config, cache_seconds=60.0)
    header = basic("api_operator", OPERATOR_PASSWORD)
    before = logins(devdb)
    first = authenticate(auth, header)
    assert authenticate(auth, header) == first
    assert logins(devdb) == before + 1 and auth.database_logins == 1

    async def together() -> list[Principal]:
        other = basic("api_reader", READER_PASSWORD)
        return await asyncio.gather(*(auth.authenticate(other, CLIENT) for _ in range(5)))

    assert len(set(asyncio.run(together()))) == 1
    assert logins(devdb) == before + 2  # five concurrent requests with the same credentials: one login

    refusal(auth, basic("api_operator", "not the password"))  # another password is never served from the cache
    assert auth.database_logins == 3

    uncached = Authenticator(config, cache_seconds=0.0)
    authenticate(uncached, header)
    authenticate(uncached, header)
    assert uncached.database_logins == 2


def test_failed_logins_are_rate_limited_per_client_address(devdb: InProcessDevDb, config: Config) -> None:
    auth = Authenticator(config, failure_limit=2, failure_window=60.0)
    for _ in range(2):
        assert not isinstance(refusal(auth, basic("api_reader", "guess")), TooManyAttempts)
    made = auth.database_logins
    limited = refusal(auth, basic("api_reader", READER_PASSWORD))  # even the right password waits
    assert isinstance(limited, TooManyAttempts)
    assert 0 < limited.retry_after <= 60.0
    assert auth.database_logins == made  # the database was not asked
    assert authenticate(auth, basic("api_reader", READER_PASSWORD), client="192.0.2.99").user == "api_reader"


def test_guesses_from_many_addresses_are_limited_per_user_and_ipv6_per_64(
    devdb: InProcessDevDb, config: Config
) -> None:
    """A database may lock a user after some failed logins: guesses spread over addresses (an IPv6 /64 gives one
    host plenty) must not run that down unchecked. RED-PSS's own users are never tried at all: a locked REDSYS
    would stop the instance."""
    auth = Authenticator(config, failure_limit=2, user_failure_limit=3, cache_seconds=0)  # each login asks
    assert authenticate(auth, basic("api_reader", READER_PASSWORD), "192.0.2.60").user == "api_reader"  # its own
    for number in range(2):
        assert not isinstance(refusal(auth, basic("api_reader", "guess"), f"2001:db8::{number + 1}"), TooManyAttempts)
    limited = refusal(auth, basic("api_reader", "guess"), "2001:db8::99")  # the same /64
    assert isinstance(limited, TooManyAttempts) and "from 2001:db8::/64" in limited.reason
    assert not isinstance(refusal(auth, basic("api_reader", "guess"), "2001:db8:1::1"), TooManyAttempts)
    made = auth.database_logins
    limited = refusal(auth, basic("api_reader", READER_PASSWORD), "192.0.2.50")
    assert isinstance(limited, TooManyAttempts) and "of user api_reader" in limited.reason
    assert authenticate(auth, basic("api_reader", READER_PASSWORD), "192.0.2.60").user == "api_reader"  # not locked out
    assert authenticate(auth, basic("api_operator", OPERATOR_PASSWORD), "192.0.2.50").user == "api_operator"
    for own in ("REDSYS", "redsys", "redrest"):  # [DEFAULT] and [rest] exa_username, of any case
        assert "a database user of RED-PSS itself" in refusal(auth, basic(own, "exasol"), "192.0.2.51").reason
    assert auth.database_logins == made + 2  # only the operator's and the trusted address's logins


def test_a_dropped_user_is_refused_once_the_cache_has_expired(devdb: InProcessDevDb, config: Config) -> None:
    with devdb.connect() as admin:
        admin.execute('CREATE USER short_lived IDENTIFIED BY "pw-1"')
        admin.execute(f"GRANT {READER_ROLE} TO short_lived")
        auth = Authenticator(config, cache_seconds=0.0)
        assert authenticate(auth, basic("short_lived", "pw-1")).user == "short_lived"
        admin.execute("DROP USER short_lived")
    assert "refused the login" in str(refusal(auth, basic("short_lived", "pw-1")))


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "authentication required"),
        ("", "authentication required"),
        ("Bearer abc.def", "only HTTP Basic"),
        ("Basic !!!not-base64", "not valid base64"),
        ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), "not UTF-8"),
        ("Basic " + base64.b64encode(b"no-colon-here").decode(), "lack the ':'"),
        ("Basic " + base64.b64encode(b":pw").decode(), "name no user"),
        ("Basic " + base64.b64encode(b"user:").decode(), "empty password"),
        ("Basic " + base64.b64encode(b"bad\nuser:pw").decode(), "not a database user name"),
    ],
)
def test_malformed_credentials_are_refused_clearly_without_a_login(
    config: Config, header: str | None, reason: str
) -> None:
    auth = Authenticator(config)
    assert reason in str(refusal(auth, header))
    assert auth.database_logins == 0


@pytest.mark.parametrize(
    ("connection", "logged"),
    [
        ("127.0.0.1:{port}", "is not reachable"),
        ("127.0.0.5..3:8563", "is not a usable DSN"),  # the server's configuration, not the caller's password
    ],
)
def test_a_database_that_cannot_say_is_no_refusal_and_no_failed_login(
    connection: str, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    dsn = connection.format(port=free_port())
    closed = render_config({"DEFAULT": {"exa_password": "x", "exa_connection": dsn, "exa_encryption": "false"}})
    auth = Authenticator(parse_config(closed, "red_params.conf"), failure_limit=1)
    caplog.set_level(logging.INFO, logger="redpss.rest.auth")
    for _ in range(3):  # with failure_limit=1 a counted failure would turn the second into TooManyAttempts
        with pytest.raises(CannotCheck) as caught:
            authenticate(auth, basic("api_reader", READER_PASSWORD))
        assert dsn not in str(caught.value)  # the caller has not logged in: no address, no configuration
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors  # the same cause once a minute, not once per request
    assert logged in errors[0] and dsn in errors[0]
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]  # no "login refused" line


def test_logins_sent_at_once_try_no_more_passwords_than_the_limit(devdb: InProcessDevDb, config: Config) -> None:
    """Before, the limit was checked when a request arrived and a failure counted when its login ended: 40 requests
    sent at once with 40 passwords all reached the database."""
    auth = Authenticator(config, failure_limit=3, failure_window=60.0)

    async def at_once() -> list[Principal | BaseException]:
        guesses = (auth.authenticate(basic("api_reader", f"guess-{n}"), CLIENT) for n in range(40))
        return await asyncio.gather(*guesses, return_exceptions=True)

    outcomes = asyncio.run(at_once())
    assert auth.database_logins == 3
    limited = [o for o in outcomes if isinstance(o, TooManyAttempts)]
    assert len(limited) == 37 and "too many logins at once" in str(limited[0])
    assert all(isinstance(o, AuthRefused) for o in outcomes)
    assert isinstance(refusal(auth, basic("api_reader", READER_PASSWORD)), TooManyAttempts)  # 3 failures now count
    assert authenticate(auth, basic("api_reader", READER_PASSWORD), client="192.0.2.99").user == "api_reader"


def test_a_recheck_is_not_held_back_by_failed_logins_and_does_not_ask_an_unreachable_database_again(
    devdb: InProcessDevDb, config: Config
) -> None:
    """The console's checks of its sessions' sealed passwords: others' wrong passwords from the same address do not
    stop them (the session kept its login's role while the address was held), and a database that could not be
    reached is not asked again at every request of every open tab for RECHECK_UNREACHABLE_SECONDS."""
    auth = Authenticator(config, failure_limit=1, cache_seconds=0.0)
    with pytest.raises(AuthRefused):
        authenticate(auth, basic("api_reader", "wrong"))
    with pytest.raises(TooManyAttempts):
        authenticate(auth, basic("api_reader", READER_PASSWORD))  # the address is held now
    principal = asyncio.run(auth.recheck("api_reader", READER_PASSWORD, "127.0.0.1"))
    assert principal.user == "api_reader" and not principal.may_operate
    with pytest.raises(AuthRefused):
        asyncio.run(auth.recheck("api_reader", "changed meanwhile", "127.0.0.1"))
    with pytest.raises(TooManyAttempts):  # a recheck neither counted nor cleared the address's failures
        authenticate(auth, basic("api_reader", READER_PASSWORD))

    unreachable = render_config(
        {"DEFAULT": {"exa_password": "x", "exa_connection": f"127.0.0.1:{free_port()}", "exa_encryption": "false"}}
    )
    away = Authenticator(parse_config(unreachable, "red_params.conf"))
    for _ in range(3):
        with pytest.raises(CannotCheck):
            asyncio.run(away.recheck("api_reader", READER_PASSWORD, "127.0.0.1"))
    assert away.database_logins == 1


def test_a_password_too_long_to_send_is_a_counted_refusal_and_leaves_rechecks_alone(
    devdb: InProcessDevDb, config: Config
) -> None:
    """pyexasol encrypts the password with the database's RSA key; one longer than the key carries failed with a
    ValueError taken for an unreachable database: 503, never counted (unlimited logins), and for 5 s every console
    session's re-check answered "cannot check" (each such request made every session read-only)."""
    auth = Authenticator(config, failure_limit=2, cache_seconds=0.0)
    for _ in range(2):
        refused = refusal(auth, basic("anyone", "x" * 300))
        assert not isinstance(refused, TooManyAttempts) and "refused the login" in refused.reason
    assert isinstance(refusal(auth, basic("anyone", "x" * 300)), TooManyAttempts)  # counted
    principal = asyncio.run(auth.recheck("api_operator", OPERATOR_PASSWORD, "127.0.0.1"))
    assert principal.may_operate  # the database was not taken for away


def test_guesses_sent_at_once_from_many_addresses_are_limited_per_user(devdb: InProcessDevDb, config: Config) -> None:
    """The per-user limit counted only failures already ended: 20 addresses sending 5 guesses each at once all
    reached the database before the first failed. The user's logins still running count now."""
    auth = Authenticator(config, failure_limit=5, user_failure_limit=4, failure_window=60.0)

    async def at_once() -> list[Principal | BaseException]:
        guesses = (
            auth.authenticate(basic("api_operator", f"guess-{a}-{n}"), f"198.51.100.{a}")
            for a in range(1, 21)
            for n in range(5)
        )
        return await asyncio.gather(*guesses, return_exceptions=True)

    outcomes = asyncio.run(at_once())
    assert auth.database_logins == 4
    limited = [o for o in outcomes if isinstance(o, TooManyAttempts)]
    assert len(limited) == 96 and any("too many logins of user api_operator at once" in str(o) for o in limited)
