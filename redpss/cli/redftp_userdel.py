"""redftp_userdel INSTANCE USER [--keep-data]: remove an sFTP user (see docs/sftp-users.md)."""

from __future__ import annotations

from collections.abc import Sequence

from redpss.redftp.command import userdel_main


def main(argv: Sequence[str] | None = None) -> int:
    return userdel_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
