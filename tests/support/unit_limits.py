"""Daemons in tests run under the limits their systemd units set, so a test sees the limits production sees.

The value comes from the one place the units take it from (`LIMIT_NOFILE` in redpss/cli/redsysctl/units.py).
Every daemon starter in tests/support runs its command under `unit_limits()`: util-linux prlimit sets the limit
and execs the daemon (same pid), as `LimitNOFILE=` does; no preexec_fn, which is unsafe in a threaded test process.
"""

from __future__ import annotations

import resource

from redpss.cli.redsysctl.units import LIMIT_NOFILE


def nofile_limit() -> int:
    """LimitNOFILE of the units; never above the hard limit this process may hand down."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return LIMIT_NOFILE if hard == resource.RLIM_INFINITY else min(LIMIT_NOFILE, hard)


def unit_limits() -> list[str]:
    """The command prefix that sets RLIMIT_NOFILE (soft and hard) as the units do."""
    limit = nofile_limit()
    return ["prlimit", f"--nofile={limit}:{limit}", "--"]
