"""The provider registry: every entry complete and consistent with Settings, one error for any
other name, and the OAuth client and the source built from an entry alone."""

from __future__ import annotations

import httpx
import pytest

from contact_import.errors import RequestRejected, UnknownProvider
from contact_import.providers.api_source import ApiContactSource
from contact_import.providers.oauth import oauth_provider
from contact_import.providers.registry import (
    PROVIDER_NAMES,
    PROVIDER_SPECS,
    ProviderSpec,
    find_provider,
    provider_label,
    provider_spec,
)
from contact_import.settings import Settings

SPECS = pytest.mark.parametrize("spec", PROVIDER_SPECS, ids=lambda spec: spec.name)


def settings(**values: str) -> Settings:
    return Settings(contact_import_env="development", **values)  # type: ignore[arg-type]


def test_the_registry_holds_google_and_microsoft_in_order() -> None:
    assert PROVIDER_NAMES == ("google", "microsoft")
    assert tuple(spec.name for spec in PROVIDER_SPECS) == PROVIDER_NAMES
    assert [provider_spec(name) for name in PROVIDER_NAMES] == list(PROVIDER_SPECS)


@SPECS
def test_every_entry_has_every_field(spec: ProviderSpec) -> None:
    assert spec.name.isascii()
    assert spec.name.isalpha()  # it is a URL segment: the routes accept ^[a-z]+$
    assert spec.name.islower()
    assert spec.label
    assert spec.label != spec.name
    assert issubclass(spec.source_class, ApiContactSource)
    assert spec.source_class.api_name
    assert spec.source_class.path.startswith("/")
    assert spec.scopes
    assert all(scope.strip() == scope and scope for scope in spec.scopes)
    assert all(isinstance(v, str) and v for v in spec.extra_authorize_params.values())


@SPECS
def test_every_setting_an_entry_names_exists(spec: ProviderSpec) -> None:
    fields = Settings.model_fields
    for setting in ("client_id", "client_secret"):
        assert f"{spec.settings_prefix}_{setting}" in fields
    assert spec.api_url_setting in fields
    defaults = Settings.model_construct()  # the defaults, whatever the environment says
    assert spec.api_url(defaults).startswith("https://")
    endpoints = spec.oauth_endpoints(defaults)
    assert endpoints.authorize_url.startswith("https://")
    assert endpoints.token_url.startswith("https://")
    assert endpoints.authorize_url != endpoints.token_url


@SPECS
def test_an_entrys_environment_variables_are_the_ones_settings_read(
    spec: ProviderSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(spec.env_var("client_id"), "id-from-the-environment")
    monkeypatch.setenv(spec.api_url_setting.upper(), "https://api.example.test")
    configured = Settings(contact_import_env="development")
    assert spec.setting(configured, "client_id") == "id-from-the-environment"
    assert spec.api_url(configured) == "https://api.example.test"


@SPECS
def test_the_oauth_client_comes_from_the_entry_alone(spec: ProviderSpec) -> None:
    values = {
        f"{spec.settings_prefix}_client_id": "cid",
        f"{spec.settings_prefix}_client_secret": "s",
    }
    oauth = oauth_provider(spec.name, settings(**values))
    endpoints = spec.oauth_endpoints(settings(**values))
    assert (oauth.name, oauth.label, oauth.client_id) == (spec.name, spec.label, "cid")
    assert (oauth.authorize_url, oauth.token_url) == (endpoints.authorize_url, endpoints.token_url)
    assert oauth.scopes == spec.scopes
    assert dict(oauth.extra_authorize_params) == dict(spec.extra_authorize_params)
    assert oauth.scope_on_refresh is spec.scope_on_refresh


@SPECS
def test_the_source_is_built_from_the_entry_alone(spec: ProviderSpec) -> None:
    configured = settings(**{spec.api_url_setting: "https://api.example.test/"})
    with httpx.Client() as client:
        source = spec.source_class(
            client, api_url=spec.api_url(configured), access_token="the-token", page_size=10
        )
    shown = repr(source)
    assert shown.startswith(spec.source_class.__name__)
    assert f"https://api.example.test{spec.source_class.path}" in shown
    assert "the-token" not in shown


@pytest.mark.parametrize("name", ["yahoo", "Google", "googl", "", "x" * 500])
def test_any_other_name_is_one_error(name: str) -> None:
    with pytest.raises(UnknownProvider) as caught:
        provider_spec(name)
    assert isinstance(caught.value, RequestRejected)  # permanent, and a 400 at the API
    assert str(caught.value).endswith("one of google, microsoft")
    assert len(str(caught.value)) < 100  # a long name is cut short
    assert find_provider(name) is None
    assert provider_label(name) == name
    with pytest.raises(UnknownProvider):
        oauth_provider(name, settings())


def test_labels_are_what_a_user_reads() -> None:
    assert [provider_label(name) for name in PROVIDER_NAMES] == ["Google", "Microsoft"]
