"""The public API changes only on purpose: it is compared with a checked-in snapshot."""

from __future__ import annotations

import difflib
import importlib
import inspect

import pytest

from buytokens import BuyTokens
from tests.support.surface import PUBLIC_MODULES, SNAPSHOT, describe

HOW_TO_UPDATE = """\
The public API of buytokens changed (diff above: - snapshot, + now).
If that is deliberate:
  1. rewrite the snapshot: .venv/bin/python -m tests.support.surface --write
  2. add a line under "Unreleased" in CHANGELOG.md, saying whether the change is breaking
     (docs/LIBRARY.md, "What is public, and how versions change", says which changes are);
  3. commit both with the change.
If it is not deliberate, keep the name, signature or member as it was."""


def test_the_public_surface_matches_the_snapshot() -> None:
    """Every exported name, signature and class member is as recorded in public_surface.txt."""
    recorded = SNAPSHOT.read_text(encoding="utf-8")
    now = describe()
    if now != recorded:
        diff = "\n".join(
            difflib.unified_diff(
                recorded.splitlines(), now.splitlines(), "snapshot", "now", lineterm=""
            )
        )
        pytest.fail(f"{diff}\n\n{HOW_TO_UPDATE}", pytrace=False)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_exists_once_and_says_what_it_is(module_name: str) -> None:
    """``__all__`` lists real, distinct names, and each class and function has a docstring."""
    module = importlib.import_module(module_name)
    assert len(module.__all__) == len(set(module.__all__))
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{module_name}.{name} has no docstring"


def test_every_use_case_of_the_facade_states_its_contract() -> None:
    """Each public method and property of BuyTokens has its own docstring."""
    for name, member in vars(BuyTokens).items():
        if name.startswith("_"):
            continue
        target = member.fget if isinstance(member, property) else member
        target = getattr(target, "__func__", target)
        assert (target.__doc__ or "").strip(), f"BuyTokens.{name} has no docstring"
