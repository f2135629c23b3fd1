"""`contact-import serve` as a subprocess on SQLite: a full import through the HTTP API only,
done by the in-process worker, then a graceful stop on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit
from uuid import UUID

import httpx
import jwt
import pytest

from contact_import.runtime import Runtime
from contact_import.sandbox.server import RunningSandbox, sandbox_settings
from contact_import.settings import Settings
from tests.helpers import assert_consistent, free_port, wait_healthy

CRON_SECRET = "cron-secret-for-the-serve-test-0123456789"
JWT_SECRET = "jwt-secret-for-the-serve-test-0123456789abcdef"
BOOK_SIZE = 1200  # two pages at the default page size

pytestmark = [
    pytest.mark.slow,
    # SQLite: the embedded shape `serve` is for out of the box; Postgres is covered in-process.
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


def _bearer(user: str) -> dict[str, str]:
    claims = {"sub": user, "aud": "authenticated", "exp": int(time.time()) + 3600}
    return {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, algorithm='HS256')}"}


class Served:
    def __init__(self, process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
        self.process = process
        self.base_url = base_url
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = 10) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds it took)."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve did not exit within {timeout}s of SIGTERM:\n{self.output()}")
        return code, time.monotonic() - started


@contextmanager
def serve(
    subprocess_env: dict[str, str], sandbox: RunningSandbox, tmp_path: Path
) -> Iterator[Served]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = subprocess_env | {k.upper(): v for k, v in sandbox_settings(sandbox.base_url).items()}
    env |= {"CRON_SECRET": CRON_SECRET, "JWT_SECRET": JWT_SECRET, "PUBLIC_BASE_URL": base_url}
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "contact_import", "serve", "--host", "127.0.0.1"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(process, base_url, log)
    try:
        wait_healthy(process, base_url, log)
        yield served
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_serve_handles_a_full_import_over_http(
    subprocess_env: dict[str, str], sandbox: RunningSandbox, settings: Settings, tmp_path: Path
) -> None:
    with (
        serve(subprocess_env, sandbox, tmp_path) as served,
        httpx.Client(base_url=served.base_url, timeout=30, follow_redirects=False) as http,
    ):
        # The user starts an import ...
        started = http.post("/api/v1/contacts/import/google/start", headers=_bearer("sam"))
        assert started.status_code == 200, started.text
        auth_url = started.json()["auth_url"]
        # ... the provider approves (the sandbox; login_hint picks the account's book) ...
        hint = quote(f"contacts:{BOOK_SIZE},seed:7")
        approved = httpx.get(f"{auth_url}&login_hint={hint}", follow_redirects=False)
        assert approved.status_code == 302, approved.text
        callback = approved.headers["location"]
        assert callback.startswith(f"{served.base_url}/api/v1/contacts/import/google/callback?")
        # ... and sends the browser back to us, which lands on the status page.
        landed = http.get(callback)
        assert landed.status_code == 303, landed.text
        status_page = landed.headers["location"]
        job_id = UUID(urlsplit(status_page).path.rsplit("/", 1)[1])

        # Nobody drains here: the in-process worker does the import.
        deadline = time.monotonic() + 90
        while True:
            response = http.get(f"/api/v1/contacts/import/status/{job_id}", headers=_bearer("sam"))
            assert response.status_code == 200, response.text
            body = response.json()
            if body["status"] in ("completed", "failed", "cancelled"):
                break
            assert time.monotonic() < deadline, f"still {body['status']}:\n{served.output()}"
            time.sleep(0.2)
        assert body["status"] == "completed", body
        assert body["processed_contacts"] == BOOK_SIZE

        page = http.get(status_page)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        contacts = http.get("/api/v1/contacts", params={"limit": 5}, headers=_bearer("sam"))
        assert contacts.status_code == 200
        assert len(contacts.json()["contacts"]) == 5
        tick = http.post("/api/cron/process-imports", headers={"x-cron-secret": CRON_SECRET})
        assert tick.status_code == 200, tick.text
        assert tick.json()["message"] == "No pending jobs"
        assert http.get("/metrics").status_code == 200

        with Runtime.build(settings) as rt:
            job = rt.jobs.get(job_id)
            assert job.user_id == "sam"
            assert_consistent(rt.engine, job, BOOK_SIZE)
            for name in ("created_contacts", "updated_contacts", "skipped_contacts"):
                assert body[name] == getattr(job, name), name

        code, seconds = served.stop()
    # Graceful: uvicorn shut the app down (and with it the worker) before the process ended.
    assert code in (0, -signal.SIGTERM), served.output()
    assert seconds < 10
    output = served.output()
    assert "Application shutdown complete" in output, output
    assert "worker stopped" in output, output


def test_serve_exits_0_on_sigterm(
    subprocess_env: dict[str, str], sandbox: RunningSandbox, tmp_path: Path
) -> None:
    with serve(subprocess_env, sandbox, tmp_path) as served:
        code, seconds = served.stop()
    assert seconds < 10
    assert code == 0, served.output()
