"""``POST /api/custom/stripe/webhook``: Stripe's signed events, answered once durably stored.

In the app, ``HttpEdge`` serves this path with ``answer_webhook`` before any
routing; the route here documents it (OpenAPI) and serves it wherever the
router is used without the edge.
"""

from typing import cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from buytokens.domain.crediting import Disposition
from buytokens.domain.errors import BuyTokensError
from buytokens.entrypoints.container import Container
from buytokens.entrypoints.web.routes import errors_of, transacts_awaitably
from buytokens.entrypoints.web.schemas import WebhookResponse
from buytokens.ports.balances import AwaitableTransactions
from buytokens.services.webhooks import (
    WebhookDependencies,
    receive_webhook,
    receive_webhook_awaiting,
)

WEBHOOK_MAX_BYTES = 1_000_000
WEBHOOK_PATH = "/api/custom/stripe/webhook"

router = APIRouter()


class PayloadTooLarge(BuyTokensError):
    """The request body is larger than this route accepts."""

    code = "payload_too_large"


def _webhook_answer(disposition: Disposition) -> bytes:
    return bytes(JSONResponse(WebhookResponse(outcome=disposition.value).model_dump()).body)


# The webhook's answers are the same bytes for every request of one outcome.
_WEBHOOK_ANSWERS = {disposition: _webhook_answer(disposition) for disposition in Disposition}


@router.post(
    WEBHOOK_PATH,
    response_model=WebhookResponse,
    responses=errors_of(400, 413, 500, 503),
    tags=["stripe"],
)
async def webhook(request: Request) -> Response:
    """Stripe's signed events. 200 once the outcome is durably stored (processed, duplicate,
    ignored, or flagged for review); 400 for anything not genuinely from Stripe; 5xx only
    for a transient failure Stripe should retry."""
    # In the app, ``HttpEdge`` serves this path with ``answer_webhook`` before routing;
    # this route documents it and serves it wherever the router is used without the edge.
    payload = await read_capped(request.receive, WEBHOOK_MAX_BYTES)
    answer = await answer_webhook(
        request.app.state.container, payload, request.headers.get("stripe-signature")
    )
    return Response(answer, media_type="application/json")


async def answer_webhook(container: Container, payload: bytes, signature: str | None) -> bytes:
    """The webhook's answer to one delivery (a JSON body, status 200), once its outcome is
    durably stored; a ``BuyTokensError`` for anything else (see ``webhook``)."""
    # The provider, not an injected parameter: overrides of the container still apply.
    webhooks: WebhookDependencies = container.webhooks()
    store = webhooks.events.store
    if transacts_awaitably(store):
        # The check and the parse here (as cheap as a thread hop); the store's writer
        # reads, decides and commits, and this awaits its durable commit.
        applied = await receive_webhook_awaiting(
            webhooks, cast(AwaitableTransactions, store), payload, signature
        )
    else:
        # The store blocks: run it off the event loop.
        applied = await run_in_threadpool(receive_webhook, webhooks, payload, signature)
    return _WEBHOOK_ANSWERS[applied.disposition]


def limit_message(size: int) -> str:
    """What a refused body is told, for a route that takes at most ``size`` bytes."""
    return f"request bodies are limited to {size:,} bytes"


async def read_capped(receive: Receive, limit: int) -> bytes:
    """The request's body from ``receive``, counted as it arrives; ``PayloadTooLarge`` as soon
    as it passes ``limit`` bytes (a declared ``Content-Length`` is checked before this)."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.request":
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(limit_message(limit))
            chunks.append(chunk)
            more = message.get("more_body", False)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
