"""The one clock every job statement reads (``db_now``), and the seam that lets a test move it.

On Postgres "now" is the database's ``now()`` (one clock for every machine); on SQLite it is
this process's. An engine may carry a ``QueueClock`` (``QueueClock.install(engine)``): its
offset is added to every "now" the job SQL computes (claims, leases, backoffs, reaps), so a
test moves time past a lease or a backoff instead of sleeping through it. Production never
installs one: the offset is then zero and the statements are the same as without it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Connection, Engine, func, literal

from contact_import.store.db import is_postgres
from contact_import.store.schema import UTCDateTime

__all__ = ["QueueClock", "db_now"]

# The engine execution option a QueueClock travels in (every Connection inherits it).
_OPTION = "contact_import_queue_clock"


class QueueClock:
    """An offset added to the job queue's "now", moved forward only by ``advance``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0

    @classmethod
    def install(cls, engine: Engine) -> QueueClock:
        """Make every later connection of ``engine`` read its "now" through a new clock."""
        clock = cls()
        engine.update_execution_options(**{_OPTION: clock})
        return clock

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> None:
        """Move the queue's time ``seconds`` forward (as if that long had passed)."""
        if seconds < 0:
            raise ValueError("a QueueClock only moves forward")
        with self._lock:
            self._offset += seconds


def _offset(conn: Connection) -> float:
    clock = conn.get_execution_options().get(_OPTION)
    return clock.offset if isinstance(clock, QueueClock) else 0.0


def db_now(conn: Connection, plus_seconds: float = 0.0) -> ColumnElement[datetime]:
    """The database's clock on Postgres (one clock for every machine); ours on SQLite; both
    moved by the engine's ``QueueClock``, if a test installed one."""
    plus = plus_seconds + _offset(conn)
    if is_postgres(conn):
        now = func.now()
        return now + timedelta(seconds=plus) if plus else now
    return literal(datetime.now(UTC) + timedelta(seconds=plus), UTCDateTime)
