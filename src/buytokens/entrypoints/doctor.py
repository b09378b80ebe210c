"""``buytokens doctor``: check the set-up and say, one line per check, what to fix."""

from __future__ import annotations

import sys
from typing import TextIO

from buytokens.adapters.stripe_events import HANDLED_EVENT_TYPES
from buytokens.adapters.stripe_server import display_api_base
from buytokens.entrypoints.container import Container
from buytokens.services.doctor.diagnosis import diagnose
from buytokens.services.doctor.environment import Configuration, Mode
from buytokens.services.doctor.report import DoctorReport


def configuration(container: Container, expected_mode: Mode | None = None) -> Configuration:
    """The container's settings reduced to what the checks need (no secret kept)."""
    settings = container.settings()
    return Configuration.from_values(
        jwt_secret=settings.jwt_secret,
        secret_key=settings.stripe_secret_key,
        webhook_secret=settings.stripe_webhook_secret,
        publishable_key=settings.stripe_publishable_key,
        api_base=display_api_base(settings.stripe_api_base)
        if settings.stripe_api_base is not None
        else None,
        api_version=settings.stripe_api_version,
        catalogue_path=settings.catalogue_path,
        expected_mode=expected_mode,
    )


def check_setup(container: Container, expected_mode: Mode | None = None) -> DoctorReport:
    """Run every check against what the container's settings name."""
    return diagnose(
        configuration(container, expected_mode),
        container.store_inspector(),
        container.payment_account(),
        HANDLED_EVENT_TYPES,
        container.catalogue,
    )


def run_doctor(
    container: Container, expected_mode: Mode | None = None, out: TextIO | None = None
) -> int:
    """Print the report; 0 when nothing is a problem or a warning, else 1."""
    report = check_setup(container, expected_mode)
    stream = out or sys.stdout
    for line in report.lines():
        print(line, file=stream)
    return 0 if report.ready else 1
