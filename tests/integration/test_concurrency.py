"""Several processes on one database: claims never overlap, one user's imports never duplicate."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

from sqlalchemy import func, select

from contact_import.domain.job import JobStatus
from contact_import.runtime import Runtime
from contact_import.settings import Settings
from contact_import.store.schema import jobs


def test_processes_claiming_at_once_never_hold_the_same_job(settings: Settings) -> None:
    n_jobs, n_procs = 300, 4
    with Runtime.build(settings) as rt:
        for i in range(n_jobs):
            rt.jobs.create(f"user-{i}", "google")
    start_at = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.claimer", settings.database_url, str(start_at), "3"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(n_procs)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    per_process = [json.loads(out) for out in outputs]
    claims = Counter(job_id for claimed in per_process for job_id in claimed)
    assert len(claims) == n_jobs  # every job was claimed …
    assert max(claims.values()) == 1  # … by exactly one process, once
    if settings.database_url.startswith("postgresql"):
        # They really did compete (SQLite's lock is not fair: one process may take all).
        assert sum(1 for claimed in per_process if claimed) >= 2
    with Runtime.build(settings) as rt, rt.engine.connect() as conn:
        statuses: dict[str, int] = dict(
            conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status)).all()
        )
        attempts = conn.execute(select(func.max(jobs.c.attempts))).scalar_one()
    assert statuses == {JobStatus.COMPLETED.value: n_jobs}
    assert attempts == 1
