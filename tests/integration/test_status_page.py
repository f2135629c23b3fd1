"""The live status page and its progress feed: signed-link access, counts, escaping, headers,
and the development home page that starts a sandbox import."""

from __future__ import annotations

import re
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import update
from starlette.exceptions import StarletteDeprecationWarning

from contact_import.runtime import Runtime
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.jobs import Job
from contact_import.store.schema import jobs as contact_import_jobs
from contact_import.web.app import create_app
from contact_import.web.routes.imports import link_secret, status_page_url
from contact_import.web.signing import LINK_TTL_SECONDS, sign_job_link
from tests.helpers import drain, queue_import

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 behind its TestClient; with httpx it works the same.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

COUNT_IDS = ("processed", "total", "created", "updated", "skipped", "failed")


class _TextById(HTMLParser):
    """The text inside each element that has an id (nested ids included)."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: dict[str, str] = {}
        self.attrs: dict[str, dict[str, str | None]] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element_id = dict(attrs).get("id")
        if element_id:
            self.texts[element_id] = ""
            self.attrs[element_id] = dict(attrs)
        if tag not in {"meta", "link", "input", "br"}:
            self._open.append(element_id)

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for element_id in self._open:
            if element_id:
                self.texts[element_id] += data


def parse(html: str) -> _TextById:
    parser = _TextById()
    parser.feed(html)
    return parser


def count(parsed: _TextById, element_id: str) -> int:
    return int(parsed.texts[element_id].strip().replace(",", ""))


@pytest.fixture
def client(settings: Settings, runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(settings, runtime=runtime), follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def finished_job(runtime: Runtime, sandbox: RunningSandbox) -> Job:
    job = queue_import(runtime, sandbox, "page-owner", size=1_200, seed=7)
    drain(runtime)
    return runtime.jobs.get(job.id)


def test_the_page_shows_a_completed_jobs_counts(
    client: TestClient, runtime: Runtime, finished_job: Job
) -> None:
    response = client.get(status_page_url(runtime, finished_job.id))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = parse(response.text)
    assert page.texts["status"].strip() == "completed"
    assert page.texts["provider"].strip() == "Google"
    assert count(page, "processed") == count(page, "total") == 1_200
    assert count(page, "created") == finished_job.created_contacts
    assert count(page, "updated") == finished_job.updated_contacts
    assert count(page, "skipped") == finished_job.skipped_contacts
    assert count(page, "failed") == finished_job.failed_contacts
    assert count(page, "attempts") == finished_job.attempts == 1
    assert page.attrs["bar"]["value"] == page.attrs["bar"]["max"] == "1200"
    assert "hidden" in page.attrs["error"]
    assert page.texts["error"] == ""


def test_a_waiting_job_has_an_indeterminate_bar(
    client: TestClient, runtime: Runtime, sandbox: RunningSandbox
) -> None:
    job = queue_import(runtime, sandbox, "waiter", size=10)
    page = parse(client.get(status_page_url(runtime, job.id)).text)
    assert page.texts["status"].strip() == "fetching"
    assert "value" not in page.attrs["bar"]  # no value: the browser draws it indeterminate
    assert count(page, "processed") == count(page, "total") == 0


def test_progress_feed_is_the_job_as_json(
    client: TestClient, runtime: Runtime, finished_job: Job
) -> None:
    path, _, query = status_page_url(runtime, finished_job.id).partition("?")
    response = client.get(f"{path}/progress?{query}")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["id"] == str(finished_job.id)
    assert body["status"] == "completed"
    assert body["processed_contacts"] == body["total_contacts"] == 1_200
    assert body["created_contacts"] == finished_job.created_contacts
    assert body["skipped_contacts"] == finished_job.skipped_contacts


def _denied_urls(runtime: Runtime, job: Job, other: Job) -> list[str]:
    secret = link_secret(runtime)
    unknown = uuid.uuid4()
    expired = sign_job_link(secret, job.id, now=time.time() - LINK_TTL_SECONDS - 60)
    forged = sign_job_link("not-the-secret-" * 3, job.id)
    return [
        f"/imports/{job.id}",
        f"/imports/{job.id}?token=",
        f"/imports/{job.id}?token=garbage",
        f"/imports/{job.id}?token={expired}",
        f"/imports/{job.id}?token={forged}",
        f"/imports/{job.id}?token={sign_job_link(secret, other.id)}",  # another job's token
        f"/imports/{unknown}?token={sign_job_link(secret, unknown)}",  # validly signed, no job
        f"/imports/{unknown}?token={sign_job_link(secret, job.id)}",
    ]


def test_anything_but_the_jobs_own_link_is_the_same_404(
    client: TestClient, runtime: Runtime, sandbox: RunningSandbox, finished_job: Job
) -> None:
    other = queue_import(runtime, sandbox, "someone-else", size=5)
    bodies = set()
    for url in _denied_urls(runtime, finished_job, other):
        path, _, query = url.partition("?")
        for target in (url, f"{path}/progress?{query}"):
            response = client.get(target)
            assert response.status_code == 404, target
            assert response.headers["content-type"] == "application/json"
            bodies.add(response.text)
    assert len(bodies) == 1
    assert set(httpx.Response(404, content=bodies.pop()).json()) == {"error"}


def test_security_headers_and_no_inline_code(
    client: TestClient, runtime: Runtime, finished_job: Job
) -> None:
    response = client.get(status_page_url(runtime, finished_job.id))
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    assert "unsafe" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    html = response.text
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts
    assert all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
    assert "<style" not in html
    assert " style=" not in html
    assert re.search(r" on[a-z]+=", html) is None


def test_static_assets_have_types_and_cache_headers(
    client: TestClient, runtime: Runtime, finished_job: Job
) -> None:
    html = client.get(status_page_url(runtime, finished_job.id)).text
    css_url = re.search(r'href="(/static/status\.css\?v=[0-9a-f]+)"', html)
    js_url = re.search(r'src="(/static/status\.js\?v=[0-9a-f]+)"', html)
    assert css_url
    assert js_url
    css, js = client.get(css_url.group(1)), client.get(js_url.group(1))
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    for asset in (css, js):
        assert asset.status_code == 200
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset.headers["x-content-type-options"] == "nosniff"
    assert "textContent" in js.text
    assert "innerHTML" not in js.text
    unversioned = client.get("/static/status.js")
    assert unversioned.headers["cache-control"] == "public, max-age=300"
    again = client.get("/static/status.js", headers={"If-None-Match": unversioned.headers["etag"]})
    assert again.status_code == 304
    assert client.get("/static/assets.py").status_code == 404  # only the listed files
    assert client.get("/static/nope.js").json() == {"error": "no static file 'nope.js'"}


def test_job_fields_are_escaped(client: TestClient, runtime: Runtime, finished_job: Job) -> None:
    message = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    with runtime.engine.begin() as conn:
        conn.execute(
            update(contact_import_jobs)
            .where(contact_import_jobs.c.id == finished_job.id)
            .values(status="failed", error_message=message)
        )
    html = client.get(status_page_url(runtime, finished_job.id)).text
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img" in html
    page = parse(html)
    assert page.texts["error"] == message  # what the user reads: the text, unchanged
    assert "hidden" not in page.attrs["error"]
    assert page.texts["status"].strip() == "failed"


def test_home_starts_a_sandbox_import_that_lands_on_the_status_page(
    client: TestClient, runtime: Runtime
) -> None:
    home = client.get("/")
    assert home.status_code == 200
    assert 'action="/dev/start/google"' in home.text
    assert 'formaction="/dev/start/microsoft"' in home.text
    assert "form-action 'self' http://127.0.0.1:" in home.headers["content-security-policy"]

    started = client.post("/dev/start/microsoft", data={"contacts": "150"})
    assert started.status_code == 303
    authorize = started.headers["location"]
    assert "login_hint=contacts%3A150" in authorize
    approved = httpx.get(authorize)  # the sandbox approves at once, back to our callback
    assert approved.status_code in (302, 303)
    callback = urlsplit(approved.headers["location"])
    landed = client.get(f"{callback.path}?{callback.query}")
    assert landed.status_code == 303
    page_url = landed.headers["location"]
    assert re.fullmatch(r"/imports/[0-9a-f-]{36}\?token=[\w.-]+", page_url)

    # 150 contacts fit CALLBACK_BUDGET_SECONDS: completed when the page first loads.
    assert parse(client.get(page_url).text).texts["status"].strip() == "completed"
    drain(runtime)
    page = parse(client.get(page_url).text)
    assert page.texts["status"].strip() == "completed"
    assert page.texts["provider"].strip() == "Microsoft"
    assert count(page, "processed") == count(page, "total") == 150


def test_dev_start_rejects_a_bad_size_and_an_unknown_provider(client: TestClient) -> None:
    too_big = client.post("/dev/start/google", data={"contacts": "100001"})
    assert too_big.status_code == 400
    assert "contacts must be" in too_big.json()["error"]
    assert client.post("/dev/start/google", data={"contacts": "-3"}).status_code == 400
    assert client.post("/dev/start/yahoo", data={"contacts": "5"}).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_dev_start_sends_no_book_size_to_a_provider_that_is_not_the_sandbox(
    settings_for: Callable[..., Settings],
) -> None:
    # The same OAuth clients and URLs, but nothing says they are the sandbox (no SANDBOX_URL):
    # a real provider would take "contacts:150" for an account name.
    settings = settings_for(sandbox_url=None)
    with (
        Runtime.build(settings) as rt,
        TestClient(create_app(settings, runtime=rt), follow_redirects=False) as real,
    ):
        started = real.post("/dev/start/google", data={"contacts": "150"})
    assert started.status_code == 303
    assert started.headers["location"].startswith(settings.google_auth_url + "?")
    assert "login_hint" not in started.headers["location"]


@pytest.fixture
def production_client(settings: Settings) -> Iterator[TestClient]:
    production = settings.model_copy(
        update={
            "contact_import_env": "production",
            "token_encryption_key": Fernet.generate_key().decode(),
            "cron_secret": "cron-" + "c" * 40,
            "jwt_secret": "jwt-" + "j" * 40,
        }
    )
    with Runtime.build(production) as rt, TestClient(create_app(production, runtime=rt)) as c:
        yield c


def test_no_home_page_or_dev_start_in_production(production_client: TestClient) -> None:
    home = production_client.get("/")
    assert home.status_code == 404
    assert set(home.json()) == {"error"}
    started = production_client.post("/dev/start/google", data={"contacts": "5"})
    assert started.status_code == 404
    assert set(started.json()) == {"error"}


def test_a_waiting_job_says_so_on_the_page_and_in_its_feed(
    client: TestClient, runtime: Runtime, sandbox: RunningSandbox
) -> None:
    job = queue_import(runtime, sandbox, "queued-user", size=10)
    url = status_page_url(runtime, job.id)
    page = parse(client.get(url).text)
    assert page.texts["waiting"].startswith("Waiting for a worker · ")
    assert "hidden" in page.attrs["counts-line"]  # no "0 of 0 contacts"
    assert "hidden" in page.attrs["account-line"]  # no account email known yet
    path, _, query = url.partition("?")
    feed = client.get(f"{path}/progress?{query}").json()
    assert feed["waiting"].startswith("Waiting for a worker · ")
    assert (feed["rate"], feed["eta"], feed["account_email"]) == ("", "", None)
    assert feed["status"] == "fetching"
