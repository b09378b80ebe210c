"""``buytokens serve`` as a real process: concurrency, restarts, start-up errors and its logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from buytokens.adapters.stripe_events import sign_payload
from tests.e2e.conftest import JWT_SECRET, WEBHOOK_SECRET, token_for
from tests.support.concurrency import at_once

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A ``buytokens serve`` subprocess on a loopback port, its stderr kept in a file."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"serve-{self.port}.log"
        script = Path(sys.executable).with_name("buytokens")
        self.process = subprocess.Popen(
            [str(script), "serve", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log_path.open("wb"),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("serve did not come up")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    @property
    def log(self) -> str:
        return self.log_path.read_text()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STRIPE_", "MONGODB_", "BUYTOKENS_", "JWT_"))
    }
    return (
        keep
        | {
            "JWT_SECRET": JWT_SECRET,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "BUYTOKENS_SQLITE_PATH": str(tmp_path / "serve.sqlite3"),
        }
        | extra
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A running server on a fresh SQLite file."""
    running = Server(tmp_path, _env(tmp_path))
    yield running
    if running.process.poll() is None:
        running.stop()


def _succeeded(pi: str, user: str = "alice", created: int | None = None) -> bytes:
    event = {
        "id": f"evt_{pi}",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": created or int(time.time()),
        "data": {
            "object": {
                "id": pi,
                "object": "payment_intent",
                "amount": 5_500,
                "currency": "cny",
                "status": "succeeded",
                "metadata": {"userId": user, "packageId": "package_1m"},
            }
        },
    }
    return json.dumps(event).encode()


def _post_webhook(url: str, payload: bytes) -> httpx.Response:
    headers = {
        "Stripe-Signature": sign_payload(payload, WEBHOOK_SECRET),
        "Content-Type": "application/json",
    }
    return httpx.post(
        f"{url}/api/custom/stripe/webhook", content=payload, headers=headers, timeout=30
    )


def _balance(url: str, user: str) -> Any:
    response = httpx.get(
        f"{url}/api/custom/balance",
        headers={"Authorization": f"Bearer {token_for(user)}"},
        timeout=10,
    )
    return response.json()["tokenCredits"]


def test_the_same_event_twenty_times_at_once_credits_once(server: Server) -> None:
    """Twenty concurrent deliveries of one event: all 200, one credit."""
    payload = _succeeded("pi_concurrent")
    results = at_once(lambda _: _post_webhook(server.url, payload), 20)
    assert [r.status_code for r in results] == [200] * 20
    outcomes = sorted(r.json()["outcome"] for r in results)
    assert outcomes == ["applied"] + ["duplicate"] * 19
    assert _balance(server.url, "alice") == 1_000_000


def test_a_restart_keeps_balances(tmp_path: Path, server: Server) -> None:
    """SIGTERM shuts down cleanly, and the next process sees every credit."""
    assert _post_webhook(server.url, _succeeded("pi_before_restart")).status_code == 200
    assert server.stop() in (0, -signal.SIGTERM)
    assert "Finished server process" in server.log
    again = Server(tmp_path, _env(tmp_path))
    try:
        assert _balance(again.url, "alice") == 1_000_000
        assert (
            _post_webhook(again.url, _succeeded("pi_before_restart")).json()["outcome"]
            == "duplicate"
        )
    finally:
        again.stop()


def test_logs_name_every_request_and_no_secret(server: Server) -> None:
    """One JSON line per request with a request id; no secret, token or signature anywhere."""
    token = token_for("alice")
    payload = _succeeded("pi_logged")
    signature = sign_payload(payload, WEBHOOK_SECRET)
    httpx.post(
        f"{server.url}/api/custom/stripe/webhook",
        content=payload,
        headers={"Stripe-Signature": signature},
        timeout=10,
    )
    httpx.get(
        f"{server.url}/api/custom/balance", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    httpx.get(
        f"{server.url}/api/custom/balance",
        headers={"Authorization": "Bearer forged.token.value"},
        timeout=10,
    )
    server.stop()
    log = server.log
    requests = [
        json.loads(line.split(" ", 3)[3])
        for line in log.splitlines()
        if '"event": "request"' in line
    ]
    assert [(r["path"], r["status"]) for r in requests if r["path"] != "/healthz"] == [
        ("/api/custom/stripe/webhook", 200),
        ("/api/custom/balance", 200),
        ("/api/custom/balance", 401),
    ]
    assert all(len(r["request_id"]) == 32 for r in requests)
    for secret in (
        JWT_SECRET,
        WEBHOOK_SECRET,
        token,
        signature,
        signature.split("v1=")[1],
        "forged.token.value",
    ):
        assert secret not in log


MONGOMOCK_WARNING = "every credit, purchase and ledger entry is lost when this process stops"


def test_serve_on_mongomock_warns_once_that_credits_are_lost_on_restart(tmp_path: Path) -> None:
    """A store in memory answers Stripe 200 for credits a restart loses: start-up says so."""
    running = Server(tmp_path, _env(tmp_path, MONGODB_URI="mongomock://localhost/serve"))
    try:
        assert _post_webhook(running.url, _succeeded("pi_volatile")).status_code == 200
    finally:
        running.stop()
    warnings = [line for line in running.log.splitlines() if MONGOMOCK_WARNING in line]
    assert len(warnings) == 1
    assert "WARNING: MONGODB_URI is mongomock://" in warnings[0]


def test_serve_on_sqlite_gives_no_such_warning(server: Server) -> None:
    """The durable embedded store starts without the warning."""
    server.stop()
    assert MONGOMOCK_WARNING not in server.log


def test_serve_without_jwt_secret_stops_with_one_clear_line(tmp_path: Path) -> None:
    """A missing required variable is named, and the port never opens."""
    env = _env(tmp_path)
    del env["JWT_SECRET"]
    script = Path(sys.executable).with_name("buytokens")
    result = subprocess.run(
        [str(script), "serve", "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "buytokens: error: missing required environment variable(s): JWT_SECRET"
    )
