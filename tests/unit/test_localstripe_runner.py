"""Starting localstripe when it is missing."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from buytokens.testing.localstripe import LocalStripe, LocalStripeError


def test_a_missing_localstripe_is_named_with_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the package, start() says so in one line instead of a child's traceback."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "localstripe" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(LocalStripeError, match="localstripe is not installed"):
        LocalStripe.start()
