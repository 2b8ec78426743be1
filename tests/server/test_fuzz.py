"""Schemathesis over the env server's own OpenAPI schema, on a real server: no input yields a 5xx."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from resrl_servers.env.app import ServerConfig
from tests.server.helpers import running_server


@pytest.fixture(scope="module")
def api_schema():
    with running_server(ServerConfig(env_patterns=["debug/*"])) as url:
        yield url, schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_no_server_errors(api_schema):
    url, api_schema = api_schema
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/sessions", "/v1/sessions/{session_id}/step", "/healthz"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def fuzz(case):
            case.call_and_validate(checks=[not_a_server_error, status_code_conformance, response_schema_conformance])

        fuzz()

    # the fuzzer really reached the handlers: it opened sessions and had bodies refused
    metrics = httpx.get(f"{url}/metrics").text
    assert 'resrl_env_sessions_total{env_id="debug/echo"}' in metrics
    assert 'resrl_env_errors_total{kind="invalid_request"}' in metrics
