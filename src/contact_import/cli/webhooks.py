"""`contact-import webhooks …`: the outbox of completion webhooks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from contact_import.cli.common import console, friendly_errors, runtime
from contact_import.store.outbox import OutboxEvent

webhooks_app = typer.Typer(help="Inspect and retry webhook deliveries.", no_args_is_help=True)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


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


def _table(events: list[OutboxEvent], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("id", "type", "job", "status", "attempts", "created", "next attempt", "error"):
        table.add_column(column, no_wrap=column in ("id", "status"))
    for e in events:
        table.add_row(
            e.id, e.type, str(e.job_id or "-"), e.status.value, str(e.attempts),
            _when(e.created_at),
            _when(e.next_attempt_at) if e.status.value == "pending" else "-",
            e.last_error or "",
        )  # fmt: skip
    return table


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
        typer.echo(json.dumps([_as_json(e) for e in events]))
    else:
        console.print(_table(events, f"{len(events)} event(s)"))


@webhooks_app.command("retry")
@friendly_errors
def retry(event_id: str) -> None:
    """Make a given-up or pending event due now (same webhook-id); a worker or tick sends it."""
    with runtime() as rt:
        event = rt.outbox.retry(event_id.strip(), datetime.now(UTC))
    console.print(f"webhook event {event.id} is due now")
