"""The sandbox's fake address books: deterministic, Google-shaped, and as messy as real ones."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from typing import Any

import phonenumbers
import pytest

from contact_import.sandbox.book import generate_book

SIZE = 20_000
E164 = re.compile(r"^\+1\d{10}$")


@pytest.fixture(scope="module")
def book() -> list[dict[str, Any]]:
    return generate_book(SIZE, 42)


def share(book: list[dict[str, Any]], predicate: Any) -> float:
    return sum(1 for person in book if predicate(person)) / len(book)


def display_name(person: dict[str, Any]) -> str:
    return str(person.get("names", [{}])[0].get("displayName", ""))


def email_keys(person: dict[str, Any]) -> list[str]:
    return [email["value"].lower() for email in person.get("emailAddresses", [])]


def test_same_size_and_seed_give_the_same_book() -> None:
    assert generate_book(500, 7) == generate_book(500, 7)
    assert generate_book(500, 7) != generate_book(500, 8)


@pytest.mark.parametrize("hash_seed", ["0", "12345"])
def test_the_book_is_the_same_in_another_process(hash_seed: str) -> None:
    code = (
        "import hashlib, json\n"
        "from contact_import.sandbox.book import generate_book\n"
        "text = json.dumps(generate_book(300, 5), ensure_ascii=False, sort_keys=True)\n"
        "print(hashlib.sha256(text.encode()).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    here = json.dumps(generate_book(300, 5), ensure_ascii=False, sort_keys=True)
    assert out.stdout.strip() == hashlib.sha256(here.encode()).hexdigest()


def test_size_is_exact_and_zero_is_empty() -> None:
    assert generate_book(0, 1) == []
    assert len(generate_book(1234, 1)) == 1234
    with pytest.raises(ValueError):
        generate_book(-1, 1)


def test_people_are_in_google_wire_format(book: list[dict[str, Any]]) -> None:
    for person in book:
        assert re.fullmatch(r"people/c\d+", person["resourceName"])
        assert person["etag"].startswith("%")
        assert person["metadata"]["objectType"] == "PERSON"
        (source,) = person["metadata"]["sources"]
        assert source["type"] == "CONTACT"
        assert int(source["id"], 16) == int(person["resourceName"].removeprefix("people/c"))
        for name in person.get("names", []):
            assert name["displayName"]
            assert name["givenName"]
        for email in person.get("emailAddresses", []):
            assert "@" in email["value"]
            assert email["type"] in {"home", "work"}
        assert all(isinstance(phone["value"], str) for phone in person.get("phoneNumbers", []))


def test_resource_names_are_unique(book: list[dict[str, Any]]) -> None:
    assert len({person["resourceName"] for person in book}) == SIZE


def test_empty_lists_are_omitted_as_google_does(book: list[dict[str, Any]]) -> None:
    for person in book:
        for key in ("names", "emailAddresses", "phoneNumbers"):
            assert person.get(key, [None]) != []


def test_canonical_form_is_e164_and_only_for_numbers_that_parse(
    book: list[dict[str, Any]],
) -> None:
    phones = [phone for person in book for phone in person.get("phoneNumbers", [])]
    with_canonical = [phone for phone in phones if "canonicalForm" in phone]
    without = [phone for phone in phones if "canonicalForm" not in phone]
    assert with_canonical
    assert without
    for phone in with_canonical:
        assert E164.match(phone["canonicalForm"])
        parsed = phonenumbers.parse(phone["value"], "US")
        assert (
            phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            == (phone["canonicalForm"])
        )
    for phone in without:
        assert not any(char.isdigit() for char in phone["value"]) or len(phone["value"]) < 7


def test_phones_come_in_mixed_formats(book: list[dict[str, Any]]) -> None:
    values = [phone["value"] for person in book for phone in person.get("phoneNumbers", [])]
    assert any(re.fullmatch(r"\(\d{3}\) \d{3}-\d{4}", value) for value in values)
    assert any(re.fullmatch(r"\d{3}\.\d{3}\.\d{4}", value) for value in values)
    assert any(re.fullmatch(r"\+1 \d{3} \d{3} \d{4}", value) for value in values)
    assert any(re.fullmatch(r"\d{10}", value) for value in values)


def test_some_phones_are_shared_by_several_contacts(book: list[dict[str, Any]]) -> None:
    canonical = [
        phone["canonicalForm"]
        for person in book
        for phone in person.get("phoneNumbers", [])
        if "canonicalForm" in phone
    ]
    assert len(set(canonical)) < len(canonical)


def test_messiness_comes_at_roughly_the_advertised_rates(book: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    duplicates = 0
    for person in book:
        keys = email_keys(person)
        duplicates += any(key in seen for key in keys)
        seen.update(keys)
    assert 0.06 <= duplicates / SIZE <= 0.10
    no_email_but_phone = share(book, lambda p: "emailAddresses" not in p and "phoneNumbers" in p)
    assert 0.08 <= no_email_but_phone <= 0.12
    nothing = share(book, lambda p: "emailAddresses" not in p and "phoneNumbers" not in p)
    assert 0.01 <= nothing <= 0.03
    assert 0.12 <= share(book, lambda p: len(p.get("emailAddresses", [])) == 2) <= 0.18
    assert 0.25 <= share(book, lambda p: "phoneNumbers" in p) <= 0.35
    unicode_names = share(
        book, lambda p: not p.get("names", [{}])[0].get("displayName", "").isascii()
    )
    assert 0.07 <= unicode_names <= 0.13
    unparseable = share(
        book, lambda p: any("canonicalForm" not in phone for phone in p.get("phoneNumbers", []))
    )
    assert 0.002 <= unparseable <= 0.02


def test_duplicate_emails_sometimes_differ_only_in_case(book: list[dict[str, Any]]) -> None:
    by_key: dict[str, set[str]] = {}
    for person in book:
        for email in person.get("emailAddresses", []):
            by_key.setdefault(email["value"].lower(), set()).add(email["value"])
    assert any(len(spellings) > 1 for spellings in by_key.values())


def test_contacts_with_nothing_at_all_and_with_a_name_only_exist(
    book: list[dict[str, Any]],
) -> None:
    keys = [set(person) for person in book]
    assert {"resourceName", "etag", "metadata"} in keys
    assert {"resourceName", "etag", "metadata", "names"} in keys


def test_addresses_have_dots_and_plus_tags(book: list[dict[str, Any]]) -> None:
    values = [email["value"] for person in book for email in person.get("emailAddresses", [])]
    assert any(re.fullmatch(r"[a-z]+\.[a-z]+\+[a-z]+@[a-z.-]+", value) for value in values)
    assert any(value.endswith("@gmail.com") for value in values)
