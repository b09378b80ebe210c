"""What every request gets on its way in and out: a request id, the body limit, one log line."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.e2e.conftest import Stack, auth

WEBHOOK = "/api/custom/stripe/webhook"
CREATE = "/api/custom/stripe/create-payment-intent"
_HEX32 = re.compile(r"[0-9a-f]{32}")


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "buytokens.http" and r.getMessage().startswith('{"event": "request"')
    ]


def _assorted_requests(stack: Stack) -> list[Any]:
    """Answers of every kind: 200s, a webhook, 4xx from routes, 413 and 400 from the edge."""
    event = {
        "id": "evt_other",
        "object": "event",
        "type": "customer.created",
        "created": int(time.time()),
        "data": {"object": {"id": "cus_1", "object": "customer"}},
    }
    payload, signature = stack.gateway.signed_webhook(event)
    return [
        stack.client.get("/healthz"),
        stack.client.get("/api/custom/stripe/packages?x=1"),
        stack.client.get("/api/custom/balance", headers=auth("alice")),
        stack.client.get("/api/custom/balance"),
        stack.client.get("/api/custom/nothing-here"),
        stack.client.post(WEBHOOK, content=payload, headers={"Stripe-Signature": signature}),
        stack.client.post(WEBHOOK, content=payload, headers={"Stripe-Signature": "t=1,v1=00"}),
        stack.client.post(WEBHOOK, content=b"x" * 1_000_001),
        stack.client.post(CREATE, content=b"{}", headers={"Content-Length": "12x"}),
    ]


def test_minted_request_ids_are_unique_across_requests(stack: Stack) -> None:
    """Every answer, whoever made it, carries its own 32-hex-digit id."""
    answers = [a for _ in range(20) for a in _assorted_requests(stack)]
    assert {a.status_code for a in answers} == {200, 400, 401, 404, 413}
    ids = [a.headers["X-Request-ID"] for a in answers]
    assert all(_HEX32.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("given", ["", "x" * 65, "line\nbreak", "tab\there"])
def test_an_unusable_caller_request_id_is_replaced(stack: Stack, given: str) -> None:
    """Empty, over 64 characters or not printable: a fresh id instead of the caller's."""
    raw = [(b"x-request-id", given.encode())]
    answer = stack.client.get("/healthz", headers=raw)
    assert _HEX32.fullmatch(answer.headers["X-Request-ID"])


def test_a_usable_caller_request_id_is_echoed_and_logged(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """64 printable characters are kept, on the answer and in the log line, for refusals too."""
    caplog.set_level("INFO", logger="buytokens.http")
    given = "req-" + "7" * 60
    answer = stack.client.post(WEBHOOK, content=b"x" * 1_000_001, headers={"X-Request-ID": given})
    assert (answer.status_code, answer.headers["X-Request-ID"]) == (413, given)
    assert [(line["request_id"], line["status"]) for line in _lines(caplog)] == [(given, 413)]


def test_each_request_logs_one_line_with_its_fields(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """One JSON line per request: its id, method, path without the query, status and time."""
    caplog.set_level("INFO", logger="buytokens.http")
    answers = _assorted_requests(stack)
    lines = _lines(caplog)
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("GET", "/healthz", 200),
        ("GET", "/api/custom/stripe/packages", 200),
        ("GET", "/api/custom/balance", 200),
        ("GET", "/api/custom/balance", 401),
        ("GET", "/api/custom/nothing-here", 404),
        ("POST", WEBHOOK, 200),
        ("POST", WEBHOOK, 400),
        ("POST", WEBHOOK, 413),
        ("POST", CREATE, 400),
    ]
    assert [line["request_id"] for line in lines] == [a.headers["X-Request-ID"] for a in answers]
    for line in lines:
        assert set(line) == {"event", "request_id", "method", "path", "status", "ms"}
        assert isinstance(line["ms"], float)
        assert line["ms"] >= 0
