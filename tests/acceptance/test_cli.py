"""The CLI as a user runs it: subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from contact_import.runtime import Runtime
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from tests.helpers import Counts, drain, queue_import

CLI = [sys.executable, "-m", "contact_import"]


def run(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _summary_value(output: str, name: str) -> int:
    match = re.search(rf"│ {re.escape(name)}\s+│ (\d+)", output)
    assert match, f"{name} not in the demo's summary:\n{output}"
    return int(match.group(1))


@pytest.mark.slow
def test_demo_runs_end_to_end_and_reports_the_right_counts(
    tmp_path: Path, sqlite_database_url: str, sandbox: RunningSandbox
) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "120"}
    result = run(["demo", "--contacts", "1500"], env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "completed" in out
    # The same book imported here, through the library, must give the same numbers.
    settings = Settings(
        contact_import_env="development",
        database_url=sqlite_database_url,
        google_people_api_url=sandbox.base_url,
    )
    with Runtime.build(settings) as rt:
        job = queue_import(rt, sandbox, "demo-user", size=1500, seed=1)
        drain(rt)
        expected = Counts.of(rt.jobs.get(job.id))
    assert _summary_value(out, "processed") == expected.processed == 1500
    assert _summary_value(out, "created") == expected.created
    assert _summary_value(out, "updated") == expected.updated
    assert _summary_value(out, "skipped") == expected.skipped
    assert _summary_value(out, "failed") == expected.failed
    assert _summary_value(out, "contacts stored") == expected.created


def test_tick_prints_the_cron_json(
    settings: Settings, sandbox: RunningSandbox, subprocess_env: dict[str, str]
) -> None:
    with Runtime.build(settings) as rt:
        job = queue_import(rt, sandbox, "uma", size=300)
    result = run(["tick", "--budget", "20"], subprocess_env)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["message"] == "Processing complete"
    assert body["processed"] == 1
    assert body["job_ids"]["processed"] == [str(job.id)]


@pytest.mark.slow
def test_jobs_commands(
    settings: Settings, sandbox: RunningSandbox, subprocess_env: dict[str, str]
) -> None:
    with Runtime.build(settings) as rt:
        job = queue_import(rt, sandbox, "vera", size=120)
        drain(rt)
        waiting = queue_import(rt, sandbox, "walt", size=10)
    listed = run(["jobs", "list"], subprocess_env)
    assert listed.returncode == 0, listed.stderr
    assert str(job.id)[:8] in listed.stdout
    assert "2 job(s)" in listed.stderr  # piped: the title goes to stderr, rows to stdout
    shown = run(["jobs", "show", str(job.id)], subprocess_env)
    assert shown.returncode == 0
    assert "completed" in shown.stdout
    assert "created=" in shown.stdout
    cancelled = run(["jobs", "cancel", str(waiting.id)], subprocess_env)
    assert cancelled.returncode == 0
    assert "cancelled" in cancelled.stdout
    retried = run(["jobs", "retry", str(waiting.id)], subprocess_env)
    assert retried.returncode == 0
    assert "fetching" in retried.stdout
    stuck = run(["jobs", "stuck"], subprocess_env)
    assert stuck.returncode == 0
    assert "0 stuck job(s)" in stuck.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["jobs", "show", "not-a-uuid"], "is not a job id"),
        (["jobs", "show", str(uuid.UUID(int=1))], "no import job"),
        (["jobs", "retry", str(uuid.UUID(int=1))], "no import job"),
        (["jobs", "list", "--status", "nonsense"], "unknown status"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    args: list[str], message: str, subprocess_env: dict[str, str]
) -> None:
    result = run(args, subprocess_env)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_retrying_a_completed_job_is_refused(
    settings: Settings, sandbox: RunningSandbox, subprocess_env: dict[str, str]
) -> None:
    with Runtime.build(settings) as rt:
        job = queue_import(rt, sandbox, "xena", size=5)
        drain(rt)
    result = run(["jobs", "retry", str(job.id)], subprocess_env)
    assert result.returncode == 1
    assert "only failed or cancelled jobs can be retried" in result.stderr


def test_production_mode_refuses_to_start_without_an_encryption_key(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    result = run(["tick"], env)
    assert result.returncode == 1
    assert "TOKEN_ENCRYPTION_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unsupported_database_url_is_a_clear_error(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "mysql://root@localhost/db"}
    result = run(["db", "upgrade"], env)
    assert result.returncode == 1
    assert "PostgreSQL or SQLite" in result.stderr


def test_db_upgrade_creates_a_fresh_database(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/new/fresh.db"}
    first, second = run(["db", "upgrade"], env), run(["db", "upgrade"], env)
    assert first.returncode == second.returncode == 0
    assert (tmp_path / "new" / "fresh.db").exists()
