"""Chaos: imports through several `contact-import worker` processes while Postgres restarts,
workers die by kill -9, and the provider answers 429 and 503; then count what was lost.

Prints figures; it is not a test. Usage:

    .venv/bin/python bench/chaos.py                      # 2 workers, 8 imports, ~1 minute
    .venv/bin/python bench/chaos.py --workers 3 --jobs 12 --seconds 90 --seed 7

Everything runs on a throwaway Postgres cluster on a free port (tests/pg_cluster.py: initdb,
as the postgres user when run as root), removed at the end; the shared server is never
touched. The sandbox provider runs in this process, slowed down (latency) so that imports
are still running when the faults land. While any import is active, every few seconds one
of: `pg_ctl restart`, Postgres stopped for 2 s then started, or kill -9 of a random worker
(which this script then starts again: the one restart it does itself). After each Postgres
outage one more small import is queued. Each book is also imported once calmly into a second
database, and the chaotic result must match it exactly: contacts lost and duplicates must
both be 0, every job completed. Exit status 1 otherwise.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the helpers

from sqlalchemy.exc import SQLAlchemyError
from tests.helpers import Counts, drain, queue_import, stored_state
from tests.pg_cluster import PgCluster, throwaway_cluster

from contact_import.domain.job import FINAL_STATUSES, JobStatus
from contact_import.errors import ContactImportError
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.server import RunningSandbox, start_sandbox
from contact_import.sandbox.state import SandboxState
from contact_import.settings import Settings
from contact_import.store.db import create_db_engine, upgrade_database

PAGE_SIZE = 100
LEASE_SECONDS = 5  # a killed worker's jobs are taken over within seconds
# A kill -9 uses up an attempt (by design: a crash counts); with kills every few seconds one
# job can meet several, so give them room. An outage must use none (see "attempts used").
MAX_ATTEMPTS = 10
LATE_BOOK, LATE_SEED = 300, 99
CLI = [sys.executable, "-m", "contact_import"]
FAULTS = Faults(latency_ms=80, rate_limit_every=9, retry_after=1, server_error_every=13)


@dataclass(frozen=True)
class Book:
    user: str
    size: int
    seed: int


@dataclass
class Tally:
    """What the chaos did, and what the provider answered meanwhile."""

    restarts: int = 0
    stop_starts: int = 0
    kills: int = 0
    late_jobs: list[Book] = field(default_factory=list)
    rate_limited: int = 0
    unavailable: int = 0
    seconds: float = 0.0


# --- the cluster's databases -------------------------------------------------------------------


def _database(cluster: PgCluster, name: str) -> str:
    url = cluster.create_database(name)
    engine = create_db_engine(url)
    upgrade_database(engine)
    engine.dispose()
    return url


def _settings(url: str, sandbox: RunningSandbox) -> Settings:
    return Settings(
        contact_import_env="development",
        database_url=url,
        google_people_api_url=sandbox.base_url,
        page_size=PAGE_SIZE,
        lease_seconds=LEASE_SECONDS,
        max_attempts=MAX_ATTEMPTS,
    )


def _reference(url: str, sandbox: RunningSandbox, books: list[Book]) -> dict[str, Counts]:
    """Each book imported calmly, in this process: what the chaotic run must end with."""
    with Runtime.build(_settings(url, sandbox)) as rt:
        jobs = {b.user: queue_import(rt, sandbox, b.user, size=b.size, seed=b.seed) for b in books}
        drain(rt, concurrency=4)
        return {user: Counts.of(rt.jobs.get(job.id)) for user, job in jobs.items()}


# --- the workers -------------------------------------------------------------------------------


class Fleet:
    """The worker processes; ``kill9`` replaces one; ``died`` counts exits nobody caused."""

    def __init__(self, size: int, env: dict[str, str], logs: Path) -> None:
        self._env, self._logs = env, logs
        self._started = 0
        self.processes = [self._start() for _ in range(size)]
        self.died = 0

    def _start(self) -> subprocess.Popen[bytes]:
        self._started += 1
        with (self._logs / f"worker-{self._started}.log").open("wb") as out:
            command = [*CLI, "worker", "--concurrency", "2"]
            return subprocess.Popen(command, env=self._env, stdout=out, stderr=subprocess.STDOUT)

    def kill9(self, rng: random.Random) -> None:
        index = rng.randrange(len(self.processes))
        victim = self.processes[index]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(30)
        self.processes[index] = self._start()

    def check(self) -> None:
        for index, process in enumerate(self.processes):
            if process.poll() is not None:
                self.died += 1
                self.processes[index] = self._start()

    def stop(self) -> list[int]:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        return [process.wait(60) for process in self.processes]

    def log_lines(self, text: str) -> int:
        return sum(p.read_text(errors="replace").count(text) for p in self._logs.glob("*.log"))


def _worker_env(url: str, sandbox: RunningSandbox) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "GOOGLE_"))}
    return keep | {
        "CONTACT_IMPORT_ENV": "development",
        "DATABASE_URL": url,
        "GOOGLE_PEOPLE_API_URL": sandbox.base_url,
        "PAGE_SIZE": str(PAGE_SIZE),
        "LEASE_SECONDS": str(LEASE_SECONDS),
        "WORKER_POLL_SECONDS": "1",
    }


# --- chaos -------------------------------------------------------------------------------------


def _active(rt: Runtime) -> bool | None:
    """Whether any job is still active; None while the database is away."""
    try:
        return any(j.status not in FINAL_STATUSES for j in rt.jobs.list_jobs(limit=1000))
    except (SQLAlchemyError, ContactImportError):
        return None


def _outage(
    cluster: PgCluster, tally: Tally, rng: random.Random, rt: Runtime, sandbox: RunningSandbox
) -> None:
    if rng.random() < 0.5:
        cluster.restart()
        tally.restarts += 1
    else:
        cluster.stop()
        time.sleep(2)
        cluster.start()
        tally.stop_starts += 1
    cluster.wait_accepting()
    late = Book(f"late-{len(tally.late_jobs)}", LATE_BOOK, LATE_SEED)
    queue_import(rt, sandbox, late.user, size=late.size, seed=late.seed, faults=FAULTS)
    tally.late_jobs.append(late)


def _chaos(
    cluster: PgCluster, fleet: Fleet, rt: Runtime, sandbox: RunningSandbox, args: argparse.Namespace
) -> Tally:
    rng, tally = random.Random(args.seed), Tally()
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and _active(rt) is not False:
        time.sleep(rng.uniform(2.0, 4.0))
        fleet.check()
        if rng.random() < 0.4:
            fleet.kill9(rng)
            tally.kills += 1
        else:
            _outage(cluster, tally, rng, rt, sandbox)
        print(
            f"  {time.strftime('%H:%M:%S')} restarts={tally.restarts} "
            f"stop/starts={tally.stop_starts} kills={tally.kills}",
            flush=True,
        )
    return tally


def _wait_all_ended(rt: Runtime, fleet: Fleet, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _active(rt) is not False:
        if time.monotonic() > deadline:
            raise SystemExit("jobs still active after the chaos ended")
        fleet.check()
        time.sleep(0.5)


# --- the verdict -------------------------------------------------------------------------------


@dataclass
class Verdict:
    completed: int = 0
    failed: int = 0
    lost: int = 0
    duplicates: int = 0
    mismatched: list[str] = field(default_factory=list)
    attempts: Counter[int] = field(default_factory=Counter)


def _judge(rt: Runtime, expected: dict[str, Counts]) -> Verdict:
    verdict = Verdict()
    for job in rt.jobs.list_jobs(limit=1000):
        verdict.attempts[job.attempts] += 1
        if job.status is JobStatus.COMPLETED:
            verdict.completed += 1
        else:
            verdict.failed += 1
        want = expected[job.user_id if not job.user_id.startswith("late-") else "late"]
        state = stored_state(rt.engine, job.user_id, job.id)
        verdict.lost += max(0, want.processed - state.audit_rows)
        verdict.lost += max(0, want.created - state.contacts)
        verdict.duplicates += max(0, state.contacts - want.created) + state.duplicate_email_keys
        if Counts.of(job) != want:
            verdict.mismatched.append(f"{job.user_id}: {Counts.of(job)} != {want}")
    return verdict


def _count_provider_faults(sandbox: RunningSandbox, tally: Tally) -> None:
    """The 429s and 503s the sandbox answered, from the chaos accounts' request counts."""
    for n in itertools.count(1):
        account = sandbox.state.account_by_id(f"acct-{n}")
        if account is None:
            return
        if account.faults.latency_ms == 0:
            continue  # a calm reference account
        for i in range(1, account.requests + 1):
            if i % FAULTS.server_error_every == 0:
                tally.unavailable += 1
            elif i % FAULTS.rate_limit_every == 0:
                tally.rate_limited += 1


def _report(args: argparse.Namespace, tally: Tally, verdict: Verdict, fleet: Fleet) -> None:
    total = args.jobs + len(tally.late_jobs)
    extra = sum((n - 1) * jobs for n, jobs in verdict.attempts.items())
    lines = [
        f"chaos: {args.workers} workers x 2 slots, {args.jobs} imports of ~{args.contacts} "
        f"contacts (+{len(tally.late_jobs)} queued after outages), {tally.seconds:.0f} s",
        f"postgres outages survived  : {tally.restarts} pg_ctl restart, "
        f"{tally.stop_starts} stop/2 s/start",
        f"workers killed (-9)        : {tally.kills} (restarted by this script)",
        f"workers that died alone    : {fleet.died}",
        f"provider faults survived   : {tally.rate_limited} x 429, {tally.unavailable} x 503",
        f"'database is back' lines   : {fleet.log_lines('database is back')}",
        f"settlements after outages  : {fleet.log_lines('settled after the outage')}",
        f"tracebacks in worker logs  : {fleet.log_lines('Traceback')}",
        f"jobs completed             : {verdict.completed}/{total} (failed {verdict.failed})",
        f"attempts used (jobs)       : {dict(sorted(verdict.attempts.items()))}",
        f"extra attempts             : {extra} (the kills explain up to {tally.kills * 2}: "
        "2 slots each; outages use none)",
        f"contacts lost              : {verdict.lost}",
        f"duplicates                 : {verdict.duplicates}",
        f"counts unlike a calm import: {len(verdict.mismatched)}",
        *(f"  {line}" for line in verdict.mismatched),
    ]
    print("\n" + "\n  ".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=45, help="chaos lasts at most this")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    books = [
        Book(f"user-{i}", rng.randint(args.contacts // 2, args.contacts * 3 // 2), i)
        for i in range(args.jobs)
    ]
    with throwaway_cluster() as cluster, start_sandbox(SandboxState()) as sandbox:
        print(f"throwaway cluster on port {cluster.port}; sandbox on {sandbox.base_url}")
        expected = _reference(
            _database(cluster, "reference"), sandbox, [*books, Book("late", LATE_BOOK, LATE_SEED)]
        )
        url = _database(cluster, "chaos")
        with Runtime.build(_settings(url, sandbox)) as rt, tempfile.TemporaryDirectory() as logs:
            for b in books:
                queue_import(rt, sandbox, b.user, size=b.size, seed=b.seed, faults=FAULTS)
            started = time.monotonic()
            fleet = Fleet(args.workers, _worker_env(url, sandbox), Path(logs))
            tally = _chaos(cluster, fleet, rt, sandbox, args)
            _wait_all_ended(rt, fleet, timeout=300)
            tally.seconds = time.monotonic() - started
            codes = fleet.stop()
            verdict = _judge(rt, expected)
            _count_provider_faults(sandbox, tally)
            _report(args, tally, verdict, fleet)
            print(f"  worker exit codes on SIGTERM: {codes}")
    bad = verdict.lost or verdict.duplicates or verdict.failed or verdict.mismatched or fleet.died
    raise SystemExit(1 if bad or any(codes) else 0)


if __name__ == "__main__":
    main()
