"""The per-IP limit behind a reverse proxy: X-Forwarded-For counts only from trusted peers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from dependency_injector import providers
from fastapi.testclient import TestClient

from buytokens.domain.errors import ConfigurationError
from buytokens.entrypoints.container import create_container
from buytokens.entrypoints.settings import Settings
from buytokens.entrypoints.web.app import create_app
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.e2e.conftest import WEBHOOK_SECRET, auth, settings_for

PROXY = "10.0.0.2"


@contextmanager
def _client(tmp_path: Path, peer: str, trusted: tuple[str, ...]) -> Iterator[TestClient]:
    """The app with a per-IP limit of 2 a minute, reached from ``peer``."""
    settings = settings_for(
        tmp_path,
        rate_limit_per_ip="2/minute",
        rate_limit_per_user="100/minute",
        trusted_proxies=trusted,
    )
    container = create_container(settings)
    container.gateway.override(
        providers.Object(InMemoryPaymentGateway(webhook_secret=WEBHOOK_SECRET))
    )
    with TestClient(create_app(container), client=(peer, 40000)) as client:
        yield client


def _buy(client: TestClient, user: str, forwarded_for: str | None = None) -> int:
    headers = auth(user) | ({"X-Forwarded-For": forwarded_for} if forwarded_for else {})
    response = client.post(
        "/api/custom/stripe/create-payment-intent",
        json={"packageId": "package_100k", "paymentMethod": "card"},
        headers=headers,
    )
    return response.status_code


def test_behind_a_trusted_proxy_each_buyer_has_their_own_ip_limit(tmp_path: Path) -> None:
    """Two buyers behind one trusted proxy are limited apart, by the address the proxy saw."""
    with _client(tmp_path, PROXY, (PROXY,)) as client:
        first = [_buy(client, f"a{i}", "203.0.113.7") for i in range(3)]
        second = [_buy(client, f"b{i}", "198.51.100.9") for i in range(2)]
    assert first == [200, 200, 429]
    assert second == [200, 200]


def test_a_trusted_network_is_given_in_cidr_notation(tmp_path: Path) -> None:
    """A network such as a container bridge trusts every proxy address inside it."""
    with _client(tmp_path, "172.18.0.5", ("172.16.0.0/12",)) as client:
        codes = [_buy(client, f"u{i}", f"203.0.113.{i}") for i in range(4)]
    assert codes == [200, 200, 200, 200]


def test_a_client_cannot_escape_the_limit_by_sending_its_own_forwarded_for(
    tmp_path: Path,
) -> None:
    """The proxy appends the real peer; only the rightmost untrusted address counts."""
    with _client(tmp_path, PROXY, (PROXY,)) as client:
        codes = [_buy(client, f"u{i}", f"192.0.2.{i}, 203.0.113.7") for i in range(3)]
    assert codes == [200, 200, 429]


def test_without_trusted_proxies_forwarded_for_is_ignored(tmp_path: Path) -> None:
    """By default the header is anyone's claim: the peer's own address is limited."""
    with _client(tmp_path, "127.0.0.1", ()) as client:
        codes = [_buy(client, f"u{i}", f"203.0.113.{i}") for i in range(3)]
    assert codes == [200, 200, 429]


def test_an_untrusted_peer_cannot_pick_its_address(tmp_path: Path) -> None:
    """A peer outside the trusted list is limited by its own address, whatever it claims."""
    with _client(tmp_path, "192.0.2.50", (PROXY,)) as client:
        codes = [_buy(client, f"u{i}", f"203.0.113.{i}") for i in range(3)]
    assert codes == [200, 200, 429]


def test_trusted_proxies_are_read_from_the_environment() -> None:
    """BUYTOKENS_TRUSTED_PROXIES is a comma-separated list of addresses and networks."""
    settings = Settings.from_env({"BUYTOKENS_TRUSTED_PROXIES": " 10.0.0.2, 172.16.0.0/12,::1 "})
    assert settings.trusted_proxies == ("10.0.0.2", "172.16.0.0/12", "::1")
    assert Settings.from_env({}).trusted_proxies == ()


@pytest.mark.parametrize("value", ["nginx", "10.0.0.300", "10.0.0.0/40", "*"])
def test_a_malformed_trusted_proxy_is_refused_by_name(value: str) -> None:
    """A host name, a bad address or a wildcard stops start-up naming the variable."""
    with pytest.raises(ConfigurationError, match="BUYTOKENS_TRUSTED_PROXIES"):
        Settings.from_env({"BUYTOKENS_TRUSTED_PROXIES": f"10.0.0.2,{value}"})
