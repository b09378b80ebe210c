"""An app on a real SQLite file with the in-memory Stripe twin, and helpers to call it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from dependency_injector import providers
from fastapi.testclient import TestClient

from buytokens.entrypoints.container import Container, create_container
from buytokens.entrypoints.settings import Settings
from buytokens.entrypoints.web.app import create_app
from buytokens.testing.stripe_twin import InMemoryPaymentGateway

JWT_SECRET = "test-jwt-secret-0123456789abcdef"
WEBHOOK_SECRET = "whsec_test_0123456789"


def token_for(
    user_id: str, *, secret: str = JWT_SECRET, expires_in: int = 3600, **claims: Any
) -> str:
    """A LibreChat-style access token."""
    payload = {"id": user_id, "exp": int(time.time()) + expires_in, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


def auth(user_id: str, **claims: Any) -> dict[str, str]:
    """The Authorization header for ``user_id``."""
    return {"Authorization": f"Bearer {token_for(user_id, **claims)}"}


class Stack:
    """The app under test and the Stripe twin behind it."""

    def __init__(
        self, client: TestClient, gateway: InMemoryPaymentGateway, container: Container
    ) -> None:
        self.client, self.gateway, self.container = client, gateway, container

    def buy(
        self, user: str, package: str = "package_500k", key: str | None = None
    ) -> dict[str, Any]:
        headers = auth(user) | ({"Idempotency-Key": key} if key else {})
        response = self.client.post(
            "/api/custom/stripe/create-payment-intent",
            json={"packageId": package, "paymentMethod": "card"},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def deliver(self, event: dict[str, Any], **sign: Any) -> Any:
        payload, header = self.gateway.signed_webhook(event, **sign)
        return self.client.post(
            "/api/custom/stripe/webhook", content=payload, headers={"Stripe-Signature": header}
        )

    def balance(self, user: str) -> int:
        return int(
            self.client.get("/api/custom/balance", headers=auth(user)).json()["tokenCredits"]
        )


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings of a test deployment on a fresh SQLite file."""
    values: dict[str, Any] = {
        "jwt_secret": JWT_SECRET,
        "stripe_secret_key": "sk_test_unused",
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_publishable_key": "pk_test_123",
        "sqlite_path": str(tmp_path / "app.sqlite3"),
    }
    return Settings(**(values | overrides))


@pytest.fixture(params=["sqlite", "mongomock"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """The app on each store, with the in-memory Stripe twin signing with WEBHOOK_SECRET."""
    mongo = (
        {"mongodb_uri": f"mongomock://localhost/t{id(request)}"}
        if request.param == "mongomock"
        else {}
    )
    container = create_container(settings_for(tmp_path, **mongo))
    gateway = InMemoryPaymentGateway(webhook_secret=WEBHOOK_SECRET)
    container.gateway.override(providers.Object(gateway))
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        yield Stack(client, gateway, container)
    container.gateway.reset_override()
