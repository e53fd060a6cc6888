"""One running instance with its REST API for the tests of a module (starting devdb, SCHED, JMON and gunicorn costs
seconds; the tests leave the instance as they found it or check only what they changed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.rest.rest_instance import RestApi, rest_instance
from tests.support.instance_runner import RunningInstance


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningInstance, RestApi]]:
    workdir = tmp_path_factory.mktemp("rest")
    home = workdir / "redsys"
    home.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDHOME", str(home))
        for name in ("REDENV", "NOTIFY_SOCKET", "WATCHDOG_USEC", "JOURNAL_STREAM"):
            patch.delenv(name, raising=False)
        with rest_instance(home, workdir) as pair:
            yield pair


@pytest.fixture(scope="module")
def running(served: tuple[RunningInstance, RestApi]) -> RunningInstance:
    return served[0]


@pytest.fixture(scope="module")
def api(served: tuple[RunningInstance, RestApi]) -> RestApi:
    return served[1]
