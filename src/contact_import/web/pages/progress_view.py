"""What the status page says beyond the counts: how long a queued job has waited, how fast a
running one goes and how long it has left, and whose account it reads.

Pure: the caller reads the clock. The page and its live feed both carry these texts, made
here once, so the script that updates the page shows exactly what the server rendered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from contact_import.web.schemas import JobOut, ProgressOut

__all__ = ["Pace", "StatusView", "describe_duration", "job_pace", "progress_out", "status_view"]

_MIN_ELAPSED_SECONDS = 1.0  # below this a rate is noise


@dataclass(frozen=True, slots=True)
class Pace:
    """The page's pace texts; "" for whatever does not apply or cannot be estimated."""

    waiting: str = ""  # a queued job: "Waiting for a worker · 2 min so far"
    rate: str = ""  # a running job: "1,234 contacts/s"
    eta: str = ""  # a running job with a known total: "about 3 min left"


@dataclass(frozen=True, slots=True)
class StatusView:
    """Everything the status page shows: the job, its pace, the connected account."""

    job: JobOut
    pace: Pace
    account_email: str | None = None


def status_view(job: JobOut, now: datetime, account_email: str | None = None) -> StatusView:
    return StatusView(job, job_pace(job, now), account_email or None)


def progress_out(view: StatusView) -> ProgressOut:
    """The live feed's JSON: the job, and the same texts the page was rendered with."""
    pace = view.pace
    return ProgressOut(
        **view.job.model_dump(),
        waiting=pace.waiting,
        rate=pace.rate,
        eta=pace.eta,
        account_email=view.account_email,
    )


def job_pace(job: JobOut, now: datetime) -> Pace:
    if job.status == "fetching":
        # updated_at: when it was queued (created, or retried); nothing else touches a queued job.
        waited = describe_duration((now - job.updated_at).total_seconds())
        return Pace(waiting=f"Waiting for a worker · {waited} so far")
    if job.status != "processing":
        return Pace()
    elapsed = (now - job.started_at).total_seconds()
    if job.processed_contacts <= 0 or elapsed < _MIN_ELAPSED_SECONDS:
        return Pace()
    per_second = job.processed_contacts / elapsed
    return Pace(rate=f"{_rate_text(per_second)} contacts/s", eta=_eta(job, per_second))


def _rate_text(per_second: float) -> str:
    return f"{per_second:,.0f}" if per_second >= 10 else f"{per_second:.1f}"


def _eta(job: JobOut, per_second: float) -> str:
    left = job.total_contacts - job.processed_contacts
    if job.total_contacts <= 0 or left <= 0:
        return ""  # no total (Microsoft's delta says none) or already at it: not estimable
    seconds = left / per_second
    if seconds < 60:
        return "less than a minute left"
    return f"about {describe_duration(seconds)} left"


def describe_duration(seconds: float) -> str:
    """12 s, 3 min, 1 h 5 min, 2 d 3 h: at most two units, rounded down."""
    whole = max(0, math.floor(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, hours, days = whole // 60, whole // 3_600, whole // 86_400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        rest = minutes % 60
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    rest = hours % 24
    return f"{days} d {rest} h" if rest else f"{days} d"
