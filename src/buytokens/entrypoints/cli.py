"""The ``buytokens`` command."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from buytokens._version import __version__
from buytokens.adapters.stripe_gateway import STRIPE_EVENT_HISTORY
from buytokens.domain.catalogue import Catalogue
from buytokens.domain.codes import MAX_CODES_PER_BATCH, CodeKind, CodeRecord, masked
from buytokens.domain.crediting import NOT_APPROVABLE
from buytokens.domain.errors import BuyTokensError
from buytokens.domain.ledger import MAX_TOKENS, LedgerEntry, check_reason, check_user_id
from buytokens.domain.money import Money
from buytokens.domain.purchases import Purchase
from buytokens.entrypoints.container import Container, create_container
from buytokens.services.admin import approve_purchase, grant_tokens, purchases_to_review
from buytokens.services.codes import create_codes, list_codes
from buytokens.services.promos import PromoListing, create_promo, disable_promo, list_promos
from buytokens.services.reconciliation import ReconcileOutcome, ReconcileReport, reconcile

_HINTS = {NOT_APPROVABLE: "; use `buytokens grant` instead"}
"""What to do next, after the error line of a refusal with this code."""

MAX_ROWS = 10_000
"""The most rows ``--limit`` may ask for."""
MAX_PAYMENT_INTENT_ID = 255
_MAX_DIGITS = 30


class UsageError(Exception):
    """The command line itself is wrong."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _shown(value: str, limit: int = 40) -> str:
    """``value`` quoted for an error line, cut short when it is absurdly long."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _user_id(value: str) -> str:
    try:
        return check_user_id(value)
    except BuyTokensError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _whole_number(value: str, name: str) -> int:
    text = value.strip().replace("_", "").replace(",", "")
    digits = text.removeprefix("-").removeprefix("+")
    if not digits.isdecimal():
        raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {_shown(value)}")
    # Far more digits than any bound: refuse before int() spends time on them.
    if len(digits) > _MAX_DIGITS:
        raise argparse.ArgumentTypeError(f"{name} is out of range: {len(digits):,} digits")
    return int(text)


def _tokens(value: str) -> int:
    tokens = _whole_number(value, "TOKENS")
    if tokens == 0:
        raise argparse.ArgumentTypeError("TOKENS must not be zero")
    return tokens


def _limit(value: str) -> int:
    limit = _whole_number(value, "--limit")
    if not 0 < limit <= MAX_ROWS:
        raise argparse.ArgumentTypeError(f"--limit must be 1-{MAX_ROWS:,}, got {_shown(value)}")
    return limit


def _payment_intent_id(value: str) -> str:
    value = value.strip()
    if not 0 < len(value) <= MAX_PAYMENT_INTENT_ID or not value.isprintable():
        raise argparse.ArgumentTypeError(
            f"PAYMENT_INTENT must be 1-{MAX_PAYMENT_INTENT_ID} printable characters, "
            f"got {_shown(value)}"
        )
    return value


def _code_tokens(value: str) -> int:
    tokens = _whole_number(value, "--tokens")
    if not 0 < tokens <= MAX_TOKENS:
        raise argparse.ArgumentTypeError(f"--tokens must be 1-{MAX_TOKENS:,}, got {_shown(value)}")
    return tokens


def _count(value: str) -> int:
    count = _whole_number(value, "--count")
    if not 0 < count <= MAX_CODES_PER_BATCH:
        raise argparse.ArgumentTypeError(
            f"--count must be 1-{MAX_CODES_PER_BATCH:,}, got {_shown(value)}"
        )
    return count


def _percent(value: str) -> int:
    percent = _whole_number(value, "--percent-off")
    if not 1 <= percent <= 100:
        raise argparse.ArgumentTypeError(f"--percent-off must be 1-100, got {_shown(value)}")
    return percent


def _positive(option: str) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = _whole_number(value, option)
        if number < 1 or len(str(number)) > _MAX_DIGITS // 2:
            raise argparse.ArgumentTypeError(
                f"{option} must be a positive whole number, got {_shown(value)}"
            )
        return number

    return parse


def _package_ids(value: str) -> list[str]:
    ids = [part.strip() for part in value.split(",") if part.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("--packages needs at least one package id")
    return ids


def _reason(value: str) -> str:
    try:
        return check_reason(value)
    except BuyTokensError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _moment(value: str) -> datetime:
    text = value.strip()
    try:
        if len(text) > 40:
            raise ValueError(text)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--expires takes an ISO-8601 date or time such as 2026-12-31 or "
            f"2026-12-31T18:00+08:00, got {_shown(value)}"
        ) from None
    # A date or a time without an offset is read as UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _port(value: str) -> int:
    if not value.isdecimal() or len(value) > 5 or not 0 < int(value) < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {_shown(value)}")
    return int(value)


_WINDOW = re.compile(r"^([0-9]{1,6})([mhd])$")
_WINDOW_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def _window(value: str) -> timedelta:
    match = _WINDOW.match(value.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"--since takes a duration such as 90m, 12h or 3d, got {_shown(value)}"
        )
    window = timedelta(**{_WINDOW_UNITS[match[2]]: int(match[1])})
    history = STRIPE_EVENT_HISTORY
    if not timedelta(0) < window <= history.window:
        raise argparse.ArgumentTypeError(
            f"--since must be more than 0 and at most {history.window.days}d "
            f"({history.provider} keeps events for {history.window.days} days), "
            f"got {_shown(value)}"
        )
    return window


def _add_promo_commands(commands: argparse._SubParsersAction[_Parser]) -> None:
    promo = commands.add_parser("promo", help="define, list and disable promo codes")
    promo_commands = promo.add_subparsers(dest="promo_command", required=True, parser_class=_Parser)
    promo_create = promo_commands.add_parser(
        "create", help="a promo code (case-insensitive) with exactly one kind of discount"
    )
    promo_create.add_argument("code", help="3-32 letters, digits, '-' or '_'")
    discount = promo_create.add_mutually_exclusive_group(required=True)
    discount.add_argument("--percent-off", type=_percent, help="whole percent off the price, 1-100")
    discount.add_argument(
        "--amount-off",
        type=_positive("--amount-off"),
        help="minor units off the price, in the catalogue's currency",
    )
    promo_create.add_argument(
        "--packages", type=_package_ids, help="comma-separated package ids (default: all)"
    )
    promo_create.add_argument(
        "--max-redemptions", type=_positive("--max-redemptions"), help="paid uses in all"
    )
    promo_create.add_argument(
        "--per-user", type=_positive("--per-user"), default=1, help="uses per buyer (default 1)"
    )
    promo_create.add_argument(
        "--expires", type=_moment, help="ISO-8601 date or time, UTC unless it says otherwise"
    )
    promo_commands.add_parser("list", help="the codes with their paid uses and live holds")
    promo_disable = promo_commands.add_parser(
        "disable", help="refuse a code from now on (purchases already made keep their price)"
    )
    promo_disable.add_argument("code")


def _parser() -> _Parser:
    parser = _Parser(prog="buytokens", description="Sell token packages through Stripe.")
    parser.add_argument("--version", action="version", version=f"buytokens {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    serve = commands.add_parser("serve", help="serve the HTTP API and the Buy Tokens page")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=3080, help="port (default 3080)")
    demo = commands.add_parser("demo", help="a working purchase against a local fake Stripe")
    demo.add_argument("--port", type=_port, default=3080, help="port (default 3080)")
    commands.add_parser("packages", help="print the catalogue")
    balance = commands.add_parser("balance", help="print a user's token credits")
    balance.add_argument("user_id", metavar="USER_ID", type=_user_id)
    history = commands.add_parser("history", help="print a user's purchases and ledger entries")
    history.add_argument("user_id", metavar="USER_ID", type=_user_id)
    history.add_argument("--limit", type=_limit, default=50, help="rows of each kind (default 50)")
    grant = commands.add_parser("grant", help="adjust a user's balance (negative deducts)")
    grant.add_argument("user_id", metavar="USER_ID", type=_user_id)
    grant.add_argument("tokens", metavar="TOKENS", type=_tokens)
    grant.add_argument("--reason", required=True, help="why, for the audit trail")
    grant.add_argument("--key", help="idempotency key: repeating the command with it grants once")
    review = commands.add_parser("review", help="list purchases flagged for review")
    review.add_argument("--limit", type=_limit, default=100, help="rows at most (default 100)")
    approve = commands.add_parser(
        "approve", help="credit a purchase flagged for review after checking it by hand"
    )
    approve.add_argument("payment_intent_id", metavar="PAYMENT_INTENT", type=_payment_intent_id)
    approve.add_argument("--reason", required=True, help="why, for the audit trail")
    reconcile_ = commands.add_parser(
        "reconcile", help="apply the Stripe events of a recent window that webhooks missed"
    )
    reconcile_.add_argument(
        "--since",
        type=_window,
        default=timedelta(days=3),
        help="how far back: 90m, 12h, 3d... at most 30d (default 3d)",
    )
    codes = commands.add_parser("codes", help="issue and list redemption codes")
    code_commands = codes.add_subparsers(dest="codes_command", required=True, parser_class=_Parser)
    create = code_commands.add_parser(
        "create", help="issue codes worth TOKENS each; prints them one per line, once"
    )
    create.add_argument("--tokens", type=_code_tokens, required=True, help="tokens per code")
    create.add_argument("--count", type=_count, required=True, help="how many codes")
    create.add_argument("--reason", type=_reason, required=True, help="why, for the audit trail")
    create.add_argument(
        "--expires", type=_moment, help="ISO-8601 date or time, UTC unless it says otherwise"
    )
    code_list = code_commands.add_parser(
        "list", help="the codes with their state (a code itself is never shown again)"
    )
    code_list.add_argument(
        "--unredeemed", action="store_true", help="only codes that can still be redeemed"
    )
    code_list.add_argument(
        "--limit", type=_limit, default=1000, help="rows at most, newest first (default 1000)"
    )
    _add_promo_commands(commands)
    doctor = commands.add_parser(
        "doctor", help="check the environment, the store and Stripe, and say what to fix"
    )
    doctor.add_argument(
        "--mode", choices=("test", "live"), help="the Stripe mode the keys must be in"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors are one line on stderr and a non-zero exit code."""
    try:
        args = _parser().parse_args(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return _run(args, create_container())
    except BuyTokensError as exc:
        print(f"buytokens: error: {exc}{_HINTS.get(exc.code, '')}", file=sys.stderr)
        return 1
    except OverflowError as exc:
        # A number past what a store can hold, from input no bound above caught yet.
        print(f"buytokens: error: a number is out of range: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace, container: Container) -> int:
    if args.command == "serve":
        from buytokens.entrypoints.server import serve  # noqa: PLC0415 - loads the web stack

        serve(container, args.host, args.port)
    elif args.command == "demo":
        from buytokens.testing.demo import run_demo  # noqa: PLC0415

        run_demo(args.port)
    elif args.command == "packages":
        print(_packages_table(container.catalogue()))
    elif args.command == "balance":
        print(container.store().balance(args.user_id))
    elif args.command == "history":
        store = container.store()
        print(_purchases_table(store.purchases(args.user_id, args.limit)))
        print()
        print(_ledger_table(store.ledger(args.user_id, args.limit)))
    elif args.command == "grant":
        entry = grant_tokens(
            container.granting(), args.user_id, args.tokens, args.reason, key=args.key
        )
        line = (
            f"{entry.user_id}: {entry.applied:+,} tokens ({entry.reason}); "
            f"balance {entry.balance_after:,}"
        )
        if entry.shortfall:
            line += f"; {entry.shortfall:,} could not be deducted (balance stops at zero)"
        print(line)
    elif args.command == "review":
        print(_review_table(purchases_to_review(container.store(), args.limit)))
    elif args.command == "approve":
        applied = approve_purchase(container.approving(), args.payment_intent_id, args.reason)
        credit = applied.entries[0]
        print(
            f"{args.payment_intent_id}: credited {credit.applied:+,} tokens to {credit.user_id}; "
            f"now {applied.purchase.status.value if applied.purchase else 'unknown'}"
        )
    elif args.command == "doctor":
        from buytokens.entrypoints.doctor import run_doctor  # noqa: PLC0415
        from buytokens.services.doctor.environment import Mode  # noqa: PLC0415

        return run_doctor(container, Mode(args.mode) if args.mode else None)
    elif args.command == "codes":
        return _codes(args, container)
    elif args.command == "promo":
        return _promo(args, container)
    elif args.command == "reconcile":
        report = reconcile(container.reconciling(), container.clock().now() - args.since)
        print(_reconcile_report(report))
        return 0 if report.complete else 1
    return 0


def _codes(args: argparse.Namespace, container: Container) -> int:
    desk = container.code_desk()
    if args.codes_command == "create":
        issued = create_codes(desk, args.tokens, args.count, args.reason, args.expires)
        # The only time these codes exist outside the operator's hands: stdout, nothing else.
        sys.stdout.write("".join(f"{code.display()}\n" for code in issued))
    else:
        records = list_codes(desk, unredeemed_only=args.unredeemed, limit=args.limit)
        print(_codes_table(records, desk.clock.now()))
    return 0


def _promo(args: argparse.Namespace, container: Container) -> int:
    desk = container.promo_desk()
    if args.promo_command == "create":
        promo = create_promo(
            desk,
            args.code,
            percent_off=args.percent_off,
            amount_off=args.amount_off,
            package_ids=args.packages,
            max_redemptions=args.max_redemptions,
            per_user=args.per_user,
            expires_at=args.expires,
        )
        print(f"{promo.code}: {promo.discount.describe()}")
    elif args.promo_command == "disable":
        promo = disable_promo(desk, args.code)
        print(f"{promo.code}: disabled")
    else:
        print(_promo_table(list_promos(desk)))
    return 0


def _promo_table(listings: Sequence[PromoListing]) -> str:
    if not listings:
        return "no promo codes"
    rows = [
        (
            item.promo.code,
            item.promo.discount.describe(),
            ",".join(sorted(item.promo.package_ids)) if item.promo.package_ids else "all",
            "" if item.promo.max_redemptions is None else f"{item.promo.max_redemptions:,}",
            str(item.promo.per_user),
            str(item.usage.paid),
            str(item.usage.held),
            _when(item.promo.expires_at),
            "disabled" if item.promo.disabled else "active",
        )
        for item in listings
    ]
    header = (
        "code",
        "discount",
        "packages",
        "max",
        "per user",
        "paid",
        "held",
        "expires (UTC)",
        "state",
    )
    return _table(header, rows)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [header, *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _packages_table(catalogue: Catalogue) -> str:
    rows = [
        (
            p.id,
            p.label,
            f"{p.tokens:,}",
            p.price.format(),
            p.original_price.format() if p.original_price else "",
            f"{p.discount_percent}%" if p.discount_percent else "",
            "popular" if p.popular else "",
        )
        for p in catalogue
    ]
    return _table(("id", "label", "tokens", "price", "was", "off", ""), rows)


def _money(money: Money | None) -> str:
    return "" if money is None else money.format()


def _purchases_table(purchases: Sequence[Purchase]) -> str:
    if not purchases:
        return "no purchases"
    rows = [
        (
            p.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            p.payment_intent_id,
            p.package_id or "",
            f"{p.tokens:,}",
            _money(p.price),
            p.status.value + (f" ({p.review_reason})" if p.review_reason else ""),
        )
        for p in purchases
    ]
    return _table(
        ("created (UTC)", "payment intent", "package", "tokens", "amount", "status"), rows
    )


def _review_table(purchases: Sequence[Purchase]) -> str:
    if not purchases:
        return "no purchases await review"
    rows = [
        (
            p.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            p.payment_intent_id,
            p.user_id or "",
            p.package_id or "",
            _money(p.price),
            p.review_reason or "",
        )
        for p in purchases
    ]
    return _table(("flagged (UTC)", "payment intent", "user", "package", "price", "reason"), rows)


def _ledger_table(entries: Sequence[LedgerEntry]) -> str:
    if not entries:
        return "no ledger entries"
    rows = [
        (
            e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            e.kind.value,
            f"{e.applied:+,}",
            f"{e.shortfall:,}" if e.shortfall else "",
            f"{e.balance_after:,}",
            e.reason,
        )
        for e in entries
    ]
    return _table(("at (UTC)", "kind", "tokens", "shortfall", "balance", "reason"), rows)


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _codes_table(records: Sequence[CodeRecord], now: datetime) -> str:
    if not records:
        return "no codes"
    rows = [
        (
            masked(r.hint),
            f"{r.tokens:,}",
            r.state(now).value + ("" if r.credited or r.redeemed_by is None else " (crediting)"),
            r.kind.value,
            _when(r.created_at),
            _when(r.expires_at),
            r.redeemed_by or "",
            _when(r.redeemed_at),
            _code_note(r),
        )
        for r in records
    ]
    header = (
        "code",
        "tokens",
        "state",
        "kind",
        "created (UTC)",
        "expires (UTC)",
        "redeemed by",
        "redeemed (UTC)",
        "reason",
    )
    return _table(header, rows)


def _code_note(record: CodeRecord) -> str:
    """The operator's reason; for a gift, its buyer and why it is void or pending."""
    if record.kind is not CodeKind.GIFT:
        return record.reason
    why = record.void_reason or record.pending_reason
    return f"gift from {record.buyer_id} ({record.payment_intent_id})" + (f": {why}" if why else "")


def _reconcile_report(report: ReconcileReport) -> str:
    summary = (
        f"Stripe events since {report.since:%Y-%m-%d %H:%M:%S} UTC: {report.found} found, "
        f"{report.applied} applied, {report.duplicates} already applied, {report.ignored} ignored, "
        f"{len(report.needs_review)} need review, {len(report.failed)} failed"
    )
    # Duplicates and ignored events are the normal case; only what changed or needs a human.
    quiet = (ReconcileOutcome.DUPLICATE, ReconcileOutcome.IGNORED)
    rows = [
        (e.outcome.value, e.event_id, e.type, e.payment_intent_id or "", e.reason)
        for e in report.events
        if e.outcome not in quiet
    ]
    if not rows:
        return summary
    return summary + "\n" + _table(("outcome", "event", "type", "payment intent", "reason"), rows)


if __name__ == "__main__":
    sys.exit(main())
