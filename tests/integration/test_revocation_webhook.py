"""``connection.revoked``: a disconnect puts its event in the outbox in the same transaction
that forgets the tokens, after the ``import.cancelled`` of the import it stopped."""

from __future__ import annotations

from collections.abc import Callable

from contact_import.runtime import Runtime
from contact_import.sandbox.server import RunningSandbox
from contact_import.settings import Settings
from tests.helpers import queue_import
from tests.integration.test_webhooks import SECRET, hooked, receiver
from tests.webhook_receiver import Receiver

__all__ = ["hooked", "receiver"]  # the webhook suite's fixtures, used here


def test_a_disconnect_sends_connection_revoked_with_whose_account_it_was(
    hooked: Runtime, sandbox: RunningSandbox, receiver: Receiver
) -> None:
    job = queue_import(hooked, sandbox, "ada", size=20)  # queued, not run: the disconnect ends it
    outcome = hooked.accounts.disconnect("ada", "google")
    assert outcome.cancelled_job_id == job.id
    assert hooked.deliverer is not None
    assert hooked.deliverer.deliver_due().delivered == 2
    bodies = [r.verified(SECRET) for r in receiver.received]
    assert [b["type"] for b in bodies] == ["import.cancelled", "connection.revoked"]
    assert bodies[0]["data"]["id"] == str(job.id)
    assert bodies[0]["data"]["user_id"] == "ada"
    assert bodies[1]["data"] == {
        "user_id": "ada",
        "provider": "google",
        "account_email": hooked.grants.email_of("ada", "google"),
        "cancelled_job_id": str(job.id),
    }


def test_without_webhooks_a_disconnect_writes_no_event(
    settings_for: Callable[..., Settings], sandbox: RunningSandbox
) -> None:
    with Runtime.build(settings_for()) as rt:
        queue_import(rt, sandbox, "bob", size=5)
        rt.accounts.disconnect("bob", "google")
        assert rt.outbox.list_events() == []
