"""The Buy Tokens page's server side: escaping, security headers, and what it serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from buytokens.entrypoints.settings import Settings
from buytokens.entrypoints.web.page import (
    PAGE_MODULES,
    build_page_router,
    content_security_policy,
    render_page,
    static_dir,
)
from buytokens.testing.demo import LOCALSTRIPE_BRIDGE_URL

TEMPLATE = (
    '<script id="c" type="application/json">{{CONFIG}}</script>'
    '<script src="{{STRIPE_JS_URL}}"></script>{{EXTRA_SCRIPTS}}'
)


def test_config_cannot_close_its_script_element() -> None:
    """A hostile value inside the JSON config stays data: no '<' survives unescaped."""
    body = render_page(
        TEMPLATE, "https://js.stripe.com/v3/", {"publishableKey": "</script><b>x</b>&"}, ()
    )
    inside = re.search(r'type="application/json">(.*?)</script>', body)
    assert inside is not None
    assert "<" not in inside.group(1)
    assert json.loads(inside.group(1)) == {"publishableKey": "</script><b>x</b>&"}


def test_urls_are_attribute_escaped() -> None:
    """A Stripe.js URL or extra script with quotes cannot break out of its attribute."""
    body = render_page(TEMPLATE, 'https://x/"onload="alert(1)', {}, ('/a"b',))
    assert '"onload="' not in body
    assert "&quot;onload=&quot;" in body
    assert 'src="/a&quot;b"' in body


def test_the_policy_allows_real_stripe_or_one_stand_in_origin() -> None:
    """Real Stripe.js gets Stripe's origins; a stand-in gets only its own origin."""
    real = content_security_policy("https://js.stripe.com/v3/")
    assert "script-src 'self' https://js.stripe.com" in real
    assert "connect-src 'self' https://api.stripe.com" in real
    local = content_security_policy("http://127.0.0.1:8420/js.stripe.com/v3/")
    assert "script-src 'self' http://127.0.0.1:8420;" in local
    assert "api.stripe.com" not in local
    assert "js.stripe.com" not in local
    assert "frame-ancestors 'self'" in local


def _client(tmp_path: Path) -> TestClient:
    app = FastAPI()
    settings = Settings(
        stripe_publishable_key="pk_test_page", sqlite_path=str(tmp_path / "x.sqlite3")
    )
    app.include_router(build_page_router(settings))
    return TestClient(app)


def test_the_page_carries_the_publishable_key_and_security_headers(tmp_path: Path) -> None:
    """The shell names the key for Stripe.js and forbids caching, sniffing and referrers."""
    response = _client(tmp_path).get("/buy-tokens")
    assert response.status_code == 200
    assert "pk_test_page" in response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_only_the_pages_own_assets_are_served(tmp_path: Path) -> None:
    """Known assets come with their type; any other name, or a path trick, is 404."""
    client = _client(tmp_path)
    script = client.get("/buy-tokens/static/buy-tokens.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    for name in ("buy-tokens.html", "..%2Fsettings.py", "nope.js", "localstripe-bridge.js"):
        assert client.get(f"/buy-tokens/static/{name}").status_code == 404
    assert client.get(LOCALSTRIPE_BRIDGE_URL).status_code == 404  # the demo's, never serve's


_IMPORT = re.compile(r"""^(?:import|export)\b[^;]*?\bfrom\s+'([^']+)'""", re.MULTILINE | re.DOTALL)


def test_every_module_the_page_imports_is_served_and_preloaded(tmp_path: Path) -> None:
    """Each relative import names a served module; no module in the folder is left unserved."""
    client = _client(tmp_path)
    shell = client.get("/buy-tokens").text
    imported: set[str] = set()
    for name in PAGE_MODULES:
        response = client.get(f"/buy-tokens/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith("text/javascript")
        assert response.headers["Cache-Control"] == "no-cache"
        assert f'<link rel="modulepreload" href="/buy-tokens/static/{name}">' in shell
        imported.update(_IMPORT.findall(response.text))
    assert imported, "the entry imports its modules"
    assert all(spec.startswith("./") for spec in imported), imported
    assert {spec.removeprefix("./") for spec in imported} <= set(PAGE_MODULES)
    on_disk = {entry.name for entry in static_dir().iterdir() if entry.name.endswith(".js")}
    assert on_disk == set(PAGE_MODULES)
    assert '<script type="module" src="/buy-tokens/static/buy-tokens.js">' in shell
