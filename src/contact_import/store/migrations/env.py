"""Alembic environment: runs on the connection ``upgrade_database`` hands over."""

from __future__ import annotations

from alembic import context

from contact_import.store.namespace import db_schema
from contact_import.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `contact-import db upgrade`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    # DATABASE_SCHEMA: the version table lives beside the tables (they get there through the
    # engine's schema_translate_map; Alembic looks its own table up by name).
    version_table_schema=db_schema(connection),
)
with context.begin_transaction():
    context.run_migrations()
