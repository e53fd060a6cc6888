"""How to reach the instance's database, taken from red_params.conf."""

from __future__ import annotations

import math
import ssl
from dataclasses import dataclass
from typing import Any

from redpss.core.config import Config, Secret
from redpss.core.net import first_address

__all__ = ["DbSettings", "first_address"]  # first_address lives in core.net; named here for its callers


@dataclass(frozen=True)
class DbSettings:
    dsn: str
    user: str
    password: Secret
    schema: str = ""
    encryption: bool = True
    ca_file: str = ""  # verify the server certificate against this CA bundle (else: DSN fingerprint, or none)
    client_name: str = "RED-PSS"
    dbname: str = ""  # the database name the login must report (exa_dbname); empty: not checked
    connection_timeout: float = 10.0
    socket_timeout: float = 30.0
    query_timeout: float = 0.0  # 0: no limit; jobs set their own
    autocommit: bool = True  # False: statements wait for the caller's COMMIT (several writes seen at once or not)

    @classmethod
    def from_config(
        cls, config: Config, *, user: str | None = None, password: Secret | None = None, **kw: Any
    ) -> DbSettings:
        """The instance's REDSYS connection; the REST API passes its technical user instead."""
        default = config.default
        return cls(
            dsn=default.exa_connection,
            user=user if user is not None else default.exa_username,
            password=password if password is not None else default.exa_password,
            encryption=default.exa_encryption,
            ca_file=default.exa_ca_file,
            dbname=default.exa_dbname,
            **kw,
        )

    @property
    def first_host(self) -> str:
        return self.dsn.split(",")[0]

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for pyexasol.connect."""
        options: dict[str, Any] = {
            "dsn": self.dsn,
            "user": self.user,
            "password": self.password.reveal(),
            "schema": self.schema,
            "encryption": self.encryption,
            "compression": False,
            "connection_timeout": self.connection_timeout,
            "socket_timeout": self.socket_timeout,
            "query_timeout": math.ceil(self.query_timeout),  # Exasol's queryTimeout is whole seconds
            "client_name": self.client_name,
            "autocommit": self.autocommit,
            "verbose_error": False,  # our messages say what matters; pyexasol's verbose form spans many lines
        }
        if self.encryption and self.ca_file:
            options["websocket_sslopt"] = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": self.ca_file}
        elif self.encryption and "/" not in self.dsn:
            # No fingerprint pinned and no CA given: an unverified TLS channel, like Exasol's own default tools.
            options["websocket_sslopt"] = {"cert_reqs": ssl.CERT_NONE}
        return options
