"""A MAIL2CMD command carried out through the operations layer (redpss.ops, as redctl and the REST API do) and put
into the text of the reply mail."""

from __future__ import annotations

import json
from typing import Any

from redpss.core.errors import RedpssError
from redpss.mail.mail2cmd_rules import Command
from redpss.ops import control, jobs, status
from redpss.ops.instance import Instance


def run_command(instance: Instance, command: Command, by: str) -> str:
    """The reply's text: what the command did, or why it could not (the operator reads it in a mail client)."""
    try:
        return _run(instance, command, by)
    except RedpssError as exc:
        return f"{command} failed: {exc}"


def _run(instance: Instance, command: Command, by: str) -> str:
    if command.name == "status":
        return f"status of {instance.paths.redenv}:\n{_pretty(status.instance_status(instance))}"
    if command.name == "show":
        return f"show of {instance.paths.redenv}:\n{_pretty(control.show(instance))}"
    if command.name == "start_job":
        started = jobs.start(instance, command.args[0], by=by, scheduled_only=True)
        return f"job {started.schema}.{started.id} ({started.name}) started as run {started.run_id} ({started.state})"
    if command.name == "toggle_db_job":
        toggled = jobs.toggle(instance, "JOB", command.args[0])
        state = "active" if toggled.active else "inactive"
        return f"job {toggled.schema}.{toggled.id} ({toggled.name}) is now {state}{toggled.note}"
    if command.name in ("suspend", "resume"):
        control.set_suspended(instance, command.name == "suspend")
        return f"instance {instance.paths.redenv}: {command.name} done"
    raise AssertionError(command.name)  # the rules admit no other name


def _pretty(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str)
