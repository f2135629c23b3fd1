"""`contact-import webhooks …`: the outbox of completion webhooks.

Tables follow ``cli/output.py`` (readable at 80 columns and in pipes): an event's id shows as
``msg_`` and its first 8 hex digits, and ``retry`` takes any unique start of an id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from contact_import.cli.common import ExitCode, fail, friendly_errors, runtime
from contact_import.cli.output import Column, print_json, print_table
from contact_import.errors import EventNotFound
from contact_import.runtime import Runtime
from contact_import.store.outbox import OutboxEvent

webhooks_app = typer.Typer(help="Inspect and retry webhook deliveries.", no_args_is_help=True)

SHORT_ID = len("msg_") + 8
_COLUMNS = (
    Column("id"), Column("type"), Column("job"), Column("status"),
    Column("tries", justify="right"), Column("next try"), Column("error", shrink=True),
)  # fmt: skip


def _when(value: datetime | None) -> str | None:
    return value.strftime("%m-%d %H:%M:%S") if value else None


def _as_json(event: OutboxEvent) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "id": event.id, "type": event.type,
        "job_id": None if event.job_id is None else str(event.job_id),
        "status": event.status.value, "attempts": event.attempts,
        "created_at": iso(event.created_at), "next_attempt_at": iso(event.next_attempt_at),
        "delivered_at": iso(event.delivered_at), "last_error": event.last_error,
    }  # fmt: skip


def _row(e: OutboxEvent) -> list[str]:
    pending = e.status.value == "pending"
    return [
        e.id[:SHORT_ID], e.type, str(e.job_id or "")[:8], e.status.value, str(e.attempts),
        (_when(e.next_attempt_at) if pending else None) or "", e.last_error or "",
    ]  # fmt: skip


@webhooks_app.command("list")
@friendly_errors
def list_events(
    failed: Annotated[
        bool, typer.Option("--failed", help="only given up, or pending after a failed attempt")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array on stdout")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """The newest events first, with their delivery state."""
    with runtime() as rt:
        events = rt.outbox.list_events(failed_only=failed, limit=limit)
    if as_json:
        print_json([_as_json(e) for e in events])
        return
    print_table(_COLUMNS, [_row(e) for e in events], title=f"{len(events)} event(s), newest first")


def resolve_event_id(rt: Runtime, raw: str) -> str:
    """The event ``raw`` names: its whole id or the start of exactly one event's id."""
    text = raw.strip()
    if not text:
        raise fail("give a webhook event id (msg_…)", ExitCode.USAGE)
    found = rt.outbox.with_id_prefix(text, limit=2)
    if not found:
        raise EventNotFound(f"no webhook event {text}")
    exact = [e for e in found if e.id == text]
    if len(found) > 1 and not exact:
        raise fail(f"{raw!r} is the start of several event ids; give more of it", ExitCode.USAGE)
    return (exact or found)[0].id


@webhooks_app.command("retry")
@friendly_errors
def retry(event_id: str) -> None:
    """Make a given-up or pending event due now (same webhook-id); a worker or tick sends it."""
    with runtime() as rt:
        event = rt.outbox.retry(resolve_event_id(rt, event_id), datetime.now(UTC))
    typer.echo(f"webhook event {event.id} is due now")
