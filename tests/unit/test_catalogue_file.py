"""Loading a catalogue from TOML or JSON, and refusing a broken one clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from buytokens.adapters.catalogue_file import load_catalogue
from buytokens.domain.errors import InvalidCatalogue

GOOD_TOML = """
currency = "usd"

[[packages]]
id = "starter"
label = "Starter"
tokens = 200000
amount = 499

[[packages]]
id = "bulk"
label = "Bulk"
tokens = 5000000
amount = 4900
original_amount = 9800
popular = true
"""


def test_a_toml_catalogue_loads_with_derived_discounts(tmp_path: Path) -> None:
    """Prices, tokens and the popular flag come from the file; the discount is derived."""
    path = tmp_path / "packages.toml"
    path.write_text(GOOD_TOML)
    catalogue = load_catalogue(path)
    assert catalogue.currency == "usd"
    bulk = catalogue.get("bulk")
    assert (bulk.tokens, bulk.price.format(), bulk.discount_percent, bulk.popular) == (
        5_000_000,
        "$49.00",
        50,
        True,
    )


def test_a_json_catalogue_loads(tmp_path: Path) -> None:
    """JSON files take the same keys."""
    path = tmp_path / "packages.json"
    path.write_text(
        json.dumps(
            {"currency": "CNY", "packages": [{"id": "a", "label": "A", "tokens": 1, "amount": 1}]}
        )
    )
    assert [p.id for p in load_catalogue(path)] == ["a"]


def _package(**overrides: object) -> dict[str, object]:
    return {"id": "p1", "label": "P", "tokens": 10, "amount": 100} | overrides


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"currency": "cny", "packages": [_package(), _package()]}, "packages.p1"),
        ({"currency": "cny", "packages": [_package(tokens=0)]}, "packages.p1.tokens"),
        ({"currency": "cny", "packages": [_package(tokens=1.5)]}, "packages.p1.tokens"),
        ({"currency": "cny", "packages": [_package(amount=-1)]}, "packages.p1.amount"),
        (
            {"currency": "cny", "packages": [_package(original_amount=50)]},
            "packages.p1.original_amount",
        ),
        ({"currency": "cny", "packages": [_package(currency="usd")]}, "packages.p1.currency"),
        ({"currency": "cny", "packages": [_package(price=5)]}, "packages.p1"),
        ({"currency": "cny", "packages": [_package(popular="yes")]}, "packages.p1.popular"),
        ({"currency": "cny", "packages": []}, "packages"),
        ({"packages": [_package()]}, "currency"),
        (
            {"currency": "cny", "packages": [{"label": "no id", "tokens": 1, "amount": 1}]},
            "packages[0].id",
        ),
    ],
)
def test_a_broken_file_is_refused_naming_file_and_field(
    tmp_path: Path, data: dict[str, object], field: str
) -> None:
    """Every problem names the file and the field at fault."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidCatalogue) as caught:
        load_catalogue(path)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"catalogue {path}: {field}: ")


def test_unparsable_and_missing_files_are_refused(tmp_path: Path) -> None:
    """Syntax errors and unreadable files are catalogue errors too, never tracebacks."""
    broken = tmp_path / "broken.toml"
    broken.write_text("currency = ")
    with pytest.raises(InvalidCatalogue, match="is not valid TOML"):
        load_catalogue(broken)
    with pytest.raises(InvalidCatalogue, match="cannot read it"):
        load_catalogue(tmp_path / "absent.toml")
