"""Settings from the environment (pydantic-settings), with safe defaults for the embedded mode."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from contact_import.errors import ConfigError
from contact_import.logs import LogFormat

__all__ = ["ASYMMETRIC_JWT_ALGORITHMS", "DEV_TOKEN_ENCRYPTION_KEY", "PoolerSetting", "Settings"]

# DATABASE_POOLER: what sits between us and Postgres (see store/pooler.py); auto reads the URL.
PoolerSetting = Literal["auto", "none", "session", "transaction"]

# Used only when CONTACT_IMPORT_ENV=development and no key is configured; refused otherwise.
# Public on purpose (it is in the repository), hence refused outside development.
DEV_TOKEN_ENCRYPTION_KEY = "ZGV2LW9ubHktY29udGFjdC1pbXBvcnQta2V5LTAwMDA="  # noqa: S105

# JWT_ALGORITHMS may name these (PyJWT's asymmetric ones); HS* and none never, with a JWKS.
ASYMMETRIC_JWT_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

# DATABASE_SCHEMA: lowercase only, since SQL people type (`SET search_path TO Foo`) folds to
# lowercase and a name that must be quoted to be found would surprise them; Postgres keeps
# pg_* for itself.
_SCHEMA_NAME = re.compile(r"(?!pg_)[a-z_][a-z0-9_]{0,62}")

_PLACEHOLDERS = frozenset(
    {"", "changeme", "change-me", "secret", "your-secret-key-here", "xxx", "todo", "placeholder"}
)


class Settings(BaseSettings):
    """Every knob of the service; see the README for what each one does."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    contact_import_env: Literal["development", "production"] = "production"
    database_url: str = "sqlite:///contact-import.db"
    # What sits between us and Postgres (README "Poolers"); auto reads it from DATABASE_URL.
    database_pooler: PoolerSetting = "auto"
    # A direct (or session-mode) URL for workers' LISTEN when DATABASE_URL is pooled.
    database_direct_url: str | None = None
    # The Postgres schema of every table, index and query (store/namespace.py); None: the
    # connection's default. Two deployments in two schemas of one database do not meet.
    database_schema: str | None = None
    # Supabase: `db upgrade` also lets signed-in users read their own contacts through
    # supabase-js (a row level security policy on contacts; see the README "On Supabase").
    supabase_contacts_policy: bool = False
    cron_secret: str | None = None
    # Legacy sign-in: users' JWTs are HS256 with this secret. It also signs status-page links.
    jwt_secret: str | None = None
    # The `aud` users' JWTs must carry; empty: none is accepted (Clerk's session tokens).
    jwt_audience: str = "authenticated"
    # Asymmetric sign-in keys (web/bearer.py): users' JWTs are verified against this JWKS
    # only, with JWT_ISSUER and JWT_ALGORITHMS; JWT_SECRET then only signs status links.
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["RS256", "ES256", "EdDSA"]
    )
    # When set, a JWT's `azp` must be one of these (Clerk: the app's origins).
    jwt_authorized_parties: Annotated[list[str], NoDecode] = Field(default_factory=list)
    token_encryption_key: str | None = None
    lease_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    page_size: int = Field(default=1000, ge=1, le=1000)
    # Fetch page N+1 from the provider while page N is written (runner/importer.py).
    pipeline_pages: bool = True
    tick_budget_seconds: float = Field(default=8.0, gt=0)
    # A tick runs TICK_CONCURRENCY imports at once, each freed slot claiming the next job while
    # the budget fits another page, up to TICK_MAX_JOBS jobs claimed in all.
    tick_max_jobs: int = Field(default=1000, ge=1)
    tick_concurrency: int = Field(default=4, ge=1, le=64)
    # The OAuth callback imports the job it created for this long before it answers (a small
    # book is completed by then); 0: it only queues the job.
    callback_budget_seconds: float = Field(default=2.0, ge=0, le=30)
    worker_concurrency: int = Field(default=4, ge=1)
    worker_poll_seconds: float = Field(default=5.0, gt=0)
    http_timeout_seconds: float = Field(default=20.0, gt=0)
    provider_max_retries: int = Field(default=3, ge=0, le=10)
    # Continuous sync: every connected account is imported again (incrementally) this long
    # after its last complete listing; 0 turns it off.
    sync_interval_seconds: float = Field(default=0.0, ge=0)
    public_base_url: str = "http://127.0.0.1:8000"
    # An app on another site: the OAuth callback forwards code and state to this page, which
    # completes the flow with POST …/callback and the user's JWT (see the README).
    oauth_return_url: str | None = None
    # Browser origins allowed to call the API (CORS_ORIGINS, comma-separated or a JSON list).
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    default_phone_region: str | None = "US"
    # Log lines as key=value text (for people) or one JSON object each (for log pipelines).
    log_format: LogFormat = "text"
    google_client_id: str | None = None
    google_client_secret: str | None = None
    google_auth_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token_url: str = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL)
    google_people_api_url: str = "https://people.googleapis.com"
    google_revoke_url: str = "https://oauth2.googleapis.com/revoke"
    microsoft_client_id: str | None = None
    microsoft_client_secret: str | None = None
    microsoft_tenant: str = "common"
    microsoft_login_url: str = "https://login.microsoftonline.com"
    microsoft_graph_api_url: str = "https://graph.microsoft.com"
    # Development: the providers above are the built-in sandbox at this URL (`serve --sandbox`
    # sets it; `contact-import sandbox` prints it), so the dev home page may pick a book size.
    sandbox_url: str | None = None
    # Completion webhooks (Standard Webhooks): POST each event here; unset = no events.
    webhook_url: str | None = None
    # whsec_… secrets, space-separated, newest first: every one signs (rotation); never logged.
    webhook_secret: str | None = Field(default=None, repr=False)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Delivered (and given-up) webhook events are deleted this many days later; 0 = never.
    webhook_retention_days: float = Field(default=7.0, ge=0)
    # imported_contacts rows of jobs that ended this many days ago are deleted; 0 = never.
    audit_retention_days: float = Field(default=90.0, ge=0)

    @field_validator("cors_origins", "jwt_algorithms", "jwt_authorized_parties", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [o.strip() for o in text.split(",") if o.strip()]
        return value

    @field_validator("oauth_return_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            raise ValueError("OAUTH_RETURN_URL must be an absolute http(s) URL without a #fragment")
        return value.strip()

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("WEBHOOK_URL must be an absolute http(s) URL")
        return value.strip()

    @field_validator("jwt_jwks_url", "jwt_issuer")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value else None

    @model_validator(mode="after")
    def _one_way_to_sign_in(self) -> Settings:
        """JWT_JWKS_URL and its companions make sense together only (web/bearer.py)."""
        if self.jwt_jwks_url is None:
            if "jwt_algorithms" in self.model_fields_set:
                raise ValueError("JWT_ALGORITHMS applies to JWT_JWKS_URL, which is not set")
            return self
        _check_jwks_url(self.jwt_jwks_url, dev_mode=self.dev_mode)
        if self.jwt_issuer is None:
            raise ValueError("JWT_JWKS_URL needs JWT_ISSUER (the `iss` of your users' tokens)")
        refused = [a for a in self.jwt_algorithms if a not in ASYMMETRIC_JWT_ALGORITHMS]
        if refused or not self.jwt_algorithms:
            raise ValueError(
                f"JWT_ALGORITHMS must name asymmetric algorithms only "
                f"({', '.join(sorted(ASYMMETRIC_JWT_ALGORITHMS))}); refused: "
                f"{', '.join(refused) or 'an empty list'}"
            )
        return self

    @field_validator("database_schema")
    @classmethod
    def _schema_name(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not _SCHEMA_NAME.fullmatch(value.strip()):
            raise ValueError(
                "DATABASE_SCHEMA must be 1 to 63 lowercase letters, digits or _, "
                "not starting with a digit or pg_"
            )
        return value.strip()

    @field_validator("default_phone_region")
    @classmethod
    def _region_upper(cls, value: str | None) -> str | None:
        return value.strip().upper() or None if value else None

    @property
    def dev_mode(self) -> bool:
        return self.contact_import_env == "development"

    @property
    def mount_path(self) -> str:
        """Where browsers reach the routes: the path of PUBLIC_BASE_URL ("" at the root;
        "/contacts-import" for an app that mounts the API there)."""
        return urlsplit(self.public_base_url).path.rstrip("/")

    def token_keys(self) -> list[str]:
        """Fernet keys, newest first; the built-in dev key only in development."""
        raw = self.token_encryption_key or ""
        keys = [k.strip() for k in raw.split(",") if k.strip()]
        if keys:
            return keys
        if self.dev_mode:
            return [DEV_TOKEN_ENCRYPTION_KEY]
        raise ConfigError(
            "TOKEN_ENCRYPTION_KEY is not set: generate one with `python -c "
            "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
        )

    def webhook_secrets(self) -> list[str]:
        """WEBHOOK_SECRET's ``whsec_`` secrets, newest first; ConfigError when WEBHOOK_URL is
        set without a valid one. The message never repeats a secret."""
        raw = (self.webhook_secret or "").split()
        if self.webhook_url is None:
            return raw
        if not raw:
            raise ConfigError(
                "WEBHOOK_URL is set but WEBHOOK_SECRET is not: set it to a whsec_… secret "
                "(e.g. `python -c 'import base64,os; "
                'print("whsec_" + base64.b64encode(os.urandom(32)).decode())\'`)'
            )
        for position, secret in enumerate(raw, start=1):
            if not _is_webhook_secret(secret):
                raise ConfigError(
                    f"WEBHOOK_SECRET: secret {position} of {len(raw)} is not a whsec_ secret "
                    "(whsec_ then the base64 of at least 24 random bytes)"
                )
        return raw

    def require_secrets(self, *names: str) -> None:
        """Refuse to start outside development when a named secret is missing or a placeholder."""
        if self.dev_mode:
            return
        bad = [n.upper() for n in names if _is_placeholder(getattr(self, n))]
        if bad:
            raise ConfigError(
                f"{', '.join(bad)} must be set to a real secret "
                "(or set CONTACT_IMPORT_ENV=development for local use)"
            )
        if "token_encryption_key" in names and DEV_TOKEN_ENCRYPTION_KEY in self.token_keys():
            raise ConfigError("TOKEN_ENCRYPTION_KEY is the development key; generate a real one")


def _check_jwks_url(url: str, *, dev_mode: bool) -> None:
    """An absolute URL; https unless on loopback or in development (a JWKS fetched in the
    clear is a key anyone on the path can replace)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("JWT_JWKS_URL must be an absolute https URL")
    if parts.scheme == "http" and not dev_mode and parts.hostname not in _LOOPBACK_HOSTS:
        raise ValueError("JWT_JWKS_URL must be https (http only on loopback or in development)")


def _is_webhook_secret(secret: str) -> bool:
    """``whsec_`` and the base64 of at least 24 bytes (Standard Webhooks' own format)."""
    if not secret.startswith("whsec_"):
        return False
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        return False
    return len(key) >= 24


def _is_placeholder(value: str | None) -> bool:
    return value is None or value.strip().lower() in _PLACEHOLDERS or len(value.strip()) < 16
