"""The redctl commands, one module per group; each module has `register(subparsers)` setting `handler`.

COMMANDS names every subcommand with its module and one-line help, so `redctl -h` lists them all without importing
a single command module, and `redctl CMD` imports only CMD's module: a command pays for what it uses and nothing
else. tests/cli/test_fast_cli.py fails when this table and what the modules register disagree.
"""

from __future__ import annotations

import importlib
from types import ModuleType

PACKAGE = "redpss.cli.redctl.commands"
# Order is the order of `redctl -h`: name -> (module in this package, help line).
COMMANDS: dict[str, tuple[str, str]] = {
    "version": ("version", "show versions"),
    "start": ("lifecycle", "start server"),
    "stop": ("lifecycle", "stop server"),
    "abort": ("lifecycle", "abort server (kill at once, no draining)"),
    "restart": ("lifecycle", "restart server (ends the suspended mode)"),
    "status": ("lifecycle", "show server status"),
    "start_trace": ("trace", "start server with output on STDOUT and STDERR"),
    "reload": ("control", "reload job config"),
    "suspend": ("control", "suspend all jobs"),
    "resume": ("control", "resume all jobs"),
    "show": ("control", "show status for jobs and processes"),
    "watch": ("control", "watch status for jobs and processes"),
    "list_db_jobs": ("jobs", "list DB jobs"),
    "list_db_watcher": ("jobs", "list DB watcher"),
    "we_list_error": ("jobs", "list errors of watcher executors"),
    "toggle_db_job": ("jobs", "toggle DB job between active and inactive"),
    "toggle_db_watcher": ("jobs", "toggle DB watcher between active and inactive"),
    "start_db_job": ("jobs", "start a DB job immediately"),
    "start_job": ("jobs", "start an already scheduled job immediately"),
    "we_reset_error": ("jobs", "reset errors of watcher executors"),
    "db_install": ("db", "install or upgrade REDSYS and the registered schemas"),
    "db_register": ("db", "register an application schema (creates its RED tables)"),
    "preclone": ("clone", "save state before cloning from another instance"),
    "postclone": ("clone", "restore the saved state after cloning (JMON does it at start)"),
}


def command_module(name: str) -> ModuleType:
    """The module that registers subcommand `name` (KeyError for an unknown one)."""
    return importlib.import_module(f"{PACKAGE}.{COMMANDS[name][0]}")


def all_modules() -> list[ModuleType]:
    """Every command module, in the order of COMMANDS (for tests and documentation)."""
    names = dict.fromkeys(module for module, _ in COMMANDS.values())
    return [importlib.import_module(f"{PACKAGE}.{module}") for module in names]
