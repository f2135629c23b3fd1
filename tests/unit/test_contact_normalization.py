"""Normalization of one incoming contact: the values we store and the keys we match them by."""

from __future__ import annotations

import uuid

import pytest

from contact_import.domain.contact import (
    MAX_EMAIL_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PHONE_LENGTH,
    MAX_VALUES,
    STAND_IN_PREFIX,
    Entry,
    IncomingContact,
    NormalizedContact,
    PhoneInput,
    RejectedContact,
    StandInIds,
    email_key,
    normalize_contact,
    phone_key,
)
from contact_import.domain.merge import Action, plan_page_merge


def normalized(contact: IncomingContact, region: str | None = "US") -> NormalizedContact:
    result = normalize_contact(contact, region)
    assert isinstance(result, NormalizedContact), result
    return result


def rejected(contact: IncomingContact) -> RejectedContact:
    result = normalize_contact(contact, "US")
    assert isinstance(result, RejectedContact), result
    return result


# --- email keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("ada@example.com", "ada@example.com"),
        ("  Ada@Example.COM  ", "ada@example.com"),
        ("\tada@example.com\n", "ada@example.com"),
        ("ada.lovelace@gmail.com", "ada.lovelace@gmail.com"),
        ("ada+newsletter@example.com", "ada+newsletter@example.com"),
        ("A.D.A+Tag@Example.com", "a.d.a+tag@example.com"),
    ],
)
def test_email_key_trims_and_lowercases_but_keeps_dots_and_tags(address: str, key: str) -> None:
    assert email_key(address) == key


@pytest.mark.parametrize(
    "address",
    ["", "   ", "ada", "ada.example.com", "@example.com", "ada@", "@", "ada lovelace@example.com"],
)
def test_email_key_is_none_for_text_that_is_not_an_address(address: str) -> None:
    assert email_key(address) is None


def test_dotted_and_tagged_addresses_stay_distinct_contacts_keys() -> None:
    keys = {email_key(a) for a in ["ada@gmail.com", "a.da@gmail.com", "ada+x@gmail.com"]}
    assert len(keys) == 3


def test_stored_email_keeps_the_users_case_and_is_trimmed() -> None:
    contact = normalized(IncomingContact("c1", emails=("  Ada.Lovelace@Example.COM ",)))
    assert contact.emails == (Entry("Ada.Lovelace@Example.COM", "ada.lovelace@example.com"),)


def test_not_an_address_is_dropped_from_the_contact() -> None:
    contact = normalized(IncomingContact("c1", emails=("not an email", "ada@example.com", "")))
    assert [e.value for e in contact.emails] == ["ada@example.com"]


# --- phone keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed", ["(415) 555-0134", "415.555.0134", "+1 415 555 0134", "4155550134", "415-555-0134"]
)
def test_us_numbers_in_any_format_get_one_e164_key(typed: str) -> None:
    assert phone_key(PhoneInput(typed), "US") == "+14155550134"


@pytest.mark.parametrize("typed", ["020 7946 0018", "+44 20 7946 0018", "(020) 7946-0018"])
def test_uk_number_with_region_gb(typed: str) -> None:
    assert phone_key(PhoneInput(typed), "GB") == "+442079460018"


def test_international_number_is_parsed_whatever_the_default_region() -> None:
    assert phone_key(PhoneInput("+44 20 7946 0018"), "US") == "+442079460018"
    assert phone_key(PhoneInput("+1 415 555 0134"), None) == "+14155550134"


def test_googles_canonical_form_wins_over_parsing_the_typed_value() -> None:
    phone = PhoneInput("020 7946 0018", canonical="+442079460018")
    # Parsed with region US the typed text would be something else entirely.
    assert phone_key(phone, "US") == "+442079460018"


def test_canonical_form_is_used_even_when_the_typed_value_is_unparseable() -> None:
    assert phone_key(PhoneInput("office", canonical="+14155550134"), "US") == "+14155550134"


@pytest.mark.parametrize("canonical", [None, "", "4155550134"])
def test_missing_or_non_e164_canonical_form_falls_back_to_parsing(canonical: str | None) -> None:
    assert phone_key(PhoneInput("(415) 555-0134", canonical=canonical), "US") == "+14155550134"


@pytest.mark.parametrize("typed", ["call me", "", "   ", "123", "ext. 42"])
def test_unparseable_phone_has_no_key(typed: str) -> None:
    assert phone_key(PhoneInput(typed), "US") is None


def test_national_number_without_a_default_region_has_no_key() -> None:
    assert phone_key(PhoneInput("(415) 555-0134"), None) is None


def test_local_number_without_area_code_is_not_a_match_key() -> None:
    assert phone_key(PhoneInput("555-0134"), "US") is None


def test_unparseable_phone_is_kept_as_typed_without_a_key() -> None:
    contact = normalized(IncomingContact("c1", phones=(PhoneInput("  call me  "),)))
    assert contact.phones == (Entry("call me", None),)


def test_national_phone_without_region_is_kept_as_typed_without_a_key() -> None:
    contact = normalized(IncomingContact("c1", phones=(PhoneInput("(415) 555-0134"),)), None)
    assert contact.phones == (Entry("(415) 555-0134", None),)


def test_stored_phone_keeps_the_typed_spelling() -> None:
    contact = normalized(IncomingContact("c1", phones=(PhoneInput(" (415) 555-0134 "),)))
    assert contact.phones == (Entry("(415) 555-0134", "+14155550134"),)


def test_phone_with_only_a_canonical_form_stores_the_canonical_form() -> None:
    contact = normalized(IncomingContact("c1", phones=(PhoneInput("", "+14155550134"),)))
    assert contact.phones == (Entry("+14155550134", "+14155550134"),)


def test_blank_phone_is_dropped() -> None:
    contact = normalized(IncomingContact("c1", phones=(PhoneInput("  "), PhoneInput(""))))
    assert contact.phones == ()


# --- de-duplication inside one contact ----------------------------------------------------


def test_same_email_in_two_cases_is_stored_once_first_spelling_kept() -> None:
    contact = normalized(
        IncomingContact("c1", emails=("Ada@Example.com", "ada@example.com", " ADA@EXAMPLE.COM "))
    )
    assert contact.emails == (Entry("Ada@Example.com", "ada@example.com"),)


def test_distinct_emails_keep_their_order() -> None:
    contact = normalized(IncomingContact("c1", emails=("b@x.com", "a@x.com", "B@x.com")))
    assert [e.value for e in contact.emails] == ["b@x.com", "a@x.com"]


def test_same_phone_in_two_formats_is_stored_once_first_spelling_kept() -> None:
    phones = (PhoneInput("(415) 555-0134"), PhoneInput("+1 415 555 0134"), PhoneInput("4155550134"))
    contact = normalized(IncomingContact("c1", phones=phones))
    assert contact.phones == (Entry("(415) 555-0134", "+14155550134"),)


def test_same_phone_typed_and_canonical_is_stored_once() -> None:
    phones = (PhoneInput("415.555.0134"), PhoneInput("whatever", canonical="+14155550134"))
    contact = normalized(IncomingContact("c1", phones=phones))
    assert contact.phones == (Entry("415.555.0134", "+14155550134"),)


def test_repeated_unparseable_phone_is_stored_once() -> None:
    phones = (PhoneInput("call me"), PhoneInput(" call me "), PhoneInput("ask Bob"))
    contact = normalized(IncomingContact("c1", phones=phones))
    assert contact.phones == (Entry("call me", None), Entry("ask Bob", None))


# --- names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Ada Lovelace", "Ada Lovelace"),
        ("  Ada   Lovelace  ", "Ada Lovelace"),
        ("Ada\tKing\nLovelace", "Ada King Lovelace"),
        ("   ", ""),
        ("", ""),
    ],
)
def test_name_whitespace_is_collapsed(raw: str, stored: str) -> None:
    assert normalized(IncomingContact("c1", display_name=raw)).display_name == stored


def test_normalization_keeps_the_provider_id_and_deleted_flag() -> None:
    contact = normalized(IncomingContact("people/c9", display_name="Ada", deleted=True))
    assert contact.provider_contact_id == "people/c9"
    assert contact.deleted is True


# --- limits -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contact", "words"),
    [
        (IncomingContact("c1", display_name="x" * (MAX_NAME_LENGTH + 1)), "name"),
        (IncomingContact("c1", emails=("a" * MAX_EMAIL_LENGTH + "@x.com",)), "email"),
        (IncomingContact("c1", emails=tuple(f"u{i}@x.com" for i in range(MAX_VALUES + 1))), "100"),
        (
            IncomingContact("c1", phones=tuple(PhoneInput(str(i)) for i in range(MAX_VALUES + 1))),
            "100",
        ),
        (IncomingContact("c1", phones=(PhoneInput("1" * (MAX_PHONE_LENGTH + 1)),)), "phone"),
        (IncomingContact("", display_name="Ada"), "id"),
        (IncomingContact("c" * 256, display_name="Ada"), "id"),
    ],
    ids=["long-name", "long-email", "many-emails", "many-phones", "long-phone", "no-id", "long-id"],
)
def test_contact_over_the_limits_is_rejected_with_a_readable_reason(
    contact: IncomingContact, words: str
) -> None:
    result = rejected(contact)
    assert result.provider_contact_id == contact.provider_contact_id
    assert words in result.reason
    assert len(result.reason) > 10


@pytest.mark.parametrize(
    "contact",
    [
        IncomingContact("c1", display_name="x" * MAX_NAME_LENGTH),
        IncomingContact("c1", emails=("a" * (MAX_EMAIL_LENGTH - 6) + "@x.com",)),
        IncomingContact("c1", emails=tuple(f"u{i}@x.com" for i in range(MAX_VALUES))),
        IncomingContact("c1", phones=tuple(PhoneInput(str(i)) for i in range(MAX_VALUES))),
        IncomingContact("c" * 255, display_name="Ada"),
    ],
    ids=["name-at-limit", "email-at-limit", "100-emails", "100-phones", "id-at-limit"],
)
def test_contact_exactly_at_the_limits_is_accepted(contact: IncomingContact) -> None:
    assert isinstance(normalize_contact(contact, "US"), NormalizedContact)


def test_rejected_contact_is_not_truncated_into_something_else() -> None:
    result = normalize_contact(
        IncomingContact("c1", display_name="x" * 5000, emails=("a@x.com",)), "US"
    )
    assert result == RejectedContact("c1", f"name longer than {MAX_NAME_LENGTH} characters")


# --- importable ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contact", "importable"),
    [
        (IncomingContact("c1", display_name="Ada"), True),
        (IncomingContact("c1", emails=("ada@example.com",)), True),
        (IncomingContact("c1", phones=(PhoneInput("(415) 555-0134"),)), True),
        (IncomingContact("c1", phones=(PhoneInput("call me"),)), True),
        (IncomingContact("c1"), False),
        (IncomingContact("c1", display_name="   "), False),
        (IncomingContact("c1", emails=("not an email", "  ")), False),
        (IncomingContact("c1", phones=(PhoneInput("   "),)), False),
    ],
    ids=[
        "name",
        "email",
        "phone",
        "unparseable-phone",
        "empty",
        "blank-name",
        "bad-emails",
        "blank-phone",
    ],
)
def test_importable_means_a_name_an_email_or_a_phone(
    contact: IncomingContact, importable: bool
) -> None:
    assert normalized(contact).importable is importable


def test_has_email_only_counts_real_addresses() -> None:
    assert normalized(IncomingContact("c1", emails=("ada@example.com",))).has_email
    assert not normalized(IncomingContact("c1", emails=("nope",), display_name="Ada")).has_email


@pytest.mark.parametrize("address", ["a@b@c", "@example.com", "alice@", "no-at-sign", "a b@c.d"])
def test_not_an_address_has_no_key(address: str) -> None:
    assert email_key(address) is None


# --- dirty data: control characters, lone surrogates, no id ---------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Ada\x00 Lovelace", "Ada Lovelace"),
        ("\x07Ada Lovelace\x7f", "Ada Lovelace"),
        ("A\x1b[1mda", "A[1mda"),
        ("Ada\x9b\x80", "Ada"),  # C1 controls
        ("Ada\x85Lovelace", "Ada Lovelace"),  # NEL is whitespace: collapsed like a newline
        ("Ada \ud800", "Ada \ufffd"),
        ("\udc00Ada", "\ufffdAda"),
        ("\x00", ""),
        ("Zoë 😀 a\u200db", "Zoë 😀 a\u200db"),  # not controls: kept (ZWJ joins emoji)
    ],
    ids=[
        "nul", "bel-del", "esc", "c1", "nel", "high-surrogate", "low-surrogate", "only-nul",
        "unicode-kept",
    ],
)  # fmt: skip
def test_control_characters_are_stripped_from_names_and_lone_surrogates_replaced(
    raw: str, stored: str
) -> None:
    name = normalized(IncomingContact("c1", display_name=raw)).display_name
    assert name == stored
    name.encode("utf-8")  # storable: raises on a lone surrogate


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("a\x00da@example.com", "a control character (U+0000)"),
        ("ada@exam\x1bple.com", "a control character (U+001B)"),
        ("ada\x7f@example.com", "a control character (U+007F)"),
        ("a\udc00da@example.com", "a lone surrogate (U+DC00)"),
        ("ada@example.com\ud800", "a lone surrogate (U+D800)"),
    ],
)
def test_an_email_with_a_control_character_or_lone_surrogate_fails_the_contact(
    address: str, words: str
) -> None:
    contact = IncomingContact("c1", display_name="Ada", emails=("ok@example.com", address))
    assert rejected(contact) == RejectedContact("c1", f"an email address contains {words}")


def test_whitespace_inside_an_email_still_only_drops_that_value() -> None:
    contact = normalized(IncomingContact("c1", emails=("ada\t@example.com", "b@example.com")))
    assert [e.value for e in contact.emails] == ["b@example.com"]


@pytest.mark.parametrize(
    ("phone", "entry"),
    [
        (PhoneInput("(415)\x00 555-0134"), Entry("(415) 555-0134", "+14155550134")),
        (PhoneInput("\x07415-555-0134\x7f"), Entry("415-555-0134", "+14155550134")),
        (PhoneInput("call me \ud800"), Entry("call me \ufffd", None)),
        (PhoneInput("", "+1415555\x000134"), Entry("+14155550134", "+14155550134")),
    ],
    ids=["nul", "bel-del", "surrogate", "nul-in-canonical"],
)
def test_control_characters_are_stripped_from_phones(phone: PhoneInput, entry: Entry) -> None:
    assert normalized(IncomingContact("c1", phones=(phone,))).phones == (entry,)


@pytest.mark.parametrize(
    "canonical",
    [
        "+", "+0", "+12", "+1abc", "+0123456789", "+1234567", " + ", "+1 415 555 0134", "++1415",
        "+1415555013444444", "+660423041144", "+2999123",
    ],
)  # fmt: skip
def test_a_canonical_form_that_is_not_e164_is_no_key_and_the_typed_value_is_parsed(
    canonical: str,
) -> None:
    assert phone_key(PhoneInput("(415) 555-0134", canonical), "US") == "+14155550134"
    assert phone_key(PhoneInput("+", canonical), "US") is None
    assert phone_key(PhoneInput("call me", canonical), "US") is None


@pytest.mark.parametrize(
    "canonical",
    [
        "+14155550134",
        " +14155550134 ",
        "+442079460018",
        "+390612345678",
        "+6834002",
        "+80012345678",
    ],
    ids=["us", "padded", "uk", "italy-leading-zero", "niue-short", "non-geographic"],
)
def test_an_e164_canonical_form_is_the_key(canonical: str) -> None:
    assert phone_key(PhoneInput("office", canonical), "US") == canonical.strip()


def test_two_people_whose_only_phone_is_a_plus_stay_two_contacts() -> None:
    people = [
        IncomingContact(f"people/c{i}", name, phones=(PhoneInput("+", "+"),))
        for i, name in enumerate(["Ada Lovelace", "Alan Turing"])
    ]
    plan = plan_page_merge(
        [normalize_contact(p, "US") for p in people],
        provider="google",
        owners={},
        existing={},
        new_id=uuid.uuid4,
    )
    assert [o.action for o in plan.outcomes] == [Action.CREATED, Action.CREATED]
    assert len(plan.creates) == 2
    assert plan.new_keys.keys() == {"id:google:people/c0", "id:google:people/c1"}


@pytest.mark.parametrize("pcid", ["people/c1\x00", "people/\ud800", "AAMk\x1b"])
def test_an_id_that_is_not_storable_text_fails_under_a_stable_stand_in(pcid: str) -> None:
    first = rejected(IncomingContact(pcid, display_name="Ada"))
    again = rejected(IncomingContact(pcid, display_name="Someone else"))
    assert first.provider_contact_id == again.provider_contact_id
    assert first.provider_contact_id.startswith(STAND_IN_PREFIX)
    assert first.provider_contact_id.isascii()
    assert first.reason == "the provider's contact id is not storable text"


def test_a_problem_the_adapter_found_fails_the_contact_with_it() -> None:
    contact = IncomingContact("no-id:1", display_name="Ada", problem="sent without an id")
    assert rejected(contact) == RejectedContact("no-id:1", "sent without an id")


def test_stand_in_ids_are_stable_for_the_same_json_and_unique_in_a_page() -> None:
    person = {"etag": "%E", "names": [{"displayName": "Ada \ud800"}], "n": 1.5}
    page, replay = StandInIds(), StandInIds()
    ids = [page(person), page(dict(person)), page({"etag": "%F"}), page(person)]
    assert ids == [replay(person), replay(person), replay({"etag": "%F"}), replay(person)]
    assert len(set(ids)) == 4
    assert all(i.startswith(STAND_IN_PREFIX) and i.isascii() for i in ids)
    # Keys in another order are the same JSON object: the same id.
    assert StandInIds()({"a": 1, "b": 2}) == StandInIds()({"b": 2, "a": 1})
