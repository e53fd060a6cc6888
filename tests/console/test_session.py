"""The console's session cookie and CSRF token without a browser: signed, expiring, bound to the instance secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from redpss.console.routes import _local
from redpss.console.session import SESSION_SECONDS, RevokedSessions, SessionKeys
from redpss.core.paths import InstancePaths, create_instance_tree
from redpss.core.secret import instance_secret


def keys_of(tmp_path: Path, name: str) -> SessionKeys:
    paths = InstancePaths.for_instance(name, tmp_path)
    create_instance_tree(paths)
    instance_secret(paths)
    return SessionKeys(paths)


@pytest.fixture
def keys(tmp_path: Path) -> SessionKeys:
    return keys_of(tmp_path, "TST1")


def test_a_cookie_reads_back_until_it_expires(keys: SessionKeys) -> None:
    session, cookie = keys.issue("API_OPERATOR", True, "pw", now=1000.0)
    assert keys.read(cookie, now=1001.0) == session
    assert session.expires == 1000.0 + SESSION_SECONDS
    assert keys.read(cookie, now=1000.0 + SESSION_SECONDS) is None


def test_a_changed_cookie_or_one_of_another_instance_is_refused(keys: SessionKeys, tmp_path: Path) -> None:
    _, cookie = keys.issue("API_READER", False, "pw", now=1000.0)
    signature = cookie.split(".")[1]
    as_operator = keys.issue("API_READER", True, "pw", now=1000.0)[1].split(".")[0]
    assert keys.read(f"{as_operator}.{signature}", now=1001.0) is None  # a reader cannot make itself an operator
    assert keys.read(cookie + "x", now=1001.0) is None
    for garbage in (None, "", "abc", "a.b.c", "!!.??"):
        assert keys.read(garbage, now=1001.0) is None
    assert keys_of(tmp_path, "TST2").read(cookie, now=1001.0) is None


def test_the_password_is_sealed_in_the_cookie_for_this_instance_alone(keys: SessionKeys, tmp_path: Path) -> None:
    """The console checks the login again at every request (a revoked role ends the session): the password travels
    in the cookie, sealed, and opens only with this instance's key and for the session it was sealed for."""
    password = 'sécret "pw" with: colons'
    session, cookie = keys.issue("API_OPERATOR", True, password)
    assert password not in cookie and password.encode().hex() not in cookie
    read = keys.read(cookie)
    assert read is not None and keys.password_of(read) == password
    other, _ = keys.issue("API_OPERATOR", True, password)
    assert other.sealed != session.sealed  # a fresh nonce per login
    moved = type(session)(session.user, session.may_operate, other.sid, session.expires, session.sealed)
    assert keys.password_of(moved) is None  # bound to its session's id
    assert keys_of(tmp_path, "TST2").password_of(session) is None  # another instance's key
    flipped = session.sealed[:10] + ("B" if session.sealed[10] == "A" else "A") + session.sealed[11:]
    for broken in ("", "abc", session.sealed[:-2], flipped):
        changed = type(session)(session.user, session.may_operate, session.sid, session.expires, broken)
        assert keys.password_of(changed) is None


def test_the_csrf_token_belongs_to_one_session(keys: SessionKeys) -> None:
    first, _ = keys.issue("API_OPERATOR", True, "pw")
    second, _ = keys.issue("API_OPERATOR", True, "pw")
    token = keys.csrf_token(first)
    assert keys.csrf_ok(first, token)
    assert not keys.csrf_ok(second, token)
    assert not keys.csrf_ok(first, None) and not keys.csrf_ok(first, "")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/console/jobs?schema=APP1", "/console/jobs?schema=APP1"),
        ("https://elsewhere.example/", "/console/"),
        ("//elsewhere.example/console/", "/console/"),
        ("/console/..//evil", "/console/"),
        ("/api/v1/jobs", "/console/"),
        (None, "/console/"),
    ],
)
def test_redirects_stay_inside_the_console(target: str | None, expected: str) -> None:
    assert _local(target) == expected


def test_a_logout_ends_the_session_for_every_worker_and_old_lines_are_dropped(
    keys: SessionKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cookie is checked by its signature: without the list a copy taken before the logout stayed good for up to
    SESSION_SECONDS. Each gunicorn worker has its own RevokedSessions over the one file."""
    path = tmp_path / "console-sessions.revoked"
    one, other = RevokedSessions(path), RevokedSessions(path)
    session, _ = keys.issue("API_OPERATOR", True, "pw")
    kept, _ = keys.issue("API_READER", False, "pw")
    assert not other.revoked(session.sid)
    one.revoke(session)
    assert other.revoked(session.sid) and not other.revoked(kept.sid)
    monkeypatch.setattr(RevokedSessions, "PRUNE_AFTER", 2)
    for _ in range(3):
        one.revoke(keys.issue("API_READER", False, "pw", now=1000.0)[0])  # long expired
    assert len(path.read_text().splitlines()) == 1  # the expired ones went at the rewrite
    assert other.revoked(session.sid)
