"""schemathesis against the running suite, from the checked-in OpenAPI documents: valid and
invalid requests (bounded examples per operation) to every operation of the gateway and of
billing's API. No answer is a 5xx, every error is in OpenAI's format, no request hangs; and each
service serves the document that is checked in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from .conftest import RunningSuite

DOCS = Path(__file__).resolve().parents[2] / "docs" / "openapi"
CONFIG = schemathesis.Config.from_dict({"generation": {"mode": "all"}})
GATEWAY = schemathesis.openapi.from_path(DOCS / "gateway.json", config=CONFIG)
BILLING = schemathesis.openapi.from_path(DOCS / "billing.json", config=CONFIG)
# Longer than any of these answers takes; a request still open then has hung.
HANG_S = 15.0
EXAMPLES = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,  # the same requests on every run: a failure reproduces, CI does not flake
    suppress_health_check=list(HealthCheck),
)


@schemathesis.check
def errors_are_openai_errors(ctx: Any, response: Any, case: Any) -> bool | None:
    """Any 4xx or 5xx body is OpenAI's error object: {"error": {message, type, param, code}}."""
    if response.status_code < 400:
        return None
    body = json.loads(response.content)
    error = body["error"]
    assert set(body) == {"error"}, body
    assert isinstance(error["message"], str), body
    assert error["message"], body
    assert isinstance(error["type"], str), body
    assert {"param", "code"} <= set(error), body
    return True


def credential(suite: RunningSuite, path: str, billing: bool) -> str:
    """Each operation with the credential it wants, so the fuzzing reaches its handler."""
    if billing:
        return suite.admin_token if path.startswith("/v1/admin/") else suite.api_key
    if path.startswith("/v1/admin/"):
        return suite.session  # admin routes want an admin's session
    return suite.api_key


def exercise(case: Any, base_url: str, token: str) -> None:
    response = case.call(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=HANG_S, allow_redirects=False
    )
    case.validate_response(response, checks=[not_a_server_error, errors_are_openai_errors])


# Signing out would end the session the admin operations are fuzzed with (test_secrets_never_leak
# signs a session out and uses it).
@GATEWAY.exclude(path="/auth/logout").parametrize()
@EXAMPLES
def test_the_gateway_answers_any_request_with_a_4xx_in_openai_format_or_success(
    case: Any, running_suite: RunningSuite
) -> None:
    exercise(case, running_suite.gateway, credential(running_suite, case.path, billing=False))


@BILLING.parametrize()
@EXAMPLES
def test_billing_answers_any_request_with_a_4xx_in_openai_format_or_success(
    case: Any, running_suite: RunningSuite
) -> None:
    exercise(case, running_suite.billing, credential(running_suite, case.path, billing=True))


@pytest.mark.parametrize(("name", "where"), [("gateway", "gateway"), ("billing", "billing")])
def test_each_service_serves_the_checked_in_document(
    running_suite: RunningSuite, name: str, where: str
) -> None:
    served = requests.get(f"{getattr(running_suite, where)}/openapi.json", timeout=HANG_S).json()
    assert served == json.loads((DOCS / f"{name}.json").read_text())
