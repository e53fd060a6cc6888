"""The CFISRV daemon: implicit FTPS on cfi_port, explicit AUTH TLS on cfi_explicit_port, over the data tree.

Start-up checks what would make every transfer fail (no password, a missing or unreadable certificate or key, a
port in use) and exits 3 naming the file or key. SIGTERM stops new logins, lets transfers under way finish within
the drain timeout, then closes every connection.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

from redpss.cfi.confine import Confinement
from redpss.cfi.handlers import Counters, ListenerSettings, OneAccountAuthorizer
from redpss.cfi.server import CfiServer, Listener
from redpss.cfi.tls import CertificateFiles, server_context
from redpss.core.config import Config
from redpss.core.daemon import Service
from redpss.core.entry import daemon_argument_parser, run_instance_daemon
from redpss.core.errors import StartupError
from redpss.core.paths import InstancePaths
from redpss.core.services import service_spec
from redpss.redftp.layout import REDFTP_ROOT, RedftpLayout

log = logging.getLogger("redpss.cfi")

DRAIN_POLL = 0.2  # seconds between looks at the transfers still under way while draining
LOOP_END_TIMEOUT = 5.0  # seconds the IO loop may take to end once asked to close


def sftp_tree(paths: InstancePaths, redftp_root: Path) -> Path:
    """This instance's sFTP tree, /app/redftp/env/<instance> (the folder redftp_useradd makes)."""
    return RedftpLayout(redftp_root).env / paths.redenv.lower()


class CfiService(Service):
    name = "cfi"
    tick_interval = 5.0
    drain_timeout = service_spec("cfi").drain_timeout

    def __init__(self, config: Config, paths: InstancePaths, redftp_root: Path = REDFTP_ROOT) -> None:
        self.config = config
        self.paths = paths
        self.redftp_root = redftp_root
        self.server: CfiServer | None = None
        self.loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        redctl = self.config.redctl
        password = redctl.cfi_password.reveal()
        if not password:
            raise StartupError(
                f"[redctl] cfi_password is empty in {self.paths.config_file}: CFISRV refuses logins without a "
                "password; set one (then run `redctl db_install` so that the REDSYS_CFI connection carries it)"
            )
        settings = ListenerSettings(
            context=server_context(CertificateFiles.of(self.paths)),
            authorizer=OneAccountAuthorizer(redctl.cfi_user, password, self.paths.data),
            confinement=Confinement(self.paths.data, sftp_tree(self.paths, self.redftp_root)),
            passive_ports=range(redctl.cfi_pasv_port_start, redctl.cfi_pasv_port_end + 1),
            counters=Counters(),
        )
        server = CfiServer(
            [
                Listener(redctl.cfi_host, redctl.cfi_port, implicit=True, keys="[redctl] cfi_host/cfi_port"),
                Listener(redctl.cfi_host, redctl.cfi_explicit_port, implicit=False, keys="[redctl] cfi_explicit_port"),
            ],
            settings,
        )
        server.start()
        self.server = server
        self.loop_task = self.spawn(asyncio.to_thread(server.run), "ioloop")
        log.info(
            "serving %s over FTPS: %s; passive ports %d-%d",
            self.paths.data,
            ", ".join(f"{host}:{port}" for host, port in server.addresses),
            redctl.cfi_pasv_port_start,
            redctl.cfi_pasv_port_end,
        )

    def healthy(self) -> bool:
        if self.server is None:
            return False
        if not self.server.healthy():
            stalled = self.server.stalled_for()
            log.error("the FTPS IO loop has not run for %.0f s; the watchdog will restart CFISRV", stalled)
            return False
        return True

    def status(self) -> str:
        if self.server is None:
            return "starting"
        c = self.server.counters
        refused = sum(c.refused.values())
        return (
            f"{self.server.sessions()} session(s), {self.server.transfers()} transfer(s); {c.files_sent} file(s) "
            f"sent, {c.logins} login(s), {c.failed_logins} failed, {refused} refused request(s); "
            f"{c.data_channels_resumed} of {c.data_channels} data connection(s) resumed the TLS session"
        )

    async def drain(self) -> None:
        if self.server is None:
            return
        self.server.stop_accepting()
        while self.server.transfers():
            await asyncio.sleep(DRAIN_POLL)
        await self._close()

    async def abort(self) -> None:
        await self._close()

    async def _close(self) -> None:
        if self.server is None:
            return
        self.server.close()
        if self.loop_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.loop_task), LOOP_END_TIMEOUT)
            except TimeoutError:
                log.warning("the FTPS IO loop did not end within %.0f s", LOOP_END_TIMEOUT)


def _parser() -> argparse.ArgumentParser:
    parser = daemon_argument_parser("cfi", "RED-PSS CFISRV: FTPS server over the instance's data tree")
    parser.add_argument(
        "--redftp-root",
        type=Path,
        default=REDFTP_ROOT,
        help=f"root of the sFTP users' trees (default {REDFTP_ROOT}; tests point it at a scratch folder)",
    )
    return parser


def _build(config: Config, paths: InstancePaths, args: argparse.Namespace) -> Service:
    return CfiService(config, paths, args.redftp_root)


def main(argv: Sequence[str] | None = None) -> int:
    return run_instance_daemon("cfi", _build, argv, parser=_parser())


if __name__ == "__main__":
    raise SystemExit(main())
