"""What every request gets on its way in and out: a request id, the body limit, one log line."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import attrs
import pytest
from dependency_injector import providers

from buytokens.domain.errors import StoreUnavailable
from buytokens.entrypoints.container import create_container
from buytokens.entrypoints.web.app import create_app
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.e2e.conftest import WEBHOOK_SECRET, Stack, auth, settings_for

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


# -- the webhook, answered by the edge ---------------------------------------------------------


def _ignored_event() -> dict[str, Any]:
    return {
        "id": "evt_other",
        "object": "event",
        "type": "customer.created",
        "created": int(time.time()),
        "data": {"object": {"id": "cus_1", "object": "customer"}},
    }


def test_the_webhook_answer_is_the_routes_json_with_a_request_id(stack: Stack) -> None:
    """Status, body and headers as the route gave them, plus the request id."""
    answer = stack.deliver(_ignored_event())
    assert answer.status_code == 200
    assert answer.json() == {"success": True, "received": True, "outcome": "ignored"}
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-length"] == str(len(answer.content))
    assert _HEX32.fullmatch(answer.headers["X-Request-ID"])


def test_a_webhook_sent_in_chunks_is_read_whole(stack: Stack) -> None:
    """A body without Content-Length, in pieces, is checked and parsed as one."""
    intent = stack.buy("alice")
    payload, signature = stack.gateway.signed_webhook(
        stack.gateway.succeed(intent["paymentIntentId"])
    )
    pieces = iter([payload[:10], b"", payload[10:1000], payload[1000:]])
    answer = stack.client.post(WEBHOOK, content=pieces, headers={"Stripe-Signature": signature})
    assert (answer.status_code, answer.json()["outcome"]) == (200, "applied")
    assert stack.balance("alice") == 500_000


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_on_the_webhook_path_are_405(stack: Stack, method: str) -> None:
    """Only POST is the webhook; the router answers the rest in the error shape."""
    answer = stack.client.request(method, WEBHOOK)
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "method_not_allowed"
    assert _HEX32.fullmatch(answer.headers["X-Request-ID"])


def test_a_webhook_the_store_cannot_keep_is_503_with_retry_after(stack: Stack) -> None:
    """A transient store failure asks Stripe to retry, and says when."""

    class Down:
        def __getattr__(self, name: str) -> Any:
            def fail(*args: Any, **kwargs: Any) -> Any:
                raise StoreUnavailable("database is down")

            return fail

    webhooks = stack.container.webhooks()
    events = attrs.evolve(webhooks.events, store=Down())
    stack.container.webhooks.override(providers.Object(attrs.evolve(webhooks, events=events)))
    try:
        answer = stack.deliver(_ignored_event())
    finally:
        stack.container.webhooks.reset_override()
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "5")
    assert answer.json()["error"]["code"] == "store_unavailable"


class _BrokenGateway:
    """A gateway whose webhook check fails in a way nobody planned for."""

    def parse_webhook(self, payload: bytes, signature_header: str | None) -> Any:
        raise RuntimeError("unplanned")


def test_an_unexpected_webhook_failure_is_a_500_in_the_error_shape(stack: Stack) -> None:
    """The app's last-resort handler answers it, as for any route."""
    webhooks = stack.container.webhooks()
    broken = attrs.evolve(webhooks, gateway=_BrokenGateway())
    stack.container.webhooks.override(providers.Object(broken))
    try:
        answer = stack.deliver(_ignored_event())
    finally:
        stack.container.webhooks.reset_override()
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "internal_error"


# Where Starlette and FastAPI build requests, headers and URLs, and match routes.
_ROUTING_FILES = (
    "starlette/requests.py",
    "starlette/datastructures.py",
    "starlette/routing.py",
    "fastapi/routing.py",
)


def test_a_webhook_is_answered_without_routing_or_request_objects(tmp_path: Path) -> None:
    """No route matching, Request, Headers or URL object on the webhook's way: counted."""
    container = create_container(settings_for(tmp_path))
    gateway = InMemoryPaymentGateway(webhook_secret=WEBHOOK_SECRET)
    container.gateway.override(providers.Object(gateway))
    app = create_app(container)
    payload, signature = gateway.signed_webhook(_ignored_event())
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": WEBHOOK,
        "raw_path": WEBHOOK.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-length", str(len(payload)).encode()),
            (b"stripe-signature", signature.encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 3080),
    }
    sent: list[dict[str, Any]] = []
    calls: list[str] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": payload, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    def watch(frame: FrameType, event: str, arg: object) -> None:
        where = frame.f_code.co_filename.replace("\\", "/")
        if event == "call" and where.endswith(_ROUTING_FILES):
            calls.append(f"{where.rsplit('/', 2)[-2]}/{frame.f_code.co_name}")

    async def one_webhook() -> None:
        sys.setprofile(watch)
        try:
            await app(scope, receive, send)
        finally:
            sys.setprofile(None)

    asyncio.run(one_webhook())
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"])["outcome"] == "ignored"
    assert calls == []
