"""Helpers tests share: queue an import against the sandbox, check the database's invariants."""

from __future__ import annotations

import secrets
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine, func, select

from contact_import.domain.contact import IncomingContact
from contact_import.providers.base import ContactPage, ContactSource
from contact_import.runner.importer import Importer, SourceFor
from contact_import.runner.worker import Worker
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Account, Faults
from contact_import.sandbox.oauth_store import GOOGLE_CLIENT_ID, MICROSOFT_CLIENT_ID, RefreshGrant
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.clock import QueueClock
from contact_import.store.jobs import Job
from contact_import.store.schema import contacts, imported_contacts

# The ``settings_for`` fixture: Settings for this test's database and sandbox, with overrides.
SettingsFor = Callable[..., Settings]


class RecordedSleeps(list[float]):
    """Stands in for time.sleep: remembers how long the source wanted to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class FakeTime:
    """A monotonic clock and its sleep: sleeping moves the clock (and the job queue's
    ``QueueClock``, if given) at once, then calls ``on_sleep``, so a test walks through
    waits and leases without spending them."""

    def __init__(
        self, queue: QueueClock | None = None, on_sleep: Callable[[], object] | None = None
    ) -> None:
        self.now = 1000.0
        self.slept = 0.0
        self._queue, self._on_sleep = queue, on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        self.slept += seconds
        if self._on_sleep is not None:
            self._on_sleep()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        if self._queue is not None:
            self._queue.advance(seconds)


def list_pages(source: ContactSource, cursor: str | None = None) -> list[ContactPage]:
    """Every page of a listing, from ``cursor`` (None: the top) to its last page."""
    pages: list[ContactPage] = []
    while True:
        page = source.fetch_page(cursor)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            return pages


def contacts_of(pages: list[ContactPage]) -> list[IncomingContact]:
    return [contact for page in pages for contact in page.contacts]


def raw_get(client: httpx.Client, url: str, token: str, **params: str) -> httpx.Response:
    """A provider API call as-is, for checking the sandbox's own answers."""
    return client.get(url, params=params, headers={"Authorization": f"Bearer {token}"})


def assert_secret_kept(error: BaseException, token: str) -> None:
    assert token not in str(error)
    assert token not in repr(error)


def free_port() -> int:
    """A TCP port free on loopback now, for a server a test starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(
    process: subprocess.Popen[bytes], base_url: str, log: Path, timeout: float = 30
) -> None:
    """Poll ``/healthz`` until it answers 200; fail with the server's log if the process exits
    or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"no /healthz from {base_url} in {timeout:.0f} s:\n{_tail(log)}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


def queue_import(
    rt: Runtime,
    sandbox: RunningSandbox,
    user_id: str,
    *,
    size: int,
    seed: int = 1,
    faults: Faults | None = None,
    provider: str = "google",
) -> Job:
    token = sandbox.state.add_account(size=size, seed=seed, faults=faults)
    grant_id = rt.grants.create(user_id, provider, access_token=token)
    job, created = rt.jobs.create(user_id, provider, grant_id)
    assert created
    return job


def importer_reading(rt: Runtime, sources: SourceFor, **options: Any) -> Importer:
    """An importer like ``rt.importer`` but reading pages through ``sources``; ``options``:
    its ``clock``, ``sleep`` and ``pipeline``."""
    return Importer(
        rt.engine, rt.jobs, sources, lease_seconds=rt.settings.lease_seconds,
        default_region=rt.settings.default_phone_region, grants=rt.grants, metrics=rt.metrics,
        **options,
    )  # fmt: skip


def before_each_page(action: Callable[[], object], sources: SourceFor) -> SourceFor:
    """``sources``, whose listings run ``action`` before fetching each page."""

    class Source:
        def __init__(self, inner: ContactSource) -> None:
            self.inner = inner

        def fetch_page(self, cursor: str | None) -> ContactPage:
            action()
            return self.inner.fetch_page(cursor)

    return lambda job, **kwargs: Source(sources(job, **kwargs))


def drain(rt: Runtime, concurrency: int = 2) -> Worker:
    worker = Worker(
        rt.jobs,
        rt.importer,
        metrics=rt.metrics,
        concurrency=concurrency,
        poll_seconds=0.05,
        listen_url=rt.listen_url,
    )
    worker.run(once=True)
    return worker


@dataclass(frozen=True)
class Counts:
    """A job's counts, comparable between runs."""

    status: str
    total: int
    processed: int
    created: int
    updated: int
    skipped: int
    failed: int
    imported: int

    @classmethod
    def of(cls, job: Job) -> Counts:
        return cls(
            job.status.value, job.total_contacts, job.processed_contacts, job.created_contacts,
            job.updated_contacts, job.skipped_contacts, job.failed_contacts,
            job.imported_contacts,
        )  # fmt: skip


@dataclass(frozen=True)
class StoredState:
    contacts: int
    audit_rows: int
    audit_actions: dict[str, int]
    duplicate_email_keys: int


def stored_state(engine: Engine, user_id: str, job_id: UUID) -> StoredState:
    """What is really in the database for one user and one job."""
    with engine.connect() as conn:
        n_contacts = conn.execute(
            select(func.count()).select_from(contacts).where(contacts.c.user_id == user_id)
        ).scalar_one()
        keys = Counter(
            key
            for (mk,) in conn.execute(
                select(contacts.c.match_keys).where(contacts.c.user_id == user_id)
            )
            for key in mk
            if key.startswith("email:")
        )
        actions: dict[str, int] = dict(
            conn.execute(
                select(imported_contacts.c.action, func.count())
                .where(imported_contacts.c.import_job_id == job_id)
                .group_by(imported_contacts.c.action)
            ).all()
        )
    return StoredState(
        contacts=n_contacts,
        audit_rows=sum(actions.values()),
        audit_actions=actions,
        duplicate_email_keys=sum(1 for n in keys.values() if n > 1),
    )


def audit_rows(engine: Engine, job_id: UUID) -> dict[str, tuple[str, UUID | None, str | None]]:
    """Provider id → (action, contact, detail) of every audit row of one job."""
    ic = imported_contacts.c
    stmt = select(ic.provider_contact_id, ic.action, ic.contact_id, ic.detail).where(
        ic.import_job_id == job_id
    )
    with engine.connect() as conn:
        return {row[0]: (row[1], row[2], row[3]) for row in conn.execute(stmt)}


def assert_consistent(engine: Engine, job: Job, book_size: int) -> StoredState:
    """The invariants every finished import must satisfy."""
    state = stored_state(engine, job.user_id, job.id)
    c = Counts.of(job)
    assert c.status == "completed", job.error_message
    assert c.processed == book_size == c.total
    assert c.processed == c.created + c.updated + c.skipped + c.failed
    assert c.imported == c.created + c.updated
    assert state.audit_rows == book_size
    assert state.audit_actions.get("created", 0) == c.created
    assert state.audit_actions.get("updated", 0) == c.updated
    assert state.audit_actions.get("skipped", 0) == c.skipped
    assert state.duplicate_email_keys == 0
    return state


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        assert time.monotonic() < deadline, "uvicorn did not start in time"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@dataclass(frozen=True)
class ProviderTokens:
    """Tokens the sandbox issued for one of its accounts, as an app that signed the user in
    with the provider would hold them."""

    account: Account
    access_token: str
    refresh_token: str


def sandbox_tokens(
    sandbox: RunningSandbox,
    provider: str,
    *,
    size: int,
    seed: int = 1,
    faults: Faults | None = None,
    ttl: float | None = None,
) -> ProviderTokens:
    """A new sandbox account, an access token for it (expiring after ``ttl`` seconds if given)
    and a refresh token its OAuth server accepts for our client."""
    state = sandbox.state
    account = state.new_account(size, seed, faults)
    access_token = state.add_token(account, ttl=ttl)
    client_id = {"google": GOOGLE_CLIENT_ID, "microsoft": MICROSOFT_CLIENT_ID}[provider]
    refresh = state.oauth.issue_refresh_token(
        f"refresh-{secrets.token_urlsafe(16)}", RefreshGrant(account, client_id, "contacts")
    )
    return ProviderTokens(account, access_token, refresh)
