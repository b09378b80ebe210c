"""A few of Stripe's HTTP routes on loopback, as Stripe answers them: for the set-up checks,
which read webhook endpoints (localstripe has no such route)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs


@attrs.define
class FakeStripe:
    """The account the server answers for: one accepted key and its webhook endpoints."""

    secret_key: str
    endpoints: list[dict[str, Any]] = attrs.Factory(list)
    api_base: str = ""
    requests: list[str] = attrs.Factory(list)

    def add_endpoint(
        self, url: str, events: Sequence[str], *, status: str = "enabled"
    ) -> dict[str, Any]:
        """Register an endpoint as the Dashboard would."""
        endpoint = {
            "id": f"we_{len(self.endpoints) + 1:04d}",
            "object": "webhook_endpoint",
            "url": url,
            "status": status,
            "enabled_events": list(events),
            "livemode": False,
            "api_version": None,
        }
        self.endpoints.append(endpoint)
        return endpoint


def _handler(account: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            account.requests.append(path)
            if self.headers.get("Authorization") != f"Bearer {account.secret_key}":
                # Stripe's answer to an unknown key (it quotes the key's end; so do we).
                self._send(401, _error("invalid_request_error", "Invalid API Key provided"))
            elif path == "/v1/payment_intents":
                self._send(200, _page([], "/v1/payment_intents"))
            elif path == "/v1/webhook_endpoints":
                self._send(200, _page(account.endpoints, "/v1/webhook_endpoints"))
            else:
                self._send(404, _unrecognised(path))

        def do_POST(self) -> None:
            account.requests.append(self.path)
            self._send(404, _unrecognised(self.path))

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _page(items: list[dict[str, Any]], url: str) -> dict[str, Any]:
    return {"object": "list", "data": items, "has_more": False, "url": url}


def _unrecognised(path: str) -> dict[str, Any]:
    return _error("invalid_request_error", f"Unrecognized request URL {path}")


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


@contextmanager
def fake_stripe(secret_key: str) -> Iterator[FakeStripe]:
    """Serve a fake Stripe account on a free loopback port until the block exits."""
    account = FakeStripe(secret_key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(account))
    account.api_base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield account
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
