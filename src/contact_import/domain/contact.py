"""Contacts as providers hand them to us, and the normalized keys we match them by."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

__all__ = [
    "Entry",
    "IncomingContact",
    "NormalizedContact",
    "PhoneInput",
    "RejectedContact",
    "email_key",
    "normalize_contact",
    "phone_key",
]


@dataclass(frozen=True, slots=True)
class PhoneInput:
    """A phone number as the provider returned it; ``canonical`` is Google's E.164 form."""

    value: str
    canonical: str | None = None


@dataclass(frozen=True, slots=True)
class IncomingContact:
    """One contact from a provider page, before normalization."""

    provider_contact_id: str
    display_name: str = ""
    emails: tuple[str, ...] = ()
    phones: tuple[PhoneInput, ...] = ()
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class Entry:
    """A value to store (as typed, trimmed) and its match key; ``key`` is None when unparseable."""

    value: str
    key: str | None


@dataclass(frozen=True, slots=True)
class NormalizedContact:
    """An incoming contact with trimmed values, repeats dropped, and the keys we match on."""

    provider_contact_id: str
    display_name: str
    emails: tuple[Entry, ...]
    phones: tuple[Entry, ...]
    deleted: bool = False

    @property
    def importable(self) -> bool:
        """Whether there is anything worth storing: a name, an email or a phone."""
        return bool(self.display_name or self.emails or self.phones)

    @property
    def has_email(self) -> bool:
        return bool(self.emails)


@dataclass(frozen=True, slots=True)
class RejectedContact:
    """A contact we cannot store (a value over the limits); it is counted as ``failed``."""

    provider_contact_id: str
    reason: str


# Limits a contact must respect to be stored; beyond them it is ``failed``, not truncated.
MAX_ID_LENGTH = 255
MAX_NAME_LENGTH = 1000
MAX_EMAIL_LENGTH = 320
MAX_PHONE_LENGTH = 64
MAX_VALUES = 100


_WHITESPACE = re.compile(r"\s")


def email_key(address: str) -> str | None:
    """Trim and lowercase; never strip dots or ``+tags``. None when it is not an address."""
    key = address.strip().lower()
    local, at, domain = key.rpartition("@")
    if not at or not local or not domain or "@" in local or _WHITESPACE.search(key):
        return None
    return key


def phone_key(phone: PhoneInput, default_region: str | None) -> str | None:
    """E.164 form: Google's ``canonicalForm`` when present, else parsed with ``phonenumbers``."""
    if phone.canonical and phone.canonical.startswith("+"):
        return phone.canonical.strip()
    text = phone.value.strip()
    if not text:
        return None
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    # IS_POSSIBLE only: a local number without its area code ("555-0134") names different
    # people in different cities, so it must not become a match key.
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def normalize_contact(
    contact: IncomingContact, default_region: str | None
) -> NormalizedContact | RejectedContact:
    """Trim values, drop repeats (same key) and compute the match keys of one contact."""
    problem = _limit_problem(contact)
    if problem is not None:
        return RejectedContact(contact.provider_contact_id, problem)
    return NormalizedContact(
        provider_contact_id=contact.provider_contact_id,
        display_name=" ".join(contact.display_name.split()),
        emails=_email_entries(contact.emails),
        phones=_phone_entries(contact.phones, default_region),
        deleted=contact.deleted,
    )


def _email_entries(raw_emails: tuple[str, ...]) -> tuple[Entry, ...]:
    entries: dict[str, Entry] = {}
    for raw in raw_emails:
        key = email_key(raw)
        if key is not None and key not in entries:
            entries[key] = Entry(raw.strip(), key)
    return tuple(entries.values())


def _phone_entries(phones: tuple[PhoneInput, ...], region: str | None) -> tuple[Entry, ...]:
    entries: dict[str, Entry] = {}
    for phone in phones:
        value = phone.value.strip() or (phone.canonical or "").strip()
        if not value:
            continue
        key = phone_key(phone, region)
        # Unparseable numbers are kept as typed, de-duplicated by their text.
        dedup = key if key is not None else "raw:" + value
        if dedup not in entries:
            entries[dedup] = Entry(value, key)
    return tuple(entries.values())


def _limit_problem(contact: IncomingContact) -> str | None:
    pcid = contact.provider_contact_id
    if not pcid or len(pcid) > MAX_ID_LENGTH:
        return "the provider's contact id is empty or too long"
    if len(contact.display_name) > MAX_NAME_LENGTH:
        return f"name longer than {MAX_NAME_LENGTH} characters"
    if len(contact.emails) > MAX_VALUES or len(contact.phones) > MAX_VALUES:
        return f"more than {MAX_VALUES} emails or phones"
    if any(len(e) > MAX_EMAIL_LENGTH for e in contact.emails):
        return f"an email address longer than {MAX_EMAIL_LENGTH} characters"
    if any(len(p.value) > MAX_PHONE_LENGTH for p in contact.phones):
        return f"a phone number longer than {MAX_PHONE_LENGTH} characters"
    return None
