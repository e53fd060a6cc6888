"""Delivery by sFTP (paramiko): key authentication only, the host key checked against the instance's known_hosts,
the file uploaded under a temporary name and renamed once complete, so the partner never picks up half a file."""

from __future__ import annotations

import contextlib
import stat
from pathlib import Path

from redpss.core.durable import NO_SPACE
from redpss.sendfile.targets import SftpTarget

CONNECT_TIMEOUT = 30.0


class DeliveryError(Exception):
    """The file did not reach its destination; the text says where it stopped and why. `transient`: the server was
    out of reach, so a later try may succeed (a refused key or host key never does)."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def _private_key(path: Path) -> object:
    import paramiko  # noqa: PLC0415 - only the worker that delivers loads paramiko

    try:
        info = path.stat()
    except OSError as exc:
        raise DeliveryError(f"the key file {path} cannot be read: {exc.strerror or exc}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise DeliveryError(
            f"the key file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}); chmod 600 it"
        )
    try:
        return paramiko.PKey.from_path(path)
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise DeliveryError(f"the key file {path} holds no usable private key: {exc}") from None


def upload(target: SftpTarget, known_hosts: Path, local: Path, remote_name: str, request_id: str) -> str:
    """Upload `local` as folder/remote_name on `target`; the remote path, or DeliveryError. The temporary name on the
    server is the request's own, so a try that could not clean up after itself (a stalled or lost connection) is
    overwritten and renamed by the request's next try, also after a restart of SENDFILE."""
    import paramiko  # noqa: PLC0415

    key = _private_key(target.key)
    client = paramiko.SSHClient()
    try:
        try:
            client.load_host_keys(str(known_hosts))
        except FileNotFoundError:
            raise DeliveryError(
                f"no known host keys ({known_hosts} is missing); add the target's key (ssh-keyscan -p {target.port} "
                f"{target.host}, checked with its owner) before sending"
            ) from None
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                target.host,
                target.port,
                username=target.user,
                pkey=key,  # type: ignore[arg-type]
                look_for_keys=False,
                allow_agent=False,
                timeout=CONNECT_TIMEOUT,
                banner_timeout=CONNECT_TIMEOUT,
                auth_timeout=CONNECT_TIMEOUT,
            )
        except paramiko.BadHostKeyException as exc:
            raise DeliveryError(
                f"the host key of {target.host}:{target.port} CHANGED (it offers {exc.key.get_name()} "
                f"{exc.key.get_base64()[:24]}...); refused. If the change is expected, update {known_hosts}"
            ) from None
        except paramiko.AuthenticationException as exc:
            raise DeliveryError(f"{target.describe()} refused the key {target.key}: {exc}") from None
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise DeliveryError(
                    f"the host key of {target.host}:{target.port} is unknown (not in {known_hosts}); refused"
                ) from None
            # no banner, a reset mid-handshake, no common algorithm: a partner's sshd throttling new connections
            # (MaxStartups) or restarting says so; tried again, and given up after the tries like any outage
            raise DeliveryError(f"SSH to {target.describe()} failed: {exc}", transient=True) from None
        except EOFError:
            raise DeliveryError(
                f"SSH to {target.describe()} failed: the server closed the connection", transient=True
            ) from None
        except OSError as exc:
            raise DeliveryError(
                f"cannot reach {target.host}:{target.port}: {exc.strerror or exc}", transient=True
            ) from None
        return _put(client, target, local, remote_name, request_id)
    finally:
        client.close()


def _put(client: object, target: SftpTarget, local: Path, remote_name: str, request_id: str) -> str:
    import paramiko  # noqa: PLC0415

    assert isinstance(client, paramiko.SSHClient)
    final = f"{target.folder.rstrip('/')}/{remote_name}"
    partial = f"{target.folder.rstrip('/')}/.{remote_name}.{request_id}.part"
    try:
        sftp = client.open_sftp()
    except paramiko.SSHException as exc:
        raise DeliveryError(f"{target.describe()} opened no SFTP session: {exc}") from None
    # Without a timeout of its own, the channel waits for good on a server that stops taking data or answering
    # (a hung storage mount behind it): the connect timeouts cover only the way in, and SENDFILE runs one request at
    # a time. With it, each wait for the server gives up after `timeout` seconds without progress.
    channel = sftp.get_channel()
    if channel is not None:  # an open session always has one
        channel.settimeout(target.timeout)
    try:
        # a stalled earlier try of this request may still hold its partial file open on the server: removed first,
        # its late writes go to a deleted file rather than into this upload
        with contextlib.suppress(FileNotFoundError, PermissionError):  # a stall (TimeoutError) goes on below
            sftp.remove(partial)
        sftp.put(str(local), partial, confirm=True)
        _rename(sftp, partial, final)
    except TimeoutError:
        raise DeliveryError(
            f"upload to {target.describe()} as {final} made no progress for {target.timeout:g} s (timeout in "
            f"[target {target.name}]); the server stalled",
            transient=True,
        ) from None
    except (OSError, EOFError, paramiko.SSHException) as exc:
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            sftp.remove(partial)
        # the server's refusal (no such folder, no permission: an errno of its answer) is for good; a connection
        # lost on the way, or a full disk there, is tried again
        refused = isinstance(exc, OSError) and exc.errno is not None and exc.errno not in NO_SPACE
        raise DeliveryError(
            f"upload to {target.describe()} as {final} failed: {exc or type(exc).__name__}", transient=not refused
        ) from None
    finally:
        sftp.close()
    return final


def _rename(sftp: object, partial: str, final: str) -> None:
    """The uploaded file under its final name, replacing one there. posix-rename@openssh.com does it in one step; a
    server without that extension answers "unsupported" (no errno), and retrying could never succeed (30 tries, each
    exporting the table again): then a plain SFTP rename, which does not replace, after removing the old file. A
    refusal with an errno (no permission) is the server's answer either way."""
    import paramiko  # noqa: PLC0415

    assert isinstance(sftp, paramiko.SFTPClient)
    try:
        sftp.posix_rename(partial, final)
    except OSError as exc:
        if exc.errno is not None:
            raise
        with contextlib.suppress(FileNotFoundError):
            sftp.remove(final)
        sftp.rename(partial, final)
