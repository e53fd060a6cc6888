"""The demo's web console: an operator user besides the REST API's reader, the console's URL and both logins,
and one login through the form to show the overview answers."""

from __future__ import annotations

import http.client
import ssl
import urllib.parse

from redpss.core.config import load_config
from redpss.core.db import DbSession, DbSettings
from redpss.core.paths import InstancePaths
from redpss.demo.rest import READER
from redpss.rest.probe import probe_address
from redpss.rest.tls import CertificateFiles

OPERATOR = ("DEMO_OPERATOR", "demo-only-operator-password")  # may also toggle, start and reset


def _overview_answers(paths: InstancePaths, host: str, port: int) -> str:
    """Log in as the reader through the form and read the overview: what a browser would get."""
    context = ssl.create_default_context(cafile=CertificateFiles.of(paths).cert)
    context.check_hostname = False  # the demo's certificate names the instance, the URL says 127.0.0.1
    connection = http.client.HTTPSConnection(host, port, timeout=30, context=context)
    try:
        form = urllib.parse.urlencode({"user": READER[0], "password": READER[1], "next": "/console/"})
        connection.request("POST", "/console/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
        login = connection.getresponse()
        login.read()
        cookie = (login.getheader("Set-Cookie") or "").split(";")[0]
        if login.status != 303 or not cookie:
            return f"login answered {login.status}"
        connection.request("GET", "/console/", headers={"Cookie": cookie})
        page = connection.getresponse()
        page.read()
        return f"overview answered {page.status} {page.reason}"
    except (OSError, http.client.HTTPException) as exc:
        return f"not answering ({exc})"
    finally:
        connection.close()


def demonstrate(paths: InstancePaths) -> None:
    """After rest.demonstrate (which made the reader): an operator user, then the console's URL and logins."""
    config = load_config(paths.config_file)
    session = DbSession(DbSettings.from_config(config, client_name="redpss-demo"))
    try:
        session.execute(f'CREATE USER {OPERATOR[0]} IDENTIFIED BY "{OPERATOR[1]}"')
        session.execute(f"GRANT CREATE SESSION TO {OPERATOR[0]}")
        session.execute(f"GRANT REDPSS_OPERATOR TO {OPERATOR[0]}")
        session.commit()
    finally:
        session.close()
    host, port = probe_address(config)
    print(f"== web console: https://{host}:{port}/console/  ({_overview_answers(paths, host, port)})")
    print(f"   reader login:   {READER[0]} / {READER[1]}")
    print(f"   operator login: {OPERATOR[0]} / {OPERATOR[1]}")
    print(f"   (self-signed certificate: {CertificateFiles.of(paths).cert})")
