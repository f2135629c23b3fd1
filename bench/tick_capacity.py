"""Tick capacity on Postgres: jobs one cron tick completes, against the original's one claim.

Prints figures; it is not a test. Usage:

    .venv/bin/python bench/tick_capacity.py                      # 8 s tick, 4 at a time
    .venv/bin/python bench/tick_capacity.py --concurrency 1 2 4 8 --jobs 1500

Queues ``--jobs`` 50-contact imports (one user each) in a fresh database ``bench_<random>``
next to ``--pg``, with the sandbox provider in its own process, then in the same run:

* the baseline: one tick as the original ran it, one claim of ``TICK_MAX_JOBS=2`` jobs
  (``run_tick(max_jobs=2)``, which claims once and never again);
* one tick of ``--budget`` seconds per ``--concurrency`` value: it keeps claiming while its
  budget fits another page, that many imports at a time.

Each tick takes from the same queue, so ``--jobs`` must exceed what the ticks complete (the
bench says when a tick ran the queue dry: its figure is then a lower bound).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from import_throughput import bench_database, running_sandbox

from contact_import.metrics import Metrics
from contact_import.runner.importer import Importer
from contact_import.runner.sources import SourceFactory
from contact_import.runner.tick import TickSummary, run_tick
from contact_import.runtime import Runtime
from contact_import.settings import Settings

BOOK = 50
TARGET_JOBS = 100


def _runtime(db_url: str, api_url: str, concurrency: int) -> Runtime:
    return Runtime.build(
        Settings(
            contact_import_env="development",
            database_url=db_url,
            google_people_api_url=api_url,
            tick_concurrency=concurrency,
            worker_concurrency=max(concurrency, 2),
        )
    )


def _queue(rt: Runtime, token: str, jobs: int) -> None:
    """``jobs`` imports of the same 50-contact book by as many users (one grant each)."""
    for i in range(jobs):
        grant = rt.grants.create(f"bench-{i}", "google", access_token=token)
        rt.jobs.create(f"bench-{i}", "google", grant)


def _tick(rt: Runtime, *, budget: float, max_jobs: int, concurrency: int) -> tuple[int, float]:
    """One tick on a fresh importer (so no page estimate carries over): (completed, seconds)."""
    importer = Importer(
        rt.engine,
        rt.jobs,
        SourceFactory(rt.settings, rt.engine, rt.http, rt.grants),
        grants=rt.grants,
        lease_seconds=rt.settings.lease_seconds,
        default_region=rt.settings.default_phone_region,
        metrics=Metrics(),
    )
    started = time.perf_counter()
    summary: TickSummary = run_tick(
        rt.jobs,
        importer,
        metrics=Metrics(),
        budget_seconds=budget,
        max_jobs=max_jobs,
        concurrency=concurrency,
    )
    elapsed = time.perf_counter() - started
    if summary.failed:
        raise SystemExit(f"{len(summary.failed)} jobs failed in the bench tick")
    return len(summary.processed), elapsed


def _runnable(rt: Runtime) -> int:
    return rt.jobs.queue_stats().runnable


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1500, help="50-contact imports queued")
    parser.add_argument("--budget", type=float, default=8.0, help="TICK_BUDGET_SECONDS")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the bench database")
    args = parser.parse_args(argv)

    with bench_database(args.pg, keep=args.keep_db) as db, running_sandbox() as sandbox:
        token = sandbox.add_account(BOOK, seed=1)
        sandbox.warm(token, all_pages=True)
        with _runtime(db, sandbox.url, 2) as rt:
            _queue(rt, token, args.jobs)
            base, base_s = _tick(rt, budget=args.budget, max_jobs=2, concurrency=2)
        print(f"{args.jobs} queued {BOOK}-contact jobs; tick budget {args.budget:g} s")
        print(f"baseline (one claim of 2, the original): {base} jobs in {base_s:.2f} s")
        for concurrency in args.concurrency:
            with _runtime(db, sandbox.url, concurrency) as rt:
                done, took = _tick(rt, budget=args.budget, max_jobs=1000, concurrency=concurrency)
                dry = " (ran the queue dry: a lower bound)" if _runnable(rt) == 0 else ""
            met = "met" if done >= TARGET_JOBS else "NOT met"
            print(
                f"TICK_CONCURRENCY={concurrency}: {done} jobs in {took:.2f} s "
                f"({done / took:.0f} jobs/s, {done * BOOK / took:,.0f} contacts/s), "
                f"{done / max(base, 1):.0f}x the baseline; target >= {TARGET_JOBS}: {met}{dry}"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
