"""Matching a page of incoming contacts to a user's existing ones, and the writes it plans."""

from __future__ import annotations

import copy
import itertools
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

import pytest

from contact_import.domain.contact import (
    IncomingContact,
    NormalizedContact,
    PhoneInput,
    RejectedContact,
    email_key,
    normalize_contact,
    phone_key,
)
from contact_import.domain.merge import (
    Action,
    ContactOutcome,
    ContactState,
    PagePlan,
    email_match_key,
    identity_key,
    phone_match_key,
    plan_page_merge,
)

PROVIDER = "google"
PHONE = "(415) 555-0134"
PHONE_KEY = "phone:+14155550134"
OTHER_PHONE = "(212) 555-0199"

Incoming = NormalizedContact | RejectedContact


def contact(
    pcid: str,
    name: str = "",
    emails: Sequence[str] = (),
    phones: Sequence[str] = (),
    *,
    deleted: bool = False,
) -> Incoming:
    raw = IncomingContact(
        pcid, name, tuple(emails), tuple(PhoneInput(p) for p in phones), deleted=deleted
    )
    return normalize_contact(raw, "US")


def new_ids() -> Callable[[], uuid.UUID]:
    counter = itertools.count(1)
    return lambda: uuid.UUID(int=next(counter))


def new_id(n: int) -> uuid.UUID:
    """The id ``new_ids()`` hands out on its n-th call."""
    return uuid.UUID(int=n)


def stored(
    n: int, name: str = "", emails: Sequence[str] = (), phones: Sequence[str] = ()
) -> ContactState:
    """An existing contact with the keys it carries (ids far from the ones new_ids hands out)."""
    keys = [email_match_key(k) for e in emails if (k := email_key(e))]
    keys += [phone_match_key(k) for p in phones if (k := phone_key(PhoneInput(p), "US"))]
    return ContactState(uuid.UUID(int=1000 + n), name, list(emails), list(phones), keys)


def owners_of(
    *states: ContactState, identities: Mapping[str, ContactState] | None = None
) -> dict[str, uuid.UUID]:
    """Who owns which key: the first contact carrying it, plus provider identities."""
    owners: dict[str, uuid.UUID] = {}
    for state in states:
        for key in state.keys:
            owners.setdefault(key, state.id)
    for pcid, state in (identities or {}).items():
        owners[identity_key(PROVIDER, pcid)] = state.id
    return owners


def plan(
    incoming: Iterable[Incoming],
    *existing: ContactState,
    identities: Mapping[str, ContactState] | None = None,
    already_recorded: frozenset[str] = frozenset(),
) -> PagePlan:
    return plan_page_merge(
        list(incoming),
        provider=PROVIDER,
        owners=owners_of(*existing, identities=identities),
        existing={s.id: s for s in existing},
        new_id=new_ids(),
        already_recorded=already_recorded,
    )


def actions(result: PagePlan) -> list[tuple[str, Action]]:
    return [(o.provider_contact_id, o.action) for o in result.outcomes]


# --- the original's bug: a contact without email matched everyone -------------------------


def test_two_contacts_without_email_and_different_phones_are_two_contacts() -> None:
    result = plan(
        [contact("c1", "Ann", phones=[PHONE]), contact("c2", "Bob", phones=[OTHER_PHONE])]
    )
    assert actions(result) == [("c1", Action.CREATED), ("c2", Action.CREATED)]
    assert [c.display_name for c in result.creates] == ["Ann", "Bob"]


def test_two_name_only_contacts_are_two_contacts() -> None:
    result = plan([contact("c1", "Ann"), contact("c2", "Bob")])
    assert actions(result) == [("c1", Action.CREATED), ("c2", Action.CREATED)]


def test_existing_contact_without_email_is_not_matched_by_an_unrelated_one() -> None:
    bob = stored(1, "Bob", phones=[OTHER_PHONE])
    result = plan([contact("c1", "Ann", phones=[PHONE])], bob)
    assert actions(result) == [("c1", Action.CREATED)]
    assert result.updates == []
    assert result.creates[0].phones == [PHONE]


def test_existing_name_only_contact_is_not_matched_by_the_same_name() -> None:
    ann = stored(1, "Ann")
    result = plan([contact("c1", "Ann")], ann)
    assert actions(result) == [("c1", Action.CREATED)]


def test_existing_contact_without_email_is_matched_by_a_shared_phone() -> None:
    bob = stored(1, "Bob", phones=[PHONE])
    result = plan([contact("c1", "Robert", phones=["+1 415 555 0134"])], bob)
    assert result.outcomes == [ContactOutcome("c1", Action.SKIPPED, bob.id)]
    assert result.creates == []


def test_same_local_number_in_two_area_codes_does_not_merge_two_people() -> None:
    result = plan(
        [contact("c1", "Ann", phones=["555-0134"]), contact("c2", "Bob", phones=["555-0134"])]
    )
    assert actions(result) == [("c1", Action.CREATED), ("c2", Action.CREATED)]


# --- matching by email ---------------------------------------------------------------------


def test_second_email_on_a_known_contact_is_appended_after_the_existing_ones() -> None:
    ada = stored(1, "Ada", emails=["Ada@Example.com", "ada@work.org"])
    result = plan([contact("c1", "Ada", emails=["ada@example.com", "ada@home.net"])], ada)
    assert result.outcomes == [ContactOutcome("c1", Action.UPDATED, ada.id)]
    [updated] = result.updates
    assert updated.id == ada.id
    assert updated.emails == ["Ada@Example.com", "ada@work.org", "ada@home.net"]
    assert result.new_keys["email:ada@home.net"] == ada.id
    assert result.creates == []


def test_nothing_new_is_skipped_and_writes_nothing_but_the_identity() -> None:
    ada = stored(1, "Ada", emails=["ada@example.com"], phones=[PHONE])
    result = plan([contact("c1", "Ada", emails=["ADA@example.com"], phones=["415.555.0134"])], ada)
    assert result.outcomes == [ContactOutcome("c1", Action.SKIPPED, ada.id)]
    assert result.updates == []
    assert result.creates == []
    assert result.new_keys == {identity_key(PROVIDER, "c1"): ada.id}


def test_same_email_with_different_dots_or_tag_is_a_different_contact() -> None:
    ada = stored(1, "Ada", emails=["ada@gmail.com"])
    result = plan([contact("c1", "Ada", emails=["a.da+x@gmail.com"])], ada)
    assert actions(result) == [("c1", Action.CREATED)]


def test_email_match_wins_over_a_phone_owned_by_someone_else() -> None:
    ada = stored(1, "Ada", emails=["ada@example.com"])
    bob = stored(2, "Bob", phones=[PHONE])
    result = plan([contact("c1", "Ada", emails=["ada@example.com"], phones=[PHONE])], ada, bob)
    assert result.outcomes == [ContactOutcome("c1", Action.UPDATED, ada.id)]
    assert result.updates[0].phones == [PHONE]
    assert PHONE_KEY not in result.new_keys


# --- matching by provider identity --------------------------------------------------------


def test_same_provider_identity_matches_even_when_all_emails_changed() -> None:
    ada = stored(1, "Ada", emails=["old@example.com"])
    result = plan(
        [contact("people/c1", "Ada", emails=["new@example.com"])],
        ada,
        identities={"people/c1": ada},
    )
    assert result.outcomes == [ContactOutcome("people/c1", Action.UPDATED, ada.id)]
    assert result.updates[0].emails == ["old@example.com", "new@example.com"]
    assert result.new_keys == {"email:new@example.com": ada.id}
    assert "id:google:people/c1" not in result.new_keys


def test_provider_identity_wins_over_an_email_owned_by_another_contact() -> None:
    ada = stored(1, "Ada", emails=["ada@example.com"])
    bob = stored(2, "Bob", emails=["bob@example.com"])
    result = plan(
        [contact("people/c1", "Ada", emails=["bob@example.com"])],
        ada,
        bob,
        identities={"people/c1": ada},
    )
    assert result.outcomes == [ContactOutcome("people/c1", Action.SKIPPED, ada.id)]
    assert result.updates == []


def test_identity_of_another_provider_does_not_match() -> None:
    ada = stored(1, "Ada")
    owners = {identity_key("microsoft", "c1"): ada.id}
    result = plan_page_merge(
        [contact("c1", "Ada")],
        provider=PROVIDER,
        owners=owners,
        existing={ada.id: ada},
        new_id=new_ids(),
    )
    assert [o.action for o in result.outcomes] == [Action.CREATED]


# --- an email belongs to exactly one contact ----------------------------------------------


def test_email_owned_by_another_contact_is_never_copied_onto_the_matched_one() -> None:
    ada = stored(1, "Ada", emails=["ada@example.com"])
    bob = stored(2, "Bob", emails=["bob@example.com"])
    incoming = contact("c1", "Ada", emails=["ada@example.com", "bob@example.com", "ada@home.net"])
    result = plan([incoming], ada, bob)
    assert result.outcomes == [ContactOutcome("c1", Action.UPDATED, ada.id)]
    [updated] = result.updates
    assert updated.emails == ["ada@example.com", "ada@home.net"]
    assert "email:bob@example.com" not in updated.keys
    assert "email:bob@example.com" not in result.new_keys


def test_only_emails_owned_by_others_means_skipped() -> None:
    ada = stored(1, "Ada", emails=["ada@example.com"])
    bob = stored(2, "Bob", emails=["bob@example.com"])
    result = plan([contact("c1", "Ada", emails=["ada@example.com", "BOB@example.com"])], ada, bob)
    assert result.outcomes == [ContactOutcome("c1", Action.SKIPPED, ada.id)]
    assert result.updates == []


# --- matching by phone ----------------------------------------------------------------------


def test_phone_does_not_match_when_the_incoming_contact_has_an_email() -> None:
    bob = stored(1, "Bob", phones=[PHONE])
    result = plan([contact("c1", "Ann", emails=["ann@example.com"], phones=[PHONE])], bob)
    assert result.outcomes == [ContactOutcome("c1", Action.CREATED, new_id(1))]
    assert result.updates == []


def test_phone_owned_by_another_contact_is_stored_on_the_new_contact_but_not_reclaimed() -> None:
    bob = stored(1, "Bob", phones=[PHONE])
    result = plan([contact("c1", "Ann", emails=["ann@example.com"], phones=["415.555.0134"])], bob)
    [created] = result.creates
    assert created.phones == ["415.555.0134"]
    assert created.emails == ["ann@example.com"]
    assert PHONE_KEY not in result.new_keys
    assert result.new_keys["email:ann@example.com"] == created.id


def test_a_later_phone_only_contact_still_matches_the_phones_first_owner() -> None:
    bob = stored(1, "Bob", phones=[PHONE])
    result = plan(
        [
            contact("c1", "Ann", emails=["ann@example.com"], phones=[PHONE]),
            contact("c2", "", phones=[PHONE]),
        ],
        bob,
    )
    assert actions(result) == [("c1", Action.CREATED), ("c2", Action.SKIPPED)]
    assert result.outcomes[1].contact_id == bob.id


def test_new_phone_is_appended_after_the_existing_ones() -> None:
    ada = stored(1, "Ada", emails=["ada@example.com"], phones=[PHONE])
    result = plan([contact("c1", "", emails=["ada@example.com"], phones=[OTHER_PHONE])], ada)
    assert result.outcomes == [ContactOutcome("c1", Action.UPDATED, ada.id)]
    assert result.updates[0].phones == [PHONE, OTHER_PHONE]
    assert result.new_keys["phone:+12125550199"] == ada.id


def test_unparseable_phone_is_added_once_as_typed() -> None:
    ada = stored(1, "Ada", emails=["ada@example.com"], phones=["call me"])
    same = plan([contact("c1", "", emails=["ada@example.com"], phones=["call me"])], ada)
    assert same.outcomes[0].action is Action.SKIPPED
    other = plan([contact("c1", "", emails=["ada@example.com"], phones=["ask Bob"])], ada)
    assert other.outcomes[0].action is Action.UPDATED
    assert other.updates[0].phones == ["call me", "ask Bob"]
    assert not any(k.startswith("phone:") for k in other.new_keys)


def test_unparseable_phones_never_match() -> None:
    bob = stored(1, "Bob", phones=["call me"])
    result = plan([contact("c1", "Ann", phones=["call me"])], bob)
    assert actions(result) == [("c1", Action.CREATED)]


# --- names ------------------------------------------------------------------------------


def test_existing_name_is_kept() -> None:
    ada = stored(1, "Ada Lovelace", emails=["ada@example.com"])
    result = plan([contact("c1", "Countess", emails=["ada@example.com"])], ada)
    assert result.outcomes == [ContactOutcome("c1", Action.SKIPPED, ada.id)]
    assert result.updates == []


def test_empty_existing_name_gets_the_incoming_one() -> None:
    ada = stored(1, "", emails=["ada@example.com"])
    result = plan([contact("c1", "  Ada   Lovelace ", emails=["ada@example.com"])], ada)
    assert result.outcomes == [ContactOutcome("c1", Action.UPDATED, ada.id)]
    assert result.updates[0].display_name == "Ada Lovelace"


def test_empty_incoming_name_does_not_blank_the_existing_one() -> None:
    ada = stored(1, "Ada", emails=["ada@example.com"])
    result = plan([contact("c1", "", emails=["ada@example.com", "ada@home.net"])], ada)
    assert result.updates[0].display_name == "Ada"


# --- duplicates inside one page ------------------------------------------------------------


def test_two_incoming_contacts_sharing_an_email_make_one_contact_with_the_union() -> None:
    result = plan(
        [
            contact("c1", "", emails=["Ada@Example.com"], phones=[PHONE]),
            contact("c2", "Ada", emails=["ada@example.com", "ada@home.net"], phones=[OTHER_PHONE]),
        ]
    )
    assert actions(result) == [("c1", Action.CREATED), ("c2", Action.UPDATED)]
    [created] = result.creates
    assert result.outcomes[1].contact_id == created.id
    assert created.display_name == "Ada"
    assert created.emails == ["Ada@Example.com", "ada@home.net"]
    assert created.phones == [PHONE, OTHER_PHONE]
    assert result.updates == []
    assert result.new_keys == {
        "id:google:c1": created.id,
        "id:google:c2": created.id,
        "email:ada@example.com": created.id,
        "email:ada@home.net": created.id,
        PHONE_KEY: created.id,
        "phone:+12125550199": created.id,
    }


def test_an_exact_duplicate_inside_the_page_is_skipped() -> None:
    result = plan(
        [contact("c1", "Ada", emails=["ada@x.com"]), contact("c2", "Ada", emails=["ADA@x.com"])]
    )
    assert actions(result) == [("c1", Action.CREATED), ("c2", Action.SKIPPED)]
    assert len(result.creates) == 1


def test_two_incoming_contacts_updating_one_existing_contact_give_one_update() -> None:
    ada = stored(1, "Ada", emails=["ada@example.com"])
    result = plan(
        [
            contact("c1", "", emails=["ada@example.com", "ada@home.net"]),
            contact("c2", "", emails=["ada@home.net", "ada@work.org"]),
        ],
        ada,
    )
    assert actions(result) == [("c1", Action.UPDATED), ("c2", Action.UPDATED)]
    [updated] = result.updates
    assert updated.emails == ["ada@example.com", "ada@home.net", "ada@work.org"]


def test_phone_only_duplicates_inside_the_page_merge() -> None:
    result = plan([contact("c1", "Bob", phones=[PHONE]), contact("c2", "", phones=["4155550134"])])
    assert actions(result) == [("c1", Action.CREATED), ("c2", Action.SKIPPED)]


def test_repeated_provider_id_inside_the_page_has_no_second_outcome() -> None:
    result = plan(
        [contact("c1", "Ada", emails=["ada@x.com"]), contact("c1", "Ada", emails=["other@x.com"])]
    )
    assert actions(result) == [("c1", Action.CREATED)]
    assert result.creates[0].emails == ["ada@x.com"]


def test_ids_already_recorded_in_this_job_produce_no_outcome_and_no_write() -> None:
    ada = stored(1, "", emails=["ada@example.com"])
    result = plan(
        [contact("c1", "Ada", emails=["ada@example.com"]), contact("c2", "Bob")],
        ada,
        already_recorded=frozenset({"c1"}),
    )
    assert actions(result) == [("c2", Action.CREATED)]
    assert result.updates == []
    assert "id:google:c1" not in result.new_keys


def test_already_recorded_rejected_or_deleted_contacts_produce_no_outcome() -> None:
    result = plan(
        [RejectedContact("c1", "too long"), contact("c2", "Ada", deleted=True)],
        already_recorded=frozenset({"c1", "c2"}),
    )
    assert result.outcomes == []


# --- failed, deleted, nothing importable --------------------------------------------------


def test_rejected_contact_fails_with_its_reason_and_the_rest_of_the_page_is_planned() -> None:
    too_long = contact("c2", "x" * 1001, emails=["bob@example.com"])
    assert isinstance(too_long, RejectedContact)
    result = plan([contact("c1", "Ada"), too_long, contact("c3", "Cy")])
    assert actions(result) == [
        ("c1", Action.CREATED),
        ("c2", Action.FAILED),
        ("c3", Action.CREATED),
    ]
    assert result.outcomes[1] == ContactOutcome("c2", Action.FAILED, None, too_long.reason)
    assert "email:bob@example.com" not in result.new_keys


def test_deleted_contact_is_skipped_and_changes_nothing() -> None:
    ada = stored(1, "", emails=["ada@example.com"])
    result = plan(
        [contact("c1", "Ada", emails=["ada@example.com", "new@x.com"], deleted=True)], ada
    )
    assert result.outcomes == [
        ContactOutcome("c1", Action.SKIPPED, None, "deleted at the provider")
    ]
    assert result.creates == []
    assert result.updates == []
    assert result.new_keys == {}


@pytest.mark.parametrize(
    "raw",
    [
        IncomingContact("c1"),
        IncomingContact("c1", display_name="   ", emails=("not an email",)),
        IncomingContact("c1", phones=(PhoneInput("  "),)),
    ],
    ids=["empty", "blank-and-bad-email", "blank-phone"],
)
def test_contact_with_nothing_importable_is_skipped_without_a_contact(raw: IncomingContact) -> None:
    result = plan([normalize_contact(raw, "US")])
    assert result.outcomes == [
        ContactOutcome("c1", Action.SKIPPED, None, "no name, email or phone")
    ]
    assert result.creates == []
    assert result.new_keys == {}


# --- plan-wide properties ------------------------------------------------------------------


def _busy_page() -> tuple[list[Incoming], list[ContactState], dict[str, ContactState]]:
    ada = stored(1, "", emails=["ada@example.com"], phones=[PHONE])
    bob = stored(2, "Bob", emails=["bob@example.com"])
    page = [
        contact("c1", "Ada", emails=["ada@example.com", "ada@home.net"]),
        contact("c2", "Bob", emails=["bob@example.com", "ada@home.net"]),
        contact("c3", "Cy", phones=[PHONE, OTHER_PHONE]),
        contact("c4", "Di", emails=["di@x.com"]),
        contact("c4", "Di again"),
        RejectedContact("c5", "too long"),
        contact("c6", "Ed", deleted=True),
        contact("c7"),
        contact("c8", "", emails=["DI@x.com"], phones=["call me"]),
    ]
    return page, [ada, bob], {"c2": bob}


def test_inputs_are_not_mutated() -> None:
    page, existing, identities = _busy_page()
    owners = owners_of(*existing, identities=identities)
    by_id = {s.id: s for s in existing}
    before = (copy.deepcopy(page), copy.deepcopy(owners), copy.deepcopy(by_id))
    result = plan_page_merge(
        page, provider=PROVIDER, owners=owners, existing=by_id, new_id=new_ids()
    )
    assert result.updates  # the page did change existing contacts...
    assert (page, owners, by_id) == before  # ...but only in the plan's copies
    assert all(u is not by_id[u.id] for u in result.updates)


def test_busy_page_outcomes() -> None:
    page, existing, identities = _busy_page()
    result = plan(page, *existing, identities=identities)
    assert actions(result) == [
        ("c1", Action.UPDATED),
        ("c2", Action.SKIPPED),
        ("c3", Action.UPDATED),
        ("c4", Action.CREATED),
        ("c5", Action.FAILED),
        ("c6", Action.SKIPPED),
        ("c7", Action.SKIPPED),
        ("c8", Action.UPDATED),
    ]
    assert result.counts() == Counter(
        {Action.CREATED: 1, Action.UPDATED: 3, Action.SKIPPED: 3, Action.FAILED: 1}
    )
    assert sum(result.counts().values()) == len(result.outcomes)


def test_every_new_key_was_unowned_before() -> None:
    page, existing, identities = _busy_page()
    owners = owners_of(*existing, identities=identities)
    result = plan(page, *existing, identities=identities)
    assert result.new_keys
    assert not set(result.new_keys) & set(owners)


# --- randomized invariants -----------------------------------------------------------------

_EMAILS = ["ann@x.com", "Ann@X.com", "bob@x.com", "a.nn@x.com", "ann+tag@x.com", "cy@y.org"]
_PHONES = ["(415) 555-0134", "+1 415 555 0134", "212-555-0199", "+44 20 7946 0018", "call me"]
_NAMES = ["", "", "Ann", "Bob", "Cy Young"]
_PCIDS = [f"people/c{i}" for i in range(7)]


def _random_existing(rng: random.Random) -> list[ContactState]:
    states = [stored(i, rng.choice(_NAMES)) for i in range(rng.randint(0, 4))]
    if not states:
        return states
    for address in _EMAILS:  # an email key belongs to at most one contact
        key = email_match_key(email_key(address) or "")
        if rng.random() < 0.4 and not any(key in s.keys for s in states):
            owner = rng.choice(states)
            owner.emails.append(address)
            owner.keys.append(key)
    for number in _PHONES:  # a phone may sit on several contacts
        for state in states:
            if rng.random() < 0.2:
                state.phones.append(number)
                e164 = phone_key(PhoneInput(number), "US")
                if e164 and phone_match_key(e164) not in state.keys:
                    state.keys.append(phone_match_key(e164))
    return states


def _random_incoming(rng: random.Random) -> Incoming:
    pcid = rng.choice(_PCIDS)
    if rng.random() < 0.1:
        return RejectedContact(pcid, "too long")
    emails = rng.sample(_EMAILS, rng.randint(0, 3))
    phones = rng.sample(_PHONES, rng.randint(0, 2))
    return contact(pcid, rng.choice(_NAMES), emails, phones, deleted=rng.random() < 0.1)


def _check_invariants(
    page: list[Incoming],
    existing: list[ContactState],
    owners: dict[str, uuid.UUID],
    recorded: frozenset[str],
    result: PagePlan,
) -> None:
    expected_ids = list(
        dict.fromkeys(c.provider_contact_id for c in page if c.provider_contact_id not in recorded)
    )
    assert [o.provider_contact_id for o in result.outcomes] == expected_ids
    assert sum(result.counts().values()) == len(result.outcomes)

    created_ids = [c.id for c in result.creates]
    created_outcomes = Counter(o.contact_id for o in result.outcomes if o.action is Action.CREATED)
    assert created_outcomes == Counter(created_ids)
    existing_by_id = {s.id: s for s in existing}
    assert not set(created_ids) & set(existing_by_id)
    assert {u.id for u in result.updates} <= set(existing_by_id)
    assert len({u.id for u in result.updates}) == len(result.updates)

    assert not set(result.new_keys) & set(owners)
    final_owners = owners | result.new_keys
    final = existing_by_id | {s.id: s for s in result.updates} | {s.id: s for s in result.creates}

    email_holders: dict[str, uuid.UUID] = {}
    for state in final.values():
        assert len(state.keys) == len(set(state.keys)), state
        email_keys = [k for k in state.keys if k.startswith("email:")]
        assert len(email_keys) == len(state.emails), state
        for key in email_keys:
            assert email_holders.setdefault(key, state.id) == state.id, key
            assert final_owners[key] == state.id
    for update in result.updates:
        before = existing_by_id[update.id]
        assert update.emails[: len(before.emails)] == before.emails  # existing first
        assert update.phones[: len(before.phones)] == before.phones
        assert update.display_name == (before.display_name or update.display_name)

    by_pcid: dict[str, Incoming] = {}
    for c in page:
        by_pcid.setdefault(c.provider_contact_id, c)
    for outcome in result.outcomes:
        incoming = by_pcid[outcome.provider_contact_id]
        if outcome.contact_id is None:
            assert outcome.action in {Action.FAILED, Action.SKIPPED}
            continue
        assert isinstance(incoming, NormalizedContact)
        target = final[outcome.contact_id]
        assert final_owners[identity_key(PROVIDER, incoming.provider_contact_id)] == target.id
        for email in incoming.emails:  # never lost: on the target, or owned by another contact
            assert email_match_key(email.key or "") in final_owners
        for phone in incoming.phones:
            if phone.key:
                assert phone_match_key(phone.key) in target.keys
            else:
                assert phone.value in target.phones


@pytest.mark.parametrize("seed", range(300))
def test_random_pages_keep_the_invariants(seed: int) -> None:
    rng = random.Random(seed)
    existing = _random_existing(rng)
    identities = {pcid: rng.choice(existing) for pcid in _PCIDS if existing and rng.random() < 0.2}
    owners = owners_of(*existing, identities=identities)
    page = [_random_incoming(rng) for _ in range(rng.randint(1, 8))]
    recorded = frozenset(p for p in _PCIDS if rng.random() < 0.15)
    snapshot = copy.deepcopy((page, owners, existing))

    result = plan_page_merge(
        page,
        provider=PROVIDER,
        owners=owners,
        existing={s.id: s for s in existing},
        new_id=new_ids(),
        already_recorded=recorded,
    )

    assert (page, owners, existing) == snapshot
    _check_invariants(page, existing, owners, recorded, result)


# --- provider versions: what a full re-import may skip ---------------------------------------


def versioned(pcid: str, version: str | None, *emails: str) -> Incoming:
    return normalize_contact(IncomingContact(pcid, "Ada", emails, version=version), "US")


def test_contacts_merged_into_a_contact_record_their_provider_version() -> None:
    ada = stored(1, "Ada", ["ada@example.com"])
    result = plan(
        [
            versioned("people/1", "e1", "new@example.com"),  # created
            versioned("people/2", "e2", "ada@example.com"),  # nothing new: skipped into ada
            versioned("people/3", None, "other@example.com"),  # no version: none recorded
            contact("people/4", deleted=True),
        ],
        ada,
    )
    assert [(v.provider_contact_id, v.contact_id, v.version) for v in result.versions] == [
        ("people/1", new_id(1), "e1"),
        ("people/2", ada.id, "e2"),
    ]


def test_an_unchanged_contact_is_counted_skipped_without_matching() -> None:
    result = plan_page_merge(
        # Its emails are new, and no owner was read: only the version decides.
        [versioned("people/1", "e1", "x@example.com"), versioned("people/1", "e9")],
        provider=PROVIDER,
        owners={},
        existing={},
        new_id=new_ids(),
        unchanged={"people/1"},
    )
    # The store recorded it (``store.seen``): counted once, no outcome to write.
    assert result.counts() == {Action.SKIPPED: 1}
    assert result.outcomes == []
    assert (result.creates, result.updates, result.new_keys, result.versions) == ([], [], {}, [])
