"""Reading the account's email from Google's ``people/me`` and Graph's ``/me`` (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from contact_import.providers import google, microsoft


@pytest.mark.parametrize(
    ("person", "email"),
    [
        ({"resourceName": "people/1"}, None),
        ({"emailAddresses": []}, None),
        ({"emailAddresses": [{"value": "a@example.com"}]}, "a@example.com"),
        (
            {
                "emailAddresses": [
                    {"value": "other@example.com", "metadata": {"primary": False}},
                    {"value": "main@example.com", "metadata": {"primary": True}},
                ]
            },
            "main@example.com",
        ),
        ({"emailAddresses": [{"value": ""}, {"value": "b@example.com"}]}, "b@example.com"),
        ({"emailAddresses": ["not an object", {"value": 7}]}, None),
        ({"emailAddresses": 42}, None),
        ({"emailAddresses": {"value": "c@example.com"}}, None),
    ],
)
def test_google_people_me_email(person: dict[str, Any], email: str | None) -> None:
    assert google.account_email_of(person) == email


@pytest.mark.parametrize(
    ("user", "email"),
    [
        ({"mail": "m@contoso.com", "userPrincipalName": "u@contoso.com"}, "m@contoso.com"),
        ({"mail": None, "userPrincipalName": "u@contoso.com"}, "u@contoso.com"),
        ({"mail": "", "userPrincipalName": ""}, None),
        ({"id": "x"}, None),
    ],
)
def test_graph_me_email(user: dict[str, Any], email: str | None) -> None:
    assert microsoft.account_email_of(user) == email
