"""The command-line tools load only what the command at hand needs: no DuckDB, pyexasol or daemon internals to
print the help or to ask for a status (speed is measured in bench/bench_cli.py; these tests check the cause)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from redpss.cli.redctl.commands import COMMANDS, all_modules
from redpss.cli.redctl.main import build_parser, chosen_command
from redpss.core.paths import InstancePaths
from tests.support.instance_runner import RunningInstance, instance_config

HEAVY = ("duckdb", "pyexasol", "sqlglot", "pyarrow", "redpss.devdb", "redpss.sched", "redpss.jmon", "redpss.core.db")
LOOP = ("asyncio", "redpss.core.wire.aio")  # an event loop: the daemons' side of the wire, never a CLI's

PROBE = """
import json, sys
sys.argv = [{prog!r}, *{args!r}]
from {module} import main
try:
    code = main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({{"code": code, "modules": sorted(sys.modules)}}))
"""


def loaded_by(module: str, prog: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """Run `prog args` in a fresh interpreter; (exit code, every module it imported)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, prog=prog, args=list(args))],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=60,
    )
    data = json.loads(result.stdout.strip().splitlines()[-1])
    return int(data["code"] or 0), list(data["modules"])


def heavy(modules: list[str], kinds: tuple[str, ...] = HEAVY) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in kinds)]


def test_help_loads_no_command_module_and_nothing_heavy() -> None:
    code, modules = loaded_by("redpss.cli.redctl.main", "redctl", "-h")
    assert code == 0
    assert heavy(modules) == []
    assert not [m for m in modules if m.startswith("redpss.cli.redctl.commands.")]
    assert "asyncio" not in modules and "logging" not in modules


def test_status_outside_systemd_loads_nothing_heavy(instance: Path) -> None:
    import os  # noqa: PLC0415

    code, modules = loaded_by("redpss.cli.redctl.main", "redctl", "-i", "TST1", "status", env=dict(os.environ))
    assert code == 3  # nothing runs: stopped
    assert heavy(modules) == []
    assert "redpss.core.wire" not in modules  # nothing listens: no need for the protocol
    assert heavy(modules, LOOP) == []


def test_status_outside_systemd_loads_no_dataclasses_typing_or_logging(instance: Path) -> None:
    """Those three were most of what `redctl status` cost beyond a bare argparse program (bench/bench_cli.py). With
    logging never loaded nothing can log, which is why redctl may skip setting logging up for this command."""
    import os  # noqa: PLC0415

    code, modules = loaded_by("redpss.cli.redctl.main", "redctl", "-i", "TST1", "status", env=dict(os.environ))
    assert code == 3
    assert [m for m in ("dataclasses", "inspect", "typing", "logging") if m in modules] == []


def test_show_loads_the_blocking_client_without_asyncio(instance: Path) -> None:
    """JMON is not running, so show fails, but only after loading what it needs to ask: the wire's blocking client."""
    import os  # noqa: PLC0415

    code, modules = loaded_by("redpss.cli.redctl.main", "redctl", "-i", "TST1", "show", env=dict(os.environ))
    assert code != 0
    assert heavy(modules) == []
    assert heavy(modules, LOOP) == []
    assert "redpss.core.wire.blocking" in modules  # it did try to connect


def test_the_wire_package_loads_asyncio_only_for_its_server_and_async_client() -> None:
    """Daemons import JsonLineServer and AsyncClient from redpss.core.wire as before; the blocking side stays light."""
    probe = (
        "import json, sys\n"
        "from redpss.core.wire import BlockingClient, Code, WireError, decode, encode\n"
        "light = sorted(sys.modules)\n"
        "from redpss.core.wire import AsyncClient, JsonLineServer\n"
        "print(json.dumps([light, sorted(sys.modules), JsonLineServer.__module__, AsyncClient.__module__]))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    light, full, server_module, client_module = json.loads(result.stdout)
    assert heavy(light, LOOP) == []
    assert "asyncio" in full
    assert server_module == client_module == "redpss.core.wire.aio"


@pytest.mark.slow
def test_status_and_show_of_a_running_instance_load_no_event_loop_and_no_driver(
    instance: InstancePaths, tmp_path: Path
) -> None:
    """Against a running instance (`redctl start_trace` on the embedded database) both commands talk to the daemons
    through the blocking client: no asyncio, no DuckDB, no pyexasol in the process."""
    instance.config_file.write_text(instance_config())
    running = RunningInstance(instance, tmp_path)
    try:
        running.start()
        for command in ("status", "show"):
            code, modules = loaded_by("redpss.cli.redctl.main", "redctl", command, env=running.env())
            assert code in (0, 1), command  # show: 0; status: 0 all running, 1 an optional daemon is not (yet) up
            assert heavy(modules) == [], command
            assert heavy(modules, LOOP) == [], command
            assert "redpss.core.wire.blocking" in modules, command  # it asked the daemons
            if command == "status":  # the wire's blocking side loads what a stopped instance's status does not
                assert [m for m in ("dataclasses", "inspect", "typing", "logging") if m in modules] == []
    finally:
        running.close()


@pytest.mark.parametrize(
    ("module", "prog", "args"),
    [
        ("redpss.cli.redsysctl.main", "redsysctl", ["-h"]),
        ("redpss.cli.restctl", "restctl", ["-h"]),
        ("redpss.cli.redinfo", "redinfo", ["-h"]),
    ],
)
def test_other_tools_never_load_daemon_internals(module: str, prog: str, args: list[str]) -> None:
    _code, modules = loaded_by(module, prog, *args)
    assert heavy(modules, tuple(h for h in HEAVY if h != "redpss.core.db")) == [], prog  # the DB layer without driver


def test_command_table_matches_what_the_modules_register() -> None:
    """COMMANDS lists every subcommand with its module and help, so -h needs no module: it must not drift."""
    registered: dict[str, tuple[str, str]] = {}
    for module in all_modules():
        subparsers = argparse.ArgumentParser().add_subparsers()
        module.register(subparsers)
        helps = {action.dest: action.help or "" for action in subparsers._choices_actions}
        for name in subparsers.choices:
            registered[name] = (module.__name__.rsplit(".", 1)[1], helps[name])
    assert registered == COMMANDS


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["-h"], None),
        (["status"], "status"),
        (["-i", "TST1", "-D", "show", "--json"], "show"),
        (["--instance", "status", "stop"], "stop"),  # an instance called "status" is not the command
        (["nonsense"], None),
    ],
)
def test_the_command_is_found_before_parsing(argv: list[str], command: str | None) -> None:
    assert chosen_command(argv) == command


def test_every_command_parses_with_its_own_arguments() -> None:
    for name in COMMANDS:  # the chosen module registers beside the listed rest without a conflict
        assert f"{name}" in build_parser(name).format_help()
    args = build_parser("start_db_job").parse_args(["start_db_job", "APP1.17"])
    assert args.job == "APP1.17" and callable(args.handler)
