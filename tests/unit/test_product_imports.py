"""The product's import path carries no test or demo tooling."""

from __future__ import annotations

import subprocess
import sys

import pytest

TOOLING = ("mongomock", "localstripe", "buytokens.testing")


@pytest.mark.parametrize(
    "module", ["buytokens", "buytokens.entrypoints.cli", "buytokens.entrypoints.web.app"]
)
def test_importing_the_product_loads_no_tooling(module: str) -> None:
    """Importing the CLI, the web app or the library loads neither mongomock, localstripe
    nor buytokens.testing."""
    probe = (
        f"import sys, {module}\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {TOOLING!r}"
        f" or m.startswith('buytokens.testing'))\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "", f"{module} loaded {result.stdout.strip()}"


def test_mongomock_without_the_demo_extra_names_the_extra() -> None:
    """MONGODB_URI=mongomock:// without mongomock installed says which extra brings it."""
    probe = (
        "import sys\n"
        "sys.modules['mongomock'] = None\n"
        "from buytokens.adapters.mongo.connection import connect_mongo\n"
        "from buytokens.domain.errors import ConfigurationError\n"
        "try:\n"
        "    connect_mongo('mongomock://localhost/x')\n"
        "except ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert "buytokens[demo]" in result.stdout
