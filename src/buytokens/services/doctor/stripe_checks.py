"""Stripe as ``buytokens doctor`` checks it: the server, the key's account and its webhooks."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from buytokens.domain.errors import BuyTokensError, GatewayRejected
from buytokens.ports.diagnostics import PaymentAccount, PaymentServer, WebhookEndpoint
from buytokens.services.doctor.environment import Configuration
from buytokens.services.doctor.report import (
    DASHBOARD_KEYS,
    DASHBOARD_WEBHOOKS,
    Finding,
    note,
    ok,
    problem,
    warning,
)

WEBHOOK_PATH = "/api/custom/stripe/webhook"
"""The path of the webhook route; a registered endpoint's URL must end in it."""
_LOCALSTRIPE_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed")


def check_stripe(
    config: Configuration,
    account: PaymentAccount | None,
    server: PaymentServer | None,
    required: frozenset[str],
) -> list[Finding]:
    if account is None or server is None:
        return [note("Stripe", "not checked: STRIPE_SECRET_KEY is not set")]
    found = [_server(config, server)]
    if server is PaymentServer.UNREACHABLE:
        found.append(note("Stripe", "key and webhook not checked: nothing answers"))
        return found
    try:
        account.verify_key()
    except GatewayRejected as exc:
        found.append(
            problem(
                "Stripe secret key",
                f"{exc}; copy the secret key again from {DASHBOARD_KEYS} (a restricted key "
                "needs write access to PaymentIntents and read access to Events and Webhook "
                "Endpoints)",
            )
        )
        return found
    except BuyTokensError as exc:
        found.append(problem("Stripe", f"{exc}; check this machine's network and proxy"))
        return found
    mode = config.secret_key.mode if config.secret_key is not None else None
    found.append(ok("Stripe secret key", "accepted" + (f" ({mode.value} mode)" if mode else "")))
    if server is PaymentServer.LOCALSTRIPE:
        found.append(
            note(
                "Stripe webhook",
                "not checked: localstripe cannot list webhook endpoints; register one with "
                f"POST /_config/webhooks/ID (url ending in {WEBHOOK_PATH}, secret = "
                "STRIPE_WEBHOOK_SECRET), as `buytokens demo` does",
            )
        )
        return found
    try:
        endpoints = account.webhook_endpoints()
    except BuyTokensError as exc:
        found.append(
            warning(
                "Stripe webhook",
                f"not checked ({exc}); check the endpoint in {DASHBOARD_WEBHOOKS} by hand",
            )
        )
        return found
    found.extend(check_webhooks(endpoints, required))
    return found


def _server(config: Configuration, server: PaymentServer) -> Finding:
    subject = "STRIPE_API_BASE"
    base = config.api_base or "https://api.stripe.com"
    pinned = f", version {config.api_version} (STRIPE_API_VERSION)" if config.api_version else ""
    if server is PaymentServer.STRIPE:
        return ok(subject, f"Stripe's API {base}{pinned}")
    if server is PaymentServer.UNREACHABLE:
        return problem(
            subject,
            f"nothing answers at {base}: start the server it names, or fix the URL, or unset "
            "STRIPE_API_BASE to use Stripe itself",
        )
    if server is PaymentServer.LOCALSTRIPE:
        return note(
            subject,
            f"{base} is localstripe, a development fake. Payment intents are created in its "
            "2017 API (payment_method_types, no receipt_email) without setting "
            "STRIPE_API_VERSION. It cannot: retry a webhook delivery (it tries each once), "
            f"send events other than {' and '.join(_LOCALSTRIPE_EVENTS)} (refunds, disputes "
            "and cancellations cannot be tried on it), or list webhook endpoints",
        )
    parts = urlsplit(base)
    if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return warning(
            subject,
            f"{base} is reached over plain http, so the secret key crosses the network "
            "unencrypted: use https",
        )
    return note(
        subject,
        f"{base} is not Stripe's API host and not localstripe; it is checked as Stripe "
        f"(a proxy?){pinned}",
    )


def check_webhooks(endpoints: Sequence[WebhookEndpoint], required: frozenset[str]) -> list[Finding]:
    """Whether an enabled endpoint at the webhook route receives every event type required."""
    subject = "Stripe webhook"
    wanted = ", ".join(sorted(required))
    ours = [e for e in endpoints if urlsplit(e.url).path.rstrip("/").endswith(WEBHOOK_PATH)]
    if not ours:
        registered = ", ".join(e.url for e in endpoints) or "none"
        return [
            problem(
                subject,
                f"no endpoint's URL ends in {WEBHOOK_PATH} (registered: {registered}): add "
                f"https://YOUR-HOST{WEBHOOK_PATH} in {DASHBOARD_WEBHOOKS} with the events "
                f"{wanted}, and put its signing secret in STRIPE_WEBHOOK_SECRET",
            )
        ]
    verdicts = [(endpoint, _endpoint_fault(endpoint, required)) for endpoint in ours]
    good = [endpoint for endpoint, fault in verdicts if fault is None]
    found = []
    for endpoint in good:
        every = "every event type" if "*" in endpoint.events else f"all {len(required)} event types"
        found.append(
            ok(
                subject,
                f"{endpoint.id} {endpoint.url}: enabled, receives {every} buytokens acts on",
            )
        )
    for endpoint, fault in verdicts:
        if fault is not None:
            # With a working endpoint elsewhere, a broken one (an old host?) loses nothing.
            report = note if good else problem
            found.append(report(subject, f"{endpoint.id} {endpoint.url}: {fault}"))
    return found


def _endpoint_fault(endpoint: WebhookEndpoint, required: frozenset[str]) -> str | None:
    if not endpoint.enabled:
        return f"disabled, so Stripe sends it nothing: enable it in {DASHBOARD_WEBHOOKS}"
    if urlsplit(endpoint.url).path.endswith("/"):
        return (
            "the URL ends in a slash, which buytokens answers with a redirect and Stripe counts "
            f"as a failed delivery: change it to end in {WEBHOOK_PATH}"
        )
    missing = sorted(required - endpoint.events) if "*" not in endpoint.events else []
    if missing:
        return (
            f"not subscribed to {', '.join(missing)}: add "
            f"{'this event' if len(missing) == 1 else 'these events'} to the endpoint in "
            f"{DASHBOARD_WEBHOOKS}"
        )
    return None
