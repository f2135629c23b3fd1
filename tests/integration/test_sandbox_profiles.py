"""The sandbox's people/me, Graph /me and Google revoke endpoints answer as the real ones."""

from __future__ import annotations

import httpx

from contact_import.sandbox.server import RunningSandbox
from tests.helpers import raw_get, sandbox_tokens


def test_people_me_names_the_account_and_wants_person_fields(
    sandbox: RunningSandbox, client: httpx.Client
) -> None:
    tokens = sandbox_tokens(sandbox, "google", size=1)
    url = f"{sandbox.base_url}/v1/people/me"

    me = raw_get(client, url, tokens.access_token, personFields="emailAddresses")
    no_mask = raw_get(client, url, tokens.access_token)
    stranger = raw_get(client, url, "not-a-token", personFields="emailAddresses")

    assert me.status_code == 200
    [address] = me.json()["emailAddresses"]
    assert address["value"] == tokens.account.email
    assert address["metadata"]["primary"] is True
    assert me.json()["resourceName"].startswith("people/")
    assert no_mask.status_code == 400
    assert no_mask.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert stranger.status_code == 401
    assert stranger.json()["error"]["status"] == "UNAUTHENTICATED"


def test_graph_me_has_mail_and_user_principal_name(
    sandbox: RunningSandbox, client: httpx.Client
) -> None:
    tokens = sandbox_tokens(sandbox, "microsoft", size=1)
    me = raw_get(client, f"{sandbox.base_url}/v1.0/me", tokens.access_token)
    assert me.status_code == 200
    assert me.json()["mail"] == me.json()["userPrincipalName"] == tokens.account.email
    assert raw_get(client, f"{sandbox.base_url}/v1.0/me", "nope").status_code == 401


def test_a_revoked_token_really_stops_working(
    sandbox: RunningSandbox, client: httpx.Client
) -> None:
    tokens = sandbox_tokens(sandbox, "google", size=3)
    revoke = f"{sandbox.base_url}/revoke"
    listing = f"{sandbox.base_url}/v1/people/me/connections"

    first = client.post(revoke, data={"token": tokens.refresh_token})
    again = client.post(revoke, data={"token": tokens.refresh_token})
    unknown = client.post(revoke, data={"token": "never-issued"})

    assert (first.status_code, first.json()) == (200, {})
    assert tokens.account.revocations == 1
    assert again.status_code == unknown.status_code == 400
    assert again.json()["error"] == unknown.json()["error"] == "invalid_token"
    after = raw_get(client, listing, tokens.access_token, personFields="names")
    assert after.status_code == 401  # its access tokens went with it
