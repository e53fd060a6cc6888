"""A real sFTP upload end to end: alice's JSON and Parquet files, uploaded over SFTP, end up rows in a table.

The sFTP site of tests/redftp (a scratch root in its own mount namespace with the shipped sshd snippet, users made by
the real redftp_useradd) also holds instance TST1 at /app/redsys/env/tst1; its daemons run there as user redsys under
`redctl start_trace`, so data/input/alice is the link redftp_useradd made into /app/redftp/env/tst1/alice/upload,
as on a server. The upload is converted by JSON2CSV and PARQ2CSV, CSVSRV's LOAD job has devdb import each CSV
through CFISRV over implicit FTPS, and every file leaves the upload folder for data/archive/alice.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from redpss.core.config import load_config
from redpss.core.db import DbSession, DbSettings
from redpss.core.db.sqltext import insert_statement
from redpss.core.paths import InstancePaths
from tests.redftp.sftpsite import PYTHON, Session, Site, ed25519_key, module_site, put
from tests.support.instance_runner import instance_config
from tests.support.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.root]

LEASE_AS_THE_UNITS = ["lease"]
INSTANCE = InstancePaths.for_instance("TST1", Path("/app/redsys"))  # as the daemons see it, inside the scratch root


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with module_site(tmp_path_factory, "ingest") as running:
        yield running


def redctl(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    command = [PYTHON, "-m", "redpss.cli.redctl.main", *args]
    return site.root.run(command, user="redsys", env=INSTANCE.environment())


@contextlib.contextmanager
def started(site: Site, log_file: Path) -> Iterator[subprocess.Popen[str]]:
    """TST1's daemons under `redctl start_trace` as redsys inside the scratch root; Ctrl+C twice at the end."""
    config = site.root.path(str(INSTANCE.config_file))
    config.write_text(instance_config({"redctl": {"ingest_stable_seconds": "1"}}))
    certificate = (
        "from redpss.cfi.tls import ensure_certificate as e; from redpss.core.paths import InstancePaths as I;"
    )
    certificate += " e(I.for_instance('TST1'))"
    site.root.run(["chown", "redsys:redsys", str(INSTANCE.config_file)], check=True)
    site.root.run(["chmod", "0600", str(INSTANCE.config_file)], check=True)
    site.root.run([PYTHON, "-c", certificate], user="redsys", env=INSTANCE.environment(), check=True)
    with log_file.open("w") as log:
        trace = subprocess.Popen(
            # CAP_LEASE kept, as the units of JSON2CSV, PARQ2CSV and SCHED grant it (here every daemon has it)
            site.root.command(
                [PYTHON, "-m", "redpss.cli.redctl.main", "start_trace"], "redsys", capabilities=LEASE_AS_THE_UNITS
            ),
            env=site.root.environment(INSTANCE.environment()),
            stdout=log,
            stderr=log,
            text=True,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: trace.poll() is not None or redctl(site, "show").returncode == 0,
            120,
            interval=0.5,
            what="JMON of TST1",
        )
        assert trace.poll() is None, log_file.read_text()
        yield trace
    finally:
        for _ in range(2):  # Ctrl+C: drain, then force
            if trace.poll() is None:
                os.killpg(trace.pid, signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    trace.wait(timeout=60)
        if trace.poll() is None:
            os.killpg(trace.pid, signal.SIGKILL)
            trace.wait()


def parquet_bytes() -> bytes:
    table = pa.table(
        {
            "ITEM": pa.array(["bolt"], pa.string()),
            "ORDER_ID": pa.array([3], pa.int64()),
            "PRICE": pa.array([Decimal("1.25")], pa.decimal128(12, 2)),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def test_an_sftp_upload_is_converted_loaded_through_cfisrv_and_archived(site: Site, tmp_path: Path) -> None:
    key = ed25519_key("alice@shop")
    added = site.useradd("alice", key)
    assert added.returncode == 0, added.stderr
    log_file = tmp_path / "start_trace.log"
    with started(site, log_file):
        registered = redctl(site, "db_register", "APP1")
        assert registered.returncode == 0, registered.stdout + registered.stderr
        config = load_config(site.root.path(str(INSTANCE.config_file)))
        session = DbSession(DbSettings.from_config(config, client_name="test"))  # devdb listens on the loopback
        try:
            session.execute("CREATE TABLE APP1.ORDERS (ORDER_ID DECIMAL(9,0), ITEM VARCHAR(100), PRICE DECIMAL(12,2))")
            job = {"JOB_ID": 1, "JOB_NAME": "LOAD_ORDERS", "POOL": "LOADER", "JOB_TYPE": "LOAD", "ACTIVE": True}
            job["COMMAND"] = "table=APP1.ORDERS files='alice/*.csv' columns=header"
            session.execute(insert_statement("APP1.ADM_JOBS", [job]))
            watcher = {"WATCHER_ID": 1, "WATCHER_NAME": "ORDERS_ARRIVED", "CONDITION_TYPE": "FILE", "ACTIVE": True}
            watcher |= {"CONDITION_TEXT": "alice/*.csv", "TARGET_JOB_ID": 1, "INTERVAL_SECONDS": 1}
            session.execute(insert_statement("APP1.ADM_WATCHER", [watcher]))
            session.commit()
            assert redctl(site, "reload").returncode == 0
            orders = [{"ORDER_ID": 1, "ITEM": "widget", "PRICE": 9.5}, {"ORDER_ID": 2, "ITEM": "nut", "PRICE": 0.05}]
            with Session(site, "redftp_tst1_alice", key) as sftp:
                put(sftp, "web.json", json.dumps(orders).encode())  # a top-level array
                put(sftp, "shop.parquet", parquet_bytes())
            archive = site.root.path(str(INSTANCE.data_archive / "alice"))
            wanted = {"web.json", "web.csv", "shop.parquet", "shop.csv"}
            wait_for(
                lambda: archive.is_dir() and wanted <= {p.name for p in archive.iterdir()},
                180,
                interval=0.5,
                what=f"the upload in {archive} (see {log_file})",
            )
            rows = session.fetchall("SELECT ORDER_ID, ITEM, PRICE FROM APP1.ORDERS ORDER BY ORDER_ID")
            assert [(r[0], r[1], Decimal(str(r[2]))) for r in rows] == [
                (1, "widget", Decimal("9.5")),
                (2, "nut", Decimal("0.05")),
                (3, "bolt", Decimal("1.25")),
            ]
            assert not list(site.root.path("/app/redftp/env/tst1/alice/upload").iterdir())  # moved out of the chroot
        finally:
            session.close()


def test_an_sftp_upload_whose_client_stalls_is_taken_only_once_closed(site: Site, tmp_path: Path) -> None:
    """bob's client sends part of a file, then nothing for longer than ingest_stable_seconds (1 s here) while its
    sftp-server keeps the file open: JSON2CSV converts a later, finished upload meanwhile and leaves this one, which
    it converts whole once the client resumes and closes it."""
    key = ed25519_key("bob@shop")
    added = site.useradd("bob", key)
    assert added.returncode == 0, added.stderr
    upload_folder = site.root.path("/app/redftp/env/tst1/bob/upload")
    log_file = tmp_path / "start_trace.log"
    with started(site, log_file), Session(site, "redftp_tst1_bob", key) as client:
        with client.sftp.open("stalled.json", "wb") as stalled:
            stalled.write(b'{"ID": 1}\n')
            stalled.flush()  # with the server now, which holds the file open for the rest
            put(client, "later.json", b'{"ID": 2}\n')  # steady after stalled.json was
            wait_for((upload_folder / "later.csv").exists, 120, interval=0.2, what=f"later.csv (see {log_file})")
            assert not (upload_folder / "stalled.csv").exists(), "a stalled upload was taken while still open"
            assert (upload_folder / "stalled.json").exists()
            stalled.write(b'{"ID": 3}\n')
        wait_for((upload_folder / "stalled.csv").exists, 60, interval=0.2, what="stalled.csv")
    assert (upload_folder / "stalled.csv").read_text() == '"ID"\n1\n3\n'
    assert "cannot tell whether files of other users" not in log_file.read_text()
