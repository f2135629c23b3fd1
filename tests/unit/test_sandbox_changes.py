"""An account's versions of its book: deterministic edits laid over a shared, unchanged book."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from contact_import.sandbox.accounts import Account
from contact_import.sandbox.book import generate_book
from contact_import.sandbox.changes import ChangeLog, is_tombstone
from contact_import.sandbox.listing import (
    Listing,
    listing_token,
    read_listing_token,
    seal,
    unseal,
)

Person = dict[str, Any]


@pytest.fixture(scope="module")
def base() -> list[Person]:
    return generate_book(300, 61)


def names(people: list[Person]) -> list[str]:
    return [person["resourceName"] for person in people]


def email_keys(people: list[Person]) -> set[str]:
    return {e["value"].lower() for p in people for e in p.get("emailAddresses", [])}


def test_a_change_is_a_new_version_and_leaves_the_book_alone(base: list[Person]) -> None:
    pristine = copy.deepcopy(base)
    log = ChangeLog()

    changed = log.apply(base, modified=5, added=7, deleted=3, seed=0).summary()

    assert log.version == changed["version"] == 1
    assert [len(changed[k]) for k in ("modified", "added", "deleted")] == [5, 7, 3]
    assert base == pristine
    assert log.view(base, 0) is base
    view = log.view(base, 1)
    assert len(view) == 300 + 7 - 3
    assert set(names(view)) == (set(names(base)) - set(changed["deleted"])) | set(changed["added"])
    assert names(view)[-7:] == changed["added"]  # the book's order, then the new people


def test_the_same_calls_give_the_same_changes(base: list[Person]) -> None:
    def run() -> list[Any]:
        log = ChangeLog()
        first = log.apply(base, modified=3, added=2, deleted=1, seed=5)
        second = log.apply(base, modified=2, added=2, deleted=2, seed=5)
        return [first.summary(), second.summary(), log.view(base, 2)]

    assert run() == run()


def test_modified_and_added_people_carry_an_email_no_one_else_has(base: list[Person]) -> None:
    log = ChangeLog()
    changed = log.apply(base, modified=10, added=20, seed=1).summary()
    view = {person["resourceName"]: person for person in log.view(base, 1)}
    others = email_keys([p for p in base if p["resourceName"] not in changed["modified"]])

    for name in changed["modified"] + changed["added"]:
        new = email_keys([view[name]]) - email_keys([p for p in base if p["resourceName"] == name])
        assert new
        assert not new & others


def test_changed_since_lists_each_touched_person_once_as_it_is_now(base: list[Person]) -> None:
    log = ChangeLog()
    one = log.apply(base, modified=4, seed=1).summary()
    two = log.apply(base, modified=2, deleted=4, seed=2).summary()

    since_start = log.changed_since(0, 2)
    since_one = log.changed_since(1, 2)

    touched = set(one["modified"] + two["modified"] + two["deleted"])
    assert len(since_start) == len(touched) == len(set(names(since_start)))
    assert set(names(since_one)) == set(two["modified"] + two["deleted"])
    tombstones = [person for person in since_start if is_tombstone(person)]
    assert set(names(tombstones)) == set(two["deleted"])
    assert all(set(p) == {"resourceName", "etag", "metadata"} for p in tombstones)
    assert log.changed_since(2, 2) == []


def test_a_deleted_person_is_gone_from_later_versions_only(base: list[Person]) -> None:
    log = ChangeLog()
    deleted = log.apply(base, deleted=10, seed=3).summary()["deleted"]
    log.apply(base, added=1, seed=4)

    assert set(deleted) <= set(names(log.view(base, 0)))
    assert not set(deleted) & set(names(log.view(base, 1)))
    assert not set(deleted) & set(names(log.view(base, 2)))


def test_a_change_larger_than_the_book_is_refused(base: list[Person]) -> None:
    with pytest.raises(ValueError, match="only 300"):
        ChangeLog().apply(base, modified=200, deleted=101, seed=0)


# --- tokens --------------------------------------------------------------------------------------


def test_sealed_tokens_round_trip_and_refuse_any_alteration() -> None:
    token = seal({"a": "acct-1", "o": 100})
    flipped = token[:12] + ("B" if token[12] == "A" else "A") + token[13:]
    assert unseal(token) == {"a": "acct-1", "o": 100}
    for altered in ["", "x", token[:-2], token + "A", flipped]:
        assert unseal(altered) is None


def test_a_listing_token_is_bound_to_its_account_kind_and_parameters() -> None:
    mine, theirs = Account("acct-7", size=10, seed=1), Account("acct-8", size=10, seed=1)
    listing = Listing(version=2, since=1, offset=40)
    token = listing_token(mine, "page", listing, "100|names")

    assert read_listing_token(token, mine, "page", "100|names") == listing
    assert read_listing_token(token, mine, "page", "1000|names") is None
    assert read_listing_token(token, mine, "sync", "100|names") is None
    assert read_listing_token(token, theirs, "page", "100|names") is None
