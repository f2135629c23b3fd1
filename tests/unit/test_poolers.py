"""Which pooler a database URL goes through, and where workers LISTEN (pure, no database)."""

from __future__ import annotations

import pytest
from sqlalchemy import make_url

from contact_import.cli.common import load_settings
from contact_import.errors import ConfigError
from contact_import.runtime import Runtime
from contact_import.settings import Settings
from contact_import.store.db import listen_url, normalize_database_url
from contact_import.store.pooler import Pooler, PoolerSetting, detect_pooler, resolve_pooler

SUPABASE_POOLED = (
    "postgresql://postgres.abc:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres"
)
SUPABASE_DIRECT = "postgresql://postgres:pw@db.abc.supabase.co:5432/postgres"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (SUPABASE_POOLED, "transaction"),
        ("postgresql://postgres.abc:pw@aws-0-eu-central-1.pooler.supabase.com:5432/postgres",
         "session"),
        ("postgresql://postgres:pw@db.abc.supabase.co:6543/postgres", "transaction"),
        (SUPABASE_DIRECT, "none"),
        ("postgresql://alex:pw@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/db"
         "?sslmode=require", "transaction"),
        ("postgresql://alex:pw@ep-cool-darkness-123456.us-east-2.aws.neon.tech/db", "none"),
        ("postgresql://app@127.0.0.1:6432/app?pgbouncer=true", "transaction"),
        ("postgresql://app@127.0.0.1:6432/app?pgbouncer=True", "transaction"),
        ("postgresql://app@127.0.0.1:6432/app?pgbouncer=false", "none"),
        ("postgresql://app@localhost/app", "none"),
        ("postgresql://app@localhost:6543/app", "none"),  # a port alone proves nothing
        ("postgresql://app@pooler.supabase.com.example.org:6543/app", "none"),
    ],
)  # fmt: skip
def test_auto_detection_reads_the_url(url: str, expected: Pooler) -> None:
    assert detect_pooler(make_url(url)) == expected


@pytest.mark.parametrize(
    ("url", "setting", "expected"),
    [
        (SUPABASE_POOLED, "none", "none"),  # an explicit setting wins over detection …
        ("postgresql://app@10.0.0.5:6432/app", "transaction", "transaction"),  # … both ways
        ("postgresql://app@10.0.0.5/app", "session", "session"),
        ("sqlite:///contact-import.db", "auto", "none"),
    ],
)
def test_resolving_the_setting(url: str, setting: PoolerSetting, expected: Pooler) -> None:
    assert resolve_pooler(make_url(url), setting) == expected


def test_a_pooler_declared_for_sqlite_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="DATABASE_POOLER=transaction needs a PostgreSQL"):
        resolve_pooler(make_url("sqlite:///x.db"), "transaction")


def test_the_pgbouncer_flag_never_reaches_libpq() -> None:
    url = normalize_database_url(
        "postgres://app:pw@db.example.com:6432/app?pgbouncer=true&sslmode=require"
    )
    assert url.drivername == "postgresql+psycopg"
    assert dict(url.query) == {"sslmode": "require"}


def test_workers_listen_on_the_direct_url_when_there_is_one() -> None:
    got = listen_url(SUPABASE_POOLED, pooler="auto", direct_url=SUPABASE_DIRECT)
    assert got == SUPABASE_DIRECT  # a libpq URL, password included: it is a connection string


def test_behind_a_transaction_pooler_without_a_direct_url_workers_poll() -> None:
    assert listen_url(SUPABASE_POOLED, pooler="auto", direct_url=None) is None
    plain = "postgresql://app@10.0.0.5:6432/app"
    assert listen_url(plain, pooler="transaction", direct_url=None) is None


@pytest.mark.parametrize("pooler", ["auto", "none", "session"])
def test_without_a_transaction_pooler_workers_listen_on_the_database(
    pooler: PoolerSetting,
) -> None:
    url = "postgres://app:pw@10.0.0.5:5432/app?sslmode=require"
    got = listen_url(url, pooler=pooler, direct_url=None)
    assert got == "postgresql://app:pw@10.0.0.5:5432/app?sslmode=require"


def test_sqlite_has_nothing_to_listen_on() -> None:
    assert listen_url("sqlite:///x.db", pooler="auto", direct_url=SUPABASE_DIRECT) is None


@pytest.mark.parametrize(
    ("direct", "message"),
    [
        (SUPABASE_POOLED, "goes through a transaction pooler"),
        ("postgresql://app@10.0.0.5/app?pgbouncer=true", "goes through a transaction pooler"),
        ("sqlite:///x.db", "must be a PostgreSQL URL"),
        ("not a url", "DATABASE_DIRECT_URL is not a valid database URL"),
    ],
)
def test_a_direct_url_that_is_not_direct_is_refused(direct: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        listen_url(SUPABASE_POOLED, pooler="auto", direct_url=direct)


def test_the_settings_and_the_runtime_property(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", SUPABASE_POOLED)
    monkeypatch.setenv("DATABASE_DIRECT_URL", SUPABASE_DIRECT)
    monkeypatch.setenv("CONTACT_IMPORT_ENV", "development")
    settings = Settings()
    assert settings.database_pooler == "auto"
    # Building connects to nothing: the property only reads the settings.
    with Runtime.build(settings) as rt:
        assert rt.listen_url == SUPABASE_DIRECT
    monkeypatch.setenv("DATABASE_POOLER", "pgbouncer")
    with pytest.raises(ConfigError, match="setting DATABASE_POOLER"):
        load_settings()
