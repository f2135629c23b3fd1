"""Postgres restarted mid-import under real runners: two `contact-import worker` processes, and
`serve`'s in-process worker, on a throwaway cluster (never the shared server on 5432).

An import is running (the sandbox answers slowly) when Postgres restarts (`pg_ctl restart`),
or stops for 5 s and starts again. Nothing restarts the runners: the same processes finish the
job with exact counts and no duplicates, resume it within seconds of the database returning
(not after its 60 s lease), without using up an attempt, and pick up a job queued right after
the database returns within about a second. They poll only every 30 s, so that pickup is the
LISTEN connection coming back (or the loop's own reconnect), not a poll.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from contact_import.domain.job import FINAL_STATUSES, JobStatus
from contact_import.runtime import Runtime
from contact_import.sandbox.accounts import Faults
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.jobs import Job
from tests.acceptance.test_serve import serve
from tests.helpers import assert_consistent, queue_import
from tests.pg_cluster import PgCluster

BOOK = 4000
PAGE = 200
LATENCY_MS = 60  # per provider request: the import runs for a few seconds
SECOND_BOOK = 300
LEASE = 60
DOWN_SECONDS = 5
CLI = [sys.executable, "-m", "contact_import"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["cluster"], indirect=True),
]
outages = pytest.mark.parametrize("outage", ["restart", "stop-5s-start"])


@dataclass
class Figures:
    """What one run measured (printed with -s; bounds are asserted by the tests)."""

    outage: str
    resumed_after: float  # database back → the interrupted job's next page committed
    pickup: float  # a job queued once the database is back → claimed


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _env(subprocess_env: dict[str, str]) -> dict[str, str]:
    return subprocess_env | {
        "PAGE_SIZE": str(PAGE),
        "LEASE_SECONDS": str(LEASE),
        "WORKER_POLL_SECONDS": "30",
    }


def _take_down(cluster: PgCluster, outage: str, while_down: Callable[[], None]) -> float:
    """Restart (or stop, wait, start) the cluster; when it accepts connections again."""
    if outage == "restart":
        cluster.restart()
    else:
        cluster.stop()
        stopped = time.monotonic()
        while_down()
        time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - stopped)))
        cluster.start()
    cluster.wait_accepting()
    return time.monotonic()


def _run_through_an_outage(
    rt: Runtime,
    sandbox: RunningSandbox,
    cluster: PgCluster,
    outage: str,
    while_down: Callable[[], None],
) -> Figures:
    """Queue an import, take Postgres down mid-import, check both jobs end exactly."""
    job = queue_import(rt, sandbox, "rita", size=BOOK, seed=3, faults=Faults(latency_ms=LATENCY_MS))
    _wait_for(lambda: rt.jobs.get(job.id).pages_done >= 3, 60, "three pages")
    back = _take_down(cluster, outage, while_down)
    pages_at_back = rt.jobs.get(job.id).pages_done
    assert pages_at_back < BOOK // PAGE, "the import ended before the outage: slow it down"

    queued = time.monotonic()
    second = queue_import(rt, sandbox, "sam", size=SECOND_BOOK, seed=4)
    _wait_for(lambda: rt.jobs.get(second.id).status is not JobStatus.FETCHING, 30, "a claim")
    pickup = time.monotonic() - queued
    _wait_for(lambda: rt.jobs.get(job.id).pages_done > pages_at_back, 30, "the job to resume")
    resumed_after = time.monotonic() - back

    def ended(j: Job) -> bool:
        return rt.jobs.get(j.id).status in FINAL_STATUSES

    _wait_for(lambda: ended(job) and ended(second), 120, "both jobs to end")
    done = rt.jobs.get(job.id)
    assert done.attempts == 1, "the outage used up an attempt"
    state = assert_consistent(rt.engine, done, BOOK)
    assert state.contacts == done.created_contacts  # no duplicate contacts
    assert_consistent(rt.engine, rt.jobs.get(second.id), SECOND_BOOK)

    assert pickup < 3.0, f"a job queued after the outage waited {pickup:.2f}s"
    assert resumed_after < LEASE / 6, "the job waited for its lease instead of resuming"
    figures = Figures(outage, round(resumed_after, 2), round(pickup, 2))
    print(figures)  # visible with -s: the measured figures
    return figures


def _wait_for_relisten(log: Path) -> None:
    """The LISTEN connection comes back on its own backoff, which may be after the imports
    ended (they resume on a pooled connection first): give it time, don't stop it before."""
    deadline = time.monotonic() + 30
    while RELISTEN not in log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.1)


RELISTEN = "listening for new jobs again"


def _assert_lived_through_it(log: str, *, pid: int) -> None:
    """One runner's log: it listened again, said each outage at most once, no traceback."""
    assert RELISTEN in log, f"pid {pid} never re-LISTENed:\n{log[-3000:]}"
    assert log.count("database unavailable; retrying until it is back") <= 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert "worker cannot go on" not in log, log[-3000:]


@contextmanager
def two_workers(env: dict[str, str], tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    with ExitStack() as stack:
        processes = []
        for n in range(2):
            out = stack.enter_context((tmp_path / f"worker{n}.log").open("wb"))
            command = [*CLI, "worker", "--concurrency", "2"]
            processes.append(
                subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
            )
        try:
            yield processes
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait(10)


@outages
def test_two_workers_live_through_a_postgres_outage(  # noqa: PLR0917 (fixtures, params)
    outage: str,
    pg_cluster: PgCluster,
    settings_for: Callable[..., Settings],
    sandbox: RunningSandbox,
    subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    settings = settings_for(page_size=PAGE, lease_seconds=LEASE)
    with Runtime.build(settings) as rt, two_workers(_env(subprocess_env), tmp_path) as workers:
        pids = [w.pid for w in workers]

        def all_alive() -> None:
            assert [w.pid for w in workers if w.poll() is None] == pids

        _run_through_an_outage(rt, sandbox, pg_cluster, outage, all_alive)
        all_alive()  # the same two processes, never restarted
        for n in range(len(workers)):
            _wait_for_relisten(tmp_path / f"worker{n}.log")
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        assert [w.wait(timeout=30) for w in workers] == [0, 0]
    for n, pid in enumerate(pids):
        _assert_lived_through_it((tmp_path / f"worker{n}.log").read_text(), pid=pid)


@outages
def test_serve_lives_through_a_postgres_outage(  # noqa: PLR0917 (fixtures, params)
    outage: str,
    pg_cluster: PgCluster,
    settings_for: Callable[..., Settings],
    sandbox: RunningSandbox,
    subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    settings = settings_for(page_size=PAGE, lease_seconds=LEASE)
    with Runtime.build(settings) as rt, serve(_env(subprocess_env), sandbox, tmp_path) as served:
        pid = served.process.pid

        def unhealthy_while_down() -> None:
            health = httpx.get(f"{served.base_url}/healthz", timeout=10)
            assert health.status_code == 503, health.text
            assert health.json()["database"] == "unreachable"
            assert health.json()["worker"] == "running"

        _run_through_an_outage(rt, sandbox, pg_cluster, outage, unhealthy_while_down)
        health = httpx.get(f"{served.base_url}/healthz", timeout=10)
        assert health.status_code == 200, health.text
        _wait_for_relisten(served.log)
        assert served.process.poll() is None
        assert served.process.pid == pid
        code, _seconds = served.stop(timeout=30)
        assert code == 0, served.output()
    _assert_lived_through_it(served.log.read_text(errors="replace"), pid=pid)


def test_serve_exits_non_zero_when_its_worker_cannot_go_on(
    settings: Settings, sandbox: RunningSandbox, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    """A real failure the worker cannot survive (its table is gone): serve must not live on
    looking healthy; it exits non-zero so that its supervisor restarts it."""
    with serve(subprocess_env, sandbox, tmp_path) as served:  # polls every 0.2 s
        with Runtime.build(settings) as rt, rt.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE contact_import_jobs RENAME TO contact_import_gone")
        code = served.process.wait(timeout=30)
    output = served.output()
    assert code == 1, output
    assert "the in-process worker stopped: the database schema is missing" in output, output
    assert "contact_import_jobs" in output, output
