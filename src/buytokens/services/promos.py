"""Promo codes: defining them, pricing a package with one, and holding, paying for and
releasing a checkout's use of one under the code's limits (docs/CODES.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import attrs

from buytokens.domain.catalogue import Catalogue
from buytokens.domain.checkout import CancelOutcome
from buytokens.domain.errors import (
    BuyTokensError,
    ConcurrentUpdate,
    GatewayUnavailable,
    InvalidPromoDefinition,
    NotFound,
)
from buytokens.domain.money import Money
from buytokens.domain.promo_uses import (
    HoldDecision,
    PaymentDecision,
    PaymentOutcome,
    PromoUsage,
    PromoUse,
    decide_hold,
    decide_payment,
    expired_holds,
    usage,
)
from buytokens.domain.promotions import (
    PromoCode,
    PromoQuote,
    check_definition,
    normal_promo_code,
    quote,
    require_promo_code,
)
from buytokens.ports.clock import Clock
from buytokens.ports.payments import PaymentGateway
from buytokens.ports.promos import PromoCodes

# Each round is lost only to a checkout that took a ticket meanwhile; a code has
# far fewer simultaneous checkouts than this.
MAX_ROUNDS = 64


@attrs.frozen
class PromoDesk:
    """What the promo use cases run on: the codes, the catalogue they price, time."""

    promos: PromoCodes
    catalogue: Catalogue
    clock: Clock


@attrs.frozen
class PromoListing:
    """One line of ``promo list``."""

    promo: PromoCode
    usage: PromoUsage


def create_promo(
    desk: PromoDesk,
    code: str,
    *,
    percent_off: int | None = None,
    amount_off: int | Money | None = None,
    package_ids: Iterable[str] | None = None,
    max_redemptions: int | None = None,
    per_user: int = 1,
    expires_at: datetime | None = None,
) -> PromoCode:
    """Define and store a new code; InvalidPromoDefinition when it breaks a rule or exists.

    ``amount_off`` is Money, or minor units of the catalogue's currency (as the CLI takes it).
    """
    now = desk.clock.now()
    if amount_off is not None and not isinstance(amount_off, Money):
        amount_off = Money(amount_off, desk.catalogue.currency)
    promo = PromoCode.define(
        code,
        now,
        percent_off=percent_off,
        amount_off=amount_off,
        package_ids=package_ids,
        max_redemptions=max_redemptions,
        per_user=per_user,
        expires_at=expires_at,
    )
    check_definition(promo, desk.catalogue)
    if not desk.promos.create(promo):
        raise InvalidPromoDefinition(f"promo code {promo.code} already exists")
    return promo


def list_promos(desk: PromoDesk) -> Sequence[PromoListing]:
    """Every code, newest first, with its paid uses and live holds."""
    return [listing_of(desk, promo) for promo in desk.promos.codes()]


def listing_of(desk: PromoDesk, promo: PromoCode) -> PromoListing:
    """One code with its paid uses and live holds now."""
    return PromoListing(promo, usage(desk.promos.live_uses(promo.code), desk.clock.now()))


def disable_promo(desk: PromoDesk, code: str) -> PromoCode:
    """Refuse the code from now on (checkouts already holding it keep their price)."""
    normal = normal_promo_code(code)
    if normal is None or not desk.promos.disable(normal):
        shown = code.strip() if isinstance(code, str) else code
        raise NotFound(f"there is no promo code {shown!r}")
    promo = desk.promos.get(normal)
    if promo is None:  # pragma: no cover - codes are never deleted
        raise NotFound(f"there is no promo code {normal}")
    return promo


def preview_promo(desk: PromoDesk, code: str, package_id: str) -> PromoQuote:
    """The price of a package with a code as a buyer typed it; InvalidPromoCode or
    UnknownPackage. Limits are not looked at: they are decided when a checkout holds."""
    package = desk.catalogue.get(package_id)
    normal = require_promo_code(code)
    return quote(desk.promos.get(normal), package, desk.clock.now())


def _uses_for(promos: PromoCodes, code: str, checkout_id: str) -> list[PromoUse]:
    uses = list(promos.live_uses(code))
    own = promos.find_use(checkout_id)
    if own is not None and all(u.checkout_id != checkout_id for u in uses):
        uses.append(own)
    return uses


def _write(promos: PromoCodes, decision: HoldDecision | PaymentDecision, now: datetime) -> bool:
    """Retire, then write the decision's use; False when someone else was first."""
    if not all(promos.retire(stale, now) for stale in decision.retire):
        return False
    use = decision.use
    return use is None or promos.write_use(use, decision.previous)


def hold_promo(
    desk: PromoDesk, code: str, user_id: str, checkout_id: str, package_id: str
) -> tuple[PromoQuote, PromoUse]:
    """Price the package with the code and hold one use of it for the checkout.

    Raises InvalidPromoCode (any refusal, limits included), UnknownPackage, or
    ConcurrentUpdate when other checkouts kept taking the free tickets first.
    A checkout that holds the code already keeps its hold.
    """
    package = desk.catalogue.get(package_id)
    normal = require_promo_code(code)
    for _round in range(MAX_ROUNDS):
        now = desk.clock.now()
        promo = desk.promos.get(normal)
        priced = quote(promo, package, now)
        assert promo is not None  # quote refuses an unknown code
        decision = decide_hold(
            promo,
            _uses_for(desk.promos, normal, checkout_id),
            user_id,
            checkout_id,
            package.id,
            now,
        )
        if decision.existing or _write(desk.promos, decision, now):
            return priced, decision.use
    raise ConcurrentUpdate(f"promo code {normal} is in great demand; try again")


def count_payment(
    promos: PromoCodes,
    code: str,
    user_id: str,
    checkout_id: str,
    payment_intent_id: str,
    now: datetime,
) -> PaymentDecision:
    """Count a succeeded payment's use of ``code``: the checkout's hold becomes paid, a use
    that is gone is counted if there is room, else OVER_LIMIT (the purchase goes to review).

    A code that no longer exists counts nothing and refuses nothing: the price was fixed
    when the checkout began. Repeating it is a no-op (ALREADY_COUNTED).
    """
    for _round in range(MAX_ROUNDS):
        promo = promos.get(code)
        if promo is None:
            return PaymentDecision(PaymentOutcome.ALREADY_COUNTED)
        decision = decide_payment(
            promo,
            _uses_for(promos, code, checkout_id),
            user_id,
            checkout_id,
            payment_intent_id,
            now,
        )
        if decision.outcome is not PaymentOutcome.COUNTED or _write(promos, decision, now):
            return decision
    raise ConcurrentUpdate(f"promo code {code} is in great demand; try again")


@attrs.frozen
class SweepReport:
    """What one pass of ``sweep_holds`` did with the expired holds it found, and with the
    uses that checkouts retired before their intents were canceled."""

    retired: Sequence[PromoUse] = ()  # released; their intents canceled, or they had none
    paying: Sequence[PromoUse] = ()  # their intents succeeded or are processing: left held
    unreachable: Sequence[PromoUse] = ()  # the provider could not be reached: next pass
    failed: Sequence[tuple[PromoUse, str]] = ()  # the provider refused; why, for an operator
    canceled: Sequence[PromoUse] = ()  # retired by a checkout; their intents now canceled


def sweep_holds(desk: PromoDesk, payments: PaymentGateway) -> SweepReport:
    """Retire every expired hold, canceling its payment intent first so that it cannot be
    paid later at the discount; then cancel the intents of uses that a checkout retired
    to take their tickets (``cancel_pending``) and clear the flag (docs/CODES.md, "Sweeper").

    A hold is retired only once its intent is canceled (or it has none, or the
    provider does not know it). An intent that succeeded or is processing keeps
    its hold, or has its flag cleared: its payment counts the use, or goes to
    review, by the usual rules. When the provider cannot be reached, this pass
    asks it nothing more; the holds with intents stay, expired (they count
    against no limit), and the flags stay set, for the next pass. A refusal
    leaves them too. StoreUnavailable ends the pass.
    """
    now = desk.clock.now()
    retired: list[PromoUse] = []
    paying: list[PromoUse] = []
    unreachable: list[PromoUse] = []
    failed: list[tuple[PromoUse, str]] = []
    canceled: list[PromoUse] = []

    def cancel(use: PromoUse, intent: str) -> CancelOutcome | None:
        """What became of the intent; None when ``use`` went to unreachable or failed."""
        if unreachable:
            unreachable.append(use)
            return None
        try:
            outcome = payments.cancel_payment_intent(intent)
        except NotFound:
            return CancelOutcome.CANCELED  # nothing the provider could ever take payment for
        except GatewayUnavailable:
            unreachable.append(use)
            return None
        except BuyTokensError as exc:
            failed.append((use, f"{exc.code}: {exc.message}"))
            return None
        if outcome is CancelOutcome.TOO_LATE:
            paying.append(use)
        return outcome

    for promo in desk.promos.codes():
        for hold in expired_holds(desk.promos.live_uses(promo.code), now):
            intent = hold.payment_intent_id
            if intent is not None and cancel(hold, intent) is not CancelOutcome.CANCELED:
                continue
            if desk.promos.retire(hold, now, intent_canceled=True):
                retired.append(hold)
    for use in desk.promos.pending_cancels():
        assert use.payment_intent_id is not None  # a PromoUse invariant
        outcome = cancel(use, use.payment_intent_id)
        if outcome is None:
            continue  # the flag stays for the next pass
        # Canceled, or too late and left to the payment rules. A late payment that
        # rewrote the use meanwhile has cleared the flag already.
        cleared = desk.promos.write_use(attrs.evolve(use, cancel_pending=False), use)
        if cleared and outcome is CancelOutcome.CANCELED:
            canceled.append(use)
    return SweepReport(
        tuple(retired), tuple(paying), tuple(unreachable), tuple(failed), tuple(canceled)
    )
