"""The output of actions to journald, line by line with RUN_ID, JOB_ID, ACTION and STREAM, never holding up JEXEC.

A script may print lines far faster than journald takes entries; sent from the event loop, each would wait for
journald when its queue is full (up to 0.2 s a line), and every run's output, heartbeat and reply with it. The lines
go through a JournalQueue instead (a thread of its own, a bounded queue, an overflow counted and said). They do not
go to JEXEC's own log file (log/jexec.log): the run's file (log/JEXEC/<run_id>.log) has them, within its limit, and
a daemon log growing with every action's output would undo that limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redpss.core.logging.journal_queue import JournalQueue
from redpss.core.logging.setup import LogContext

output_log = logging.getLogger("redpss.jexec.output")


@dataclass(frozen=True)
class OutputLine:
    run_id: str
    job_id: str
    action: str
    stream: str  # stdout or stderr
    text: str


def output_journal(instance: str) -> JournalQueue[OutputLine]:
    return JournalQueue(
        LogContext("jexec", instance),
        _record,
        fallback=None,  # outside systemd the run's file is where the output is
        note=logging.getLogger("redpss.jexec"),
        what="output line(s) of actions",
        kept="the run's file log/JEXEC/<run_id>.log has them unless it had reached its size limit",
        size=lambda line: len(line.text),
    )


def _record(line: OutputLine) -> logging.LogRecord:
    fields = {"RUN_ID": line.run_id, "JOB_ID": line.job_id or None, "ACTION": line.action, "STREAM": line.stream}
    return output_log.makeRecord(
        output_log.name,
        logging.INFO,
        "(action)",
        0,
        "%s: %s",
        (line.action, line.text),
        None,
        func="(action)",
        extra=fields,
    )
