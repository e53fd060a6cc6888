"""red_params.conf: every key of every section is read and checked; every error path names file, key and value."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from redpss.core.config import Secret, load_config, parse_config, render_config
from redpss.core.config.checks import load_instance_config
from redpss.core.config.schema import REQUIRED, SECTIONS, section_fields
from redpss.core.errors import ConfigError
from redpss.core.exitcodes import ExitCode
from redpss.core.paths import InstancePaths, create_instance_tree

REPO = Path(__file__).resolve().parents[2]
MINIMAL = "[DEFAULT]\nexa_password = pw\n"

# kind name -> (a valid text, the value it must give, an invalid text, words the error must contain)
KIND_CASES: dict[str, tuple[str, Any, str, str]] = {
    "text": ("some text", "some text", "", ""),
    "host": ("10.1.2.3", "10.1.2.3", "bad host!", "host name or IP address"),
    "IP addresses": ("10.0.0.5, ::1", "10.0.0.5,::1", "10.0.0.5, proxy", "is not an IP address"),
    "port": ("8563", 8563, "80", "from 1024 to 65535"),
    "port or 0 (off)": ("0", 0, "80", "0 (off) or a port number from 1024 to 65535"),
    "boolean": ("yes", True, "maybe", "true or false"),
    "count 1-64": ("12", 12, "0", "from 1 to 64"),
    "count 1-32": ("3", 3, "33", "from 1 to 32"),
    "count 1-256": ("200", 200, "257", "from 1 to 256"),
    "days 0-3650": ("14", 14, "-1", "from 0 to 3650"),
    "megabytes 1-100000": ("100", 100, "0", "from 1 to 100000"),
    "seconds": ("2.5", 2.5, "soon", "seconds"),
    "log level": ("warn", "WARN", "LOUD", "DEBUG, INFO, WARN, ERROR, ALERT"),
    "encryption": ("plain", "PLAIN", "SSL3", "STARTTLS, TLS, PLAIN"),
    "suffix": (".jsonl", ".jsonl", "json", "starting with a dot"),
    "dsn": ("exa1..3/ABCDEF:8563,exa9", "exa1..3/ABCDEF:8563,exa9", "exa 1:8563", "Exasol DSN"),
    "secret": ("s3cr3t", Secret("s3cr3t"), "", ""),
}

ALL_KEYS = [(section, field) for section in SECTIONS for field in section_fields(section)]
CHECKED_KEYS = [(s, f) for s, f in ALL_KEYS if KIND_CASES[f.metadata["kind"].name][3]]


def _config_with(section: str, key: str, text: str) -> str:
    base = MINIMAL if section != "DEFAULT" else "[DEFAULT]\n" + ("exa_password = pw\n" if key != "exa_password" else "")
    if section == "DEFAULT":
        return base + f"{key} = {text}\n"
    return f"{base}[{section}]\n{key} = {text}\n"


@pytest.mark.parametrize(("section", "field"), ALL_KEYS, ids=[f"{s}.{f.name}" for s, f in ALL_KEYS])
def test_every_key_reads_a_valid_value(section: str, field: dataclasses.Field[Any]) -> None:
    text, expected, _, _ = KIND_CASES[field.metadata["kind"].name]
    if field.name.endswith("_port") and section == "redctl" and "pasv" not in field.name:
        text, expected = "9999", 9999  # outside the default passive range and unused by other keys
    if field.name == "cfi_pasv_port_start":
        text, expected = "7425", 7425  # stays below the default end and above every service port's default
    extra = "sendmail_smtp_pass = pw\n" if field.name == "sendmail_smtp_user" else ""
    extra += "exa_password = tu-pw\n" if field.name == "rest_enabled" else ""
    config = parse_config(_config_with(section, field.name, text) + extra, "red_params.conf")
    value = getattr(getattr(config, "default" if section == "DEFAULT" else section), field.name)
    assert value == expected


@pytest.mark.parametrize(("section", "field"), CHECKED_KEYS, ids=[f"{s}.{f.name}" for s, f in CHECKED_KEYS])
def test_every_checked_key_rejects_a_bad_value_naming_file_section_key_and_allowed(
    section: str, field: dataclasses.Field[Any]
) -> None:
    _, _, bad, allowed = KIND_CASES[field.metadata["kind"].name]
    with pytest.raises(ConfigError) as caught:
        parse_config(_config_with(section, field.name, bad), "/x/red_params.conf")
    message = str(caught.value)
    assert message.startswith("/x/red_params.conf:")
    assert f"[{section}] {field.name} = {bad.strip()!r}" in message
    assert allowed in message
    assert caught.value.exit_code == ExitCode.CONFIG


def test_defaults_apply_when_only_the_password_is_set() -> None:
    config = parse_config(MINIMAL, "c")
    for section in SECTIONS:
        settings = getattr(config, "default" if section == "DEFAULT" else section)
        for field in section_fields(section):
            if field.default is not REQUIRED:
                assert getattr(settings, field.name) == field.default, f"{section}.{field.name}"
    assert config.redctl.log_level == "INFO"  # inherited from [DEFAULT]


def test_log_level_is_inherited_from_default_unless_the_section_sets_it() -> None:
    config = parse_config("[DEFAULT]\nexa_password = pw\nlog_level = ERROR\n[rest]\nlog_level = DEBUG\n", "c")
    assert (config.redctl.log_level, config.redinfo.log_level, config.rest.log_level) == (
        "ERROR",
        "ERROR",
        "DEBUG",
    )


def test_all_problems_are_listed_at_once() -> None:
    text = (
        "[DEFAULT]\nlog_level = LOUD\n"
        "[redctl]\nsched_service_port = 99999\nsched_defualt_pool_size = 3\ndbls_port = 7403\n"
        "[rest]\nrest_enabled = true\n"
        "[extra]\nx = 1\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c")
    problems = caught.value.problems
    assert any("[DEFAULT] log_level = 'LOUD'" in p for p in problems)
    assert any("[DEFAULT] exa_password: missing" in p for p in problems)
    assert any("sched_service_port = '99999'" in p for p in problems)
    assert any("did you mean sched_default_pool_size?" in p for p in problems)
    assert any("[redctl] jexec_port = 7403: already used by [redctl] dbls_port" in p for p in problems)
    assert any("[rest] exa_password: empty while rest_enabled = true" in p for p in problems)
    assert any("[extra]: unknown section" in p for p in problems)
    assert len(problems) == 7
    assert str(caught.value).startswith("c: 7 problems in the configuration:")


def test_passive_range_must_go_upwards_and_not_hold_service_ports() -> None:
    text = MINIMAL + "[redctl]\ncfi_pasv_port_start = 7500\ncfi_pasv_port_end = 7450\n"
    with pytest.raises(ConfigError, match="cfi_pasv_port_start = 7500 is above cfi_pasv_port_end = 7450"):
        parse_config(text, "c")
    text = MINIMAL + "[redctl]\ndbls_port = 7455\n"
    with pytest.raises(ConfigError, match=r"dbls_port = 7455: inside the CFI passive range 7450-7469"):
        parse_config(text, "c")


def test_disabled_services_may_share_ports() -> None:
    config = parse_config(MINIMAL + "[redctl]\nmail2cmd_port = 7401\n", "c")
    assert config.redctl.mail2cmd_port == 7401


def test_smtp_user_needs_a_password() -> None:
    with pytest.raises(ConfigError, match="sendmail_smtp_pass: empty while sendmail_smtp_user is set"):
        parse_config(MINIMAL + "[redctl]\nsendmail_smtp_user = relay\n", "c")


def test_description_spelling_mail2csv_is_read_as_mail2cmd() -> None:
    config = parse_config(MINIMAL + "[redctl]\nmail2csv_enabled = true\nmail2csv_port = 7490\n", "c")
    assert config.redctl.mail2cmd_enabled is True
    assert config.redctl.mail2cmd_port == 7490
    with pytest.raises(ConfigError, match="set twice, also as mail2cmd_port"):
        parse_config(MINIMAL + "[redctl]\nmail2csv_port = 7490\nmail2cmd_port = 7491\n", "c")


def test_empty_password_is_refused() -> None:
    with pytest.raises(ConfigError, match="exa_password: empty"):
        parse_config("[DEFAULT]\nexa_password =\n", "c")


def test_secrets_are_masked_in_repr_and_errors() -> None:
    config = parse_config("[DEFAULT]\nexa_password = hunter2\n", "c")
    assert "hunter2" not in repr(config)
    assert config.default.exa_password.reveal() == "hunter2"


def test_a_key_before_any_section_names_its_line() -> None:
    with pytest.raises(ConfigError, match="line 1: key exa_password comes before any \\[section\\]"):
        parse_config("exa_password = x\n", "c")


def test_a_duplicate_key_names_both_lines_and_hides_no_other_problem() -> None:
    text = (
        "# instance TST1\n"  # 1
        "[DEFAULT]\n"  # 2
        "log_level = LOUD\n"  # 3
        "exa_password = a\n"  # 4
        "\n"  # 5
        "[redctl]\n"  # 6
        "sched_service_port = 80\n"  # 7
        "[DEFAULT]\n"  # 8
        "exa_password = b\n"  # 9
        "[redctl]\n"  # 10
        "sched_service_port = 7401\n"  # 11
        "jmon_poll_intervall = 3\n"  # 12
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "/x/red_params.conf")
    assert caught.value.problems == [
        "line 3: [DEFAULT] log_level = 'LOUD': must be one of DEBUG, INFO, WARN, ERROR, ALERT",
        "line 7: [redctl] sched_service_port = '80': must be a port number from 1024 to 65535",
        "line 8: section [DEFAULT] appears again (first at line 2); merge them",
        "line 9: duplicate key exa_password in [DEFAULT] (first at line 4); keep one",
        "line 10: section [redctl] appears again (first at line 6); merge them",
        "line 11: duplicate key sched_service_port in [redctl] (first at line 7); keep one",
        "line 12: [redctl] jmon_poll_intervall: unknown key (did you mean jmon_poll_interval?)",
    ]


def test_a_byte_that_is_not_utf8_names_line_byte_and_column_and_other_problems_still_show(tmp_path: Path) -> None:
    path = tmp_path / "red_params.conf"
    latin1 = "[DEFAULT]\nexa_password = pw\n[redctl]\n# caf\u00e9 m\u00e4chine\nlog_level = LOUD\n".encode("latin-1")
    path.write_bytes(latin1)
    path.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        "line 4: not UTF-8 (byte 0xe9 at column 6); save the file as UTF-8",
        "line 5: [redctl] log_level = 'LOUD': must be one of DEBUG, INFO, WARN, ERROR, ALERT",
    ]
    assert "position" not in str(caught.value)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "red_params.conf"
    path.write_bytes(b"\xef\xbb\xbf[DEFAULT]\r\nexa_password = pw\r\n")
    path.chmod(0o600)
    assert load_config(path).default.exa_password.reveal() == "pw"
    assert parse_config("\ufeff" + MINIMAL, "c").default.exa_password.reveal() == "pw"


def test_an_inline_comment_after_a_value_is_a_comment() -> None:
    text = (
        "[DEFAULT]\nexa_password = pw\nlog_level = DEBUG   # until the load is fixed\n[redctl]\ndbls_port = 7490 #x\n"
    )
    config = parse_config(text, "c")
    assert (config.default.log_level, config.redctl.dbls_port) == ("DEBUG", 7490)
    assert parse_config("[DEFAULT]\nexa_password = p#w\n", "c").default.exa_password.reveal() == "p#w"


def test_a_password_holding_a_comment_sign_is_quoted_and_an_unquoted_one_is_refused_naming_the_line() -> None:
    quoted = parse_config('[DEFAULT]\nexa_password = " pa #ss "  # the TST1 password\n', "c")
    assert quoted.default.exa_password.reveal() == " pa #ss "
    assert parse_config("[DEFAULT]\nexa_password = 'a\"b'\n", "c").default.exa_password.reveal() == 'a"b'
    with pytest.raises(ConfigError) as caught:
        parse_config("[DEFAULT]\nexa_password = Zq9 #Xy\n", "c")
    (problem,) = caught.value.problems
    assert problem.startswith("line 2: [DEFAULT] exa_password: ' #' starts a comment")
    assert 'put it in quotes: exa_password = "..."' in problem
    assert "Zq9" not in problem
    assert "Xy" not in problem


def test_malformed_lines_are_named_by_line_without_showing_their_text() -> None:
    text = '[DEFAULT]\nexa_password = pw\nhunter2\n[redctl\n[rest]\nexa_password = "open\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c")
    assert caught.value.problems == [
        "line 3: not a `key = value` line, a [section] header or a # comment",
        "line 4: '[redctl' opens a section header but does not close it with ]",
        'line 6: [rest] exa_password: the value opens a " quote but never closes it',
    ]
    assert "hunter2" not in str(caught.value)


def test_missing_file_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist; create it from etc/red_params.conf.sample"):
        load_config(tmp_path / "red_params.conf")


def test_readable_password_file_is_refused_with_the_chmod_to_run(tmp_path: Path) -> None:
    path = tmp_path / "red_params.conf"
    path.write_text(MINIMAL)
    for mode in (0o644, 0o640, 0o604):
        path.chmod(mode)
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert f"its mode is {mode:04o}" in str(caught.value)
        assert f"run: chmod 600 {path}" in str(caught.value)
    path.chmod(0o600)
    assert load_config(path).default.exa_password.reveal() == "pw"


def test_shipped_sample_is_the_rendered_schema_and_documents_every_key() -> None:
    shipped = (REPO / "etc" / "red_params.conf.sample").read_text()
    assert shipped == render_config()
    for section, field in ALL_KEYS:
        assert f"{field.name} =" in shipped, f"{section}.{field.name} undocumented"
        assert field.metadata["doc"] in shipped


def test_rendered_config_with_a_password_loads() -> None:
    config = parse_config(render_config({"DEFAULT": {"exa_password": "x"}}), "c")
    assert config.default.exa_password.reveal() == "x"


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", module, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_redinfo_check_refuses_what_the_daemons_refuse_with_the_same_words(instance: InstancePaths) -> None:
    instance.config_file.write_text(
        render_config(
            {"DEFAULT": {"exa_password": "pw", "exa_connection": "exadb01:8563"}, "redctl": {"devdb_enabled": "true"}}
        )
    )
    problem = "[DEFAULT] exa_connection = 'exadb01:8563': with [redctl] devdb_enabled = true it must name this machine"
    check = _run("redpss.cli.redinfo", "-i", "TST1", "--check")
    assert check.returncode == ExitCode.CONFIG, check.stdout
    assert problem in check.stderr
    for daemon in ("redpss.jmon.service", "redpss.sched.service"):
        refused = _run(daemon, "--instance", "TST1")
        assert refused.returncode == ExitCode.CONFIG
        assert problem in refused.stderr


def test_redinfo_check_lists_problems_of_the_instance_tree_with_those_of_the_file(instance: InstancePaths) -> None:
    secret = instance.etc / "instance.secret"
    secret.write_text("x" * 64 + "\n")
    secret.chmod(0o644)
    instance.tmp.rmdir()
    instance.config_file.write_text(MINIMAL + "[redctl]\nlog_level = LOUD\n")
    check = _run("redpss.cli.redinfo", "-i", "TST1", "--check")
    assert check.returncode == ExitCode.CONFIG
    assert "3 problems in the configuration" in check.stderr
    assert "line 4: [redctl] log_level = 'LOUD'" in check.stderr
    assert f"folder {instance.tmp} is missing; create it: mkdir -m 750 {instance.tmp}" in check.stderr
    assert f"{secret} has mode 0644, readable by others; run: chmod 600 {secret}" in check.stderr
    instance.tmp.mkdir()
    secret.chmod(0o600)
    instance.config_file.write_text(MINIMAL)
    check = _run("redpss.cli.redinfo", "-i", "TST1", "--check")
    assert (check.returncode, check.stdout) == (0, f"{instance.config_file}: OK\n")


def test_a_ca_bundle_that_is_not_there_is_named(instance: InstancePaths, tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    instance.config_file.write_text(render_config({"DEFAULT": {"exa_password": "pw", "exa_ca_file": str(missing)}}))
    with pytest.raises(ConfigError, match=f"exa_ca_file = '{missing}': no such file"):
        load_instance_config(instance)
    missing.write_text("PEM")
    assert load_instance_config(instance).default.exa_ca_file == str(missing)


def test_an_action_pool_larger_than_what_jexec_runs_at_once_is_named(instance: InstancePaths) -> None:
    settings = {"sched_action_pool_size": "8", "jexec_max_running": "4"}
    instance.config_file.write_text(render_config({"DEFAULT": {"exa_password": "pw"}, "redctl": settings}))
    with pytest.raises(ConfigError, match=r"sched_action_pool_size = 8 is more than jexec_max_running = 4"):
        load_instance_config(instance)
    settings["jexec_max_running"] = "8"
    instance.config_file.write_text(render_config({"DEFAULT": {"exa_password": "pw"}, "redctl": settings}))
    assert load_instance_config(instance).redctl.jexec_max_running == 8


def test_another_instance_s_ports_are_read_as_load_config_reads_them(instance: InstancePaths) -> None:
    other = InstancePaths.for_instance("TST2", instance.redhome)
    create_instance_tree(other)
    other.config_file.write_bytes(b"\xef\xbb\xbf[DEFAULT]\n[redctl]\nsched_service_port = 7401  # as TST1's default\n")
    with pytest.raises(ConfigError, match=r"collides with instance TST2's \[redctl\] sched_service_port"):
        load_instance_config(instance)


def test_a_dsn_port_beyond_65535_is_refused_naming_it() -> None:
    """Five digits passed the pattern: devdb's bind then failed with OverflowError (exit 1, restarted five times)
    and the other daemons connected to the port modulo 65536."""
    with pytest.raises(ConfigError, match=r"port 99999 in '127\.0\.0\.1:99999' is not a port number"):
        parse_config("[DEFAULT]\nexa_password = pw\nexa_connection = 127.0.0.1:99999\n", "c")
    assert parse_config("[DEFAULT]\nexa_password = pw\nexa_connection = a:8563,b:65535\n", "c") is not None
