"""Continuous sync's one statement over many grants: how long a tick spends queuing.

Prints figures; it is not a test. Usage:

    .venv/bin/python bench/sync_queue.py                  # 50,000 grants, 1% due
    .venv/bin/python bench/sync_queue.py --grants 200000 --due 0.05

Creates a throwaway database on the Postgres of CONTACT_IMPORT_TEST_PG (default the local
server), fills ``provider_grants`` (listed an hour ago, or ``--due`` of them a day ago), then
times ``JobStore.queue_syncs`` with a 6-hour interval: the call that queues the due ones, and
the next one, which finds nothing (every tick's usual case). Drops the database at the end.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import Engine, insert, text

from contact_import.store.db import create_db_engine, upgrade_database
from contact_import.store.jobs import JobStore
from contact_import.store.schema import provider_grants

ADMIN = os.environ.get("CONTACT_IMPORT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grants", type=int, default=50_000)
    parser.add_argument("--due", type=float, default=0.01)
    args = parser.parse_args()
    name = f"bench_sync_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = create_db_engine(ADMIN.rsplit("/", 1)[0] + "/" + name)
    try:
        upgrade_database(engine)
        _fill(engine, args.grants, args.due)
        store = JobStore(engine, lease_seconds=30)
        for label in ("queues the due ones", "finds none due"):
            started = time.perf_counter()
            queued = store.queue_syncs(6 * 3600)
            elapsed = (time.perf_counter() - started) * 1000
            print(f"{args.grants} grants: {label}: {len(queued)} queued in {elapsed:.1f} ms")
    finally:
        engine.dispose()
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fill(engine: Engine, count: int, due: float) -> None:
    now = datetime.now(UTC)
    every = max(1, round(1 / due)) if due > 0 else count + 1
    rows = [
        {
            "id": uuid.uuid4(), "user_id": f"user-{i}", "provider": "google",
            "access_token_enc": "sealed", "created_at": now - timedelta(days=30),
            "updated_at": now,
            "last_synced_at": now - (timedelta(days=1) if i % every == 0 else timedelta(hours=1)),
        }
        for i in range(count)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(provider_grants), rows)
        conn.execute(text("ANALYZE provider_grants"))


if __name__ == "__main__":
    main()
