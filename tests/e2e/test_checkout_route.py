"""The create-intent route answers ordinary requests itself and leaves the rest to FastAPI.

Whichever way a request goes, the answer is the one the contract gives: these
pin the edges between the two (content types, the order of 401 and 422) and the
answer's exact bytes.
"""

from __future__ import annotations

import json

import pytest

from buytokens.entrypoints.web.auth import AuthenticatedUser
from buytokens.entrypoints.web.routes import current_user
from tests.e2e.conftest import Stack, auth

CREATE = "/api/custom/stripe/create-payment-intent"
BODY = {"packageId": "package_500k", "paymentMethod": "card"}


def _error(response: object) -> str:
    return str(response.json()["error"]["code"])  # type: ignore[attr-defined]


def test_the_answer_is_compact_json_in_the_response_models_order(stack: Stack) -> None:
    """The fields of CreateIntentResponse, in its order, no spaces, no discountAmount unasked."""
    response = stack.client.post(CREATE, json=BODY, headers=auth("alice"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert list(answer) == [
        "success",
        "clientSecret",
        "amount",
        "currency",
        "exponent",
        "paymentIntentId",
        "status",
    ]
    assert response.content == json.dumps(answer, separators=(",", ":")).encode()
    assert answer["success"] is True
    assert answer["paymentIntentId"] in answer["clientSecret"]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_json_content_types_are_taken(stack: Stack, content_type: str) -> None:
    """Any spelling of JSON, with or without parameters, is a JSON body."""
    response = stack.client.post(
        CREATE,
        content=json.dumps(BODY).encode(),
        headers=auth("alice") | {"Content-Type": content_type},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("content_type", ["text/plain", None])
def test_a_body_not_declared_as_json_is_422(stack: Stack, content_type: str | None) -> None:
    """A JSON-looking body under another content type (or none) is not parsed as JSON."""
    headers = auth("alice") | ({"Content-Type": content_type} if content_type else {})
    response = stack.client.post(CREATE, content=json.dumps(BODY).encode(), headers=headers)
    assert response.status_code == 422
    assert _error(response) == "invalid_request"
    assert stack.gateway.recorded_events == ()


def test_a_bad_token_is_401_before_the_body_is_judged(stack: Stack) -> None:
    """A valid body, or an invalid one, with a bad token: 401 either way."""
    bad = {"Authorization": "Bearer not-a-jwt"}
    assert stack.client.post(CREATE, json=BODY, headers=bad).status_code == 401
    invalid = stack.client.post(CREATE, json={"packageId": ""}, headers=bad)
    assert invalid.status_code == 401
    assert _error(invalid) == "unauthorized"


def test_a_body_that_does_not_parse_is_422_even_without_a_token(stack: Stack) -> None:
    """The JSON is read before anything else: garbage is 422 whoever sends it."""
    response = stack.client.post(
        CREATE, content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert _error(response) == "invalid_request"


def test_the_idempotency_key_header_is_read_in_any_case(stack: Stack) -> None:
    """HTTP header names are case-insensitive: the same key spelled differently is one key."""
    first = stack.client.post(CREATE, json=BODY, headers=auth("alice") | {"Idempotency-Key": "k"})
    second = stack.client.post(CREATE, json=BODY, headers=auth("alice") | {"idempotency-key": "k"})
    assert first.json()["paymentIntentId"] == second.json()["paymentIntentId"]


def test_an_override_of_the_signed_in_user_applies(stack: Stack) -> None:
    """An embedder or a test that overrides ``current_user`` is answered through it, with no
    token at all: the route's own fast path steps aside for ``dependency_overrides``."""
    app = stack.client.app
    app.dependency_overrides[current_user] = lambda: AuthenticatedUser("0123456789abcdef01234567")  # type: ignore[attr-defined]
    try:
        response = stack.client.post(CREATE, json=BODY)
    finally:
        app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert response.status_code == 200, response.text
    intent = response.json()["paymentIntentId"]
    purchase = stack.container.store().get_purchase(intent)
    assert purchase is not None
    assert purchase.user_id == "0123456789abcdef01234567"
