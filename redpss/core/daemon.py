"""The service base every RED-PSS daemon runs on: start-up, READY, a ticking main loop, reload, drain and force.

A daemon subclasses `Service` and fills in the hooks; `run_service` owns the lifecycle so that every daemon behaves
the same under systemd:

- start() binds sockets and opens sessions; only then READY=1 is sent (a StartupError exits 3, which the units keep
  from restart-looping).
- the loop calls tick() every `tick_interval` seconds and pings the watchdog while `healthy()` is true; a hung loop
  stops the pings and systemd restarts the daemon.
- long-lived tasks are started with `Service.spawn()`: one that ends (an exception, or a return the daemon did not
  ask for) while the daemon serves is fatal. The log says which task and why (ERROR with the traceback), abort()
  hands work back, and the process exits 1, so systemd restarts a daemon instead of it running on without the
  task (a dispatcher, a link to another daemon) that does its work.
- SIGHUP calls reload(). The first SIGTERM/SIGINT calls drain(): stop accepting, finish in-flight work. A second
  signal, or drain_timeout, cancels the drain and calls abort(), which hands in-flight work back; the log says which.
- Signal handlers only set flags and wake the loop; all work happens in the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redpss import __version__
from redpss.core.errors import ConfigError, RedpssError, StartupError
from redpss.core.exitcodes import ExitCode
from redpss.core.logging import remove_expired_logs
from redpss.core.systemd import Notifier, watchdog_interval

if TYPE_CHECKING:
    import ssl

    from redpss.core.wire.aio import JsonLineServer

log = logging.getLogger("redpss.core.daemon")

ABORT_TIMEOUT = 10.0  # seconds abort() may take before the process exits anyway
RETENTION_PERIOD = 86400.0  # log retention runs at start and then daily


@dataclass(frozen=True)
class TaskDeath:
    """Why a long-lived task ended while the daemon was serving."""

    task: str
    reason: str  # "raised RuntimeError: ...", "returned", "was cancelled"
    error: BaseException | None = None


class TaskSupervisor:
    """The long-lived tasks of one daemon; the first that ends unasked is recorded and reported to `on_death`."""

    def __init__(self) -> None:
        self.tasks: dict[asyncio.Task[Any], str] = {}
        self.death: TaskDeath | None = None
        self.on_death: Callable[[], None] | None = None
        self.stopping = False  # set once the daemon drains or aborts: tasks may end then

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine, name=name)
        self.tasks[task] = name
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[Any]) -> None:
        name = self.tasks.pop(task, task.get_name())
        if self.stopping or self.death is not None:
            return
        if task.cancelled():
            self.death = TaskDeath(name, "was cancelled")
        elif (error := task.exception()) is not None:
            self.death = TaskDeath(name, f"raised {type(error).__name__}: {error}", error)
        else:
            self.death = TaskDeath(name, "returned")
        if self.on_death is not None:
            self.on_death()


class Service:
    """Base of a daemon: override the hooks that apply; the defaults do nothing."""

    name: str = "service"
    tick_interval: float = 1.0
    drain_timeout: float = 30.0

    @property
    def supervisor(self) -> TaskSupervisor:
        """The daemon's long-lived tasks (created on first use, so subclasses need not call a base __init__)."""
        supervisor = self.__dict__.get("_supervisor")
        if supervisor is None:
            supervisor = self.__dict__["_supervisor"] = TaskSupervisor()
        return supervisor

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Start a task that must live as long as the daemon serves; its end before drain()/abort() is fatal."""
        return self.supervisor.spawn(coroutine, f"{self.name}:{name}")

    async def start(self) -> None:
        """Bind sockets and open sessions; raise StartupError when the daemon cannot serve."""

    async def tick(self, now: float) -> None:
        """Periodic work; `now` is the wall-clock time (time.time()) of this tick."""

    async def drain(self) -> None:
        """Stop accepting new work and return once in-flight work is finished."""

    async def abort(self) -> None:
        """Cancel in-flight work and hand it back (spool, mark interrupted); close everything. Must be quick."""

    async def reload(self) -> None:
        """Re-read what can change without a restart (SIGHUP, `systemctl reload`)."""

    def status(self) -> str:
        """One line for `systemctl status` (STATUS=)."""
        return "running"

    def healthy(self) -> bool:
        """False stops the watchdog pings, so systemd restarts a daemon that can no longer do its work."""
        return True

    async def listen(
        self, server: JsonLineServer, host: str, port: int, keys: str, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        """Serve `server` on host:port (over TLS with `ssl_context`). A port it cannot have stops the start-up with a
        StartupError naming the red_params.conf `keys` that set it (and, when the port is in use, the process
        holding it)."""
        try:
            await server.start_tcp(host, port, ssl_context=ssl_context)
        except OSError as exc:
            raise StartupError(f"cannot listen on {host}:{port} ({keys}): {exc.strerror or exc}") from exc

    def ping_reply(self) -> dict[str, Any]:
        """The answer to `ping` on a daemon's socket: what JMON writes to REDSYS.DAEMON_STATUS for it."""
        return {"ok": True, "server": self.name, "version": __version__, "pid": os.getpid(), "status": self.status()}


@dataclass
class LogRetention:
    """Which log tree to clean and after how many days (0 keeps everything)."""

    log_root: Path
    days: int


@dataclass
class _Signals:
    """What the signal handlers recorded; the loop acts on it."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stop_count: int = 0
    stop_name: str = ""
    reload_requested: bool = False
    force: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def on_stop(self, signum: int) -> None:
        self.stop_count += 1
        self.stop_name = signal.Signals(signum).name
        self.stopped.set()
        if self.stop_count >= 2:
            self.force.set()
        self.wake.set()

    def on_reload(self) -> None:
        self.reload_requested = True
        self.wake.set()


def run_service(service: Service, *, retention: LogRetention | None = None, notifier: Notifier | None = None) -> int:
    """Run `service` until it is stopped; return the exit code for the process.

    After a forced stop (second signal, drain timeout) the process ends at once with os._exit: a thread stuck in
    blocking code (a database call, a socket) must not keep it alive, which a normal interpreter exit would do by
    joining every worker thread.
    """
    lifecycle = _Lifecycle(service, retention, notifier or Notifier())
    with asyncio.Runner() as runner:
        code = runner.run(lifecycle.run())
        if lifecycle.forced:
            logging.shutdown()
            os._exit(code)
    return code


class _Lifecycle:
    def __init__(self, service: Service, retention: LogRetention | None, notifier: Notifier) -> None:
        self.service = service
        self.retention = retention
        self.notifier = notifier
        self.watchdog = watchdog_interval()
        self.last_status = ""
        self.forced = False

    async def run(self) -> int:
        signals = _Signals()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, signals.on_stop, signal.SIGTERM)
        loop.add_signal_handler(signal.SIGINT, signals.on_stop, signal.SIGINT)
        loop.add_signal_handler(signal.SIGHUP, signals.on_reload)
        self.service.supervisor.on_death = signals.wake.set
        try:
            code = await self._start(signals)
            if code is not None:
                return code
            await self._main_loop(signals)
            if self.service.supervisor.death is not None:
                return await self._die(self.service.supervisor.death)
            return await self._stop(signals)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            self.notifier.close()

    async def _start(self, signals: _Signals) -> int | None:
        """start(), unless a stop signal comes first: then start-up is abandoned (abort()) and the exit is clean."""
        name = self.service.name
        starting = asyncio.create_task(self.service.start())
        stop_wait = asyncio.create_task(signals.stopped.wait())
        await asyncio.wait({starting, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            log.info("%s received during start-up: %s stops without having served", signals.stop_name, name)
            await self._abort_quietly()
            return int(ExitCode.OK)
        try:
            starting.result()
        except (StartupError, ConfigError) as exc:
            log.error("%s cannot start: %s", name, exc)
            self.notifier.status(f"start-up failed: {exc}")
            await self._abort_quietly()
            return int(exc.exit_code)
        except Exception:
            log.exception("%s failed during start-up", name)
            await self._abort_quietly()
            return int(ExitCode.FAILURE)
        if self.service.supervisor.death is not None:
            return await self._die(self.service.supervisor.death)
        status = self.service.status()
        self.notifier.ready(status)
        self.last_status = status
        log.info("%s ready: %s", name, status)
        return None

    async def _main_loop(self, signals: _Signals) -> None:
        next_tick = time.monotonic()
        next_retention = time.monotonic()
        while not signals.stop_count and self.service.supervisor.death is None:
            # Cleared before the awaits below, not after: a signal handled while a tick or the log retention runs
            # must cut the wait short rather than wait out a whole tick interval.
            signals.wake.clear()
            now = time.monotonic()
            if signals.reload_requested:
                signals.reload_requested = False
                await self._reload()
            if now >= next_tick:
                await self._tick()
                next_tick = now + self.service.tick_interval
            if self.retention is not None and now >= next_retention:
                next_retention = now + RETENTION_PERIOD
                await asyncio.to_thread(remove_expired_logs, self.retention.log_root, self.retention.days)
            if self.watchdog is not None and self.service.healthy():
                self.notifier.watchdog()
            self._publish_status()
            wait = max(0.0, next_tick - time.monotonic())
            if self.watchdog is not None:
                wait = min(wait, self.watchdog)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signals.wake.wait(), timeout=wait)

    async def _tick(self) -> None:
        try:
            await self.service.tick(time.time())
        except Exception:
            # One failing tick must not end the daemon; the next tick tries again and the log says what broke.
            log.exception("%s: periodic work failed", self.service.name)

    async def _reload(self) -> None:
        self.notifier.reloading()
        try:
            await self.service.reload()
            log.info("%s reloaded", self.service.name)
        except RedpssError as exc:  # a config with problems: the message lists them, a traceback would only hide them
            log.error("%s: reload failed; keeping the previous settings: %s", self.service.name, exc)
        except Exception:
            log.exception("%s: reload failed; keeping the previous settings", self.service.name)
        self.notifier.ready(self.service.status())

    def _publish_status(self) -> None:
        status = self.service.status()
        if status != self.last_status:
            self.notifier.status(status)
            self.last_status = status

    async def _die(self, death: TaskDeath) -> int:
        """A long-lived task ended: the daemon cannot do its work any more, so it exits for systemd to restart it."""
        name = self.service.name
        details = ""
        if death.error is not None:
            details = "\n" + "".join(traceback.format_exception(death.error)).rstrip()
        log.error(
            "%s: long-lived task %s %s; exiting so that it is restarted%s", name, death.task, death.reason, details
        )
        self.notifier.stopping(f"task {death.task} {death.reason}")
        await self._abort_quietly()
        self.forced = True  # a thread stuck in blocking code must not keep the process from being restarted
        return int(ExitCode.FAILURE)

    async def _stop(self, signals: _Signals) -> int:
        name = self.service.name
        timeout = self.service.drain_timeout
        log.info(
            "%s received: %s draining in-flight work (up to %.0f s; send the signal again to force)",
            signals.stop_name,
            name,
            timeout,
        )
        self.notifier.stopping(f"draining (up to {timeout:.0f} s)")
        self.service.supervisor.stopping = True
        drain = asyncio.create_task(self.service.drain())
        forced = asyncio.create_task(signals.force.wait())
        done, _ = await asyncio.wait({drain, forced}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        forced.cancel()
        if drain in done:
            try:
                drain.result()
            except Exception:
                log.exception("%s: draining failed; handing back what is left", name)
                await self._abort_quietly()
                return int(ExitCode.FAILURE)
            log.info("%s stopped cleanly", name)
            return int(ExitCode.OK)
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await drain
        if signals.force.is_set():
            log.warning("%s: second %s received: forcing stop, handing back in-flight work", name, signals.stop_name)
        else:
            log.warning(
                "%s: drain did not finish within %.0f s: forcing stop, handing back in-flight work",
                name,
                timeout,
            )
        self.notifier.status("forced stop")
        self.forced = True
        await self._abort_quietly()
        return int(ExitCode.FAILURE)

    async def _abort_quietly(self) -> None:
        self.service.supervisor.stopping = True
        try:
            await asyncio.wait_for(self.service.abort(), timeout=ABORT_TIMEOUT)
        except Exception:
            log.exception("%s: abort did not complete cleanly", self.service.name)
