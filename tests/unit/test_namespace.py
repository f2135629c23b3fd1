"""DATABASE_SCHEMA's rules: which names, which NOTIFY channel, SQLite refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contact_import.errors import ConfigError
from contact_import.settings import Settings
from contact_import.store.db import create_db_engine
from contact_import.store.namespace import NOTIFY_CHANNEL, db_schema, lock_seed, notify_channel


@pytest.mark.parametrize("name", ["contact_import", "tenant_a", "_x", "a" * 63])
def test_lowercase_identifiers_are_schema_names(name: str) -> None:
    assert Settings(database_schema=f" {name} ").database_schema == name


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_schema_is_the_default_one(blank: str) -> None:
    assert Settings(database_schema=blank).database_schema is None


@pytest.mark.parametrize(
    "name", ["Tenant", "1tenant", "pg_tenant", "ten-ant", "ten ant", 'a"b', "a" * 64, "é"]
)
def test_other_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="DATABASE_SCHEMA must be"):
        Settings(database_schema=name)


def test_each_schema_has_its_own_channel_within_postgres_limit() -> None:
    assert notify_channel(None) == NOTIFY_CHANNEL == "contact_import_jobs"
    assert notify_channel("tenant_a") == "contact_import_jobs.tenant_a"
    long_a, long_b = notify_channel("a" * 63), notify_channel("a" * 62 + "b")
    assert long_a != long_b
    assert all(len(c.encode()) <= 63 for c in (long_a, long_b))


def test_sqlite_refuses_a_schema() -> None:
    with pytest.raises(ConfigError, match="DATABASE_SCHEMA is for PostgreSQL"):
        create_db_engine("sqlite:///:memory:", schema="tenant_a")


def test_the_default_schema_keeps_the_lock_keys_of_earlier_releases() -> None:
    plain = create_db_engine("postgresql://u@127.0.0.1:1/db")
    a = create_db_engine("postgresql://u@127.0.0.1:1/db", schema="tenant_a")
    b = create_db_engine("postgresql://u@127.0.0.1:1/db", schema="tenant_b")
    assert (db_schema(plain), db_schema(a)) == (None, "tenant_a")
    assert lock_seed(plain) == 0
    assert len({lock_seed(plain), lock_seed(a), lock_seed(b)}) == 3
