"""A production install: `pip install .` without extras, in a fresh venv. No faker there; every
command a deployment runs works (against the test's sandbox, served from this process); the
commands that run the sandbox exit non-zero with one line saying how to get it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from contact_import.runtime import Runtime
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.jobs import Job
from tests.helpers import free_port, queue_import, wait_healthy

PROJECT = Path(__file__).resolve().parents[2]
HINT = "pip install 'contact-import[sandbox]'"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Install:
    """The production venv, and the environment its commands run with."""

    venv: Path
    env: dict[str, str]
    database_url: str

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "contact-import"), *args],
            env=self.env,
            cwd=self.venv,  # not the project: nothing importable from the work tree
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", code],
            env=self.env,
            cwd=self.venv,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory, sandbox: RunningSandbox) -> Install:
    """``pip install <project>`` into a new venv (wheels from pip's cache when it has them);
    its SQLite database migrated by its own ``db upgrade``."""
    root = tmp_path_factory.mktemp("production")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--no-compile", str(PROJECT)]
    installed = subprocess.run(pip, capture_output=True, text=True, timeout=900, check=False)
    assert installed.returncode == 0, installed.stderr[-4000:]
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(root),
        "COLUMNS": "200",
        "CONTACT_IMPORT_ENV": "development",
        "DATABASE_URL": f"sqlite:///{root / 'production.db'}",
        "GOOGLE_PEOPLE_API_URL": sandbox.base_url,
        "MICROSOFT_GRAPH_API_URL": sandbox.base_url,
        "WORKER_POLL_SECONDS": "0.2",
    }
    production = Install(venv, env, env["DATABASE_URL"])
    upgraded = production.run("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    return production


def queue(install: Install, sandbox: RunningSandbox, user: str, size: int) -> Job:
    settings = Settings(
        contact_import_env="development",
        database_url=install.database_url,
        google_people_api_url=sandbox.base_url,
    )
    with Runtime.build(settings) as rt:
        return queue_import(rt, sandbox, user, size=size)


def job_status(install: Install, job: Job) -> str:
    settings = Settings(contact_import_env="development", database_url=install.database_url)
    with Runtime.build(settings) as rt:
        return rt.jobs.get(job.id).status.value


def test_the_install_has_no_faker_and_runs_from_its_own_site_packages(install: Install) -> None:
    without = install.python("import faker")
    assert without.returncode != 0
    assert "No module named 'faker'" in without.stderr
    where = install.python("import contact_import; print(contact_import.__file__)")
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(install.venv))


def test_help_lists_every_command(install: Install) -> None:
    result = install.run("--help")
    assert result.returncode == 0, result.stderr
    for command in ("demo", "tick", "worker", "serve", "db", "jobs", "sandbox"):
        assert command in result.stdout


def test_tick_imports_a_queued_job(install: Install, sandbox: RunningSandbox) -> None:
    job = queue(install, sandbox, "tick-user", size=300)
    result = install.run("tick", "--budget", "20")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["job_ids"]["processed"] == [str(job.id)]
    assert job_status(install, job) == "completed"


def test_worker_once_drains_the_queue(install: Install, sandbox: RunningSandbox) -> None:
    job = queue(install, sandbox, "worker-user", size=150)
    result = install.run("worker", "--once", "--log-level", "warning")
    assert result.returncode == 0, result.stderr
    assert job_status(install, job) == "completed"


def test_serve_answers_and_stops_on_sigterm(install: Install, tmp_path: Path) -> None:
    with _serving(install, tmp_path) as base_url:
        assert httpx.get(f"{base_url}/healthz", timeout=5).status_code == 200
        # The dev home page and its assets are in the wheel, and work without the sandbox.
        assert httpx.get(f"{base_url}/", timeout=5).status_code == 200
        assert httpx.get(f"{base_url}/static/status.js", timeout=5).status_code == 200


@pytest.mark.parametrize("command", [["demo"], ["sandbox"], ["serve", "--sandbox"]], ids=" ".join)
def test_the_sandbox_commands_say_how_to_get_it(install: Install, command: list[str]) -> None:
    result = install.run(*command)
    assert result.returncode == 1
    assert HINT in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


@contextmanager
def _serving(install: Install, tmp_path: Path) -> Iterator[str]:
    """``serve`` from the production venv on a free port; on exit SIGTERM, which must be clean."""
    port, log = free_port(), tmp_path / "serve.log"
    command = [str(install.venv / "bin" / "contact-import"), "serve", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=install.env, cwd=install.venv, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_healthy(process, base_url, log, timeout=60)
        yield base_url
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0, log.read_text(errors="replace")[-4000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
