"""One running instance with its REST API for the tests of a module (starting devdb, SCHED, JMON and gunicorn costs
seconds; the tests leave the instance as they found it or check only what they changed)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.rest.rest_instance import RestApi, rest_instance
from tests.support.instance_runner import RunningInstance


@contextlib.contextmanager
def served_for_module(
    tmp_path_factory: pytest.TempPathFactory, **rest: str
) -> Iterator[tuple[RunningInstance, RestApi]]:
    """The instance and API of one test module, under a REDHOME of its own; `rest`: keys of its [rest] section."""
    workdir = tmp_path_factory.mktemp("rest")
    home = workdir / "redsys"
    home.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDHOME", str(home))
        for name in ("REDENV", "NOTIFY_SOCKET", "WATCHDOG_USEC", "JOURNAL_STREAM"):
            patch.delenv(name, raising=False)
        with rest_instance(home, workdir, **rest) as pair:
            yield pair


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningInstance, RestApi]]:
    with served_for_module(tmp_path_factory) as pair:
        yield pair


@pytest.fixture(scope="module")
def running(served: tuple[RunningInstance, RestApi]) -> RunningInstance:
    return served[0]


@pytest.fixture(scope="module")
def api(served: tuple[RunningInstance, RestApi]) -> RestApi:
    return served[1]
