"""What JMON does for the whole instance besides scheduling, from its tick: the daemons' state in REDSYS every few
seconds (daemon_status.py) and, once a day, the retention of the logs in the database (core/db/retention.py).

Both run in threads with their own database sessions: neither ever holds up dispatch or the definitions poll.
"""

from __future__ import annotations

from redpss.core.config import Config
from redpss.core.db import DbSession, DbSettings
from redpss.core.db.retention import DbLogRetention
from redpss.core.paths import InstancePaths
from redpss.jmon.daemon_status import DaemonStatusWriter


class Housekeeping:
    def __init__(self, config: Config, paths: InstancePaths) -> None:
        settings = DbSettings.from_config(config, client_name="RED-PSS JMON log retention")
        self.retention = DbLogRetention(lambda: DbSession(settings), config.redctl.log_retention)
        self.daemon_status = DaemonStatusWriter.for_instance(config, paths)

    def tick(self, now: float, config: Config, jmon_status: str) -> None:
        """Start what is due; `config` is JMON's current one (a reload may have changed log_retention)."""
        self.retention.days = config.redctl.log_retention
        self.retention.run_if_due(now)
        self.daemon_status.run_if_due(now, config, jmon_status)

    async def close(self) -> None:
        await self.retention.close()
        await self.daemon_status.close()
