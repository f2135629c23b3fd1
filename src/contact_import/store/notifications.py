"""NOTIFY when a job becomes runnable, and LISTEN for it (Postgres; SQLite workers poll).

pg_notify is sent at commit, so it travels through any pooler; LISTEN needs one server
session for as long as it listens, so it runs on its own plain psycopg connection
(``store.db.listen_url`` says which URL, or that there is none). Each deployment has its own
channel (``store.namespace.notify_channel``): workers of another schema are not woken.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from uuid import UUID

import psycopg
from psycopg import sql
from sqlalchemy import Connection, text

from contact_import.errors import DatabaseUnavailable, StoreError
from contact_import.store.db import is_postgres
from contact_import.store.db_errors import translate_db_error
from contact_import.store.namespace import NOTIFY_CHANNEL, db_schema, notify_channel

__all__ = ["NOTIFY_CHANNEL", "listen_for_jobs", "notify_job"]

_CONNECT_TIMEOUT = 5
_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def notify_job(conn: Connection, job_id: UUID) -> None:
    """Wake listening workers when ``conn``'s transaction commits (Postgres only)."""
    if is_postgres(conn):
        conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": notify_channel(db_schema(conn)), "payload": str(job_id)},
        )


@contextmanager
def listen_for_jobs(
    listen_url: str, channel: str = NOTIFY_CHANNEL
) -> Iterator[Callable[[float], bool]]:
    """A LISTEN connection on ``channel`` (the deployment's: ``JobStore.notify_channel``);
    yields ``wait(timeout)``: True if a NOTIFY came.

    Any driver error is raised as a ``StoreError`` (``DatabaseUnavailable`` unless
    ``translate_db_error`` names it better): for a listener they all mean "the connection is
    gone; poll until it is back".
    """
    try:
        with psycopg.connect(listen_url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT) as raw:
            raw.execute(_listen(channel))

            def wait(timeout: float) -> bool:
                return any(True for _ in raw.notifies(timeout=timeout, stop_after=1))

            yield wait
    except psycopg.Error as exc:
        error = translate_db_error(exc)
        if not isinstance(error, StoreError):
            error = DatabaseUnavailable(f"LISTEN connection failed ({type(exc).__name__})")
        raise error from exc


def _listen(channel: str) -> sql.Composed:
    """LISTEN ``channel``: a plain name as is (the statement earlier releases sent, which
    operators find in pg_stat_activity), any other quoted (a schema's, with its dot)."""
    if _PLAIN_NAME.fullmatch(channel):
        return sql.SQL("LISTEN {}").format(sql.SQL(channel))
    return sql.SQL("LISTEN {}").format(sql.Identifier(channel))
