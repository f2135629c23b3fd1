"""What a disconnect leaves behind: no page cursor of the grant's ended jobs (a cursor can hold
a sync token or delta links, in clear), and no stale email when the account is connected
anew."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from contact_import.connected import OwnTokens
from contact_import.domain.job import JobStatus
from contact_import.runner.importer import ImportBudget
from contact_import.runtime import Runtime
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from contact_import.store.schema import jobs
from tests.helpers import drain, sandbox_tokens


@pytest.fixture
def rt(settings_for: Callable[..., Settings]) -> Iterator[Runtime]:
    with Runtime.build(settings_for(page_size=50)) as runtime:
        yield runtime


def test_a_disconnect_clears_the_page_cursors_of_the_grants_ended_jobs(
    rt: Runtime, sandbox: RunningSandbox
) -> None:
    tokens = sandbox_tokens(sandbox, "microsoft", size=120)
    grant_id = rt.grants.create("ada", "microsoft", access_token=tokens.access_token)
    other = rt.grants.create("bob", "microsoft", access_token=sandbox.state.add_account(size=5))
    for user, grant in (("ada", grant_id), ("bob", other)):
        job, _ = rt.jobs.create(user, "microsoft", grant)
        drain(rt)
        assert rt.jobs.get(job.id).status.value == "completed"
    with rt.engine.begin() as conn:  # as an earlier cancel mid-import would leave it
        conn.execute(jobs.update().values(page_cursor="https://graph.example/delta?token=x"))
    rt.accounts.disconnect("ada", "microsoft")
    with rt.engine.connect() as conn:
        cursors = dict(conn.execute(select(jobs.c.user_id, jobs.c.page_cursor)).all())
    assert cursors == {"ada": None, "bob": "https://graph.example/delta?token=x"}


def test_the_email_is_the_new_accounts_after_a_disconnect_and_kept_on_a_plain_reconnect(
    rt: Runtime, sandbox: RunningSandbox
) -> None:
    token = sandbox.state.add_account(size=1)
    rt.grants.create("cy", "microsoft", access_token=token, account_email="cy@old.example")
    rt.grants.create("cy", "microsoft", access_token=token)  # the lookup found nothing: kept
    assert rt.grants.email_of("cy", "microsoft") == "cy@old.example"
    rt.accounts.disconnect("cy", "microsoft")
    assert rt.grants.email_of("cy", "microsoft") == "cy@old.example"  # the list shows whose
    rt.grants.create("cy", "microsoft", access_token=token)  # connected anew, email unknown
    assert rt.grants.email_of("cy", "microsoft") is None


def test_reconnecting_right_after_a_disconnect_imports_with_the_new_tokens(
    rt: Runtime, sandbox: RunningSandbox
) -> None:
    first = sandbox_tokens(sandbox, "google", size=300, seed=3)
    grant = rt.grants.create(
        "dee", "google", access_token=first.access_token, refresh_token=first.refresh_token
    )
    job, _ = rt.jobs.create("dee", "google", grant)
    (claimed,) = rt.jobs.claim("busy-worker", 1).jobs  # a worker is on it
    rt.accounts.disconnect("dee", "google")  # held: only flagged, it would end at its next page
    assert rt.jobs.get(job.id).cancel_requested
    again = sandbox_tokens(sandbox, "google", size=300, seed=3)  # the same book, new consent
    kept, created = rt.accounts.bring_tokens(
        "dee", "google", OwnTokens(again.access_token, again.refresh_token)
    )
    assert (kept.id, created, kept.cancel_requested) == (job.id, False, False)
    rt.importer.run(claimed, ImportBudget())
    done = rt.jobs.get(job.id)
    assert done.status is JobStatus.COMPLETED, done.error_message
    assert done.processed_contacts == 300
