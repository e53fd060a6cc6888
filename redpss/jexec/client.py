"""SCHED's side of JEXEC: an ACTION job's run, carried out by JEXEC over the wire.

An ACTION job's COMMAND names the script below cmd/ and its arguments, split like a shell would split words but never
run by a shell: `reports/daily.sh --day "last monday"` runs cmd/reports/daily.sh with the arguments `--day` and
`last monday` (docs/db-contract.md). This module depends on the core only (the wire client and the services
registry), so a SCHED worker imports no part of the JEXEC daemon.
"""

from __future__ import annotations

import shlex

from redpss.core.config import load_config
from redpss.core.errors import RedpssError, TimedOut
from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret
from redpss.core.services import service_spec
from redpss.core.wire import BlockingClient

MESSAGE_TAIL = 1500  # characters of output kept in the run's MESSAGE (the job log column holds 2000)
REPLY_MARGIN = 30.0  # seconds beyond the run's timeout to wait for JEXEC's answer (it kills the run at the timeout)


class ActionFailed(OSError):
    """The action ran and failed, timed out, or JEXEC refused it or could not be reached; the text says which."""


class ActionTimedOut(ActionFailed, TimedOut):
    """JEXEC ended the action at its timeout (the job's run is TIMEOUT)."""


def action_argv(command: str) -> list[str]:
    """[script, *args] of an ACTION job's COMMAND; ValueError when it names nothing or does not split."""
    try:
        argv = shlex.split(command, comments=False, posix=True)
    except ValueError as exc:
        raise ValueError(f"ACTION command {command[:100]!r} cannot be split into words: {exc}") from None
    if not argv:
        raise ValueError("an ACTION job's COMMAND names a script in cmd/ and its arguments, e.g. 'daily.sh --full'")
    return argv


def run_action(paths: InstancePaths, command: str, *, run_id: str, job_id: object, timeout: float) -> str:
    """Run the action through JEXEC; the success message (exit code, duration, output tail) or ActionFailed."""
    action, *args = action_argv(command)
    config = load_config(paths.config_file)
    spec = service_spec("jexec")
    address = spec.address(config, paths)
    assert isinstance(address, tuple)
    secret = instance_secret(paths)
    try:
        with BlockingClient(
            address,
            secret,
            f"SCHED run {run_id}",
            timeout=timeout + REPLY_MARGIN,
            ssl_context=spec.client_tls(config, paths),  # with jexec_tls: verifies JEXEC's certificate
        ) as client:
            reply = client.request("run", action=action, args=args, timeout=timeout, run_id=run_id, job_id=str(job_id))
    except RedpssError as exc:  # WireError, or StartupError: a certificate to trust is missing
        raise ActionFailed(f"JEXEC did not run cmd/{action}: {exc}") from None
    tail = str(reply.get("tail") or "")[-MESSAGE_TAIL:]
    summary = f"cmd/{action}: {reply.get('message')} in {reply.get('duration')} s"
    text = f"{summary}; output:\n{tail}" if tail else f"{summary}; no output"
    if reply.get("status") == "TIMEOUT":
        raise ActionTimedOut(text)
    if reply.get("status") != "OK":
        raise ActionFailed(text)
    return text
