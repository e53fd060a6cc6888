"""How the operations reach an instance: its config, its database, and the daemons' addresses (services registry).

The database driver and the wire client are imported when an operation first uses them, so commands that only ask
systemd stay as fast as a plain argparse program. The CLI connects to the database as the instance's user
([DEFAULT]); the REST API passes its technical user ([rest]) through `db_user` / `db_password`.
"""

from __future__ import annotations

from pathlib import Path

from redpss.core.errors import RedpssError
from redpss.core.paths import InstancePaths
from redpss.core.record import Record
from redpss.core.services import Address, service_spec

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    from redpss.core.config import Config
    from redpss.core.config.kinds import Secret
    from redpss.core.db import DbSession
    from redpss.core.wire import BlockingClient


CONNECT_TIMEOUT = 10.0  # seconds for a daemon to accept and answer the hello (and each request after it)


class NotRunning(RedpssError):
    """The daemon an operation wants to talk to is not running."""


class Declined(RedpssError):
    """The daemon declined the operation as things stand (the instance suspended, the job not scheduled); the
    message says what to do. The caller's request was well-formed: the API answers 409, not 500."""


class OutcomeUnknown(RedpssError):
    """The daemon did not answer in time: what it did is not known (a start may have happened). The API answers
    504, and says to look before trying again."""


class Instance(Record):
    paths: InstancePaths
    config: Config
    client: str = "redctl"  # how the daemons and the database's session list see this caller
    db_user: str | None = None  # None: [DEFAULT] exa_username
    db_password: Secret | None = None
    # seconds after which the database itself ends a statement of this caller (0: no limit). The REST API sets one:
    # a reader's request must not keep the database busy after the API has given up on it (socket_timeout)
    db_query_timeout: float = 0.0

    @classmethod
    def load(cls, paths: InstancePaths) -> Instance:
        from redpss.core.config import load_config  # noqa: PLC0415 - not needed to print the help

        return cls(paths, load_config(paths.config_file))

    def db(self) -> DbSession:
        import getpass  # noqa: PLC0415 - termios and pwd only for database commands

        from redpss.core.db import DbSession, DbSettings  # noqa: PLC0415 - pyexasol only for database commands

        settings = DbSettings.from_config(
            self.config,
            user=self.db_user,
            password=self.db_password,
            client_name=f"{self.client} ({getpass.getuser()})",
            query_timeout=self.db_query_timeout,
        )
        session = DbSession(settings)
        session.connection()  # fail here, with the operator-facing message, if the database is not there
        return session

    def address(self, daemon: str) -> Address:
        """Where `daemon` of this instance listens (services registry)."""
        address = service_spec(daemon).address(self.config, self.paths)
        if address is None:
            raise NotRunning(f"{daemon} of instance {self.paths.redenv} has no address in {self.paths.config_file}")
        return address

    def jmon(self) -> BlockingClient:
        return self.connect("jmon")

    def sched(self) -> BlockingClient:
        return self.connect("sched")

    def connect(self, daemon: str, timeout: float = CONNECT_TIMEOUT) -> BlockingClient:
        """A wire client to `daemon`; NotRunning when nothing answers there within `timeout` seconds."""
        return self._connect(self.address(daemon), daemon.upper(), timeout)

    def _connect(self, address: tuple[str, int] | Path, daemon: str, timeout: float) -> BlockingClient:
        from redpss.core.secret import instance_secret  # noqa: PLC0415 - the wire only for daemon commands
        from redpss.core.wire import BlockingClient, WireError  # noqa: PLC0415

        try:
            tls = service_spec(daemon.lower()).client_tls(self.config, self.paths)  # DBLS, JEXEC with *_tls on
            secret = instance_secret(self.paths, create=False)
            return BlockingClient(address, secret, self.client, timeout, ssl_context=tls)
        except (WireError, RedpssError) as exc:
            raise NotRunning(
                f"{daemon} of instance {self.paths.redenv} is not running ({exc}); "
                f"start the instance with `redctl start` (or `redctl start_trace` outside systemd)"
            ) from exc

    def tell_jmon(self, op: str, **fields: object) -> str:
        """Ask a running JMON to act at once on a change already made; when it is not running, or does not confirm
        (its poll failed or took too long), a note saying when the change applies: an error here would tell a
        caller that a change which is committed failed, and one who tries again would undo a toggle."""
        from redpss.core.wire import WireError  # noqa: PLC0415 - the wire only for daemon commands

        try:
            with self.jmon() as client:
                client.request(op, **fields)
        except NotRunning:
            return " (JMON is not running; it applies this when it starts)"
        except WireError as exc:
            return f" (JMON did not confirm it: {exc}; it applies this at its next poll)"
        return ""
