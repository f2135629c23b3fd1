"""`contact-import jobs …`: inspect and steer the queue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from contact_import.cli.common import console, friendly_errors, parse_job_id, runtime
from contact_import.domain.job import JobStatus
from contact_import.errors import ConfigError
from contact_import.store.jobs import Job

jobs_app = typer.Typer(help="Inspect and steer import jobs.", no_args_is_help=True)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _progress(job: Job) -> str:
    return f"{job.processed_contacts}/{job.total_contacts}"


def jobs_table(jobs: list[Job], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("id", "user", "provider", "status", "progress", "created", "updated"):
        table.add_column(column, no_wrap=column in ("id", "status"))
    for column in ("skipped", "failed", "attempts", "started", "error"):
        table.add_column(column)
    for job in jobs:
        table.add_row(
            str(job.id), job.user_id, job.provider, job.status.value, _progress(job),
            str(job.created_contacts), str(job.updated_contacts), str(job.skipped_contacts),
            str(job.failed_contacts), f"{job.attempts}/{job.max_attempts}",
            _when(job.started_at), job.error_message or "",
        )  # fmt: skip
    return table


@jobs_app.command("list")
@friendly_errors
def list_jobs(
    user: Annotated[str | None, typer.Option(help="only this user's jobs")] = None,
    status: Annotated[list[str] | None, typer.Option(help="repeat for several")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """The newest jobs first."""
    known = {s.value for s in JobStatus}
    for s in status or []:
        if s not in known:
            raise ConfigError(f"unknown status {s!r}; one of {', '.join(sorted(known))}")
    with runtime() as rt:
        jobs = rt.jobs.list_jobs(user_id=user, statuses=status or [], limit=limit)
    console.print(jobs_table(jobs, f"{len(jobs)} job(s)"))


@jobs_app.command("show")
@friendly_errors
def show(job_id: str) -> None:
    """One job in full, with the audit trail's count per action."""
    with runtime() as rt:
        job = rt.jobs.get(parse_job_id(job_id))
        actions = rt.jobs.action_counts(job.id)
    table = Table(show_header=False, title=f"job {job.id}", title_justify="left")
    for name, value in (
        ("user", job.user_id), ("provider", job.provider), ("status", job.status.value),
        ("trigger", job.trigger),
        ("total", job.total_contacts), ("processed", job.processed_contacts),
        ("created", job.created_contacts), ("updated", job.updated_contacts),
        ("imported", job.imported_contacts), ("skipped", job.skipped_contacts),
        ("failed", job.failed_contacts), ("pages", job.pages_done),
        ("attempts", f"{job.attempts}/{job.max_attempts}"),
        ("locked by", job.locked_by or "-"), ("lease expires", _when(job.lease_expires_at)),
        ("run after", _when(job.run_after)), ("cancel requested", job.cancel_requested),
        ("started", _when(job.started_at)), ("completed", _when(job.completed_at)),
        ("error", job.error_message or "-"),
        ("audit rows", ", ".join(f"{a}={n}" for a, n in sorted(actions.items())) or "-"),
    ):  # fmt: skip
        table.add_row(name, str(value))
    console.print(table)


@jobs_app.command("stuck")
@friendly_errors
def stuck(
    waiting: Annotated[float, typer.Option(help="seconds a job may wait to run")] = 300.0,
) -> None:
    """Active jobs with an expired lease, or waiting longer than --waiting seconds."""
    with runtime() as rt:
        jobs = rt.jobs.stuck(waiting_seconds=waiting)
    console.print(jobs_table(jobs, f"{len(jobs)} stuck job(s)"))
    if jobs:
        console.print("expired leases are reclaimed by the next tick or worker automatically")


@jobs_app.command("retry")
@friendly_errors
def retry(job_id: str) -> None:
    """Queue a failed or cancelled job again; it resumes from its cursor."""
    with runtime() as rt:
        job = rt.jobs.retry(parse_job_id(job_id))
    console.print(f"job {job.id} is {job.status.value} again")


@jobs_app.command("cancel")
@friendly_errors
def cancel(job_id: str) -> None:
    """Cancel a job; a running one stops at its next page boundary."""
    with runtime() as rt:
        job = rt.jobs.cancel(parse_job_id(job_id))
    state = job.status.value if job.status is JobStatus.CANCELLED else "stopping at its next page"
    console.print(f"job {job.id}: {state}")
