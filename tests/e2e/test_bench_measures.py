"""The benchmark's own measuring instruments: the Stripe event it sends, /proc CPU, durability."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from bench import procstat
from bench.load import http_request
from bench.servers import WEBHOOK_SECRET
from bench.web import (
    CLIENTS,
    PACKAGE,
    WEBHOOK_PATH,
    durability_pass,
    succeeded_event,
    succeeded_payload,
    webhook_requests,
)

from buytokens.adapters.stripe_events import parse_signed_event
from buytokens.domain.events import PaymentSucceeded


def test_the_webhook_load_is_a_whole_payment_intent_event_the_product_accepts() -> None:
    request = webhook_requests("t")(7)
    head, _, body = request.partition(b"\r\n\r\n")
    signature = next(
        line.split(b": ", 1)[1].decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"stripe-signature:")
    )
    assert head.startswith(f"POST {WEBHOOK_PATH} HTTP/1.1".encode())
    assert 2_000 <= len(body) <= 4_000

    received = parse_signed_event(body, signature, WEBHOOK_SECRET)

    event = received.payment_event
    assert isinstance(event, PaymentSucceeded)
    assert (event.payment_intent_id, event.user_id, event.package_id) == (
        "pi_t_7",
        "user7",
        PACKAGE.id,
    )
    assert event.amount == PACKAGE.price
    intent = succeeded_event("evt_a", "pi_a", "user1", 1)["data"]["object"]
    assert intent["latest_charge"] == "ch_a"
    assert intent["client_secret"].startswith("pi_a_secret_")
    assert {"payment_method_options", "automatic_payment_methods", "amount_details"} <= set(intent)


def test_every_request_gets_its_own_intent_and_event() -> None:
    payloads = {succeeded_payload(f"evt_{i}", f"pi_{i}", "u", 1) for i in range(50)}
    assert len(payloads) == 50
    assert http_request("POST", "/x", b"ab").endswith(b"Content-Length: 2\r\n\r\nab")


_BURNER = """
import threading, time
def burn():
    end = time.process_time() + 0.4
    while time.process_time() < end:
        pass
t = threading.Thread(target=burn)
t.start(); t.join()
print("done", flush=True)
time.sleep(30)
"""


def test_procstat_charges_a_process_cpu_to_the_thread_that_spent_it() -> None:
    child = subprocess.Popen([sys.executable, "-c", _BURNER], stdout=subprocess.PIPE)
    try:
        before = procstat.snapshot(child.pid)
        assert child.stdout is not None
        assert child.stdout.readline() == b"done\n"
        after = procstat.snapshot(child.pid)
    finally:
        child.kill()
        child.wait()

    spent = procstat.usage(before, after)

    # 0.4 s of CPU in a second thread, which exited before the second reading:
    # the process total has it, the per-thread split of live threads does not.
    assert 0.3 <= spent.cpu <= 2.0
    assert spent.by_thread.get("event loop", 0.0) < 0.3
    assert spent.voluntary >= 0
    total = spent + spent
    assert total.cpu == pytest.approx(2 * spent.cpu)


@pytest.mark.slow
def test_the_durability_pass_finds_every_answered_credit_on_disk_after_sigkill() -> None:
    started = time.monotonic()
    app = durability_pass("app", 1.0)
    assert app.answered > 0
    assert app.on_disk == app.answered
    # At most CLIENTS requests are in flight, so no group commit covers more credits.
    assert app.wal_syncs * CLIENTS >= app.answered
    assert time.monotonic() - started < 120
