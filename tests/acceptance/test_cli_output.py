"""The operator's CLI as a terminal (80 columns) and a pipe show it: whole headers, no empty
cell, short ids and unique prefixes, ``--json`` with the API's fields, ``--version``, exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from importlib.metadata import version

import pytest
from sqlalchemy import update

from contact_import.runtime import Runtime
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.job_json import JobOut
from contact_import.store.schema import jobs as jobs_table
from tests.helpers import drain, queue_import

CLI = [sys.executable, "-m", "contact_import"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LONG_USER = "supabase-user-0f9c2d4e-8a1b-4c3d-9e7f-5a6b7c8d9e0f-with-a-long-tail"
LIST_HEADERS = ["id", "status", "provider", "user", "progress", "age"]
STUCK_HEADERS = ["id", "status", "provider", "user", "attempts", "why"]
API_FIELDS = set(JobOut.model_fields) | {"user_id"}


@dataclass(frozen=True)
class Queue:
    completed: uuid.UUID
    waiting: uuid.UUID
    waiting_long_user: uuid.UUID


@pytest.fixture
def queue(settings: Settings, sandbox: RunningSandbox) -> Queue:
    """A completed Google import, and two waiting jobs (one of a user with a very long id)."""
    with Runtime.build(settings) as rt:
        done = queue_import(rt, sandbox, "olga", size=150)
        drain(rt)
        waiting = queue_import(rt, sandbox, "pia", size=10, provider="microsoft")
        long_user = queue_import(rt, sandbox, LONG_USER, size=10)
    return Queue(done.id, waiting.id, long_user.id)


def run(
    args: list[str], env: dict[str, str], *, terminal: bool = False
) -> subprocess.CompletedProcess[str]:
    """The CLI at 80 columns, its stdout a pipe; ``terminal``: Rich treats it as a terminal."""
    env = {k: v for k, v in env.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR")}
    env |= {"COLUMNS": "80", "LINES": "40"}
    if terminal:
        env |= {"TTY_COMPATIBLE": "1", "NO_COLOR": "1"}
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def table_rows(output: str, headers: list[str]) -> tuple[str, list[list[str]]]:
    """The header line and the cells of each row after it (cells are 2+ spaces apart)."""
    lines = [ANSI.sub("", line).rstrip() for line in output.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["id"])
    rows = [re.split(r" {2,}", line.strip()) for line in lines[start + 1 :] if line.strip()]
    return lines[start], [row for row in rows if re.fullmatch(r"[0-9a-f]{8}", row[0])]


TABLES = {
    "list": (["jobs", "list"], LIST_HEADERS, 3),
    "stuck": (["jobs", "stuck", "--waiting", "0"], STUCK_HEADERS, 2),
}


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "pipe"])
@pytest.mark.parametrize("command", list(TABLES))
def test_tables_have_whole_headers_and_no_empty_cell(
    queue: Queue, subprocess_env: dict[str, str], terminal: bool, command: str
) -> None:
    args, headers, expected_rows = TABLES[command]
    result = run(args, subprocess_env, terminal=terminal)
    assert result.returncode == 0, result.stderr
    header, rows = table_rows(result.stdout, headers)
    assert header.split() == headers  # every header whole: no "pr…"
    assert len(rows) == expected_rows, result.stdout
    for row in rows:
        assert len(row) == len(headers), row  # a blank cell would merge two gaps into one
        assert all(value.strip() for value in row), row
    ids = {row[0] for row in rows}
    assert queue.waiting.hex[:8] in ids
    assert queue.waiting_long_user.hex[:8] in ids
    if terminal:
        assert all(len(ANSI.sub("", line)) <= 80 for line in result.stdout.splitlines())
    else:  # a pipe gets every value whole, and the title on stderr
        assert any(LONG_USER in row for row in rows)
        assert "job(s)" in result.stderr


def test_list_shows_progress_and_a_dash_for_an_unknown_total(
    queue: Queue, subprocess_env: dict[str, str]
) -> None:
    _, rows = table_rows(run(["jobs", "list"], subprocess_env).stdout, LIST_HEADERS)
    by_id = {row[0]: row for row in rows}
    assert by_id[queue.completed.hex[:8]][1:5] == ["completed", "google", "olga", "150/150"]
    assert by_id[queue.waiting.hex[:8]][1:5] == ["fetching", "microsoft", "pia", "—"]


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "pipe"])
def test_show_by_short_id_has_no_empty_value(
    queue: Queue, subprocess_env: dict[str, str], terminal: bool
) -> None:
    result = run(["jobs", "show", queue.completed.hex[:8]], subprocess_env, terminal=terminal)
    assert result.returncode == 0, result.stderr
    lines = [ANSI.sub("", line).strip() for line in result.stdout.splitlines() if line.strip()]
    fields = dict(re.split(r" {2,}", line, maxsplit=1) for line in lines if "  " in line)
    assert fields["id"] == str(queue.completed)
    assert fields["status"] == "completed"
    assert fields["progress"] == "150/150"
    assert fields["error"] == "—"
    assert fields["audit rows"].startswith("created=")
    assert all(value.strip() for value in fields.values())


def test_json_has_the_api_fields(queue: Queue, subprocess_env: dict[str, str]) -> None:
    listed = run(["jobs", "list", "--json"], subprocess_env, terminal=True)
    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)["jobs"]
    assert len(jobs) == 3
    assert all(set(job) == API_FIELDS for job in jobs)
    done = next(job for job in jobs if job["id"] == str(queue.completed))
    assert (done["status"], done["processed_contacts"], done["user_id"]) == (
        "completed",
        150,
        "olga",
    )
    assert done["imported_contacts"] == done["created_contacts"] + done["updated_contacts"]

    shown = json.loads(run(["jobs", "show", str(queue.waiting), "--json"], subprocess_env).stdout)
    assert set(shown) == API_FIELDS
    assert (shown["status"], shown["provider"], shown["completed_at"]) == (
        "fetching",
        "microsoft",
        None,
    )

    stuck = json.loads(run(["jobs", "stuck", "--waiting", "0", "--json"], subprocess_env).stdout)
    assert {job["id"] for job in stuck["jobs"]} == {
        str(queue.waiting),
        str(queue.waiting_long_user),
    }


def test_version_is_the_package_version(subprocess_env: dict[str, str]) -> None:
    result = run(["--version"], subprocess_env)
    assert result.returncode == 0
    assert result.stdout.strip() == f"contact-import {version('contact-import')}"


def _give_ids(settings: Settings, new_ids: dict[uuid.UUID, uuid.UUID]) -> None:
    """Renumber waiting jobs (nothing refers to them yet), to make ids that share a start."""
    with Runtime.build(settings) as rt, rt.engine.begin() as conn:
        for old, new in new_ids.items():
            conn.execute(update(jobs_table).where(jobs_table.c.id == old).values(id=new))


def test_id_prefixes_and_exit_codes(
    queue: Queue, settings: Settings, subprocess_env: dict[str, str]
) -> None:
    first = uuid.UUID("abcd1234-0000-4000-8000-000000000001")
    second = uuid.UUID("abcd1234-0000-4000-8000-000000000002")
    _give_ids(settings, {queue.waiting: first, queue.waiting_long_user: second})

    for ref, job_id in [
        (queue.completed.hex[:8], queue.completed),
        (str(first).upper(), first),
        (second.hex, second),
    ]:
        shown = run(["jobs", "show", ref, "--json"], subprocess_env)
        assert shown.returncode == 0, (ref, shown.stderr)
        assert json.loads(shown.stdout)["id"] == str(job_id)
    cancelled = run(["jobs", "cancel", str(second)], subprocess_env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"job {second}: cancelled" in cancelled.stdout
    retried = run(["jobs", "retry", queue.completed.hex[:8]], subprocess_env)
    assert retried.returncode == 1  # a completed job cannot be retried
    assert "only failed or cancelled jobs can be retried" in retried.stderr

    for args, code, message in [
        (["jobs", "show", "abcd1234"], 2, "is the start of several job ids"),
        (["jobs", "show", "ABCD1234-0000"], 2, "is the start of several job ids"),
        (["jobs", "cancel", "abcd"], 2, "is the start of several job ids"),
        (["jobs", "show", "0000ffff"], 1, "no import job id starts with 0000ffff"),
        (["jobs", "retry", "xyz"], 2, "is not a job id"),
        (["jobs", "list", "--status", "nonsense"], 2, "unknown status"),
        (["jobs", "list", "--limit", "0"], 2, "--limit"),
    ]:
        result = run(args, subprocess_env)
        assert result.returncode == code, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
