"""The sandbox's ``dirty_every`` knob: which Persons are dirty, and how, is its definition."""

from __future__ import annotations

import copy
import json

import pytest

from contact_import.sandbox.book import generate_book
from contact_import.sandbox.dirty import KINDS, dirty_kind, has_no_id, soil, wire_person
from contact_import.sandbox.state import wire_json


@pytest.mark.parametrize(
    ("index", "every", "kind"),
    [
        (0, 3, None), (1, 3, None), (2, 3, "nul_email"), (5, 3, "nul_name"),
        (20, 3, "surrogate_email"), (23, 3, "nul_email"), (4, 0, None), (0, 1, "nul_email"),
    ],
)  # fmt: skip
def test_every_nth_person_is_dirty_the_kinds_in_turn(
    index: int, every: int, kind: str | None
) -> None:
    assert dirty_kind(index, every) == kind


def test_soiling_copies_and_changes_only_the_dirty_people() -> None:
    book = generate_book(60, 4)
    before = copy.deepcopy(book)
    soiled = soil(book, 4)

    assert book == before  # the shared book is left alone
    assert len(soiled) == len(book)
    for index, (clean, dirty) in enumerate(zip(book, soiled, strict=True)):
        assert (clean == dirty) is (dirty_kind(index, 4) is None)
    assert soil(book, 0) is book


def test_each_kind_puts_its_dirt_where_it_says() -> None:
    soiled = soil(generate_book(7 * 2, 9), 2)  # Persons 1, 3, ... (from 0) are the 7 kinds
    dirty = {str(dirty_kind(i, 2)): person for i, person in enumerate(soiled) if i % 2}
    assert set(dirty) == set(KINDS)
    assert "\x00" in dirty["nul_email"]["emailAddresses"][0]["value"]
    assert "\udc00" in dirty["surrogate_email"]["emailAddresses"][0]["value"]
    assert "\x00" in dirty["nul_name"]["names"][0]["displayName"]
    assert dirty["surrogate_name"]["names"][0]["displayName"].endswith(" \ud800")
    assert has_no_id(dirty["no_id"])
    assert "resourceName" not in wire_person(dirty["no_id"])
    assert "resourceName" in dirty["no_id"]  # kept inside: the change log needs it
    assert "emailAddresses" not in dirty["plus_phone"]
    assert dirty["plus_phone"]["phoneNumbers"][0]["canonicalForm"] == "+"
    name = dirty["control_chars"]["names"][0]["displayName"]
    assert name.startswith("\x07")
    assert name.endswith("\x7f")


def test_the_wire_form_is_valid_utf8_json_with_the_surrogate_escaped() -> None:
    encoded = wire_json({"displayName": "Ada \ud800", "n": "Zoë", "c": "\x00"})
    assert encoded == b'{"displayName":"Ada \\ud800","n":"Zo\xc3\xab","c":"\\u0000"}'
    assert json.loads(encoded.decode("utf-8")) == {
        "displayName": "Ada \ud800",
        "n": "Zoë",
        "c": "\x00",
    }
