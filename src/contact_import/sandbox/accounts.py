"""The sandbox's fake users: an ``Account`` (its book, its faults, its requests, its edits) and
the ``Faults`` knobs that make its provider misbehave.

Kept apart from ``state`` (the registry of accounts) because the OAuth store remembers which
account each code and refresh token belongs to, and the registry holds the OAuth store: both
import this module, neither imports the other back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from contact_import.sandbox.changes import ChangeLog
from contact_import.sandbox.folder_tree import FolderTree

__all__ = ["Account", "Faults", "every_nth", "is_count"]


@dataclass
class Faults:
    """Failure knobs of one account; every knob is off by default. Counts are per account."""

    rate_limit_every: int = 0  # every Nth request answers 429 with Retry-After
    retry_after: int = 1  # seconds, in that 429's Retry-After header
    server_error_every: int = 0  # every Nth request answers 503
    latency_ms: int = 0  # added before every answer
    # Graph only: every Nth request answers an empty page whose nextLink points where it was
    # (1 would never progress).
    empty_page_every: int = 0
    # Seconds an access token from the OAuth token endpoint stays valid (tokens added with
    # ``add_account`` never expire); 1 forces an expiry mid-import.
    access_token_ttl: int = 3600
    # The user revoked consent: every token of the account answers 401, a refresh invalid_grant.
    revoked: bool = False
    # Every Google syncToken / Graph delta link answers as expired (400 EXPIRED_SYNC_TOKEN, 410).
    expire_sync_tokens: bool = False
    # The account's Nth request (N >= 2), if it carries a page token, answers as an expired one
    # (Google 400 INVALID_ARGUMENT, Graph 410); once, so a restarted listing completes.
    expire_page_token_at: int = 0
    # Every Nth contacts request answers 200 with its JSON body cut off halfway.
    malformed_every: int = 0
    # Every Nth Person of the book is dirty, in rotating ways (NUL or a lone surrogate in an
    # email or a name, no resourceName / id, a "+" canonicalForm, control characters): see
    # ``dirty``. Part of the book: accounts with the same (size, seed, dirty_every) share it.
    dirty_every: int = 0

    @classmethod
    def from_json(cls, data: object) -> Faults:
        """Build from a JSON object; ValueError names the first bad knob."""
        if not isinstance(data, dict):
            raise ValueError("faults must be an object")
        known = {knob.name: knob.default for knob in fields(cls)}
        for name, value in data.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r}")
            if isinstance(known[name], bool):
                if not isinstance(value, bool):
                    raise ValueError(f"fault {name!r} must be true or false")
            elif not is_count(value):
                raise ValueError(f"fault {name!r} must be an integer >= 0")
        return cls(**data)


@dataclass
class Account:
    """One fake user of the provider: a book spec, its faults, request counters, its edits, and
    the Outlook folders its book is filed in.

    ``requests`` counts contacts requests, ``folder_requests`` Graph's folder listings: apart,
    so that listing folders does not move where an "every Nth request" fault falls.
    """

    id: str
    size: int
    seed: int
    faults: Faults = field(default_factory=Faults)
    requests: int = 0
    changes: ChangeLog = field(default_factory=ChangeLog, repr=False)
    folders: FolderTree = field(default_factory=FolderTree, repr=False, compare=False)
    folder_requests: int = 0

    # Token revocations the provider confirmed (Google's revoke endpoint).
    revocations: int = 0

    @property
    def email(self) -> str:
        """The account's own address (people/me, Graph /me)."""
        return f"{self.id}@sandbox.example.com"


def every_nth(every: int, number: int) -> bool:
    """Whether a knob "every Nth request" (``every``; 0 is off) fires on request ``number``."""
    return bool(every) and number % every == 0


def is_count(value: object) -> bool:
    """Whether a JSON value is an integer >= 0 (``true`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
