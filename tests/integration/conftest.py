"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from buytokens.adapters.mongo.connection import MongoDatabase
from tests.support.stores import mongo_database


@pytest.fixture
def database() -> Iterator[MongoDatabase]:
    """A fresh MongoDB database (mongomock, or the server MONGODB_URI names)."""
    with mongo_database() as db:
        yield db
