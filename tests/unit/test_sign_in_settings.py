"""Which sign-in settings start, and which are refused before anything runs."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from contact_import.settings import Settings

JWKS = "https://project-ref.supabase.co/auth/v1/.well-known/jwks.json"
ISSUER = "https://project-ref.supabase.co/auth/v1"


def test_jwks_defaults_to_the_three_asymmetric_algorithms() -> None:
    settings = Settings(jwt_jwks_url=JWKS, jwt_issuer=ISSUER)
    assert settings.jwt_algorithms == ["RS256", "ES256", "EdDSA"]
    only: dict[str, Any] = {"jwt_jwks_url": JWKS, "jwt_issuer": ISSUER, "jwt_algorithms": "ES256"}
    assert Settings(**only).jwt_algorithms == ["ES256"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"jwt_jwks_url": JWKS}, "JWT_JWKS_URL needs JWT_ISSUER"),
        ({"jwt_jwks_url": JWKS, "jwt_issuer": " "}, "JWT_JWKS_URL needs JWT_ISSUER"),
        ({"jwt_algorithms": "RS256"}, "JWT_ALGORITHMS applies to JWT_JWKS_URL"),
        ({"jwt_jwks_url": JWKS, "jwt_issuer": ISSUER, "jwt_algorithms": "RS256,HS256"}, "HS256"),
        ({"jwt_jwks_url": JWKS, "jwt_issuer": ISSUER, "jwt_algorithms": "none"}, "none"),
        ({"jwt_jwks_url": JWKS, "jwt_issuer": ISSUER, "jwt_algorithms": ""}, "empty list"),
        ({"jwt_jwks_url": "http://issuer.test/jwks.json", "jwt_issuer": ISSUER}, "must be https"),
        ({"jwt_jwks_url": "file:///etc/passwd", "jwt_issuer": ISSUER}, "absolute https URL"),
    ],
)
def test_confusing_sign_in_settings_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**values)


@pytest.mark.parametrize(
    "values",
    [
        {"jwt_jwks_url": "http://127.0.0.1:9999/jwks.json", "jwt_issuer": ISSUER},
        {
            "jwt_jwks_url": "http://issuer.test/jwks.json",
            "jwt_issuer": ISSUER,
            "contact_import_env": "development",
        },
    ],
)
def test_plain_http_is_for_loopback_and_development(values: dict[str, Any]) -> None:
    assert Settings(**values).jwt_jwks_url == values["jwt_jwks_url"]
