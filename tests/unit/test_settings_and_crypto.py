"""Settings that refuse unsafe production configs, and token encryption with key rotation."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from contact_import.crypto import TokenCipher
from contact_import.errors import ConfigError
from contact_import.settings import DEV_TOKEN_ENCRYPTION_KEY, Settings


def test_a_token_encrypted_with_an_old_key_still_opens_after_rotation() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_before = TokenCipher([old]).encrypt("ya29.secret-access-token")
    cipher = TokenCipher([new, old])  # newest first, as TOKEN_ENCRYPTION_KEY lists them
    assert cipher.decrypt(sealed_before) == "ya29.secret-access-token"
    rotated = cipher.rotate(sealed_before)
    assert TokenCipher([new]).decrypt(rotated) == "ya29.secret-access-token"
    with pytest.raises(ConfigError):
        TokenCipher([old]).decrypt(cipher.encrypt("fresh"))  # new tokens use the new key


def test_ciphertext_never_contains_the_token() -> None:
    sealed = TokenCipher([Fernet.generate_key().decode()]).encrypt("refresh-1234567890")
    assert "refresh-1234567890" not in sealed


def test_a_wrong_key_is_a_config_error_that_does_not_echo_the_token() -> None:
    sealed = TokenCipher([Fernet.generate_key().decode()]).encrypt("tok-abc")
    with pytest.raises(ConfigError) as caught:
        TokenCipher([Fernet.generate_key().decode()]).decrypt(sealed)
    assert "tok-abc" not in str(caught.value)
    assert sealed not in str(caught.value)


@pytest.mark.parametrize("key", ["not-a-key", "short"])
def test_a_malformed_key_is_refused(key: str) -> None:
    with pytest.raises(ConfigError, match="Fernet"):
        TokenCipher([key])


def test_several_keys_are_read_newest_first() -> None:
    a, b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings = Settings(token_encryption_key=f" {a} , {b} ")
    assert settings.token_keys() == [a, b]


def test_production_refuses_missing_and_placeholder_secrets() -> None:
    with pytest.raises(ConfigError, match="TOKEN_ENCRYPTION_KEY"):
        Settings().token_keys()
    settings = Settings(cron_secret="changeme", jwt_secret="x" * 40)
    with pytest.raises(ConfigError, match="CRON_SECRET"):
        settings.require_secrets("cron_secret", "jwt_secret")
    dev_key = Settings(token_encryption_key=DEV_TOKEN_ENCRYPTION_KEY)
    with pytest.raises(ConfigError, match="development key"):
        dev_key.require_secrets("token_encryption_key")


def test_development_mode_runs_without_configuration() -> None:
    settings = Settings(contact_import_env="development")
    settings.require_secrets("token_encryption_key", "cron_secret", "jwt_secret")
    assert settings.token_keys() == [DEV_TOKEN_ENCRYPTION_KEY]


def test_cors_origins_accept_a_comma_list() -> None:
    settings = Settings(cors_origins="https://a.example, https://b.example")  # type: ignore[arg-type]
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
