"""core/secret.py: the instance secret made once, whole, when the daemons of a new instance start together."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from redpss.core.paths import InstancePaths, create_instance_tree
from redpss.core.secret import instance_secret, service_secret

STARTING_TOGETHER = 12


def _start_together(paths: InstancePaths, count: int, results: Path) -> None:
    """`count` forked processes that each ask for the secret at the same moment (all blocked on one pipe until it
    is written to), as the units of a new instance do; each writes what it got, or its error, to a file."""
    gate_read, gate_write = os.pipe()
    children = []
    for number in range(count):
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            os.close(gate_write)
            os.read(gate_read, 1)
            try:
                outcome = "secret " + instance_secret(paths)
            except Exception as exc:  # what the test reports
                outcome = f"error {exc!r}"
            (results / str(number)).write_text(outcome)
            os._exit(0)
        children.append(child)
    os.close(gate_read)
    os.write(gate_write, b"x" * count)
    os.close(gate_write)
    for child in children:
        os.waitpid(child, 0)


def test_daemons_starting_together_make_one_secret_and_all_read_it_whole(tmp_path: Path) -> None:
    paths = InstancePaths.for_instance("TST1", tmp_path / "redsys")
    create_instance_tree(paths)
    for round_number in range(3):  # a race lost once in a while would show in one of the rounds
        (paths.etc / "instance.secret").unlink(missing_ok=True)
        results = tmp_path / f"round-{round_number}"
        results.mkdir()
        _start_together(paths, STARTING_TOGETHER, results)
        written = (paths.etc / "instance.secret").read_text().strip()
        got = [(results / str(number)).read_text() for number in range(STARTING_TOGETHER)]
        assert got == [f"secret {written}"] * STARTING_TOGETHER and len(written) == 64
        assert stat.S_IMODE((paths.etc / "instance.secret").stat().st_mode) == 0o600
        assert sorted(p.name for p in paths.etc.iterdir() if "secret" in p.name) == ["instance.secret"]


def test_a_service_secret_is_its_own_and_tells_nothing_of_the_others() -> None:
    secret = "a" * 64
    derived = {service: service_secret(secret, service) for service in ("DBLS", "JEXEC", "SENDMAIL", "SENDFILE")}
    assert len(set(derived.values()) | {secret}) == 5
    assert service_secret(secret, "dbls") == derived["DBLS"] and service_secret("b" * 64, "DBLS") != derived["DBLS"]
