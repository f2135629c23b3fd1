"""The bounded ``reason`` label of failed imports comes from the exception class alone."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from contact_import.errors import (
    AccessRevoked,
    AccessTokenExpired,
    CursorExpired,
    InsufficientScope,
    MalformedResponse,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
)
from contact_import.failures import FailureReason, failure_reason
from contact_import.store.db_errors import as_store_error


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (AccessRevoked("Google access was revoked"), "revoked"),
        (InsufficientScope("no contacts scope"), "scope"),
        (RateLimited("429", retry_after=5), "rate_limited"),
        (ProviderUnavailable("HTTP 503"), "unavailable"),
        (MalformedResponse("not JSON"), "malformed"),
        (AccessTokenExpired("401 twice"), "gave_up"),
        (CursorExpired("expired again"), "gave_up"),
        # A database error reaches the classification translated into our tree.
        (as_store_error(OperationalError("SELECT 1", {}, Exception("gone"))), "gave_up"),
        (RequestRejected("HTTP 400"), "internal"),
        (KeyError("bug"), "internal"),
    ],
)
def test_each_exception_maps_to_one_reason(exc: BaseException, reason: str) -> None:
    assert failure_reason(exc) == reason


def test_the_message_never_chooses_the_reason() -> None:
    assert failure_reason(ProviderUnavailable("access was revoked")) == "unavailable"


def test_reasons_are_the_documented_bounded_set() -> None:
    assert {r.value for r in FailureReason} == {
        "revoked", "scope", "rate_limited", "unavailable", "malformed", "gave_up", "internal",
    }  # fmt: skip
