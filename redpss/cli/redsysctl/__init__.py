"""redsysctl: start, stop and look at RED-PSS instances, one or all (see `redsysctl -h`).

It drives each instance through the instance's own redctl and restctl ($REDENV_HOME/bin, else PATH), so an instance
running another version is handled by that version's code. redsys.service runs `redsysctl start-all` at boot, which
starts only the instances marked with $REDENV_HOME/.autostart.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    # Imported here so that `python -m redpss.cli.redsysctl.units` does not load the CLI first.
    from redpss.cli.redsysctl.main import main as run  # noqa: PLC0415

    return run(argv)
