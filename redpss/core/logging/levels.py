"""The log levels of the RED-PSS description: DEBUG, INFO, WARN, ERROR, ALERT.

ALERT is a real level above ERROR (and above Python's CRITICAL): the database's ALERT messages and a daemon's
"someone must act now" messages use it, and journald gets syslog priority 1 (alert) for it.
"""

from __future__ import annotations

import logging

ALERT = 55
logging.addLevelName(ALERT, "ALERT")

# The names an operator may write in red_params.conf; WARNING and CRITICAL are accepted as Python spells them.
LEVEL_NAMES: dict[str, int] = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
    "ALERT": ALERT,
}
CONFIG_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "ALERT")


def level_from_name(name: str) -> int:
    """The numeric level for a configured name (case-insensitive); ValueError naming the allowed ones."""
    try:
        return LEVEL_NAMES[name.strip().upper()]
    except KeyError:
        raise ValueError(f"unknown log level {name!r}; allowed: {', '.join(CONFIG_LEVELS)}") from None


def syslog_priority(levelno: int) -> int:
    """journald PRIORITY for a Python level: 7 debug, 6 info, 4 warning, 3 err, 2 crit, 1 alert."""
    if levelno >= ALERT:
        return 1
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7
