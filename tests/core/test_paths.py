"""Instance names and the instance tree."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from redpss.core.errors import InstanceError
from redpss.core.paths import (
    DEFAULT_REDHOME,
    InstancePaths,
    create_instance_tree,
    iter_instances,
    redhome_from_env,
    validate_instance_name,
)


@pytest.mark.parametrize(
    ("given", "expected"), [("tst1", "TST1"), ("DEV1", "DEV1"), ("p", "P"), ("Abcdefg8", "ABCDEFG8")]
)
def test_valid_instance_names_are_upper_cased(given: str, expected: str) -> None:
    assert validate_instance_name(given) == expected


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("tst-1", "'tst-1' is not valid"),
        ("../x", "'../x' is not valid"),
        ("", "no instance given: set REDENV"),
        ("abcdefghi", "is 9 characters long"),
        ("1tst", "'1tst' is not valid"),
        ("ts t", "'ts t' is not valid"),
    ],
)
def test_invalid_instance_names_say_what_is_allowed(given: str, says: str) -> None:
    with pytest.raises(InstanceError) as caught:
        validate_instance_name(given)
    assert says in str(caught.value)
    assert "letters and digits starting with a letter" in str(caught.value)


def test_redhome_defaults_to_app_redsys_and_follows_the_environment() -> None:
    assert redhome_from_env({}) == DEFAULT_REDHOME == Path("/app/redsys")
    assert redhome_from_env({"REDHOME": "/srv/red"}) == Path("/srv/red")


def test_paths_follow_the_description(tmp_path: Path) -> None:
    paths = InstancePaths.for_instance("tst1", tmp_path)
    assert paths.redenv == "TST1"
    assert paths.home == tmp_path / "env" / "tst1"
    assert paths.config_file == paths.home / "etc" / "red_params.conf"
    assert paths.data_input == paths.home / "data" / "input"
    assert paths.db_log_dir("app1") == paths.home / "log" / "DB" / "APP1"
    assert paths.log_file("jmon") == paths.log_file("redctl") == paths.home / "log" / "redctl.log"
    assert paths.log_file("dbls") == paths.home / "log" / "dbls.log"
    assert paths.autostart_marker == paths.home / ".autostart"
    assert paths.environment() == {"REDHOME": str(tmp_path), "REDENV": "TST1", "REDENV_HOME": str(paths.home)}


def test_from_env_uses_redenv_unless_a_name_is_given(tmp_path: Path) -> None:
    env = {"REDHOME": str(tmp_path), "REDENV": "dev1"}
    assert InstancePaths.from_env(env).redenv == "DEV1"
    assert InstancePaths.from_env(env, name="tst1").redenv == "TST1"
    with pytest.raises(InstanceError, match="no instance given"):
        InstancePaths.from_env({"REDHOME": str(tmp_path)})


def test_tree_is_created_with_its_modes_and_idempotently(tmp_path: Path) -> None:
    paths = InstancePaths.for_instance("TST1", tmp_path)
    with pytest.raises(InstanceError, match="redsysctl create TST1"):
        paths.require()
    created = create_instance_tree(paths)
    assert paths.require() is paths
    expected = {
        paths.home: 0o750,
        paths.bin: 0o750,
        paths.etc: 0o750,
        paths.ssl_rest: 0o700,
        paths.ssl_cfi: 0o700,
        paths.lib: 0o750,
        paths.log_db: 0o750,
        paths.log_int: 0o750,
        paths.log_rest: 0o750,
        paths.tmp: 0o700,
        paths.cmd: 0o750,
        paths.data_input: 0o750,
        paths.data_work: 0o750,
        paths.data_error: 0o750,
        paths.data_archive: 0o750,
    }
    for folder, mode in expected.items():
        assert folder in created
        assert stat.S_IMODE(folder.stat().st_mode) == mode, folder
    paths.tmp.chmod(0o777)
    assert create_instance_tree(paths) == []
    assert stat.S_IMODE(paths.tmp.stat().st_mode) == 0o700


def test_iter_instances_lists_valid_instance_folders(tmp_path: Path) -> None:
    for name in ("TST1", "DEV1"):
        create_instance_tree(InstancePaths.for_instance(name, tmp_path))
    (tmp_path / "env" / "not-an-instance").mkdir()
    assert [p.redenv for p in iter_instances(tmp_path)] == ["DEV1", "TST1"]
    assert list(iter_instances(tmp_path / "nowhere")) == []
