"""Property-based requests from the API's own OpenAPI document (schemathesis): whatever a client sends within or
around the document, the API answers without a server error and within the document (status, content type, body)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err

from redpss.rest.openapi import document
from redpss.rest.tls import CertificateFiles
from tests.rest.rest_instance import OPERATOR, RestApi, basic
from tests.support.instance_runner import RunningInstance, add_job, add_watcher

pytestmark = pytest.mark.allow_leaks  # the module's instance outlives each case (closed by its fixture)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


SCHEMA = schemathesis.openapi.from_dict(document())


def _operations() -> dict[str, Any]:
    """Label ("GET /api/v1/jobs") -> operation; a document schemathesis cannot read fails here, at collection."""
    found = {}
    for result in SCHEMA.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        found[result.ok().label] = result.ok()
    return found


OPERATIONS = _operations()


@pytest.fixture(scope="module", autouse=True)
def definitions(running: RunningInstance) -> None:
    add_job(running, "APP1", 1, "fuzzed", INTERVAL_SECONDS=3600)
    add_watcher(running, "APP1", 1, "fuzzed", CONDITION_TEXT="SELECT 1 FROM DUAL WHERE FALSE", TARGET_JOB_ID=1)


def _has_parameters(label: str) -> bool:
    method, path = label.split(" ", 1)
    return bool(document()["paths"][path][method.lower()].get("parameters"))


# Negative cases only where there is something to break (an operation without parameters has none).
CASES = [
    pytest.param(label, mode, id=f"{label}-{mode.value}")
    for label in sorted(OPERATIONS)
    for mode in schemathesis.GenerationMode
    if mode is schemathesis.GenerationMode.POSITIVE or _has_parameters(label)
]


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_no_server_error_and_no_answer_outside_the_document(
    label: str, mode: schemathesis.GenerationMode, api: RestApi
) -> None:
    """Positive cases follow the document; negative ones break it (wrong types, patterns, ranges): 4xx expected."""

    @given(case=OPERATIONS[label].as_strategy(mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def requests(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(
            base_url=api.base,
            headers=basic(OPERATOR),
            verify=str(CertificateFiles.of(api.paths).cert),
            timeout=30,
            checks=CHECKS,
        )

    requests()
