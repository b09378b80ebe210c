"""Reading a catalogue from a TOML or JSON file.

The file lists packages with integer minor-unit prices::

    currency = "cny"

    [[packages]]
    id = "package_500k"
    label = "Popular"
    tokens = 500000
    amount = 3500            # ¥35.00
    original_amount = 5000   # optional, shown struck through
    popular = true           # optional

JSON takes the same keys. A package may repeat ``currency``; it must match.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from buytokens.domain.catalogue import Catalogue, TokenPackage
from buytokens.domain.errors import InvalidCatalogue, InvalidMoney
from buytokens.domain.money import Money

_KEYS = {"id", "label", "tokens", "amount", "original_amount", "popular", "currency"}


def load_catalogue(path: str | Path) -> Catalogue:
    """Parse and validate the catalogue file; any problem raises InvalidCatalogue naming
    the file and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidCatalogue(
            f"cannot read it ({exc.strerror})", field="file", source=str(path)
        ) from exc
    try:
        data: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise InvalidCatalogue(
            f"is not valid {kind}: {exc}", field="file", source=str(path)
        ) from exc
    try:
        return catalogue_from_mapping(data)
    except InvalidCatalogue as exc:
        raise exc.in_source(str(path)) from exc


def catalogue_from_mapping(data: Any) -> Catalogue:
    """Build a catalogue from already-parsed data (see the module docstring for its shape)."""
    if not isinstance(data, Mapping):
        raise InvalidCatalogue("must be a table with 'currency' and 'packages'", field="catalogue")
    currency = data.get("currency")
    if not isinstance(currency, str):
        raise InvalidCatalogue(
            'must be a three-letter currency code such as "cny"', field="currency"
        )
    rows = data.get("packages")
    if not isinstance(rows, list) or not rows:
        raise InvalidCatalogue("must be a non-empty list of packages", field="packages")
    return Catalogue(_package(row, index, currency.lower()) for index, row in enumerate(rows))


def _package(row: Any, index: int, currency: str) -> TokenPackage:
    where = f"packages[{index}]"
    if not isinstance(row, Mapping):
        raise InvalidCatalogue("must be a table", field=where)
    package_id = row.get("id")
    if isinstance(package_id, str) and package_id:
        where = f"packages.{package_id}"
    unknown = sorted(set(row) - _KEYS)
    if unknown:
        raise InvalidCatalogue(f"unknown key(s) {', '.join(unknown)}", field=where)
    own_currency = row.get("currency", currency)
    if not isinstance(own_currency, str) or own_currency.lower() != currency:
        raise InvalidCatalogue(
            f"is {own_currency!r} but the catalogue is {currency!r}; "
            "mixed currencies are not supported",
            field=f"{where}.currency",
        )
    for key in ("id", "label"):
        if not isinstance(row.get(key), str):
            raise InvalidCatalogue("is required and must be a string", field=f"{where}.{key}")
    for key in ("tokens", "amount"):
        if type(row.get(key)) is not int:
            raise InvalidCatalogue("is required and must be an integer", field=f"{where}.{key}")
    original = row.get("original_amount")
    if original is not None and type(original) is not int:
        raise InvalidCatalogue(
            "must be an integer of minor units", field=f"{where}.original_amount"
        )
    popular = row.get("popular", False)
    if not isinstance(popular, bool):
        raise InvalidCatalogue("must be true or false", field=f"{where}.popular")
    try:
        price = Money(row["amount"], currency)
        original_price = None if original is None else Money(original, currency)
    except InvalidMoney as exc:
        raise InvalidCatalogue(exc.message, field=f"{where}.currency") from exc
    return TokenPackage(row["id"], row["label"], row["tokens"], price, original_price, popular)
