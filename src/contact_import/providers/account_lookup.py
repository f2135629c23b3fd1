"""The email of the account an access token belongs to, for any registered provider.

Apart from ``providers/account.py`` (which the registry imports for ``AccountProfile``) so
that reading the registry here makes no circle. Used by the OAuth callback (``connect``) and
by "bring your own tokens" (``connected``).
"""

from __future__ import annotations

import httpx

from contact_import.providers.account import fetch_account_email
from contact_import.providers.registry import provider_spec
from contact_import.settings import Settings

__all__ = ["lookup_account_email"]


def lookup_account_email(
    http: httpx.Client, settings: Settings, provider: str, access_token: str
) -> str | None:
    """The email of the account ``access_token`` belongs to, if its provider tells it."""
    spec = provider_spec(provider)
    if spec.account_profile is None:
        return None
    return fetch_account_email(
        http,
        spec.source_class,
        spec.account_profile,
        api_url=spec.api_url(settings),
        access_token=access_token,
    )
