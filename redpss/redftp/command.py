"""The two commands, redftp_useradd and redftp_userdel: parse, validate, get root, call ops, say what happened.

Everything a caller can get wrong is checked before root is involved; the re-run through sudo gets the normalised
arguments (and the parsed key on stdin), so the root process sees exactly what was validated.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Sequence

from redpss.core.errors import run_reporting as run_command
from redpss.core.paths import InstancePaths
from redpss.redftp import ops, privilege
from redpss.redftp.errors import RedftpUsageError
from redpss.redftp.keys import KEY_TEXT_MAX, PublicKey, parse_public_key
from redpss.redftp.names import SftpUserName, sftp_user_name

USERADD = "redftp_useradd"
USERDEL = "redftp_userdel"


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """argparse exits on bad arguments; the commands' main() returns the code instead."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("instance", metavar="INSTANCE", help="instance the user delivers to, e.g. TST1")
    parser.add_argument("user", metavar="USER", help="short user name (alice) or system name (redftp_tst1_alice)")


def useradd_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=USERADD,
        description="Add an sFTP user redftp_<instance>_<user>: key login only, change-rooted, uploads visible in "
        "$REDENV_HOME/data/input/<user>. Runs as root, or as redsys through sudo.",
    )
    _common_arguments(parser)
    parser.add_argument("--key", required=True, metavar="FILE|-", help="the user's OpenSSH public key ('-': stdin)")
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    return run_command(USERADD, lambda: _useradd(args))


def _read_key(source: str) -> PublicKey:
    if source == "-":
        data = sys.stdin.buffer.read(KEY_TEXT_MAX + 1)
        label = "the key on stdin"
    else:
        label = f"key file {source}"
        try:
            # O_NONBLOCK: a FIFO or device named by mistake must not hang the command before the check below.
            # with the rights of whoever ran sudo: root must not open a file for them that they may not read
            with privilege.caller_rights():
                fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    raise RedftpUsageError(f"{label} is not a regular file; give the public key file")
                data = handle.read(KEY_TEXT_MAX + 1)
        except FileNotFoundError:
            raise RedftpUsageError(f"{label} does not exist") from None
        except OSError as exc:
            raise RedftpUsageError(f"cannot read {label}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RedftpUsageError(f"{label} is not text; give the OpenSSH public key line (the .pub file)") from None
    return parse_public_key(text, label)


def _useradd(args: argparse.Namespace) -> int:
    name = sftp_user_name(args.instance, args.user)
    key = _read_key(args.key)
    if not privilege.is_root():
        line = key.authorized_keys_line().removeprefix("restrict ").encode("ascii")
        return privilege.rerun_with_sudo(USERADD, [name.instance, name.user, "--key", "-"], line)
    privilege.check_trusted_code(USERADD)
    added = ops.add_user(name, key, InstancePaths.for_instance(name.instance))
    print(f"{USERADD}: added {name.system} (UID {added.uid}) for instance {name.instance}")
    print(f"  chroot  {added.chroot}")
    print(f"  upload  {added.upload}  (visible to redsys as {added.link})")
    print(f"  key     {added.key_file}")
    for warning in added.warnings:
        print(f"{USERADD}: warning: {warning}", file=sys.stderr)
    return 0


def userdel_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=USERDEL,
        description="Remove an sFTP user of an instance: its account, key, chroot and data/input link. "
        "Runs as root, or as redsys through sudo.",
    )
    _common_arguments(parser)
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="move the uploaded files to $REDENV_HOME/data/archive/redftp_<user>_<timestamp>/ before removing",
    )
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    return run_command(USERDEL, lambda: _userdel(args))


def _userdel(args: argparse.Namespace) -> int:
    name: SftpUserName = sftp_user_name(args.instance, args.user)
    if not privilege.is_root():
        extra = ["--keep-data"] if args.keep_data else []
        return privilege.rerun_with_sudo(USERDEL, [name.instance, name.user, *extra], None)
    privilege.check_trusted_code(USERDEL)
    removed = ops.remove_user(name, InstancePaths.for_instance(name.instance), keep_data=args.keep_data)
    print(f"{USERDEL}: removed {name.system} (UID {removed.uid}) of instance {name.instance}")
    if removed.sessions_ended:
        print(f"  ended {removed.sessions_ended} running process(es) of the user")
    if removed.archived_to is not None:
        print(f"  kept {removed.archived_files} uploaded file(s) in {removed.archived_to}")
    for warning in removed.warnings:
        print(f"{USERDEL}: warning: {warning}", file=sys.stderr)
    return 0
