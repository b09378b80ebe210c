"""Run localstripe, a fake Stripe API server, in a child process on loopback.

localstripe is GPL-licensed, so this package never imports it: it only runs it
as a separate program. The child binds 127.0.0.1 (localstripe alone would
listen on every interface), keeps its state in a private temporary directory
(localstripe alone would share ``/tmp/localstripe.pickle`` with every other
instance on the machine) and reports the port it got back through a file.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from buytokens.adapters.stripe_server import LOCALSTRIPE_API_VERSION
from buytokens.domain.errors import OperatorError

__all__ = ["LOCALSTRIPE_API_VERSION", "LocalStripe", "LocalStripeError"]

LOOPBACK = "127.0.0.1"

# Runs in the child: serve localstripe's app on a socket we bind ourselves, with
# its state file moved to the directory we own, and write the port out once bound.
_LAUNCHER = """
import os, pickle, socket, sys
from aiohttp import web
from localstripe import resources, server

state_file, host, port, port_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

def dump_to_disk(store):
    partial = state_file + ".partial"
    with open(partial, "wb") as f:
        pickle.dump(store, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(partial, state_file)

resources.Store.dump_to_disk = dump_to_disk
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind((host, port))
with open(port_file + ".partial", "w") as f:
    f.write(str(sock.getsockname()[1]))
os.replace(port_file + ".partial", port_file)
web.run_app(server.app, sock=sock, print=None, access_log=None)
"""


class LocalStripeError(OperatorError):
    """localstripe could not be started, reached or configured."""

    code = "localstripe_error"


class LocalStripe:
    """A running localstripe child process; stop it with ``stop()`` or a ``with`` block."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, state_dir: Path) -> None:
        """Use ``LocalStripe.start()``; this only wraps a process that already answers."""
        self._process = process
        self._port = port
        self._state_dir = state_dir
        # A forgotten instance must not leave a server or its files behind.
        self._finalizer = weakref.finalize(self, _shut_down, process, state_dir, 5.0)

    @classmethod
    def start(cls, port: int | None = None, *, startup_timeout: float = 20.0) -> LocalStripe:
        """Start localstripe on ``port`` of 127.0.0.1 (a free port if None) and wait until
        it answers; raises ``LocalStripeError`` if it does not within ``startup_timeout``."""
        # Looked up, not imported: localstripe only ever runs in its own process.
        if importlib.util.find_spec("localstripe") is None:
            raise LocalStripeError(
                "localstripe is not installed; `./scripts/demo` installs it "
                "(or: pip install localstripe)"
            )
        state_dir = Path(tempfile.mkdtemp(prefix="buytokens-localstripe-"))
        port_file = state_dir / "port"
        log = (state_dir / "server.log").open("wb")
        try:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and launcher
                [
                    sys.executable,
                    "-c",
                    _LAUNCHER,
                    str(state_dir / "localstripe.pickle"),
                    LOOPBACK,
                    str(port or 0),
                    str(port_file),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=state_dir,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        except OSError as exc:
            shutil.rmtree(state_dir, ignore_errors=True)
            raise LocalStripeError(f"could not start localstripe: {exc}") from exc
        finally:
            log.close()
        try:
            bound = _wait_for_port(process, port_file, startup_timeout)
            _wait_until_answering(process, bound, state_dir, startup_timeout)
        except LocalStripeError:
            _shut_down(process, state_dir, 5.0)
            raise
        return cls(process, bound, state_dir)

    @property
    def port(self) -> int:
        """The loopback port localstripe listens on."""
        return self._port

    @property
    def api_base(self) -> str:
        """The base URL to give the Stripe client instead of ``https://api.stripe.com``."""
        return f"http://{LOOPBACK}:{self._port}"

    @property
    def js_url(self) -> str:
        """The URL of localstripe's stand-in for Stripe.js v3."""
        return f"{self.api_base}/js.stripe.com/v3/"

    @property
    def api_version(self) -> str:
        """The Stripe API version to request from this server (see ``LOCALSTRIPE_API_VERSION``)."""
        return LOCALSTRIPE_API_VERSION

    @property
    def running(self) -> bool:
        """Whether the child process is still alive."""
        return self._process.poll() is None

    def register_webhook(
        self,
        url: str,
        secret: str,
        *,
        webhook_id: str = "buytokens",
        events: Sequence[str] | None = None,
    ) -> None:
        """Have localstripe deliver events to ``url``, signed with ``secret``.

        Registering the same ``webhook_id`` again replaces that endpoint; ``events``
        limits deliveries to those types. localstripe tries each delivery once.
        """
        fields: list[tuple[str, str]] = [("url", url), ("secret", secret)]
        fields += [("events[]", event) for event in events or ()]
        request = urllib.request.Request(  # noqa: S310 - our own loopback URL
            f"{self.api_base}/_config/webhooks/{urllib.parse.quote(webhook_id, safe='')}",
            data=urllib.parse.urlencode(fields).encode("ascii"),
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            # The URL error would repeat the request; keep the secret out of messages.
            raise LocalStripeError(f"localstripe refused the webhook endpoint {url}") from exc

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (politely, then firmly after ``timeout``) and delete its state."""
        self._finalizer.detach()
        _shut_down(self._process, self._state_dir, timeout)

    def __enter__(self) -> LocalStripe:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalStripe(api_base={self.api_base!r}, running={self.running})"


def _wait_for_port(process: subprocess.Popen[bytes], port_file: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_file.exists():
            return int(port_file.read_text())
        if process.poll() is not None:
            raise LocalStripeError(
                f"localstripe exited with status {process.returncode} before listening: "
                f"{_log_tail(port_file.parent)}"
            )
        time.sleep(0.02)
    raise LocalStripeError(f"localstripe did not bind a port within {timeout:g} s")


def _wait_until_answering(
    process: subprocess.Popen[bytes], port: int, state_dir: Path, timeout: float
) -> None:
    # The socket is bound before the app listens; poll a route that needs no key.
    url = f"http://{LOOPBACK}:{port}/js.stripe.com/v3/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalStripeError(
                f"localstripe exited with status {process.returncode}: {_log_tail(state_dir)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise LocalStripeError(f"localstripe did not answer on port {port} within {timeout:g} s")


def _log_tail(state_dir: Path) -> str:
    try:
        text = (state_dir / "server.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(empty log)"


def _shut_down(process: subprocess.Popen[bytes], state_dir: Path, timeout: float) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    shutil.rmtree(state_dir, ignore_errors=True)
