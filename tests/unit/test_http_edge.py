"""The HTTP edge's pieces: request ids, the request log line, the path it logs."""

from __future__ import annotations

import json
import re

from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import URL

from buytokens.entrypoints.web.edge import RequestIds, logged_path, request_line

_HEX32 = re.compile(r"[0-9a-f]{32}")


def test_request_ids_are_32_hex_digits_and_never_repeat() -> None:
    """Ten thousand ids from one source are all distinct and shaped like uuid4().hex."""
    ids = RequestIds()
    drawn = [ids.next() for _ in range(10_000)]
    assert len(set(drawn)) == len(drawn)
    assert all(_HEX32.fullmatch(i) for i in drawn)


def test_two_sources_share_no_id() -> None:
    """Two sources (as in two processes) draw different prefixes, so their ids differ."""
    first, second = RequestIds(), RequestIds()
    assert {first.next() for _ in range(100)}.isdisjoint({second.next() for _ in range(100)})


@given(
    request_id=st.text(max_size=64),
    method=st.text(max_size=10),
    path=st.text(),
    status=st.integers(100, 599),
    ms=st.floats(0, 1e9, allow_nan=False).map(lambda x: round(x, 1)),
)
def test_the_log_line_is_what_json_dumps_makes_of_the_fields(
    request_id: str, method: str, path: str, status: int, ms: float
) -> None:
    """Byte for byte, for any text in any field: one line, the same keys, the same escapes."""
    fields = {
        "event": "request",
        "request_id": request_id,
        "method": method,
        "path": path,
        "status": status,
        "ms": ms,
    }
    line = request_line(request_id, method, path, status, ms)
    assert line == json.dumps(fields)
    assert "\n" not in line


def _scope(path: str, host: bytes | None) -> dict[str, object]:
    headers = [] if host is None else [(b"host", host)]
    return {
        "type": "http",
        "path": path,
        "query_string": b"client_secret=pi_1_secret_2",
        "headers": headers,
        "server": ("127.0.0.1", 3080),
        "scheme": "http",
    }


@given(
    path=st.one_of(
        st.text().map(lambda t: "/" + t),
        st.text(alphabet="/?#\\\t\r\n %a", max_size=12),
    ),
    host=st.sampled_from([None, b"example.com", b"127.0.0.1:3080", b"bad host/x"]),
)
def test_the_logged_path_is_starlettes_and_never_has_the_query(
    path: str, host: bytes | None
) -> None:
    """The path logged is the one Starlette's URL gives, for plain and odd paths alike."""
    scope = _scope(path, host)
    assert logged_path(scope) == URL(scope=scope).path
    assert "client_secret" not in logged_path(scope)
