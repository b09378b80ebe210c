"""POST /api/custom/gifts/redeem through the real app, on SQLite and on mongomock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from buytokens.adapters.memory import FixedClock
from buytokens.domain.codes import RedemptionCode
from buytokens.domain.errors import GiftAlreadyRedeemed, GiftNotFound, GiftVoid
from buytokens.entrypoints.container import create_container
from buytokens.entrypoints.web.app import create_app, status_for
from buytokens.services.codes import CodeDesk, create_codes
from tests.e2e.conftest import Stack, auth, settings_for, token_for

REDEEM = "/api/custom/gifts/redeem"


def _error(response: Any) -> str:
    body = response.json()
    assert body["success"] is False
    assert body["error"]["message"]
    return str(body["error"]["code"])


def _issue(stack: Stack, tokens: int = 40_000, **options: Any) -> str:
    (code,) = create_codes(stack.container.code_desk(), tokens, 1, "http test", **options)
    return code.display()


def test_a_code_credits_its_tokens_and_reports_the_balance(stack: Stack) -> None:
    """200 with the tokens and the new balance, which the balance route confirms."""
    code = _issue(stack)
    response = stack.client.post(REDEEM, json={"code": code}, headers=auth("alice"))
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "tokens": 40_000, "tokenCredits": 40_000}
    assert stack.balance("alice") == 40_000


def test_any_case_and_no_dashes_redeem_the_same_code(stack: Stack) -> None:
    """A code typed in lower case without dashes, spaces around, is the same code."""
    code = _issue(stack)
    typed = f"  {code.replace('-', '').lower()} "
    assert stack.client.post(REDEEM, json={"code": typed}, headers=auth("alice")).status_code == 200


def test_a_second_redemption_is_409_for_anyone(stack: Stack) -> None:
    """The redeemer and another user both get gift_already_redeemed; nothing more is credited."""
    code = _issue(stack)
    stack.client.post(REDEEM, json={"code": code}, headers=auth("alice"))
    for user in ("alice", "bob"):
        again = stack.client.post(REDEEM, json={"code": code}, headers=auth(user))
        assert again.status_code == 409
        assert _error(again) == "gift_already_redeemed"
    assert (stack.balance("alice"), stack.balance("bob")) == (40_000, 0)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("7KQ2-M9XD-4RTB-HN0C-WZ5F", "typo"),
        ("7KQ2-M9XD", "20 characters"),
        ("7KQ2-M9XD-4RTB-HN0C-WZ5U", "never appears"),
        ("x" * 200, "far longer"),
    ],
)
def test_malformed_codes_are_404_saying_what_is_wrong(stack: Stack, text: str, says: str) -> None:
    """Text that cannot be a code answers gift_not_found with a message about the mistake."""
    response = stack.client.post(REDEEM, json={"code": text}, headers=auth("alice"))
    assert response.status_code == 404
    assert _error(response) == "gift_not_found"
    assert says in response.json()["error"]["message"]


def test_unknown_and_expired_codes_are_404(stack: Stack) -> None:
    """A well-formed code never issued, and one past its expiry, are gift_not_found."""
    desk = stack.container.code_desk()
    then = FixedClock(desk.clock.now() - timedelta(days=2))
    (expired,) = create_codes(
        CodeDesk(desk.codes, desk.store, then), 9, 1, "old", then.now() + timedelta(days=1)
    )
    stranger = RedemptionCode.from_entropy(bytes(range(12)))  # well formed, never issued
    for code in (expired.display(), stranger.display()):
        response = stack.client.post(REDEEM, json={"code": code}, headers=auth("alice"))
        assert response.status_code == 404
        assert _error(response) == "gift_not_found"
    assert stack.balance("alice") == 0


@pytest.mark.parametrize(
    "body",
    [{}, {"code": 12345}, {"code": ""}, {"code": "x", "tokens": 10**9}, {"code": "y" * 300}],
)
def test_a_malformed_body_is_422(stack: Stack, body: dict[str, Any]) -> None:
    """No code, a non-string, an empty string, extra fields or a huge string: 422."""
    response = stack.client.post(REDEEM, json=body, headers=auth("alice"))
    assert response.status_code == 422
    assert _error(response) == "invalid_request"


def test_redeeming_needs_a_valid_token(stack: Stack) -> None:
    """No bearer token, no redemption."""
    code = _issue(stack)
    assert stack.client.post(REDEEM, json={"code": code}).status_code == 401
    assert stack.client.post(REDEEM, json={"code": code}, headers=auth("alice")).status_code == 200


def test_a_void_gift_answers_410() -> None:
    """The status table maps each code error to the contract's status."""
    assert status_for(GiftVoid("refunded")) == 410
    assert status_for(GiftAlreadyRedeemed("spent")) == 409
    assert status_for(GiftNotFound("no")) == 404


def test_guessing_is_rate_limited_per_user_with_retry_after(tmp_path: Path) -> None:
    """Past the per-user limit on redemptions the route answers 429 with Retry-After."""
    container = create_container(settings_for(tmp_path, rate_limit_redeems_per_user="3/minute"))
    with TestClient(create_app(container)) as client:
        guess = {"code": "7KQ2-M9XD-4RTB-HN0C-WZ5F"}
        codes = [
            client.post(REDEEM, json=guess, headers=auth("mallory")).status_code for _ in range(4)
        ]
        assert codes == [404, 404, 404, 429]
        limited = client.post(REDEEM, json=guess, headers=auth("mallory"))
        assert _error(limited) == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert client.post(REDEEM, json=guess, headers=auth("honest")).status_code == 404


def test_guessing_is_rate_limited_per_ip_across_users(tmp_path: Path) -> None:
    """Many users from one address share the per-IP limit; payments keep counters of their own."""
    container = create_container(settings_for(tmp_path, rate_limit_per_ip="3/minute"))
    with TestClient(create_app(container)) as client:
        guess = {"code": "7KQ2-M9XD-4RTB-HN0C-WZ5F"}
        codes = [
            client.post(REDEEM, json=guess, headers=auth(f"u{i}")).status_code for i in range(4)
        ]
        assert codes == [404, 404, 404, 429]


def test_a_code_never_reaches_the_logs(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    """Neither a redeemed code, nor a mistyped one, nor the bearer token appears in any log."""
    caplog.set_level("DEBUG")
    code = _issue(stack)
    token = token_for("alice")
    headers = {"Authorization": f"Bearer {token}"}
    typo = code[:-1] + ("0" if code[-1] != "0" else "1")
    stack.client.post(REDEEM, json={"code": typo}, headers=headers)
    stack.client.post(REDEEM, json={"code": code}, headers=headers)
    stack.client.post(REDEEM, json={"code": code}, headers=headers)
    text = caplog.text + "".join(repr(record.args) for record in caplog.records)
    assert "request" in text
    for secret in (code, code.replace("-", ""), typo, typo.replace("-", ""), token):
        assert secret not in text
        assert secret.lower() not in text.lower()


def test_openapi_documents_the_route_and_its_errors(stack: Stack) -> None:
    """The schema names the body, the answer and each error status with ErrorResponse."""
    schema = stack.client.get("/openapi.json").json()
    post = schema["paths"][REDEEM]["post"]
    assert "RedeemRequest" in str(post["requestBody"])
    assert "RedeemResponse" in str(post["responses"]["200"])
    for status in ("401", "404", "409", "410", "429", "503"):
        assert "ErrorResponse" in str(post["responses"][status]), status


def test_serve_finishes_an_interrupted_redemption_at_start_up(tmp_path: Path) -> None:
    """A code claimed before a crash, never credited, is credited once when the app starts."""
    container = create_container(settings_for(tmp_path))
    desk = container.code_desk()
    (code,) = create_codes(desk, 777, 1, "interrupted")
    assert desk.codes.claim(code.digest, "alice", desk.clock.now())  # then the process died
    with TestClient(create_app(container)) as client:
        balance = client.get("/api/custom/balance", headers=auth("alice")).json()
        assert balance["tokenCredits"] == 777
        again = client.post(REDEEM, json={"code": code.display()}, headers=auth("alice"))
        assert again.status_code == 409
    assert list(desk.codes.uncredited()) == []
    assert desk.store.balance("alice") == 777
