"""Running every check of ``buytokens doctor``, in the order an operator fixes them."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from buytokens.domain.catalogue import Catalogue
from buytokens.ports.diagnostics import PaymentAccount, StoreInspector
from buytokens.services.doctor.environment import Configuration, check_environment
from buytokens.services.doctor.report import DoctorReport
from buytokens.services.doctor.store import check_store
from buytokens.services.doctor.stripe_checks import check_stripe


def diagnose(
    config: Configuration,
    store: StoreInspector,
    account: PaymentAccount | None,
    required_events: Iterable[str],
    catalogue: Callable[[], Catalogue],
) -> DoctorReport:
    """Run every check and word its outcome.

    ``account`` is None when no secret key is configured (the Stripe checks are
    then skipped); ``required_events`` are the event types buytokens acts on;
    ``catalogue`` loads the configured catalogue.
    """
    server = account.server() if account is not None else None
    findings = [
        *check_environment(config, server, catalogue),
        *check_store(store.inspect()),
        *check_stripe(config, account, server, frozenset(required_events)),
    ]
    return DoctorReport(tuple(findings))
