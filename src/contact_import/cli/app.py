"""Commands: demo, tick, worker, db upgrade, jobs …, sandbox."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from importlib.metadata import version as package_version
from types import FrameType
from typing import Annotated

import typer
import uvicorn

from contact_import.cli import demo as demo_command
from contact_import.cli.common import (
    EXIT_CODES_HELP,
    ExitCode,
    console,
    fail,
    friendly_errors,
    load_settings,
    require_sandbox,
    runtime,
    setup_logging,
)
from contact_import.cli.jobs import jobs_app
from contact_import.cli.webhooks import webhooks_app
from contact_import.errors import ConfigError
from contact_import.runner.tick import run_tick
from contact_import.runner.worker import Worker
from contact_import.settings import Settings
from contact_import.store.db import create_db_engine, upgrade_database
from contact_import.web.app import create_app

app = typer.Typer(
    name="contact-import",
    help="Import address books from Google and Microsoft in background jobs.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(jobs_app, name="jobs")
app.add_typer(webhooks_app, name="webhooks")
app.command("demo")(demo_command.demo)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"contact-import {package_version('contact-import')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Import address books from Google and Microsoft in background jobs."""


LogLevel = Annotated[str, typer.Option("--log-level", help="debug, info, warning, error")]


@db_app.command("upgrade")
@friendly_errors
def db_upgrade() -> None:
    """Create or upgrade the tables (Alembic migrations to head)."""
    settings = load_settings()
    engine = create_db_engine(
        settings.database_url, pooler=settings.database_pooler, schema=settings.database_schema
    )
    try:
        upgrade_database(engine, contacts_read_policy=settings.supabase_contacts_policy)
    finally:
        engine.dispose()
    console.print("database is up to date")


@app.command()
@friendly_errors
def tick(
    budget: Annotated[
        float | None, typer.Option(help="seconds; default TICK_BUDGET_SECONDS")
    ] = None,
    max_jobs: Annotated[int | None, typer.Option(help="default TICK_MAX_JOBS", min=1)] = None,
    log_level: LogLevel = "warning",
) -> None:
    """Exactly what the cron route does: one bounded pass over the queue; prints its JSON."""
    setup_logging(log_level)
    with runtime() as rt:
        summary = run_tick(
            rt.jobs,
            rt.importer,
            metrics=rt.metrics,
            budget_seconds=budget or rt.settings.tick_budget_seconds,
            max_jobs=max_jobs or rt.settings.tick_max_jobs,
            sync_interval=rt.settings.sync_interval_seconds,
            deliverer=rt.deliverer,
            retention=rt.retention,
            concurrency=rt.settings.tick_concurrency,
        )
    typer.echo(json.dumps(summary.to_json()))


@app.command()
@friendly_errors
def worker(
    once: Annotated[bool, typer.Option("--once", help="drain the queue, then exit")] = False,
    concurrency: Annotated[int | None, typer.Option(min=1)] = None,
    log_level: LogLevel = "info",
) -> None:
    """Long-running worker; SIGTERM or Ctrl-C finishes the current page and releases the job."""
    setup_logging(log_level)
    with runtime() as rt:
        w = Worker(
            rt.jobs,
            rt.importer,
            metrics=rt.metrics,
            concurrency=concurrency or rt.settings.worker_concurrency,
            poll_seconds=rt.settings.worker_poll_seconds,
            listen_url=rt.listen_url,
            sync_interval=rt.settings.sync_interval_seconds,
            deliverer=rt.deliverer,
            retention=rt.retention,
        )

        def _stop(_signum: int, _frame: FrameType | None) -> None:
            w.request_stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        w.run(once=once)  # waits out database outages; returns early only if it cannot go on
    if w.failure is not None:
        raise fail(f"the worker cannot go on: {w.failure}")


@app.command()
@friendly_errors
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="serve only; imports run in `worker`/cron")
    ] = False,
    with_sandbox: Annotated[
        bool, typer.Option("--sandbox", help="development: run the fake providers in-process")
    ] = False,
    log_level: LogLevel = "info",
) -> None:
    """The HTTP API and status page (uvicorn), importing in-process unless --no-worker."""
    setup_logging(log_level)
    if with_sandbox:
        require_sandbox("serve --sandbox")
    # Unless told otherwise, OAuth redirects come back to where we listen.
    here = {} if "PUBLIC_BASE_URL" in os.environ else {"public_base_url": f"http://{host}:{port}"}
    settings = load_settings(**here)
    if with_sandbox and not settings.dev_mode:
        raise ConfigError("--sandbox is for development (CONTACT_IMPORT_ENV=development)")
    with contextlib.ExitStack() as stack:
        if with_sandbox:
            settings = _serve_sandbox(stack, here)
        watch = _ExitWhenWorkerStops()
        web_app = create_app(settings, run_worker=not no_worker, on_worker_stopped=watch)
        # uvicorn drains on SIGTERM, then raises the signal again with the handler it found:
        # make that one a no-op, so a graceful stop exits 0 instead of dying by the signal.
        signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
        config = uvicorn.Config(
            web_app, host=host, port=port, log_level=log_level, access_log=False
        )
        server = watch.server = uvicorn.Server(config)
        server.run()
    if watch.reason is not None:
        raise fail(f"the in-process worker stopped: {watch.reason}")
    if not server.started:
        raise typer.Exit(ExitCode.NOT_STARTED)


def _serve_sandbox(stack: contextlib.ExitStack, here: dict[str, str]) -> Settings:
    """Start the sandbox for ``serve --sandbox``; the settings that point at it."""
    # Only here: a production install has no sandbox (see require_sandbox).
    from contact_import.sandbox.server import sandbox_settings, start_sandbox
    from contact_import.sandbox.state import SandboxState

    running = stack.enter_context(start_sandbox(SandboxState()))
    console.print(f"sandbox providers on {running.base_url}", highlight=False)
    return load_settings(**here, **sandbox_settings(running.base_url))


class _ExitWhenWorkerStops:
    """Shuts uvicorn down gracefully when serve's in-process worker stops on its own, so the
    process exits non-zero and its supervisor restarts it."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.server: uvicorn.Server | None = None

    def __call__(self, reason: str) -> None:
        self.reason = reason
        if self.server is not None:
            self.server.should_exit = True


@app.command()
@friendly_errors
def sandbox(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8900,
    contacts: Annotated[int, typer.Option(min=0, help="size of the default account's book")] = 500,
) -> None:
    """Run the fake Google and Microsoft APIs and OAuth servers, for local development."""
    require_sandbox("sandbox")
    # Only here: a production install has no sandbox (see require_sandbox).
    from contact_import.sandbox.server import sandbox_settings, serve_forever
    from contact_import.sandbox.state import SandboxState

    state = SandboxState(default_size=contacts)
    base_url = f"http://{host}:{port}"
    console.print(f"sandbox on {base_url}; point contact-import at it with:", highlight=False)
    for name, value in sandbox_settings(base_url).items():
        typer.echo(f"  export {name.upper()}={value}")
    console.print(f"each OAuth sign-in gets a new {contacts}-contact account", highlight=False)
    serve_forever(state, host, port)


def main() -> None:
    app()
