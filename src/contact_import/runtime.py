"""Wiring: build engines, clients and stores once, from settings; nothing at import time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from sqlalchemy import Engine

from contact_import.connect import Connections
from contact_import.connected import ConnectedAccounts
from contact_import.crypto import TokenCipher
from contact_import.metrics import Metrics
from contact_import.runner.importer import Importer
from contact_import.runner.retention import Retention
from contact_import.runner.sources import SourceFactory
from contact_import.runner.webhooks import Deliverer
from contact_import.settings import Settings
from contact_import.store.db import create_db_engine, listen_url, upgrade_database
from contact_import.store.grants import GrantStore
from contact_import.store.jobs import JobStore
from contact_import.store.outbox import Outbox

__all__ = ["Runtime"]


@dataclass
class Runtime:
    """Everything a tick, a worker or the API needs, built from one ``Settings``."""

    settings: Settings
    engine: Engine
    jobs: JobStore
    grants: GrantStore
    http: httpx.Client
    importer: Importer
    connections: Connections
    metrics: Metrics
    accounts: ConnectedAccounts
    outbox: Outbox
    retention: Retention
    # None unless WEBHOOK_URL is set; then jobs put their end in the outbox and this sends it.
    deliverer: Deliverer | None

    @classmethod
    def build(cls, settings: Settings, *, migrate: bool = False) -> Runtime:
        settings.require_secrets("token_encryption_key")
        webhook_secrets = settings.webhook_secrets()  # ConfigError before anything is built
        engine = create_db_engine(
            settings.database_url,
            pool_size=max(settings.worker_concurrency, settings.tick_concurrency) + 2,
            pooler=settings.database_pooler,
            schema=settings.database_schema,
        )
        if migrate:
            upgrade_database(engine, contacts_read_policy=settings.supabase_contacts_policy)
        metrics = Metrics()
        jobs = JobStore(
            engine,
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.max_attempts,
            webhooks=settings.webhook_url is not None,
        )
        metrics.watch_queue(jobs.queue_stats)
        outbox = Outbox(engine, lease_seconds=settings.webhook_timeout_seconds + 10)
        metrics.watch_outbox(lambda: outbox.stats(datetime.now(UTC)))
        cipher = TokenCipher(settings.token_keys())
        grants = GrantStore(engine, cipher)
        http = _http_client(settings)
        importer = Importer(
            engine,
            jobs,
            SourceFactory(settings, engine, http, grants),
            grants=grants,
            lease_seconds=settings.lease_seconds,
            default_region=settings.default_phone_region,
            metrics=metrics,
            pipeline=settings.pipeline_pages,
        )
        connections = Connections(
            settings=settings, engine=engine, http=http, cipher=cipher, grants=grants, jobs=jobs,
            metrics=metrics,
        )  # fmt: skip
        accounts = ConnectedAccounts(
            settings=settings, engine=engine, http=http, grants=grants, jobs=jobs, metrics=metrics
        )
        retention = Retention(
            engine,
            metrics,
            audit_days=settings.audit_retention_days,
            webhook_days=settings.webhook_retention_days,
        )
        deliverer = _deliverer(settings, outbox, webhook_secrets, metrics)
        return cls(
            settings, engine, jobs, grants, http, importer, connections, metrics, accounts,
            outbox, retention, deliverer,
        )  # fmt: skip

    @property
    def listen_url(self) -> str | None:
        """Where workers LISTEN for new jobs; None: they poll (see ``store.db.listen_url``)."""
        s = self.settings
        return listen_url(
            s.database_url, pooler=s.database_pooler, direct_url=s.database_direct_url
        )

    def close(self) -> None:
        self.http.close()
        if self.deliverer is not None:
            self.deliverer.http.close()
        self.engine.dispose()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _http_client(settings: Settings) -> httpx.Client:
    """One client for every provider call: its pool fits every import thread."""
    return httpx.Client(
        timeout=settings.http_timeout_seconds,
        limits=httpx.Limits(
            max_connections=max(settings.worker_concurrency, settings.tick_concurrency) * 2 + 4
        ),
        headers={"User-Agent": "contact-import"},
    )


def _deliverer(
    settings: Settings, outbox: Outbox, secrets: list[str], metrics: Metrics
) -> Deliverer | None:
    """The webhook deliverer, with its own client: a slow receiver never holds a connection
    an import needs."""
    if settings.webhook_url is None:
        return None
    http = httpx.Client(
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        headers={"User-Agent": "contact-import-webhooks"},
    )
    return Deliverer(
        outbox,
        http,
        url=settings.webhook_url,
        secrets=secrets,
        metrics=metrics,
        timeout_seconds=settings.webhook_timeout_seconds,
    )
