"""redctl db_install / db_register: install or upgrade REDSYS, register application schemas, and create the
CONNECTION objects (REDSYS_DBLS, REDSYS_JEXEC, REDSYS_SENDMAIL) through which the database's scripts reach this
instance.

Schema names are checked before the database is reached: a bad name is a usage error (exit 2), not a failure.
"""

from __future__ import annotations

import argparse
import sys

from redpss.cli.redctl.clients import Instance
from redpss.core.errors import UsageError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("db_install", help="install or upgrade REDSYS and the registered schemas")
    parser.set_defaults(handler=db_install)
    parser = subparsers.add_parser("db_register", help="register an application schema (creates its RED tables)")
    parser.add_argument("schema", nargs="+", help="application schema name(s)")
    parser.set_defaults(handler=db_register)


def _run(args: argparse.Namespace, schemas: list[str]) -> int:
    # The database layer (and the secret file) only when a command runs, not to print the help.
    from redpss.clone.folder import pending  # noqa: PLC0415
    from redpss.clone.identity import claim_for_install, local_identity, refusal_to_install  # noqa: PLC0415
    from redpss.core.config import Secret  # noqa: PLC0415
    from redpss.core.db.contract import install, service_connections  # noqa: PLC0415
    from redpss.core.secret import instance_secret  # noqa: PLC0415

    instance = Instance.from_args(args)
    secret = Secret(instance_secret(instance.paths))  # created here when db_install runs before the first start
    connections = service_connections(instance.config, instance.paths, secret)
    session = instance.db()
    try:
        # the database's instance identity (REDSYS.INSTANCE_IDENTITY), by which a clone of it is recognised, is
        # looked at before anything is written: another instance's database is left as it is
        mine = local_identity(instance.paths, secret.reveal(), create_id=True)
        refusal = refusal_to_install(session, mine, preclone_pending=pending(instance.paths))
        if refusal is not None:
            print(refusal, file=sys.stderr)
            return 1
        report = install(session, schemas, connections)
        identity = claim_for_install(session, mine)
    finally:
        session.close()
    print(report.summary())
    print(identity)
    return 0


def db_install(args: argparse.Namespace) -> int:
    return _run(args, [])


def db_register(args: argparse.Namespace) -> int:
    from redpss.core.db.contract import ContractError, schema_name  # noqa: PLC0415 - as in _run

    try:
        schemas = [schema_name(name) for name in args.schema]
    except ContractError as exc:
        raise UsageError(f"db_register: {exc}") from None
    return _run(args, schemas)
