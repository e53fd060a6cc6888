"""The config comparison every reloading daemon uses: only the keys asked for, split, described, secrets hidden."""

from __future__ import annotations

from redpss.core.config import parse_config
from redpss.core.reloading import config_changes, describe_change

OLD = parse_config(
    "[DEFAULT]\nexa_password = first secret\nlog_level = INFO\n[redctl]\nsched_service_port = 7100\n", "c"
)
NEW = parse_config(
    "[DEFAULT]\nexa_password = other secret\nlog_level = DEBUG\n[redctl]\nsched_service_port = 7101\n", "c"
)


def test_changes_are_split_by_the_keys_asked_for_and_others_are_ignored() -> None:
    changes = config_changes(
        OLD, NEW, [("redctl", "log_level")], [("DEFAULT", "exa_password"), ("redctl", "log_retention")]
    )
    assert changes.applied == [("redctl", "log_level")]
    assert changes.need_restart == [("DEFAULT", "exa_password")]  # sched_service_port was not asked for
    assert changes.describe(changes.applied) == "[redctl] log_level: 'INFO' -> 'DEBUG'"
    assert changes.describe(changes.need_restart) == "[DEFAULT] exa_password changed"
    assert not changes.empty


def test_an_unchanged_config_has_no_changes() -> None:
    assert config_changes(OLD, OLD, [("redctl", "log_level")], [("DEFAULT", "exa_password")]).empty


def test_a_password_is_named_never_shown() -> None:
    assert describe_change("password", "a", "b") == "password changed"
    assert describe_change("port", 1, 2) == "port: 1 -> 2"
