"""Every provider we import from, in one place: what the rest of the service knows about each.

The routes' provider check, the OAuth client, the job's contact source and every label a user
reads come from here. Adding a provider is an adapter module (an ``ApiContactSource``) plus one
entry in ``_SPECS``; docs/architecture.md ("How to add a provider") has the checklist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from contact_import.errors import UnknownProvider
from contact_import.providers import google, microsoft
from contact_import.providers.account import AccountProfile
from contact_import.providers.api_source import ApiContactSource
from contact_import.providers.google import GoogleContactsSource
from contact_import.providers.microsoft import MicrosoftContactsSource
from contact_import.settings import Settings

__all__ = [
    "GOOGLE_CONTACTS_SCOPE",
    "MICROSOFT_SCOPES",
    "PROVIDER_NAMES",
    "PROVIDER_SPECS",
    "OAuthEndpoints",
    "ProviderSpec",
    "find_provider",
    "provider_label",
    "provider_spec",
]

GOOGLE_CONTACTS_SCOPE = "https://www.googleapis.com/auth/contacts.readonly"
MICROSOFT_SCOPES = ("Contacts.Read", "offline_access")


@dataclass(frozen=True, slots=True)
class OAuthEndpoints:
    """Where a provider's consent page and token endpoint are, as configured."""

    authorize_url: str
    token_url: str


@dataclass(frozen=True)
class ProviderSpec:
    """One provider: its names, its settings, its OAuth flow and its contacts adapter."""

    name: str  # in URLs, job and grant rows: "google"
    settings_prefix: str  # of its settings: google_client_id, GOOGLE_CLIENT_ID in the environment
    source_class: type[ApiContactSource]
    api_url_setting: str  # the Settings field with the contacts API's base URL
    oauth_endpoints: Callable[[Settings], OAuthEndpoints]
    scopes: tuple[str, ...]
    extra_authorize_params: Mapping[str, str] = field(default_factory=dict)
    # Microsoft wants the scopes again when refreshing; Google does not take them.
    scope_on_refresh: bool = False
    # Where its API says whose token it is (the account's email), if anywhere.
    account_profile: AccountProfile | None = None
    # The Settings field with its token revocation endpoint; None: it has none (Microsoft).
    revoke_url_setting: str | None = None

    @property
    def label(self) -> str:
        """The provider's name as a user reads it ("Google"); its adapter's messages use it too."""
        return self.source_class.label

    def env_var(self, setting: str) -> str:
        """The environment variable of one of its settings: GOOGLE_CLIENT_ID for "client_id"."""
        return f"{self.settings_prefix}_{setting}".upper()

    def setting(self, settings: Settings, setting: str) -> str | None:
        """The value of one of its settings ("client_id": ``settings.google_client_id``)."""
        return _text_setting(settings, f"{self.settings_prefix}_{setting}")

    def api_url(self, settings: Settings) -> str:
        """The configured base URL of its contacts API."""
        return _text_setting(settings, self.api_url_setting) or ""

    def revoke_url(self, settings: Settings) -> str | None:
        """The configured token revocation endpoint; None when the provider has none."""
        if self.revoke_url_setting is None:
            return None
        return _text_setting(settings, self.revoke_url_setting)


def _text_setting(settings: Settings, name: str) -> str | None:
    value = getattr(settings, name)  # an AttributeError here is a registry typo: tests catch it
    if value is not None and not isinstance(value, str):
        raise TypeError(f"Settings.{name} is not a text setting")
    return value


def _google_endpoints(settings: Settings) -> OAuthEndpoints:
    return OAuthEndpoints(settings.google_auth_url, settings.google_token_url)


def _microsoft_endpoints(settings: Settings) -> OAuthEndpoints:
    base = f"{settings.microsoft_login_url.rstrip('/')}/{settings.microsoft_tenant}"
    return OAuthEndpoints(f"{base}/oauth2/v2.0/authorize", f"{base}/oauth2/v2.0/token")


_SPECS = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            name="google",
            settings_prefix="google",
            source_class=GoogleContactsSource,
            api_url_setting="google_people_api_url",
            oauth_endpoints=_google_endpoints,
            scopes=(GOOGLE_CONTACTS_SCOPE,),
            # offline: a refresh token; consent: a new one even if the user consented before.
            extra_authorize_params={"access_type": "offline", "prompt": "consent"},
            account_profile=AccountProfile(
                "/v1/people/me", google.account_email_of, {"personFields": "emailAddresses"}
            ),
            revoke_url_setting="google_revoke_url",
        ),
        ProviderSpec(
            name="microsoft",
            settings_prefix="microsoft",
            source_class=MicrosoftContactsSource,
            api_url_setting="microsoft_graph_api_url",
            oauth_endpoints=_microsoft_endpoints,
            scopes=MICROSOFT_SCOPES,
            scope_on_refresh=True,
            account_profile=AccountProfile(
                "/v1.0/me", microsoft.account_email_of, {"$select": "mail,userPrincipalName"}
            ),
        ),
    )
}
PROVIDER_SPECS = tuple(_SPECS.values())
PROVIDER_NAMES = tuple(_SPECS)


def provider_spec(name: str) -> ProviderSpec:
    """The provider called ``name``; UnknownProvider for any other name."""
    spec = _SPECS.get(name)
    if spec is None:
        raise UnknownProvider(f"unknown provider {name[:32]!r}; one of {', '.join(PROVIDER_NAMES)}")
    return spec


def find_provider(name: str) -> ProviderSpec | None:
    """The provider called ``name``, or None."""
    return _SPECS.get(name)


def provider_label(name: str) -> str:
    """How a user reads provider ``name`` ("Google"); the name itself when it is not ours."""
    spec = _SPECS.get(name)
    return spec.label if spec else name
