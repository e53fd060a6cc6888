"""redftp_useradd INSTANCE USER --key FILE|-: add a key-only, change-rooted sFTP user (see docs/sftp-users.md)."""

from __future__ import annotations

from collections.abc import Sequence

from redpss.redftp.command import useradd_main


def main(argv: Sequence[str] | None = None) -> int:
    return useradd_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
