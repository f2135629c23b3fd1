"""Fixtures of the integration tests that talk to providers directly."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import RecordedSleeps


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        yield http


@pytest.fixture
def sleeps() -> RecordedSleeps:
    return RecordedSleeps()
