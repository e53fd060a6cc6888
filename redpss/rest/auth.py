"""Who is calling the REST API: HTTP Basic credentials checked by a database login, roles from the database.

The API keeps no user list of its own. A client sends HTTP Basic over TLS; the credentials are tried as a login to
the instance's database, and what the caller may do follows the database roles of that user: READER_ROLE sees,
OPERATOR_ROLE also changes (toggle, start, suspend, reset). An Exasol DBA manages API users the way it manages every
other database user (CREATE USER, GRANT REDPSS_OPERATOR TO ...), and a dropped user or changed password takes effect
within [rest] login_cache_seconds (30 s).

- The roles are read in the caller's own session (EXA_USER_ROLE_PRIVS plus EXA_ROLE_ROLE_PRIVS for roles held
  through other roles), so the technical user of [rest] needs no dictionary privilege for this.
- A successful check is cached briefly, keyed by an HMAC-SHA256 of (user, password) under a key made per process:
  the cache never holds a password, and the key is useless outside this process. Concurrent requests with the same
  credentials share one login.
- Failed logins are counted per client address; too many in a window refuse further attempts (TooManyAttempts,
  with retry_after) without asking the database. Every refusal is one WARNING line naming user, client and reason.
- The password is never logged and never part of an exception text; database exceptions are not chained.

A database that cannot be reached is not the client's fault: authenticate() then raises CannotCheck (an API answers
503), not AuthRefused; so does a configuration of the server that does not fit the database (a DSN that cannot be
used, a database other than exa_dbname). Why is logged, at most once a minute per cause; the caller, who has not
logged in, is not told the database's address or the server's configuration.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import time
from collections import Counter, deque

from redpss.core.config import Config, Secret
from redpss.core.db.contract import API_OPERATOR_ROLE, API_READER_ROLE
from redpss.core.db.errors import DatabaseAuthError, DatabaseError, DatabaseUnavailable
from redpss.core.record import Record

os.environ.setdefault("EXASOL_TELEMETRY_DISABLE", "1")  # pyexasol is imported by the logins below

log = logging.getLogger("redpss.rest.auth")

READER_ROLE = API_READER_ROLE  # may read every resource of the API (db_install creates both roles)
OPERATOR_ROLE = API_OPERATOR_ROLE  # may also change: toggle, start, suspend/resume, reset
DBA_ROLE = "DBA"  # Exasol's administrator role holds every privilege; it operates too

CACHE_ENTRIES = 1024
FAILURE_LIMIT = 5  # failed logins per client address within FAILURE_WINDOW before further attempts are refused
FAILURE_WINDOW = 60.0
# failed logins of one user, from any address, within FAILURE_WINDOW: a bound on how fast guesses from many addresses
# can run a database's lockout policy down. An address the user logged in from (within TRUSTED_SECONDS) is not held
# by it: others guessing the password must not lock the user out of the API
USER_FAILURE_LIMIT = 20
TRUSTED_SECONDS = 86400.0
RUNNING_RETRY = 1.0  # seconds to wait when the logins still running from an address take its whole limit
MAX_USER_LENGTH = 128  # Exasol identifiers are at most 128 characters
LOGIN_TIMEOUT = 10.0
UNAVAILABLE_LOG_SECONDS = 60.0  # the same reason why credentials cannot be checked is logged once per this time
# a database a re-check (recheck) could not reach is not asked again for this long: every open console tab
# refreshes every few seconds, and each login to a host that does not answer waits LOGIN_TIMEOUT
RECHECK_UNREACHABLE_SECONDS = 5.0

_ROLES_SQL = "SELECT GRANTED_ROLE FROM EXA_USER_ROLE_PRIVS UNION SELECT GRANTED_ROLE FROM EXA_ROLE_ROLE_PRIVS"


class Principal(Record):
    """An authenticated caller: the database user, its roles (direct and indirect) and whether it may change things."""

    user: str
    roles: frozenset[str]
    may_operate: bool


class AuthRefused(Exception):
    """The caller is not let in; str() is a reason safe to show to the client (never the password)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TooManyAttempts(AuthRefused):
    """Too many failed logins from this client address; try again after retry_after seconds."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class NoApiRole(AuthRefused):
    """The login succeeded but the user holds neither API role: authenticated, yet not permitted (HTTP 403)."""


class CannotCheck(Exception):
    """The credentials could not be checked: the database is away or does not fit the server's configuration.

    Not the caller's fault and not a failed login; str() is safe to show (no address, no configuration)."""

    reason = "cannot check credentials now: the database is not available (the server's log says why)"

    def __init__(self) -> None:
        super().__init__(self.reason)


class _FailureCounter:
    """Failed logins per client address within a sliding window, and the logins of each address still running.

    A login still running counts against the limit until it ends: a check made when a request arrives would
    otherwise let any number of requests sent at once (each with another password) reach the database before the
    first of them failed.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._running: Counter[str] = Counter()

    def retry_after(self, host: str, now: float) -> float:
        """Seconds until `host` may try again after its failed logins; 0 when it may try now."""
        times = self._failures.get(host)
        if times is None:
            return 0.0
        self._expire(times, now)
        if len(times) < self.limit:
            return 0.0
        return max(times[0] + self.window - now, 0.001)

    def start(self, host: str, now: float) -> float:
        """Count a new login of `host` as running (`end` it when done) and return 0, or the seconds to wait when its
        failed logins and those still running take the whole limit."""
        times = self._failures.get(host)
        failed = len(times) if times is not None else 0
        if failed + self._running[host] >= self.limit:
            return self.retry_after(host, now) or RUNNING_RETRY  # one of those running ends soon
        self._running[host] += 1
        return 0.0

    def end(self, host: str) -> None:
        self._running[host] -= 1
        if self._running[host] <= 0:
            del self._running[host]

    def add(self, host: str, now: float) -> None:
        if host not in self._failures and len(self._failures) >= CACHE_ENTRIES:
            for idle in [h for h, t in self._failures.items() if not t or t[-1] <= now - self.window]:
                del self._failures[idle]
        times = self._failures.setdefault(host, deque(maxlen=self.limit))  # older ones cannot matter any more
        self._expire(times, now)
        times.append(now)

    def _expire(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window:
            times.popleft()


def _address_key(host: str) -> str:
    """What failed logins are counted by: the address, or for IPv6 its /64 (one host gets a whole /64 to pick
    addresses from, so counting single IPv6 addresses would limit nobody)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return host


def parse_basic(authorization: str | None) -> tuple[str, str]:
    """(user, password) from an Authorization header; AuthRefused saying what is wrong (never echoing the value)."""
    if authorization is None or not authorization.strip():
        raise AuthRefused("authentication required: send HTTP Basic credentials (database user and password)")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise AuthRefused("only HTTP Basic authentication is accepted (Authorization: Basic base64(user:password))")
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise AuthRefused("the Basic credentials are not valid base64") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthRefused("the Basic credentials are not UTF-8 text") from None
    user, colon, password = text.partition(":")
    if not colon:
        raise AuthRefused("the Basic credentials lack the ':' between user and password")
    if not user:
        raise AuthRefused("the Basic credentials name no user")
    if len(user) > MAX_USER_LENGTH or any(ord(c) < 32 or c == "\x7f" for c in user):
        raise AuthRefused(f"the user name is not a database user name (at most {MAX_USER_LENGTH} printable characters)")
    if not password:
        raise AuthRefused("the Basic credentials carry an empty password")
    return user, password


def principal_from_roles(user: str, roles: frozenset[str]) -> Principal:
    """The Principal of a logged-in user; NoApiRole when none of its roles opens the API."""
    may_operate = OPERATOR_ROLE in roles or DBA_ROLE in roles
    if not may_operate and READER_ROLE not in roles:
        raise NoApiRole(f"user {user} holds neither role {READER_ROLE} nor {OPERATOR_ROLE}")
    return Principal(user=user, roles=roles, may_operate=may_operate)


class Authenticator:
    """Checks HTTP Basic credentials against the database, with a short cache and per-address failure limits."""

    def __init__(
        self,
        config: Config,
        *,
        cache_seconds: float | None = None,
        failure_limit: int = FAILURE_LIMIT,
        failure_window: float = FAILURE_WINDOW,
        user_failure_limit: int = USER_FAILURE_LIMIT,
    ) -> None:
        self.config = config
        self.cache_seconds = config.rest.login_cache_seconds if cache_seconds is None else cache_seconds
        self._key = secrets.token_bytes(32)  # per process: cache keys mean nothing elsewhere
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        self._pending: dict[bytes, asyncio.Future[Principal]] = {}
        self._failures = _FailureCounter(failure_limit, failure_window)  # per client address (IPv6: per /64)
        self._user_failures = _FailureCounter(user_failure_limit, failure_window)  # per user, from any address
        self._trusted: dict[tuple[str, str], float] = {}  # (USER, address key) of a successful login -> until when
        # RED-PSS's own database users: a failed login counts towards the database's lockout of the user, and a
        # locked REDSYS stops the instance; nobody logs in to the API as them
        self._own_users = {config.default.exa_username.upper(), config.rest.exa_username.upper()}
        self.database_logins = 0  # logins made (cache misses), for tests and metrics
        self._unavailable_logged: tuple[str, float] = ("", 0.0)  # the last reason logged, and when
        self._unreachable_until = 0.0  # monotonic: until then a re-check does not ask the database (recheck)

    async def authenticate(self, authorization: str | None, client_host: str) -> Principal:
        """The caller's Principal; AuthRefused (TooManyAttempts, NoApiRole) with a reason safe to show, or
        CannotCheck when the database cannot say."""
        try:
            user, password = parse_basic(authorization)
        except AuthRefused as refused:
            self._log_refusal("-", client_host, refused.reason)
            raise
        if user.upper() in self._own_users:
            own = AuthRefused(f"{user} is a database user of RED-PSS itself, not one to log in to the API with")
            self._log_refusal(user, client_host, own.reason)
            raise own
        now = time.monotonic()
        key, cached = self._cached(user, password, now)
        if cached is not None:
            return cached
        address = _address_key(client_host)
        wait = self._failures.retry_after(address, now)
        if wait:
            limited = TooManyAttempts(f"too many failed logins from {address}; retry in {wait:.0f} s", wait)
            self._log_refusal(user, client_host, limited.reason)
            raise limited
        trusted = self._trusted.get((user.upper(), address), 0.0) > now
        wait = 0.0 if trusted else self._user_failures.retry_after(user.upper(), now)
        if wait:
            limited = TooManyAttempts(f"too many failed logins of user {user}; retry in {wait:.0f} s", wait)
            self._log_refusal(user, client_host, limited.reason)
            raise limited
        login = self._pending.get(key)
        if login is None:
            wait = self._failures.start(address, now)
            if wait:
                limited = TooManyAttempts(f"too many logins at once from {client_host}; retry in {wait:.0f} s", wait)
                self._log_refusal(user, client_host, limited.reason)
                raise limited
            # the user's logins still running count too: else guesses sent at once from many addresses all reach
            # the database before the first of them fails (a trusted address is not held back by them)
            counted_user = None if trusted else user.upper()
            if counted_user is not None:
                wait = self._user_failures.start(counted_user, now)
                if wait:
                    self._failures.end(address)
                    limited = TooManyAttempts(f"too many logins of user {user} at once; retry in {wait:.0f} s", wait)
                    self._log_refusal(user, client_host, limited.reason)
                    raise limited
            # one login for every request with these credentials meanwhile; a caller that goes away does not end it
            login = asyncio.ensure_future(self._login(key, user, password, client_host))
            self._pending[key] = login
            login.add_done_callback(functools.partial(self._login_done, key, address, counted_user))
        return await asyncio.shield(login)

    async def recheck(self, user: str, password: str, client_host: str) -> Principal:
        """Credentials the server itself keeps (a console session's sealed password) checked again: the same cache
        and database login as authenticate(), outside the failure limits, which count what clients send (a session
        must not be held back by others' guesses from its address, nor be counted as one). A database that could
        not be reached is not asked again for RECHECK_UNREACHABLE_SECONDS: CannotCheck at once meanwhile."""
        now = time.monotonic()
        key, cached = self._cached(user, password, now)
        if cached is not None:
            return cached
        if self._unreachable_until > now:
            raise CannotCheck
        login = self._pending.get(key)
        if login is None:
            login = asyncio.ensure_future(self._login(key, user, password, client_host, counted=False))
            self._pending[key] = login
            login.add_done_callback(functools.partial(self._login_done, key, None, None))
        return await asyncio.shield(login)

    def _cached(self, user: str, password: str, now: float) -> tuple[bytes, Principal | None]:
        """The cache key of the credentials (an HMAC: the cache never holds a password), and the principal a check
        within the cache's time found for them, if any."""
        key = hmac.new(self._key, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        cached = self._cache.get(key)
        return key, cached[1] if cached is not None and cached[0] > now else None

    def _login_done(self, key: bytes, address: str | None, user: str | None, login: asyncio.Future[Principal]) -> None:
        """A login ended; `address` and `user`: whose running logins it counted (None for a recheck, and `user`
        None for a login from an address the user is trusted from)."""
        self._pending.pop(key, None)
        if address is not None:
            self._failures.end(address)
        if user is not None:
            self._user_failures.end(user)
        if not login.cancelled():
            login.exception()  # retrieved: when every caller went away, asyncio must not report it as lost

    async def _login(
        self, key: bytes, user: str, password: str, client_host: str, *, counted: bool = True
    ) -> Principal:
        """The database login and the roles; `counted`: a client's attempt, which the failure limits count."""
        self.database_logins += 1
        try:
            roles = await asyncio.to_thread(self._roles_by_login, user, password)
        except DatabaseAuthError:
            if counted:
                self._failures.add(_address_key(client_host), time.monotonic())
                self._user_failures.add(user.upper(), time.monotonic())
            reason = "the database refused the login (wrong user or password, or no CREATE SESSION privilege)"
            self._log_refusal(user, client_host, reason)
            raise AuthRefused(reason) from None
        except DatabaseUnavailable as exc:  # away: not the caller's doing, and re-checks wait a moment
            self._log_unavailable(str(exc))
            self._unreachable_until = time.monotonic() + RECHECK_UNREACHABLE_SECONDS
            raise CannotCheck from None
        except DatabaseError as exc:
            # misconfigured, or a statement of the check failed: the database is there, so re-checks go on as they
            # were (a client whose login merely failed must not switch every console session to reading only)
            self._log_unavailable(str(exc))
            raise CannotCheck from None
        try:
            principal = principal_from_roles(user, roles)
        except NoApiRole as refused:
            self._log_refusal(user, client_host, refused.reason)
            raise
        self._unreachable_until = 0.0
        self._remember(key, principal, time.monotonic())
        if counted:
            self._trust(user.upper(), _address_key(client_host), time.monotonic())
        return principal

    def _trust(self, user: str, address: str, now: float) -> None:
        """`user` logged in from `address`: the per-user limit does not hold that address back (for a day)."""
        self._trusted.pop((user, address), None)
        if len(self._trusted) >= CACHE_ENTRIES:
            del self._trusted[next(iter(self._trusted))]  # the oldest
        self._trusted[(user, address)] = now + TRUSTED_SECONDS

    def _roles_by_login(self, user: str, password: str) -> frozenset[str]:
        """Log in as the caller (blocking: runs in a thread) and read its roles, direct and indirect."""
        from redpss.core.db.session import DbSession  # noqa: PLC0415 - pyexasol only when a login is needed
        from redpss.core.db.settings import DbSettings  # noqa: PLC0415

        settings = DbSettings.from_config(
            self.config,
            user=user,
            password=Secret(password),
            client_name="RED-PSS REST",
            connection_timeout=LOGIN_TIMEOUT,
            socket_timeout=LOGIN_TIMEOUT,
        )
        session = DbSession(settings)
        try:
            rows = session.fetchall(_ROLES_SQL)
        finally:
            session.close()
        return frozenset(str(row[0]) for row in rows if row[0] is not None)

    def _remember(self, key: bytes, principal: Principal, now: float) -> None:
        if len(self._cache) >= CACHE_ENTRIES:
            for old in [k for k, (until, _) in self._cache.items() if until <= now] or list(self._cache)[:1]:
                del self._cache[old]
        self._cache[key] = (now + self.cache_seconds, principal)

    def _log_unavailable(self, why: str) -> None:
        now = time.monotonic()
        last, when = self._unavailable_logged
        if why != last or now - when >= UNAVAILABLE_LOG_SECONDS:
            self._unavailable_logged = (why, now)
            log.error("REST logins cannot be checked: %s", why)

    @staticmethod
    def _log_refusal(user: str, client_host: str, reason: str) -> None:
        log.warning(
            "REST login refused: user %s from %s: %s",
            user,
            client_host,
            reason,
            extra={"REST_USER": user, "CLIENT": client_host},
        )
