"""Encryption at rest for provider tokens (Fernet, several keys for rotation)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from contact_import.errors import ConfigError

__all__ = ["TokenCipher"]


class TokenCipher:
    """Encrypts with the newest key, decrypts with any of them (MultiFernet)."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ConfigError("at least one TOKEN_ENCRYPTION_KEY is required")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                "TOKEN_ENCRYPTION_KEY must be url-safe base64 Fernet keys, comma-separated"
            ) from exc

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            # Never echo the ciphertext: it is still a secret to an attacker with the old key.
            raise ConfigError(
                "a stored token cannot be decrypted with TOKEN_ENCRYPTION_KEY"
            ) from exc

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt with the newest key."""
        return self._fernet.rotate(ciphertext.encode()).decode()
