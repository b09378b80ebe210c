"""A real nginx on loopback, run as our own process with its own config, pid, logs and temp paths.

The server block is LibreChat's shipped ``client/nginx.conf`` (``/api/`` and ``/`` to the
chat app) plus the two buytokens locations, read from ``docs/LIBRECHAT.md`` so that the
documented snippet is the one under test.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "LIBRECHAT.md"
DOCUMENTED_UPSTREAM = "buytokens:3080"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def documented_locations() -> str:
    """The nginx snippet of docs/LIBRECHAT.md (the block after its ``nginx-locations`` mark)."""
    text = GUIDE.read_text(encoding="utf-8")
    match = re.search(r"<!-- nginx-locations -->\s*```nginx\n(.*?)```", text, re.DOTALL)
    if match is None:
        raise AssertionError(f"{GUIDE} has no nginx snippet after <!-- nginx-locations -->")
    return match.group(1)


@attrs.frozen
class Nginx:
    """A running nginx: its URL and its files."""

    url: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]

    def error_log(self) -> str:
        return (self.workdir / "error.log").read_text(errors="replace")

    def access_log(self) -> str:
        return (self.workdir / "access.log").read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(
    workdir: Path, port: int, librechat: str, buytokens: str, extra: str, extra_locations: str
) -> str:
    locations = documented_locations().replace(DOCUMENTED_UPSTREAM, buytokens)
    temp = {name: workdir / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(parents=True, exist_ok=True)
    # As root the workers would drop to "nobody", who cannot write our temp paths.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {workdir}/access.log;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    {extra}

    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        client_max_body_size 25M;

{locations}
        {extra_locations}

        location /api/ {{
            proxy_pass http://{librechat}$request_uri;
        }}

        location / {{
            proxy_pass http://{librechat}/;
        }}
    }}
}}
"""


@contextmanager
def running_nginx(
    workdir: Path,
    *,
    librechat: str,
    buytokens: str,
    extra_http: str = "",
    extra_locations: str = "",
) -> Iterator[Nginx]:
    """Start nginx in the foreground (our child process) and stop it on the way out."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(_config(workdir, port, librechat, buytokens, extra_http, extra_locations))
    command = [NGINX, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log")]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"nginx refused its config:\n{check.stderr}")
    process = subprocess.Popen(
        [*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{(workdir / 'error.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx did not start listening") from None
                time.sleep(0.05)
        yield Nginx(f"http://127.0.0.1:{port}", port, workdir, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # graceful: finish requests, then exit
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
