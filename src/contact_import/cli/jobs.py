"""`contact-import jobs …`: inspect and steer the queue.

Tables show a job by the first 8 hex digits of its id; every command that takes a job accepts
the whole id or any unique start of it. ``--json`` prints the API's job fields (``JobOut``,
the serializer the HTTP API uses) plus ``user_id``, which an operator sees across users.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import typer

from contact_import.cli.common import ExitCode, fail, friendly_errors, runtime
from contact_import.cli.output import Column, print_fields, print_json, print_note, print_table
from contact_import.domain.job import JobStatus
from contact_import.errors import JobNotFound
from contact_import.runtime import Runtime
from contact_import.store.job_json import JobOut
from contact_import.store.jobs import Job

jobs_app = typer.Typer(help="Inspect and steer import jobs.", no_args_is_help=True)

SHORT_ID = 8
JobRef = Annotated[str, typer.Argument(help="the job's id, or a unique start of it (8 hex digits)")]
Json = Annotated[bool, typer.Option("--json", help="print JSON (the API's job fields)")]

_LIST_COLUMNS = (
    Column("id"), Column("status"), Column("provider"), Column("user", shrink=True),
    Column("progress", justify="right"), Column("age", justify="right"),
)  # fmt: skip
_STUCK_COLUMNS = (
    Column("id"), Column("status"), Column("provider"), Column("user", shrink=True),
    Column("attempts", justify="right"), Column("why"),
)  # fmt: skip


def short_id(job_id: UUID) -> str:
    return job_id.hex[:SHORT_ID]


def job_json(job: Job) -> dict[str, Any]:
    """The API's JSON of a job, and whose it is."""
    return {**JobOut.of(job).model_dump(mode="json"), "user_id": job.user_id}


def resolve_job_id(rt: Runtime, raw: str) -> UUID:
    """The job ``raw`` names: a whole id, or the start of exactly one job's id."""
    text = raw.strip().lower()
    try:
        return UUID(text)
    except ValueError:
        pass
    prefix = text.replace("-", "")
    if not prefix or len(prefix) > 32 or not set(prefix) <= set(string.hexdigits):
        raise fail(f"{raw!r} is not a job id (a UUID or the start of one)", ExitCode.USAGE)
    found = rt.jobs.with_id_prefix(prefix, limit=2)
    if not found:
        raise JobNotFound(f"no import job id starts with {prefix}")
    if len(found) > 1:
        raise fail(f"{raw!r} is the start of several job ids; give more of it", ExitCode.USAGE)
    return found[0].id


def compact_age(seconds: float) -> str:
    """45s, 12m, 3h, 5d: the largest unit only, as ``kubectl get`` shows an age."""
    whole = max(0, int(seconds))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if whole >= size:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def progress_text(job: Job) -> str:
    """processed/total; the count alone while the total is unknown; "" before anything."""
    if job.total_contacts > 0:
        return f"{job.processed_contacts:,}/{job.total_contacts:,}"
    return f"{job.processed_contacts:,}" if job.processed_contacts else ""


def _since(moment: datetime | None, now: datetime) -> str:
    return "" if moment is None else compact_age((now - moment).total_seconds())


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _stuck_reason(job: Job, now: datetime) -> str:
    if job.lease_expires_at is not None and job.lease_expires_at < now:
        return f"lease expired {_since(job.lease_expires_at, now)} ago"
    return f"waiting {_since(job.run_after, now)}"


def _validate_statuses(statuses: list[str]) -> None:
    known = {s.value for s in JobStatus}
    for s in statuses:
        if s not in known:
            message = f"unknown status {s!r}; one of {', '.join(sorted(known))}"
            raise fail(message, ExitCode.USAGE)


def _progress_and_age(job: Job, now: datetime) -> tuple[str, str]:
    return progress_text(job), _since(job.started_at, now)


def _attempts_and_why(job: Job, now: datetime) -> tuple[str, str]:
    return f"{job.attempts}/{job.max_attempts}", _stuck_reason(job, now)


def _print_jobs(
    jobs: list[Job],
    columns: Sequence[Column],
    last: Callable[[Job, datetime], tuple[str, str]],
    title: str,
    *,
    as_json: bool,
) -> None:
    """``--json``: the API's fields; else a table of id, status, provider, user and the two
    columns ``last`` makes of each job."""
    if as_json:
        print_json({"jobs": [job_json(job) for job in jobs]})
        return
    now = datetime.now(UTC)
    rows = [(short_id(j.id), j.status.value, j.provider, j.user_id, *last(j, now)) for j in jobs]
    print_table(columns, rows, title=title)


@jobs_app.command("list")
@friendly_errors
def list_jobs(
    user: Annotated[str | None, typer.Option(help="only this user's jobs")] = None,
    status: Annotated[list[str] | None, typer.Option(help="repeat for several")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Json = False,
) -> None:
    """The newest jobs first."""
    _validate_statuses(status or [])
    with runtime() as rt:
        jobs = rt.jobs.list_jobs(user_id=user, statuses=status or [], limit=limit)
    title = f"{len(jobs)} job(s), newest first"
    _print_jobs(jobs, _LIST_COLUMNS, _progress_and_age, title, as_json=as_json)


@jobs_app.command("show")
@friendly_errors
def show(job_id: JobRef, as_json: Json = False) -> None:
    """One job in full, with the audit trail's count per action."""
    with runtime() as rt:
        job = rt.jobs.get(resolve_job_id(rt, job_id))
        actions = rt.jobs.action_counts(job.id)
    if as_json:
        print_json(job_json(job))
        return
    print_fields(_job_fields(job, actions), title=f"job {job.id}")


def _job_fields(job: Job, actions: dict[str, int]) -> list[tuple[str, object]]:
    return [
        ("id", job.id), ("user", job.user_id), ("provider", job.provider),
        ("status", job.status.value), ("trigger", job.trigger),
        ("progress", progress_text(job)), ("created", job.created_contacts),
        ("updated", job.updated_contacts), ("imported", job.imported_contacts),
        ("skipped", job.skipped_contacts), ("failed", job.failed_contacts),
        ("pages", job.pages_done), ("attempts", f"{job.attempts}/{job.max_attempts}"),
        ("locked by", job.locked_by), ("lease expires", _when(job.lease_expires_at)),
        ("run after", _when(job.run_after)),
        ("cancel requested", "yes" if job.cancel_requested else "no"),
        ("started", _when(job.started_at)), ("completed", _when(job.completed_at)),
        ("error", job.error_message),
        ("audit rows", ", ".join(f"{a}={n}" for a, n in sorted(actions.items()))),
    ]  # fmt: skip


@jobs_app.command("stuck")
@friendly_errors
def stuck(
    waiting: Annotated[float, typer.Option(help="seconds a job may wait to run")] = 300.0,
    as_json: Json = False,
) -> None:
    """Active jobs with an expired lease, or waiting longer than --waiting seconds."""
    with runtime() as rt:
        jobs = rt.jobs.stuck(waiting_seconds=waiting)
    title = f"{len(jobs)} stuck job(s)"
    _print_jobs(jobs, _STUCK_COLUMNS, _attempts_and_why, title, as_json=as_json)
    if jobs and not as_json:
        print_note("expired leases are reclaimed by the next tick or worker automatically")


@jobs_app.command("retry")
@friendly_errors
def retry(job_id: JobRef) -> None:
    """Queue a failed or cancelled job again; it resumes from its cursor."""
    with runtime() as rt:
        job = rt.jobs.retry(resolve_job_id(rt, job_id))
    typer.echo(f"job {job.id} is {job.status.value} again")


@jobs_app.command("cancel")
@friendly_errors
def cancel(job_id: JobRef) -> None:
    """Cancel a job; a running one stops at its next page boundary."""
    with runtime() as rt:
        job = rt.jobs.cancel(resolve_job_id(rt, job_id))
    state = job.status.value if job.status is JobStatus.CANCELLED else "stopping at its next page"
    typer.echo(f"job {job.id}: {state}")
