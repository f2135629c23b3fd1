"""The job queue on Postgres: pickup latency, jobs/s by worker processes, and procrastinate.

Prints figures; it is not a test. Usage:

    .venv/bin/python bench/job_queue.py                     # 1,000 jobs, 100 latency samples
    .venv/bin/python bench/job_queue.py --jobs 200 --samples 50 --tick-jobs 300

(Not ``bench/queue.py``: a script's directory comes first on ``sys.path``, so a ``queue.py``
in bench/ would shadow the standard library's ``queue`` for every bench script.)

Creates a fresh database ``bench_<random>`` next to ``--pg``, runs the sandbox provider in its
own process (a one-contact book), and measures, in the same run on the same database:

* NOTIFY to claim: this process LISTENs as a worker does, queues a job, and claims it when the
  NOTIFY arrives (the queuing transaction, NOTIFY received to claimed, and the two together);
* queued to completed: one-contact jobs through a running ``contact-import worker`` process,
  one at a time (``started_at`` to ``completed_at``: the database's clock, ``now()`` of the
  queuing and of the final transaction);
* jobs/s: ``--jobs`` one-contact jobs queued, then 1, 2 and 4 (``--processes``)
  ``contact-import worker --once`` processes drain them; the rate is over the span between
  the first and the last completion (process start-up excluded; the wall time with start-up
  is printed beside it);
* the peer reference: the same number of no-op jobs through procrastinate (the ``bench``
  extra), drained by 1, 2 and 4 ``procrastinate`` worker processes, measured the same way from
  its ``procrastinate_events``;
* the tick capacity (``tick_capacity.py``, in its own database), unless ``--skip-tick``.

Drops the database at the end.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from import_throughput import bench_database, running_sandbox, stop_process
from sqlalchemy import func, select

from contact_import.domain.job import JobStatus
from contact_import.runner.importer import ImportBudget
from contact_import.runtime import Runtime
from contact_import.settings import Settings
from contact_import.store.notifications import listen_for_jobs
from contact_import.store.schema import jobs as jobs_table

try:
    import procrastinate  # the bench extra
except ImportError as exc:
    PROCRASTINATE_MISSING: str | None = (
        f"procrastinate is not installed ({exc}); pip install -e '.[bench]'"
    )
else:
    PROCRASTINATE_MISSING = None

HERE = Path(__file__).resolve().parent
TARGET_P50_MS = 10.0
TARGET_P99_MS = 50.0
NOOP_TASK = "bench_noop"


def _env(db: str, api: str) -> dict[str, str]:
    return {
        **os.environ,
        "CONTACT_IMPORT_ENV": "development",
        "DATABASE_URL": db,
        "GOOGLE_PEOPLE_API_URL": api,
        "LOG_LEVEL": "warning",
    }


def _settings(db: str, api: str) -> Settings:
    return Settings(contact_import_env="development", database_url=db, google_people_api_url=api)


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _dist(label: str, ms: Sequence[float]) -> dict[str, float]:
    p50, p90, p99 = (_pct(ms, q) for q in (0.5, 0.9, 0.99))
    met = "met" if p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS else "NOT met"
    print(f"{label:<44} p50 {p50:6.1f} ms  p90 {p90:6.1f} ms  p99 {p99:6.1f} ms  "
          f"(n={len(ms)}; target p50 <= {TARGET_P50_MS:.0f}, p99 <= {TARGET_P99_MS:.0f}: "
          f"{met})")  # fmt: skip
    return {"p50_ms": round(p50, 2), "p90_ms": round(p90, 2), "p99_ms": round(p99, 2)}


def _queue(rt: Runtime, token: str, prefix: str, count: int) -> list[Any]:
    """``count`` one-contact imports, one user (and grant) each; returns the job ids."""
    ids = []
    for i in range(count):
        grant = rt.grants.create(f"{prefix}-{i}", "google", access_token=token)
        job, _ = rt.jobs.create(f"{prefix}-{i}", "google", grant)
        ids.append(job.id)
    return ids


# --- latency -----------------------------------------------------------------------------------


def notify_to_claim(rt: Runtime, token: str, samples: int) -> dict[str, Any]:
    """Queue a job, wait for its NOTIFY as a worker does, claim it; then finish it here.

    The NOTIFY is usually in this connection's buffer by the time the queuing call returns
    (the server sends it at commit), so the figures start from that call: the queuing
    transaction, then NOTIFY to claim, then the two together.
    """
    assert rt.listen_url is not None, "Postgres only"
    queuing, pickup, total = [], [], []
    with listen_for_jobs(rt.listen_url, rt.jobs.notify_channel) as wait:
        for i in range(samples):
            grant = rt.grants.create(f"notify-{i}", "google", access_token=token)
            started = time.perf_counter()
            rt.jobs.create(f"notify-{i}", "google", grant)
            queued = time.perf_counter()
            if not wait(5.0):
                raise SystemExit("no NOTIFY within 5 s of queuing a job")
            notified = time.perf_counter()
            (job,) = rt.jobs.claim("bench-notify", 1).jobs
            done = time.perf_counter()
            queuing.append((queued - started) * 1000)
            pickup.append((done - notified) * 1000)
            total.append((done - started) * 1000)
            rt.importer.run(job, ImportBudget(), threading.Event())
    return {
        "queuing": _dist("queuing transaction (JobStore.create)", queuing),
        "pickup": _dist("NOTIFY received -> claimed", pickup),
        "total": _dist("queuing call -> claimed", total),
    }


def queued_to_completed(rt: Runtime, token: str, samples: int, db: str, api: str) -> Any:
    """One job at a time through a running ``contact-import worker`` (concurrency 1)."""
    worker = _start_worker(db, api, once=False)
    try:
        _wait_completed(rt, _queue(rt, token, "warm", 1), timeout=60)  # it is up and listening
        latencies = []
        for i in range(samples):
            (job_id,) = _queue(rt, token, f"latency-{i}", 1)
            (job,) = _wait_completed(rt, [job_id], timeout=30)
            assert job.completed_at is not None
            latencies.append((job.completed_at - job.started_at).total_seconds() * 1000)
    finally:
        stop_process(worker, timeout=15)
    return _dist("queued -> completed (running worker process)", latencies)


def _start_worker(db: str, api: str, *, once: bool) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "contact_import", "worker", "--concurrency", "1"]
    cmd += ["--log-level", "warning", *(["--once"] if once else [])]
    return subprocess.Popen(cmd, env=_env(db, api))


def _wait_completed(rt: Runtime, ids: Sequence[Any], *, timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = [rt.jobs.get(job_id) for job_id in ids]
        if all(job.status is JobStatus.COMPLETED for job in found):
            return found
        bad = [job for job in found if job.status in (JobStatus.FAILED, JobStatus.CANCELLED)]
        if bad:
            raise SystemExit(f"job {bad[0].id} ended {bad[0].status.value}")
        if time.monotonic() > deadline:
            raise SystemExit(f"jobs not completed within {timeout:g} s")
        time.sleep(0.002)


# --- throughput --------------------------------------------------------------------------------


def _drain(commands: list[list[str]], env: dict[str, str]) -> float:
    """Start the processes together and wait for all to exit; the wall seconds."""
    started = time.perf_counter()
    processes = [subprocess.Popen(cmd, env=env) for cmd in commands]
    codes = [p.wait() for p in processes]
    if any(codes):
        raise SystemExit(f"a worker process exited {codes}")
    return time.perf_counter() - started


def _rate(count: int, first: datetime, last: datetime) -> float:
    return (count - 1) / max((last - first).total_seconds(), 1e-6)


def ours_throughput(
    rt: Runtime, token: str, n: int, db: str, api: str, *, processes: Sequence[int]
) -> dict[int, Any]:
    out = {}
    cmd = [sys.executable, "-m", "contact_import", "worker", "--once", "--concurrency", "1"]
    cmd += ["--log-level", "warning"]
    for k in processes:
        ids = _queue(rt, token, f"p{k}", n)
        wall = _drain([cmd] * k, _env(db, api))
        done = _wait_completed(rt, ids, timeout=5)
        with rt.engine.connect() as conn:
            first, last = conn.execute(
                select(func.min(jobs_table.c.completed_at), func.max(jobs_table.c.completed_at))
                .where(jobs_table.c.id.in_(ids))
            ).one()  # fmt: skip
        out[k] = {"jobs": len(done), "rate": _rate(n, first, last), "wall_s": wall}
    return out


# --- the peer reference: procrastinate ---------------------------------------------------------


def _procrastinate_app(conninfo: str, *, sync: bool) -> Any:
    # It warns that an App made in __main__ may not find its tasks by module path; the task
    # here has an explicit name, so the parent and the worker children agree on it.
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)

    connector: Any = (
        procrastinate.SyncPsycopgConnector(conninfo=conninfo)
        if sync
        else procrastinate.PsycopgConnector(conninfo=conninfo)
    )
    app = procrastinate.App(connector=connector)

    @app.task(name=NOOP_TASK)  # type: ignore[untyped-decorator, unused-ignore]  # without the extra
    def noop() -> None:
        return None

    return app


def child_procrastinate_worker(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="job_queue.py _procrastinate-worker")
    parser.add_argument("--db", required=True)
    args = parser.parse_args(argv)
    _procrastinate_app(args.db, sync=False).run_worker(concurrency=1, wait=False)


_EVENTS = (
    "SELECT count(*), min(at), max(at) FROM procrastinate_events"
    " WHERE type = 'succeeded' AND job_id = ANY(%s)"
)


def procrastinate_throughput(db: str, n: int, processes: Sequence[int]) -> dict[int, Any]:
    app = _procrastinate_app(db, sync=True)
    cmd = [sys.executable, str(HERE / "job_queue.py"), "_procrastinate-worker", "--db", db]
    out = {}
    with app.open():
        app.schema_manager.apply_schema()
        noop = app.tasks[NOOP_TASK]
        for k in processes:
            ids = noop.batch_defer(*({} for _ in range(n)))
            wall = _drain([cmd] * k, dict(os.environ))
            with psycopg.connect(db) as conn:
                row = conn.execute(_EVENTS, (ids,)).fetchone()
            assert row is not None
            count, first, last = row
            if count != n:
                raise SystemExit(f"procrastinate ran {count} of {n} jobs")
            out[k] = {"jobs": count, "rate": _rate(n, first, last), "wall_s": wall}
    return out


# --- report ------------------------------------------------------------------------------------


def report_throughput(ours: dict[int, Any], peer: dict[int, Any] | None, n: int) -> None:
    one = min(ours)
    print(f"\n{n} one-contact jobs (ours: a real import each) / no-op jobs (procrastinate), "
          "queued first, drained by worker processes of concurrency 1:")  # fmt: skip
    times = f"x {one} proc"
    print(f"{'processes':>9} {'ours jobs/s':>12} {times:>9} {'wall s':>7}"
          f" {'procr. jobs/s':>14} {times:>9} {'wall s':>7} {'ours/procr.':>12}")  # fmt: skip
    for k in sorted(ours):
        mine = ours[k]
        line = f"{k:>9} {mine['rate']:>12.0f} {mine['rate'] / ours[one]['rate']:>8.2f}x"
        line += f" {mine['wall_s']:>7.2f}"
        if peer is not None:
            theirs = peer[k]
            line += f" {theirs['rate']:>14.0f} {theirs['rate'] / peer[one]['rate']:>8.2f}x"
            line += f" {theirs['wall_s']:>7.2f} {mine['rate'] / theirs['rate']:>11.2f}x"
        print(line)
    print("(rate: jobs between the first and the last completion over that span; wall: from "
          "starting the processes to their exit, start-up included)")  # fmt: skip


def tick_capacity(pg: str, jobs: int) -> None:
    print(f"\ntick capacity (bench/tick_capacity.py --jobs {jobs}, its own database):")
    cmd = [sys.executable, str(HERE / "tick_capacity.py"), "--jobs", str(jobs), "--pg", pg]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in (proc.stdout + proc.stderr).splitlines():
        print(f"  {line}")
    if proc.returncode:
        raise SystemExit(f"tick_capacity.py exited {proc.returncode}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per throughput run")
    parser.add_argument("--samples", type=int, default=100, help="latency samples")
    parser.add_argument("--tick-jobs", type=int, default=1500, help="tick_capacity.py --jobs")
    parser.add_argument(
        "--processes", type=int, nargs="+", default=[1, 2, 4], help="worker processes per run"
    )
    parser.add_argument("--skip-tick", action="store_true")
    parser.add_argument("--skip-procrastinate", action="store_true")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the bench database")
    args = parser.parse_args(argv)
    missing = None if args.skip_procrastinate else PROCRASTINATE_MISSING

    with bench_database(args.pg, keep=args.keep_db) as db, running_sandbox() as sandbox:
        token = sandbox.add_account(1, seed=1)
        sandbox.warm(token, all_pages=True)
        print(f"database {db.rsplit('/', 1)[-1]}; sandbox {sandbox.url}; one-contact book")
        with Runtime.build(_settings(db, sandbox.url)) as rt:
            notify_to_claim(rt, token, args.samples)
            queued_to_completed(rt, token, args.samples, db, sandbox.url)
            ours = ours_throughput(rt, token, args.jobs, db, sandbox.url, processes=args.processes)
        peer = None
        if args.skip_procrastinate:
            print("\nprocrastinate: skipped (--skip-procrastinate)")
        elif missing:
            print(f"\nprocrastinate: SKIPPED, {missing}")
        else:
            peer = procrastinate_throughput(db, args.jobs, args.processes)
        report_throughput(ours, peer, args.jobs)
    if not args.skip_tick:
        tick_capacity(args.pg, args.tick_jobs)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_procrastinate-worker":
        child_procrastinate_worker(sys.argv[2:])
    else:
        main(sys.argv[1:])
