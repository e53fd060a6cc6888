"""/metrics in Prometheus' text format: runs by status, dispatch lateness, pool load, spools and daemons up."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from redpss.core.errors import RedpssError
from redpss.ops import history, status
from redpss.ops.instance import Instance

LATENESS_BUCKETS_MS = (1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0)
LATENESS_WINDOW = dt.timedelta(hours=1)  # the histogram covers the runs of the last hour


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def lateness_histogram(values: list[float]) -> list[str]:
    lines = [
        f'redpss_dispatch_lateness_ms_bucket{{le="{b:g}"}} {sum(1 for v in values if v <= b)}'
        for b in LATENESS_BUCKETS_MS
    ]
    lines.append(f'redpss_dispatch_lateness_ms_bucket{{le="+Inf"}} {len(values)}')
    lines.append(f"redpss_dispatch_lateness_ms_sum {sum(values):.3f}")
    lines.append(f"redpss_dispatch_lateness_ms_count {len(values)}")
    return lines


def render_metrics(instance: Instance) -> str:
    """The instance's metrics; the database's figures are left out (redpss_database_up 0) when it cannot answer."""
    state = status.instance_status(instance)
    lines: list[str] = []
    lines += _family(
        "redpss_daemon_up",
        "gauge",
        "1 when the daemon answers its probe",
        (f'redpss_daemon_up{{daemon="{_label(name)}"}} {int(d["running"])}' for name, d in state["daemons"].items()),
    )
    lines += _family(
        "redpss_suspended",
        "gauge",
        "1 while the instance is suspended",
        [f"redpss_suspended {int(state['suspended'])}"],
    )
    lines += _family(
        "redpss_pool_busy",
        "gauge",
        "workers running a job, per pool",
        (f'redpss_pool_busy{{pool="{_label(p["pool"])}"}} {p["busy"]}' for p in state["pools"]),
    )
    lines += _family(
        "redpss_pool_queued",
        "gauge",
        "runs waiting for a worker, per pool",
        (f'redpss_pool_queued{{pool="{_label(p["pool"])}"}} {p["queued"]}' for p in state["pools"]),
    )
    lines += _family(
        "redpss_spool_rows",
        "gauge",
        "rows waiting in a spool to be written to the database",
        (f'redpss_spool_rows{{spool="{_label(k)}"}} {v}' for k, v in state["spool"].items()),
    )
    try:
        by_status = history.runs_by_status(instance)
        lateness = history.lateness_values(instance, dt.datetime.now() - LATENESS_WINDOW)
    except RedpssError:
        lines += _family("redpss_database_up", "gauge", "1 when the database answered", ["redpss_database_up 0"])
        return "\n".join(lines) + "\n"
    lines += _family("redpss_database_up", "gauge", "1 when the database answered", ["redpss_database_up 1"])
    lines += _family(
        "redpss_runs",
        "gauge",
        "runs in the run logs, per status",
        (f'redpss_runs{{status="{_label(r["STATUS"])}"}} {int(r["RUNS"])}' for r in by_status),
    )
    lines += _family(
        "redpss_dispatch_lateness_ms",
        "histogram",
        "lateness of run starts in the last hour (ms)",
        lateness_histogram(lateness),
    )
    return "\n".join(lines) + "\n"
