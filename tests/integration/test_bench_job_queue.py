"""bench/job_queue.py runs end to end at a tiny size and drops its database (no timings checked)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "job_queue.py"


@pytest.mark.postgres
@pytest.mark.slow
def test_job_queue_bench_runs_and_drops_its_database(pg_admin: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--jobs", "5", "--samples", "5", "--skip-tick",
         "--processes", "1", "--pg", pg_admin],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for label in ("NOTIFY received -> claimed", "queued -> completed (running worker process)"):
        assert re.search(rf"{re.escape(label)}\s+p50 +[\d.]+ ms  p90 +[\d.]+ ms  p99", out), out
    assert re.search(r"^\s+1 +\d+ +1\.00x", out, re.MULTILINE), out  # the 1-process row
    assert "procrastinate" in out
    found = re.search(r"^database (bench_[0-9a-f]+);", out, re.MULTILINE)
    assert found is not None, out
    with psycopg.connect(pg_admin) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (found.group(1),)
        ).fetchone()
    assert row == (0,)
