"""REDSYS.PSS_MAIL end to end: `redctl db_register` creates the script and the REDSYS_SENDMAIL connection, SQL sent
through the real pyexasol driver to devdb runs it, and the mail reaches a real relay through the SENDMAIL daemon."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from redpss.core.db import DatabaseQueryError
from redpss.core.secret import instance_secret
from redpss.mail.spoolstat import spool_folder
from tests.mail.conftest import Mailer
from tests.support.smtp_relay import SmtpRelay


def test_pss_mail_from_sql_arrives_with_its_attachment(mailer_for: Callable[..., Mailer], tmp_path: Path) -> None:
    with SmtpRelay(tmp_path, "TLS", user="db", password="relay-pw") as relay:
        mailer = mailer_for(relay)
        mailer.start("devdb")
        mailer.inst.redctl("db_register", "APP1")
        mailer.start()
        report = mailer.paths.data_work / "report.csv"
        report.write_text("REGION,SALES\nnorth,17\nsouth,4\n")
        session = mailer.inst.db()
        mail_id = session.fetchall(
            "SELECT REDSYS.PSS_MAIL('APP1', 'ops@example.com, dba@example.com', 'sales of today', "
            "'Attached: the report.', 'work/report.csv')"
        )[0][0]
        # the statement returned once SENDMAIL had the mail on disk
        assert str(mail_id).split("-")[0].isdigit()
        [received] = relay.wait_for(1, 30)
        assert received.recipients == ("ops@example.com", "dba@example.com")
        message = received.message()
        assert message["Subject"] == "sales of today"
        [attachment] = list(message.iter_attachments())
        assert attachment.get_filename() == "report.csv"
        assert attachment.get_payload(decode=True) == report.read_bytes()

        with pytest.raises(DatabaseQueryError, match="is not below") as refused:
            session.fetchall("SELECT REDSYS.PSS_MAIL('APP1', 'ops@example.com', 's', 'b', '../etc/red_params.conf')")
        assert "PSS_MAIL" in str(refused.value)
        secret = instance_secret(mailer.paths, create=False)
        assert secret not in str(refused.value)
        assert not list(spool_folder(mailer.paths).glob("*.mail"))
        assert len(relay.received) == 1
