"""Read-only job lookups for operators and the audit trail: scans, not hot paths.

Kept apart from ``job_queries`` (the queue's own statements, every one concurrency-safe).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Select, Text, cast, func, select

from contact_import.store.schema import imported_contacts, jobs

__all__ = ["action_counts", "jobs_with_id_prefix"]


def jobs_with_id_prefix(hex_prefix: str, limit: int) -> Select[Any]:
    """Jobs whose id, as 32 lowercase hex digits, starts with ``hex_prefix`` (hex only).

    Postgres prints a uuid with dashes and SQLite stores 32 hex digits: the dashes are removed
    on both so one prefix means the same on each. A scan, for an operator's command, not a hot path.
    """
    hex_id = func.replace(cast(jobs.c.id, Text), "-", "")
    return select(jobs).where(hex_id.startswith(hex_prefix, autoescape=True)).limit(limit)


def action_counts(job_id: UUID) -> Select[Any]:
    """The original's audit query: how many contacts took each action in this job."""
    ic = imported_contacts.c
    return select(ic.action, func.count()).where(ic.import_job_id == job_id).group_by(ic.action)
