"""redpss-heartbeat: the smallest daemon on the core base, used by the demo and by the lifecycle tests.

Every `--interval` seconds it starts one unit of work that takes `--work-seconds`; several may be in flight. On the
first SIGTERM it waits for them (drain), on the second it hands them back (abort). That is the behaviour every real
daemon has, in a form whose in-flight work a test can control.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

from redpss.core.config import Config
from redpss.core.daemon import Service
from redpss.core.entry import daemon_argument_parser, run_instance_daemon
from redpss.core.paths import InstancePaths

log = logging.getLogger("redpss.heartbeat")


class HeartbeatService(Service):
    name = "heartbeat"

    def __init__(
        self,
        interval: float,
        work_seconds: float,
        drain_timeout: float,
        start_delay: float = 0.0,
        task_ends: tuple[float, str] | None = None,
        *,
        tick_seconds: float = 0.0,
    ) -> None:
        self.tick_interval = interval
        self.tick_seconds = tick_seconds
        self.task_ends = task_ends
        self.start_delay = start_delay
        self.work_seconds = work_seconds
        self.drain_timeout = drain_timeout
        self.started = 0
        self.finished = 0
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self.accepting = True

    async def start(self) -> None:
        if self.start_delay:
            log.info("starting (taking %.0f s)", self.start_delay)
            await asyncio.sleep(self.start_delay)  # stands for a slow start-up: waiting for a database
        log.info("heartbeat every %.1f s, each beat working %.1f s", self.tick_interval, self.work_seconds)
        if self.task_ends is not None:
            self.spawn(self._pacemaker(*self.task_ends), "pacemaker")

    async def _pacemaker(self, after: float, how: str) -> None:
        """A long-lived task that ends after `after` seconds (`how`: error or return), for the supervision tests."""
        await asyncio.sleep(after)  # stands for a link to another daemon that breaks after a while
        if how == "error":
            raise RuntimeError("the pacemaker lost its rhythm")

    async def tick(self, now: float) -> None:
        if not self.accepting:
            return
        self.started += 1
        beat = self.started
        self.in_flight[beat] = asyncio.create_task(self._work(beat))
        if self.tick_seconds:
            log.info("tick %d takes %.1f s", beat, self.tick_seconds)
            await asyncio.sleep(self.tick_seconds)  # stands for periodic work the loop awaits (a database look)

    async def _work(self, beat: int) -> None:
        log.info("beat %d started", beat, extra={"BEAT": beat})
        await asyncio.sleep(self.work_seconds)  # stands for real work: a job, a transfer
        self.in_flight.pop(beat, None)
        self.finished += 1
        log.info("beat %d done", beat, extra={"BEAT": beat})

    async def drain(self) -> None:
        self.accepting = False
        if self.in_flight:
            log.info("waiting for %d beat(s) in flight", len(self.in_flight))
            await asyncio.gather(*self.in_flight.values())

    async def abort(self) -> None:
        for beat, task in sorted(self.in_flight.items()):
            task.cancel()
            log.warning("beat %d handed back unfinished", beat, extra={"BEAT": beat})
        self.in_flight.clear()

    def status(self) -> str:
        return f"{self.finished} beats done, {len(self.in_flight)} in flight"


def _build(config: Config, paths: InstancePaths, args: argparse.Namespace) -> Service:
    task_ends = None if args.task_ends_after is None else (args.task_ends_after, args.task_ends_with)
    return HeartbeatService(
        args.interval,
        args.work_seconds,
        args.drain_timeout,
        args.start_delay,
        task_ends,
        tick_seconds=args.tick_seconds,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = daemon_argument_parser("heartbeat", "RED-PSS heartbeat: a minimal daemon showing the service lifecycle")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between beats (default 1)")
    parser.add_argument("--work-seconds", type=float, default=0.5, help="how long each beat works (default 0.5)")
    parser.add_argument("--drain-timeout", type=float, default=30.0, help="seconds to wait for beats on SIGTERM")
    parser.add_argument("--start-delay", type=float, default=0.0, help="seconds start-up takes (default 0)")
    parser.add_argument(
        "--task-ends-after", type=float, default=None, help="seconds after which a long-lived task ends (tests)"
    )
    parser.add_argument("--tick-seconds", type=float, default=0.0, help="how long each tick awaits (default 0)")
    parser.add_argument("--task-ends-with", choices=("error", "return"), default="error", help="how that task ends")
    return run_instance_daemon("heartbeat", _build, argv, parser=parser)


if __name__ == "__main__":
    raise SystemExit(main())
