"""Every use case's dependencies over the parts a test gives, in-memory fakes for the rest.

Unlike the composition root, nothing is wrapped: the gateway a test passes is
the one every use case calls.
"""

from __future__ import annotations

from buytokens.adapters.memory import (
    InMemoryBalanceRepository,
    InMemoryCheckoutKeys,
    SequentialIdSource,
)
from buytokens.adapters.stripe_gateway import STRIPE_EVENT_HISTORY
from buytokens.adapters.stripe_methods import offered_payment_methods
from buytokens.domain.catalogue import DEFAULT_CATALOGUE, Catalogue
from buytokens.entrypoints.composition import UseCaseDependencies
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.checkout import CheckoutKeys
from buytokens.ports.clock import Clock, IdSource
from buytokens.ports.payments import PaymentGateway
from buytokens.ports.promos import PromoCodes
from buytokens.services.admin import ApprovalDependencies, GrantDependencies
from buytokens.services.buying import BuyingDependencies, CheckingDependencies
from buytokens.services.crediting import CreditingDependencies
from buytokens.services.gifts import GiftCodes
from buytokens.services.reconciliation import ReconcileDependencies
from buytokens.services.webhooks import WebhookDependencies


def wire(
    gateway: PaymentGateway,
    clock: Clock,
    *,
    store: BalanceRepository | None = None,
    catalogue: Catalogue = DEFAULT_CATALOGUE,
    keys: CheckoutKeys | None = None,
    ids: IdSource | None = None,
    gifts: GiftCodes | None = None,
    promos: PromoCodes | None = None,
) -> UseCaseDependencies:
    """The use cases on ``gateway`` and ``clock``; an in-memory store and keys by default."""
    store = store if store is not None else InMemoryBalanceRepository(clock)
    ids = ids if ids is not None else SequentialIdSource()
    crediting = CreditingDependencies(store, catalogue, clock, gifts, promos)
    events = crediting
    return UseCaseDependencies(
        catalogue,
        store,
        BuyingDependencies(
            catalogue,
            offered_payment_methods(catalogue.currency),
            store,
            gateway,
            keys if keys is not None else InMemoryCheckoutKeys(),
            clock,
            ids,
            gifts,
            promos,
        ),
        CheckingDependencies(crediting, gateway),
        WebhookDependencies(gateway, events),
        ReconcileDependencies(gateway, events, STRIPE_EVENT_HISTORY),
        GrantDependencies(store, ids),
        ApprovalDependencies(store, clock),
    )
