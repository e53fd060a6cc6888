"""One request carried out: export into data/work, deliver by sFTP or through SENDMAIL, clean up; no sockets of
its own beyond the database's, the sFTP server's and SENDMAIL's, so it is tested without the daemon around it."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redpss.core.config import Config
from redpss.core.paths import InstancePaths
from redpss.mail.client import MailNotAccepted, submit_mail
from redpss.sendfile.export import Exported, ExportTooLarge, export_csv, export_parquet
from redpss.sendfile.request import FileRequest
from redpss.sendfile.sftp import DeliveryError, upload
from redpss.sendfile.targets import SendfileSettings, TargetError, load_settings, target

log = logging.getLogger("redpss.sendfile")


class SendFailed(Exception):
    """The request failed for good; the text is what the caller and the log see."""


class TryAgain(Exception):
    """The request could not be carried out now (the database, SENDMAIL or the sFTP server out of reach); it stays
    spooled and is tried again later."""


@dataclass(frozen=True)
class Delivered:
    rows: int
    bytes: int
    where: str  # the remote path, or the mail's id at SENDMAIL

    def message(self, request: FileRequest) -> str:
        return (
            f"{request.schema_name}.{request.object_name}: {self.rows} rows, {self.bytes} bytes as "
            f"{request.format} {request.file_name}, {request.destination()} ({self.where})"
        )


def work_folder(paths: InstancePaths, request_id: str) -> Path:
    return paths.sendfile_work / request_id


def sweep_work_folders(paths: InstancePaths, kept: set[str]) -> list[str]:
    """Remove the work folders of requests not in `kept` (the spool's): a SENDFILE killed mid-try left its export
    there, and the request was then ended (its outcome known) or set aside, so no later try removed it. The names
    removed."""
    removed = []
    if paths.sendfile_work.is_dir():
        for folder in paths.sendfile_work.iterdir():
            if folder.name not in kept and folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
    return removed


def carry_out(
    config: Config, paths: InstancePaths, connection: Any, request_id: str, request: FileRequest
) -> Delivered:
    """Export and deliver; SendFailed with the reason (database errors pass through, the caller maps them)."""
    try:
        settings = load_settings(paths)
        sftp_target = target(settings, request.sftp) if request.sftp else None
    except TargetError as exc:
        raise SendFailed(str(exc)) from None
    folder = work_folder(paths, request_id)
    shutil.rmtree(folder, ignore_errors=True)  # what an interrupted try left
    folder.mkdir(mode=0o750, parents=True)
    try:
        exported = _export(connection, request, folder / request.file_name, settings)
        if sftp_target is not None:
            try:
                remote = upload(sftp_target, settings.known_hosts, exported.path, request.file_name, request_id)
            except DeliveryError as exc:
                raise (TryAgain if exc.transient else SendFailed)(str(exc)) from None
            return Delivered(exported.rows, exported.bytes, f"{sftp_target.host}:{remote}")
        try:
            mail_id = submit_mail(
                config,
                paths,
                request.to,
                request.subject,
                request.body,
                attachments=[str(exported.path)],
                schema=request.schema,
                client="SENDFILE",
            )
        except MailNotAccepted as exc:  # SENDMAIL away or full: later; a mail it refuses as such: never
            raise (SendFailed if exc.permanent else TryAgain)(str(exc)) from None
        return Delivered(exported.rows, exported.bytes, f"SENDMAIL mail {mail_id}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # SENDMAIL copied the file into its spool at acceptance


def _export(connection: Any, request: FileRequest, path: Path, settings: SendfileSettings) -> Exported:
    limit = settings.mail_max_bytes if request.to else None
    try:
        if request.format == "PARQUET":
            return export_parquet(connection, request.query(), path, limit=limit)
        return export_csv(connection, request.query(), path, limit=limit, column_names=request.column_names)
    except ExportTooLarge:
        raise SendFailed(
            f"the {request.format} file of {request.schema_name}.{request.object_name} grew beyond "
            f"{settings.mail_max_bytes} bytes, the limit for mail ([mail] max_mb in etc/sendfile.conf); the export "
            f"was stopped. Send it by sFTP, or narrow it with a condition"
        ) from None
