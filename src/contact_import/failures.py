"""Why an import failed, in a bounded set of words: the classification of the exception tree.

The word is the ``reason`` label of ``contact_import_failures_total`` and of the "job failed"
log line. It is chosen from the exception's class alone, never from its message, so the label
set stays bounded whatever a provider or driver says. Database errors reach this point already
translated into the tree (``store.db_errors.as_store_error``), so no driver class is named here.
"""

from __future__ import annotations

from enum import StrEnum

from contact_import.errors import (
    AccessRevoked,
    ContactImportError,
    InsufficientScope,
    MalformedResponse,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
)

__all__ = ["FailureReason", "failure_reason"]


class FailureReason(StrEnum):
    """The bounded ``reason`` label of failures."""

    REVOKED = "revoked"  # the user revoked access / the refresh token is dead
    SCOPE = "scope"  # the grant lacks the contacts scope
    RATE_LIMITED = "rate_limited"  # attempts exhausted on 429s
    UNAVAILABLE = "unavailable"  # attempts exhausted on 5xx / timeouts
    MALFORMED = "malformed"  # attempts exhausted on unreadable bodies
    GAVE_UP = "gave_up"  # attempts exhausted otherwise (crashed workers, database errors)
    INTERNAL = "internal"  # a bug: an unexpected exception or a request the provider rejects


_REASON_OF: tuple[tuple[type[BaseException], FailureReason], ...] = (
    (AccessRevoked, FailureReason.REVOKED),
    (InsufficientScope, FailureReason.SCOPE),
    (RateLimited, FailureReason.RATE_LIMITED),
    (ProviderUnavailable, FailureReason.UNAVAILABLE),
    (MalformedResponse, FailureReason.MALFORMED),
    (RequestRejected, FailureReason.INTERNAL),
)


def failure_reason(exc: BaseException) -> FailureReason:
    """The label for a job that failed on ``exc``: any other error of our tree is ``gave_up``,
    anything outside it a bug (``internal``)."""
    for cls, reason in _REASON_OF:
        if isinstance(exc, cls):
            return reason
    if isinstance(exc, ContactImportError):
        return FailureReason.GAVE_UP
    return FailureReason.INTERNAL
