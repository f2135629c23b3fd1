"""Contacts as providers hand them to us, and the normalized keys we match them by.

Dirty data fails one contact, never its page: a contact we cannot make storable becomes a
``RejectedContact`` (counted ``failed``, with its reason) and the rest of the page goes on.

- Control characters (NUL, ESC, DEL, C1 controls) are stripped from names and phones: nobody
  types them, and Postgres cannot store NUL at all. Whitespace controls (tab, newline) are
  collapsed as before.
- A lone UTF-16 surrogate (JSON can carry ``"\\ud800"``, UTF-8 cannot, so neither database
  driver can send it) becomes U+FFFD in names and phones.
- An email containing either fails the contact: it is a match key, and stripping the character
  could turn it into someone else's address; dropping it would lose it without a trace.
- A provider id containing either fails the contact under a stand-in id (the audit row must be
  storable); so does a contact the provider sent without an id (see ``StandInIds``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass

import phonenumbers

__all__ = [
    "STAND_IN_PREFIX",
    "Entry",
    "IncomingContact",
    "NormalizedContact",
    "PhoneInput",
    "RejectedContact",
    "StandInIds",
    "email_key",
    "looked_up_as_sent",
    "normalize_contact",
    "phone_key",
    "unidentified_contact",
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
    # Set by the adapter when the provider sent something we cannot import (no id): the
    # contact fails with this reason.
    problem: str | None = None
    # The provider's version of the contact (Google ``etag``, Graph ``changeKey``): it changes
    # whenever the contact does. None when the provider sent none.
    version: str | None = None


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
    version: str | None = None  # as ``IncomingContact.version``

    @property
    def importable(self) -> bool:
        """Whether there is anything worth storing: a name, an email or a phone."""
        return bool(self.display_name or self.emails or self.phones)

    @property
    def has_email(self) -> bool:
        return bool(self.emails)


@dataclass(frozen=True, slots=True)
class RejectedContact:
    """A contact we cannot store (over the limits, unstorable text, no id): ``failed``."""

    provider_contact_id: str
    reason: str


# Limits a contact must respect to be stored; beyond them it is ``failed``, not truncated.
MAX_ID_LENGTH = 255
MAX_NAME_LENGTH = 1000
MAX_EMAIL_LENGTH = 320
MAX_PHONE_LENGTH = 64
MAX_VALUES = 100


_WHITESPACE = re.compile(r"\s")
# C0 and C1 controls that are not whitespace (str.split collapses those), and lone surrogates.
_CONTROLS = "\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f"
_SURROGATES = "\ud800-\udfff"
_CONTROL = re.compile(f"[{_CONTROLS}]")
_SURROGATE = re.compile(f"[{_SURROGATES}]")
_UNSTORABLE = re.compile(f"[{_CONTROLS}{_SURROGATES}]")
# The shape of E.164 ("+", a country code not starting with 0, at most 15 digits); a number of
# that shape must also be a possible number before it is a match key.
_E164_SHAPE = re.compile(r"\+[1-9][0-9]{1,14}")
STAND_IN_PREFIX = "no-id:"


def email_key(address: str) -> str | None:
    """Trim and lowercase; never strip dots or ``+tags``. None when it is not an address."""
    key = address.strip().lower()
    local, at, domain = key.rpartition("@")
    if not at or not local or not domain or "@" in local or _WHITESPACE.search(key):
        return None
    return key


def phone_key(phone: PhoneInput, default_region: str | None) -> str | None:
    """E.164 form: Google's ``canonicalForm`` when it is E.164, else the typed value parsed.

    A ``canonicalForm`` such as "+" or "+12" is no key: it would merge different people.
    """
    canonical = (phone.canonical or "").strip()
    if _E164_SHAPE.fullmatch(canonical) and _is_possible_e164(canonical[1:]):
        return canonical
    text = phone.value.strip()
    return _possible_e164(text, default_region) if text else None


def _is_possible_e164(digits: str) -> bool:
    """Whether "+" ``digits`` is a possible number in its own E.164 form.

    What ``phonenumbers.parse`` then ``is_possible_number`` decide, without the parse (five
    times the cost, paid by most phones of a Google page); they differ only on a few numbers
    parsing would re-read with a carrier code, never on "+", "+0", "+12" or letters. Country
    codes are prefix-free, so the first known prefix is the code. A national part starting
    with 0 may be a prefix parsing strips (or Italy's significant zero): it takes the slow path.
    """
    for size in (1, 2, 3):
        code = int(digits[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            national = digits[size:]
            if not national:
                return False
            if national.startswith("0"):
                return _possible_e164("+" + digits, None) == "+" + digits
            number = phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
            reason = phonenumbers.is_possible_number_with_reason(number)
            return bool(reason == phonenumbers.ValidationResult.IS_POSSIBLE)
    return False


def _possible_e164(text: str, region: str | None) -> str | None:
    try:
        parsed = phonenumbers.parse(text, region)
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
    """Clean and trim values, drop repeats (same key) and compute the match keys of one contact."""
    pcid = contact.provider_contact_id
    if _UNSTORABLE.search(pcid):
        return RejectedContact(_stand_in(pcid), "the provider's contact id is not storable text")
    problem = contact.problem or _limit_problem(contact) or _email_problem(contact.emails)
    if problem is not None:
        return RejectedContact(pcid, problem)
    return NormalizedContact(
        provider_contact_id=pcid,
        display_name=" ".join(_clean(contact.display_name).split()),
        emails=_email_entries(contact.emails),
        phones=_phone_entries(tuple(_clean_phone(p) for p in contact.phones), default_region),
        deleted=contact.deleted,
        version=contact.version,
    )


def looked_up_as_sent(contact: IncomingContact) -> bool:
    """Whether ``contact`` can be looked up by its provider id before it is normalized: the id
    is what normalizing keeps (plain printable text within the limit) and nothing is wrong
    with it. A contact unchanged at the provider is then skipped without being normalized."""
    pcid = contact.provider_contact_id
    return contact.problem is None and 0 < len(pcid) <= MAX_ID_LENGTH and pcid.isprintable()


class StandInIds:
    """Ids for the contacts of one page that the provider sent without one (they fail).

    Each is a hash of what the provider sent, so the same page read again after a crash gives
    the same ids and no contact is counted twice; identical JSON repeated in the page is
    numbered, so each copy still counts once.
    """

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()

    def __call__(self, raw: object) -> str:
        text = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=repr)
        stand_in = _stand_in(text)  # ensure_ascii (the default) escapes lone surrogates
        self._seen[stand_in] += 1
        repeat = self._seen[stand_in]
        return stand_in if repeat == 1 else f"{stand_in}:{repeat}"


def unidentified_contact(
    raw: object, stand_ins: StandInIds | None, problem: str
) -> IncomingContact:
    """What the provider sent without a usable id, as a contact that fails alone."""
    return IncomingContact((stand_ins or StandInIds())(raw), problem=problem)


def _stand_in(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return STAND_IN_PREFIX + digest[:32]


def _clean(text: str) -> str:
    """``text`` without control characters, lone surrogates replaced by U+FFFD."""
    if text.isprintable():  # the common case, one fast scan
        return text
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


def _clean_phone(phone: PhoneInput) -> PhoneInput:
    canonical = phone.canonical
    if phone.value.isprintable() and (canonical is None or canonical.isprintable()):
        return phone
    return PhoneInput(_clean(phone.value), None if canonical is None else _clean(canonical))


def _email_problem(emails: tuple[str, ...]) -> str | None:
    for email in emails:
        found = _UNSTORABLE.search(email)
        if found is not None:
            return f"an email address contains {_describe(found.group())}"
    return None


def _describe(char: str) -> str:
    code = f"U+{ord(char):04X}"
    if _SURROGATE.fullmatch(char):
        return f"a lone surrogate ({code})"
    return f"a control character ({code})"


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
