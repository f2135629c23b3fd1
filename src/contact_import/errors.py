"""The one exception tree of contact-import.

Adapters translate foreign errors (httpx, drivers) into it at the edge, and each class says
whether the job that met it should be retried later (``transient``) or failed now, and whether
meeting it uses up one of the job's attempts (``counts_attempt``: an outage of our own
database is nobody's fault, so it does not). Database errors are translated in one place,
``contact_import.store.db_errors``; why a job failed, as a bounded label, is
``contact_import.failures``.

    ContactImportError
    ├── ConfigError                    settings missing or unsafe; raised before anything runs
    ├── ProviderError
    │   ├── TransientProviderError     retry the job later, from its cursor
    │   │   ├── RateLimited            429; carries ``retry_after`` seconds when the provider said
    │   │   ├── ProviderUnavailable    5xx, connection error, timeout
    │   │   └── MalformedResponse      a body that is not what the API documents
    │   ├── PermanentProviderError     fail the job now with a message a user understands
    │   │   ├── AccessRevoked          invalid_grant, revoked consent
    │   │   ├── InsufficientScope      403: the grant lacks the contacts scope
    │   │   └── RequestRejected        any other 4xx: our request is wrong
    │   │       └── UnknownProvider    a provider name that is not in providers.registry
    │   ├── AccessTokenExpired         401: refresh the access token once, then retry the call
    │   └── CursorExpired              the page token / sync token is no longer accepted
    ├── StoreError
    │   ├── DatabaseUnavailable        transient, attempt not counted: connection refused or lost,
    │   │                              server shutting down or starting up; back off, reconnect
    │   ├── DatabaseMisconfigured      permanent: tables missing, privileges or credentials
    │   │                              refused; a runner that meets it cannot go on
    │   ├── StatementFailed            transient, attempt counted: any other database error (a
    │   │                              deadlock, two imports racing on one key); retry the job
    │   └── LeaseLost                  another worker owns the job now: stop, write nothing more
    ├── JobError
    │   ├── JobNotFound
    │   └── JobStateConflict           the job is not in a state that allows the action
    ├── EventNotFound                  no such webhook event, or one that cannot be retried
    └── InvalidOAuthState              a callback whose state is unknown, expired or used
"""

from __future__ import annotations

__all__ = [
    "AccessRevoked",
    "AccessTokenExpired",
    "ConfigError",
    "ContactImportError",
    "CursorExpired",
    "DatabaseMisconfigured",
    "DatabaseUnavailable",
    "EventNotFound",
    "InsufficientScope",
    "InvalidOAuthState",
    "JobError",
    "JobNotFound",
    "JobStateConflict",
    "LeaseLost",
    "MalformedResponse",
    "PermanentProviderError",
    "ProviderError",
    "ProviderUnavailable",
    "RateLimited",
    "RequestRejected",
    "StatementFailed",
    "StoreError",
    "TransientProviderError",
    "UnknownProvider",
]


class ContactImportError(Exception):
    """Base of every error this package raises on purpose."""

    transient: bool = False
    counts_attempt: bool = True


class ConfigError(ContactImportError):
    """Settings are missing, malformed or unsafe for the mode we run in."""


class ProviderError(ContactImportError):
    """Talking to Google or Microsoft went wrong."""


class TransientProviderError(ProviderError):
    """Worth retrying later: the job is released with a backoff and resumes from its cursor."""

    transient = True


class RateLimited(TransientProviderError):
    """HTTP 429. ``retry_after`` is the provider's ``Retry-After`` in seconds, if it sent one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(TransientProviderError):
    """5xx, a refused connection or a timeout."""


class MalformedResponse(TransientProviderError):
    """The provider answered 2xx with a body we cannot read as its API documents."""


class PermanentProviderError(ProviderError):
    """Retrying will not help; the message is shown to the user as the job's error."""


class AccessRevoked(PermanentProviderError):
    """The user revoked access or the refresh token is no longer valid."""


class InsufficientScope(PermanentProviderError):
    """The grant does not include the contacts scope."""


class RequestRejected(PermanentProviderError):
    """A 4xx that says our request is wrong; retrying the same request cannot succeed."""


class UnknownProvider(RequestRejected):
    """A provider name (in a URL, a job row, an option) that is not one we import from."""


class AccessTokenExpired(ProviderError):
    """HTTP 401 on an API call: refresh the access token once, then retry."""

    transient = True


class CursorExpired(ProviderError):
    """The provider no longer accepts our page token or sync token: restart the listing."""

    transient = True


class StoreError(ContactImportError):
    """The database refused something the runner relied on."""


class DatabaseUnavailable(StoreError):
    """The database cannot be reached right now (restart, failover, network): try again soon.

    The job that met it is released with its attempt refunded: a restart must not use up
    the attempts of every import that was running.
    """

    transient = True
    counts_attempt = False


class DatabaseMisconfigured(StoreError):
    """The database answers but refuses us for good: schema missing, privileges, credentials."""


class StatementFailed(StoreError):
    """A statement failed for a reason of its own (a deadlock, a unique key two concurrent
    imports both wrote): the job is retried later from its cursor, the attempt counted."""

    transient = True


class LeaseLost(StoreError):
    """Our lease on a job expired and someone else may hold it: stop writing to that job."""


class JobError(ContactImportError):
    """A request about a job that cannot be honoured."""


class JobNotFound(JobError):
    """No such job (or not yours: callers must not tell the two apart)."""


class JobStateConflict(JobError):
    """The job's status does not allow the action (retry a running job, cancel a finished one)."""


class EventNotFound(ContactImportError):
    """No webhook event with that id, or one already delivered (nothing left to retry)."""


class InvalidOAuthState(ContactImportError):
    """The OAuth callback's ``state`` is unknown, expired, already used, or for another provider."""
