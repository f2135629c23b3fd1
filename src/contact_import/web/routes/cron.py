"""The cron route: one tick of the queue, exactly what `contact-import tick` does."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header, Query

from contact_import.runner.tick import run_tick
from contact_import.web.deps import Rt
from contact_import.web.problems import Unauthorized
from contact_import.web.schemas import VALIDATION_ERROR, CronOut, ErrorOut

router = APIRouter(tags=["cron"], responses=VALIDATION_ERROR)


def _presented_secrets(
    authorization: str | None, x_cron_secret: str | None, key: str | None
) -> list[str]:
    presented = [s for s in (x_cron_secret, key) if s]
    if authorization and authorization[:7].lower() == "bearer ":
        presented.append(authorization[7:].strip())
    return presented


def check_cron_secret(
    expected: str | None, authorization: str | None, x_cron_secret: str | None, key: str | None
) -> None:
    """Authorize a tick: the secret as a bearer token (what Vercel sends), in ``x-cron-secret``
    or as ``?key=``. Compared in constant time; no secret configured means nobody gets in.
    ``x-vercel-cron`` and the Vercel user agent prove nothing: anyone can send them."""
    presented = _presented_secrets(authorization, x_cron_secret, key)
    if expected and any(hmac.compare_digest(p.encode(), expected.encode()) for p in presented):
        return
    raise Unauthorized("Unauthorized")


def process_imports(
    rt: Rt,
    authorization: Annotated[str | None, Header()] = None,
    x_cron_secret: Annotated[str | None, Header()] = None,
    key: Annotated[str | None, Query(description="the cron secret, for manual runs")] = None,
) -> CronOut:
    """Reclaim dead leases, then import TICK_CONCURRENCY jobs at a time, claiming the next
    while the budget fits another page (up to TICK_MAX_JOBS in all).

    During a database outage run_tick raises DatabaseUnavailable: the app answers it with a
    JSON 503 (see web/app.py), and the jobs it interrupted resume on a later tick.
    """
    check_cron_secret(rt.settings.cron_secret, authorization, x_cron_secret, key)
    summary = run_tick(
        rt.jobs,
        rt.importer,
        metrics=rt.metrics,
        budget_seconds=rt.settings.tick_budget_seconds,
        max_jobs=rt.settings.tick_max_jobs,
        sync_interval=rt.settings.sync_interval_seconds,
        deliverer=rt.deliverer,
        retention=rt.retention,
        concurrency=rt.settings.tick_concurrency,
    )
    return CronOut.model_validate(summary.to_json())


for method in ("GET", "POST"):  # Vercel's cron sends GET; POST for everyone else
    router.add_api_route(
        "/api/cron/process-imports",
        process_imports,
        methods=[method],
        operation_id=f"process_imports_{method.lower()}",
        response_model=CronOut,
        # 503 (with Retry-After): the database is unavailable; the next tick carries on.
        responses={401: {"model": ErrorOut}, 503: {"model": ErrorOut}},
    )
