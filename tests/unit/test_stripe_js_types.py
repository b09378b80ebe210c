"""The page's Stripe.js calls are checked against Stripe's own type definitions, and can fail.

``tsc -p .`` (run by scripts/test) checks the page's modules with the tsconfig.json at the
repository root, against @stripe/stripe-js's declarations for Stripe.js v3. These tests copy the
modules and that tsconfig into a temporary tree, break the Stripe.js calls in ways a typo or a
misremembered API would, and show that the check names each mistake; the unchanged tree passes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from buytokens.entrypoints.web.page import static_dir

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"
TSC = NODE_MODULES / "typescript" / "bin" / "tsc"
STATIC = Path(str(static_dir()))
STATIC_IN_REPO = Path("src/buytokens/entrypoints/static")
PAGE_TYPES = Path("tests/page_types")

# (module, the correct text, a wrong one, what tsc must say about it)
MISTAKES = [
    (
        "pay.js",
        "{ payment_method: { card } }",
        "{ payment_method: { card: 42 } }",
        "Type 'number' is not assignable to type 'StripeCardElement",
    ),
    (
        "pay.js",
        "typeof stripe.confirmAlipayPayment ===",
        "typeof stripe.confirmAliPayPayment ===",
        "Property 'confirmAliPayPayment' does not exist on type 'Stripe'",
    ),
    (
        "pay.js",
        "{ return_url: back.href }",
        "{ returnUrl: back.href }",
        "'returnUrl' does not exist in type 'ConfirmAlipayPaymentData'",
    ),
    (
        "pay.js",
        "wechat_pay: { client: 'web' }",
        "wechat_pay: { client: 'desktop' }",
        """Type '"desktop"' is not assignable to type '"web"'""",
    ),
    (
        "pay.js",
        "state.card.mount('#bt-card-element')",
        "state.card.mount(42)",
        "Argument of type 'number' is not assignable to parameter of type 'string | HTMLElement'",
    ),
    (
        "pay.js",
        "{ locale: state.lang === 'en' ? 'en' : 'zh' }",
        "{ locale: state.lang === 'en' ? 'en' : 'cn' }",
        """Type '"en" | "cn"' is not assignable to type '"en" | "auto" | "zh" |""",
    ),
]


def _tree(tmp_path: Path) -> Path:
    """The page's modules, the type declarations and tsconfig.json, with the repo's node_modules."""
    if not TSC.is_file():
        pytest.fail(
            f"{TSC} is missing: run `npm ci` at the repository root (scripts/test does) "
            "to install TypeScript and @stripe/stripe-js for the page's type check"
        )
    tree = tmp_path / "page"
    shutil.copytree(STATIC, tree / STATIC_IN_REPO, ignore=shutil.ignore_patterns("*.css", "*.html"))
    shutil.copytree(ROOT / PAGE_TYPES, tree / PAGE_TYPES)
    shutil.copy(ROOT / "tsconfig.json", tree / "tsconfig.json")
    (tree / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
    return tree


def _tsc(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(TSC), "-p", str(tree), "--pretty", "false"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tree,
    )


def test_the_page_as_served_passes_the_check(tmp_path: Path) -> None:
    """The modules the server sends type-check cleanly under strict settings."""
    result = _tsc(_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_wrong_stripe_js_calls_fail_the_check_each_named(tmp_path: Path) -> None:
    """Each wrong argument, misspelled method or option is reported at its own line."""
    tree = _tree(tmp_path)
    lines: list[tuple[str, int, str]] = []
    for module, right, wrong, message in MISTAKES:
        path = tree / STATIC_IN_REPO / module
        source = path.read_text(encoding="utf-8")
        assert source.count(right) == 1, f"{module} no longer has {right!r} exactly once"
        path.write_text(source.replace(right, wrong), encoding="utf-8")
        line = source[: source.index(right)].count("\n") + 1
        lines.append((module, line, message))
    result = _tsc(tree)
    assert result.returncode != 0
    errors = result.stdout.splitlines()
    for module, line, message in lines:
        located = [e for e in errors if f"{STATIC_IN_REPO / module}({line}," in e]
        assert any(message in e for e in located), (module, line, message, result.stdout)
    assert len([e for e in errors if ": error TS" in e]) == len(MISTAKES), result.stdout
