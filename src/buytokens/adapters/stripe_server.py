"""Which server ``STRIPE_API_BASE`` reaches: Stripe itself, localstripe, or something else.

localstripe (a fake Stripe for development) follows Stripe's 2017-08-15 API
whatever version is asked for: it refuses ``allowed_payment_method_types`` and
``receipt_email``. It is recognised by the stand-in for Stripe.js it serves at
``/js.stripe.com/v3/``, a path no Stripe API host answers.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import urlsplit

LOCALSTRIPE_API_VERSION = "2017-08-15"
"""The Stripe API version localstripe's objects follow (it ignores the version header)."""

PROBE_TIMEOUT = 2.0
"""Seconds the localstripe probe waits for an answer."""

_LOCALSTRIPE_JS_PATH = "/js.stripe.com/v3/"
_MARKER = b"localstripe"


def is_stripe_api_base(api_base: str | None) -> bool:
    """Whether requests go to Stripe's own API host (None: the SDK's default, Stripe's)."""
    if api_base is None:
        return True
    host = (urlsplit(api_base).hostname or "").lower()
    return host == "stripe.com" or host.endswith(".stripe.com")


def display_api_base(api_base: str) -> str:
    """``api_base`` without any user name or password it may carry, for messages."""
    parts = urlsplit(api_base)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


def probe_localstripe(api_base: str, timeout: float = PROBE_TIMEOUT) -> bool | None:
    """True when localstripe answers at ``api_base``, False when another server answers,
    None when nothing answers (refused, timed out, not a URL).

    Sends no credentials; never called for Stripe's own hosts.
    """
    if is_stripe_api_base(api_base):
        return False
    url = api_base.rstrip("/") + _LOCALSTRIPE_JS_PATH
    if urlsplit(url).scheme not in ("http", "https"):
        return None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - checked above
            head = response.read(4096)
    except urllib.error.HTTPError:
        return False  # something answered, and it is not localstripe
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return _MARKER in head.lower()
