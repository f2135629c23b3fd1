"""`contact-import demo`: a whole import against the built-in sandbox, no configuration."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from contact_import.cli.common import (
    ExitCode,
    console,
    friendly_errors,
    load_settings,
    require_sandbox,
    runtime,
)
from contact_import.domain.job import FINAL_STATUSES, JobStatus
from contact_import.errors import ConfigError
from contact_import.providers.registry import PROVIDER_NAMES, provider_spec
from contact_import.runner.worker import Worker
from contact_import.runtime import Runtime
from contact_import.store.contact_list import count_contacts
from contact_import.store.jobs import Job

DEMO_USER = "demo-user"


@friendly_errors
def demo(
    contacts_count: Annotated[
        int, typer.Option("--contacts", min=1, max=1_000_000, help="size of the address book")
    ] = 5000,
    provider: Annotated[
        str, typer.Option(help="which provider's API the sandbox speaks")
    ] = PROVIDER_NAMES[0],
    database_url: Annotated[
        str | None, typer.Option(help="default: a new SQLite file in a temporary folder")
    ] = None,
    seed: Annotated[int, typer.Option(help="the sandbox book's seed")] = 1,
) -> None:
    """Import a fake address book end to end: sandbox, queue, worker, progress, summary."""
    provider_spec(provider)  # an unknown name fails here, before the sandbox starts
    require_sandbox("demo")
    # Only here: a production install has no sandbox (see require_sandbox).
    from contact_import.sandbox.server import sandbox_settings, start_sandbox
    from contact_import.sandbox.state import SandboxState

    with tempfile.TemporaryDirectory(prefix="contact-import-demo-") as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'demo.db'}"
        with start_sandbox(SandboxState()) as sandbox:
            settings = load_settings(
                contact_import_env="development",
                database_url=url,
                **sandbox_settings(sandbox.base_url),
            )
            console.print(f"sandbox: {sandbox.base_url}   database: {settings.database_url}")
            with runtime(settings, migrate=True) as rt:
                # A Microsoft book is spread over nested Outlook folders, as real ones are.
                folders = ",folders:nested" if provider == "microsoft" else ""
                job = _connect(rt, provider, f"contacts:{contacts_count},seed:{seed}{folders}")
                elapsed, job = _run_with_progress(rt, job)
                stored = count_contacts(rt.engine, DEMO_USER)
    _print_summary(job, elapsed, stored)
    if job.status is not JobStatus.COMPLETED:
        raise typer.Exit(ExitCode.ERROR)


def _connect(rt: Runtime, provider: str, login_hint: str) -> Job:
    """The real OAuth flow, with the sandbox approving at once instead of a person.

    The demo plays the browser: it keeps the flow's nonce (the cookie a browser would hold)
    and brings it back to the callback.
    """
    flow = rt.connections.start(DEMO_USER, provider, login_hint=login_hint)
    redirect = rt.http.get(flow.auth_url, follow_redirects=False)
    query = parse_qs(urlsplit(redirect.headers.get("location", "")).query)
    if redirect.status_code != 302 or "code" not in query:
        raise ConfigError(f"the sandbox did not approve the sign-in ({redirect.status_code})")
    console.print(f"connected a {provider} sandbox account through OAuth (PKCE)")
    return rt.connections.complete_in_browser(
        provider,
        code=query["code"][0],
        state=query["state"][0],
        browser_nonce=flow.browser_nonce,
    )


def _run_with_progress(rt: Runtime, job: Job) -> tuple[float, Job]:
    """Run a worker in the background and draw the bar from the job's own stored counts."""
    worker = Worker(
        rt.jobs,
        rt.importer,
        metrics=rt.metrics,
        concurrency=1,
        poll_seconds=0.2,
        listen_url=rt.listen_url,
    )
    thread = threading.Thread(target=worker.run, kwargs={"once": True}, daemon=True)
    started = time.monotonic()
    thread.start()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"{job.provider} import", total=None)
        while True:
            job = rt.jobs.get(job.id)
            total = job.total_contacts or None
            progress.update(task, completed=job.processed_contacts, total=total)
            progress.update(task, description=f"{job.provider} import: {job.status.value}")
            if job.status in FINAL_STATUSES or not thread.is_alive():
                break
            time.sleep(0.1)
    worker.request_stop()
    thread.join()
    return time.monotonic() - started, rt.jobs.get(job.id)


def _print_summary(job: Job, elapsed: float, stored: int) -> None:
    table = Table(title="import summary", show_header=False, title_justify="left")
    rate = job.processed_contacts / elapsed if elapsed > 0 else 0.0
    for name, value in (
        ("status", job.status.value), ("provider contacts", job.total_contacts),
        ("processed", job.processed_contacts), ("created", job.created_contacts),
        ("updated", job.updated_contacts), ("skipped", job.skipped_contacts),
        ("failed", job.failed_contacts), ("imported (created + updated)", job.imported_contacts),
        ("contacts stored", stored), ("pages", job.pages_done),
        ("time", f"{elapsed:.2f} s ({rate:,.0f} contacts/s)"),
        ("error", job.error_message or "-"),
    ):  # fmt: skip
        table.add_row(name, str(value))
    console.print(table)
