"""Deterministic fake address books, as Google's ``people.connections.list`` returns them.

A book is a list of Person dicts in wire format (personFields=names,emailAddresses,phoneNumbers,
metadata), messy the way real address books are: duplicate emails across contacts (sometimes in
another case), contacts with no email or nothing at all, phones typed in every format (a few not
numbers at all), unicode names, dotted and ``+tagged`` addresses.

Faker is slow per call, so each book first draws small pools of names and domains with a seeded
Faker, then combines them with a seeded ``random.Random``: same (size, seed), same book, in any
process.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gc
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import phonenumbers
from faker import Faker

__all__ = ["generate_book"]

# Share of all contacts in each shape; the rest have one email, or two (see below).
_NOTHING_RATE = 0.02
_PHONE_ONLY_RATE = 0.10
_NAMELESS_RATE = 0.02
# Among contacts that have an email: chosen so that the shares of all contacts come out at
# ~8% duplicated email, ~15% with two emails and ~30% with a phone.
_DUPLICATE_EMAIL_RATE = 0.09
_SECOND_EMAIL_RATE = 0.17
_PHONE_RATE = 0.23
_RECASE_RATE = 0.4
_UNICODE_NAME_RATE = 0.10
_GIVEN_NAME_ONLY_RATE = 0.03
_DUPLICATE_PHONE_RATE = 0.05
_UNPARSEABLE_PHONE_RATE = 0.02
_TAGGED_EMAIL_RATE = 0.08

# Pool sizes: about what Faker's en_US lists hold (more draws only repeat), and cheap to draw.
_FIRST_NAMES = 500
_LAST_NAMES = 800
_HANDLES = 300
_COMPANY_DOMAINS = 150
_UNICODE_POOL_SIZE = 300
_UNICODE_LOCALES = ("ja_JP", "de_DE", "fr_FR", "ru_RU")
_FREE_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com")
_AREA_CODES = (
    "201", "212", "213", "305", "310", "312", "404", "415", "503", "512",
    "617", "646", "702", "718", "773", "808", "917", "972",
)  # fmt: skip
# How people write an address's local part, and a US number: each style equally likely.
_LOCAL_PART_STYLES = (
    "{first}.{last}", "{first}{last}", "{initial}.{last}", "{first}_{last}",
    "{last}.{first}{number}",
)  # fmt: skip
_PHONE_STYLES = (
    "({area}) {exchange}-{line}", "{area}.{exchange}.{line}", "+1 {area} {exchange} {line}",
    "{area}{exchange}{line}", "{area}-{exchange}-{line}",
)  # fmt: skip
_UNPARSEABLE_PHONES = ("ext 12", "call me", "n/a", "ask front desk", "x", "555")
_PHONE_TYPES = ("mobile", "mobile", "mobile", "home", "work")
_EMAIL_TYPES = ("home", "home", "work")
_TAGS = ("work", "news", "shop", "promo", "github")
_ETAG_PREFIX = "%EgUBAi43PRoEAQIFByIM"
_NOT_ADDRESS_CHAR = re.compile(r"[^a-z0-9]")
_T = TypeVar("_T")
_Source = dict[str, str]  # the {"type", "id"} every field metadata points back to


@dataclass(frozen=True, slots=True)
class _Pools:
    """What Faker contributes to a book: names (with their address slugs), handles, domains."""

    first_names: tuple[tuple[str, str], ...]
    last_names: tuple[tuple[str, str], ...]
    unicode_names: tuple[tuple[str, str], ...]
    handles: tuple[str, ...]
    company_domains: tuple[str, ...]


def generate_book(size: int, seed: int, *, draw_seed: int | None = None) -> list[dict[str, Any]]:
    """``size`` Person dicts in Google wire format; identical for the same (size, seed).

    ``draw_seed`` draws other people from the same name pools (contacts added to a book later).
    """
    if size < 0:
        raise ValueError("size must be >= 0")
    builder = _BookBuilder(random.Random(seed if draw_seed is None else draw_seed), _pools(seed))
    with _collector_paused():
        return [builder.person() for _ in range(size)]


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    # A book is ~1.5M fresh containers and no cycles: left on, the cyclic collector re-walks
    # the growing list again and again and doubles the time it takes to build it.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@functools.lru_cache(maxsize=8)
def _pools(seed: int) -> _Pools:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    first = _distinct(fake.first_name, _FIRST_NAMES)
    last = _distinct(fake.last_name, _LAST_NAMES)
    return _Pools(
        first_names=tuple((name, _slug(name)) for name in first),
        last_names=tuple((name, _slug(name)) for name in last),
        unicode_names=_unicode_names(seed),
        handles=_distinct(fake.user_name, _HANDLES),
        company_domains=_distinct(fake.domain_name, _COMPANY_DOMAINS),
    )


def _unicode_names(seed: int) -> tuple[tuple[str, str], ...]:
    """Names that are not ASCII (an ASCII German name is no test of unicode handling)."""
    per_locale = _UNICODE_POOL_SIZE // len(_UNICODE_LOCALES)
    names: list[tuple[str, str]] = []
    for locale in _UNICODE_LOCALES:
        fake = Faker(locale)
        fake.seed_instance(seed)
        drawn = ((fake.first_name(), fake.last_name()) for _ in range(per_locale * 10))
        kept = [pair for pair in drawn if not (pair[0] + pair[1]).isascii()]
        names += kept[:per_locale]
    return tuple(names)


def _distinct(draw: Callable[[], str], count: int) -> tuple[str, ...]:
    # Faker repeats itself; a few extra draws keep the pool large without changing its order.
    values: dict[str, None] = {}
    for _ in range(count * 2):
        values[draw()] = None
        if len(values) >= count:
            break
    return tuple(values)


def _slug(name: str) -> str:
    """The name as it would appear in an address: lowercase ASCII letters and digits only."""
    return _NOT_ADDRESS_CHAR.sub("", name.lower()) if name.isascii() else ""


class _BookBuilder:
    """Draws one Person after another; remembers emails and phones to duplicate them later."""

    def __init__(self, rng: random.Random, pools: _Pools) -> None:
        self._rng = rng
        self._random = rng.random  # bound once: ~5x cheaper than rng.choice/randrange per draw
        self._pools = pools
        self._ids: set[int] = set()
        self._emails: list[str] = []
        self._email_keys: set[str] = set()
        self._phones: list[str] = []
        self._canonical: dict[str, str | None] = {}

    def _pick(self, values: Sequence[_T]) -> _T:
        return values[int(self._random() * len(values))]

    def person(self) -> dict[str, Any]:
        contact_id = self._new_id()
        source = {"type": "CONTACT", "id": format(contact_id, "x")}
        person: dict[str, Any] = {
            "resourceName": f"people/c{contact_id}",
            "etag": _ETAG_PREFIX + base64.b64encode(self._rng.randbytes(12)).decode(),
            "metadata": {"sources": [source], "objectType": "PERSON"},
        }
        (given, given_slug), (family, family_slug) = self._name()
        shape = self._random()
        if shape < _NOTHING_RATE:
            if self._random() < 0.5:
                person["names"] = [_name_field(given, family, source)]
            return person
        if shape >= _NOTHING_RATE + _NAMELESS_RATE:
            person["names"] = [_name_field(given, family, source)]
        phone_only = shape < _NOTHING_RATE + _PHONE_ONLY_RATE
        if not phone_only:
            person["emailAddresses"] = self._email_fields(given_slug, family_slug, source)
        if phone_only or self._random() < _PHONE_RATE:
            person["phoneNumbers"] = [self._phone_field(source)]
        return person

    def _new_id(self) -> int:
        while True:
            contact_id = self._rng.getrandbits(62) | (1 << 62)  # always 19 digits, as Google's
            if contact_id not in self._ids:
                self._ids.add(contact_id)
                return contact_id

    def _name(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """((given, slug), (family, slug)); slugs are empty for names that are not ASCII."""
        pools = self._pools
        if self._random() < _UNICODE_NAME_RATE:
            given, family = self._pick(pools.unicode_names)
            return (given, ""), (family, "")
        family_name = ("", "")
        if self._random() >= _GIVEN_NAME_ONLY_RATE:
            family_name = self._pick(pools.last_names)
        return self._pick(pools.first_names), family_name

    def _email_fields(self, given: str, family: str, source: _Source) -> list[dict[str, Any]]:
        if self._emails and self._random() < _DUPLICATE_EMAIL_RATE:
            first = self._duplicate_email()
        else:
            first = self._new_email(given, family)
        addresses = [first]
        if self._random() < _SECOND_EMAIL_RATE:
            addresses.append(self._new_email(given, family))
        return [
            _email_field(address, self._pick(_EMAIL_TYPES), source, primary=index == 0)
            for index, address in enumerate(addresses)
        ]

    def _duplicate_email(self) -> str:
        address = self._pick(self._emails)
        if self._random() < _RECASE_RATE:
            local, _, domain = address.partition("@")
            return f"{local.title()}@{domain.title()}"
        return address

    def _new_email(self, given: str, family: str) -> str:
        local = self._local_part(given, family) if given else self._pick(self._pools.handles)
        if self._random() < _TAGGED_EMAIL_RATE:
            local += "+" + self._pick(_TAGS)
        if self._random() < 0.6:
            domain = self._pick(_FREE_DOMAINS)
        else:
            domain = self._pick(self._pools.company_domains)
        address = f"{local}@{domain}"
        while address.lower() in self._email_keys:  # a duplicate is only ever made on purpose
            address = f"{local}{int(self._random() * 10_000)}@{domain}"
        self._email_keys.add(address.lower())
        self._emails.append(address)
        return address

    def _local_part(self, first: str, last: str) -> str:
        number = int(self._random() * 100)
        if not last:
            return f"{first}{number}"
        style = self._pick(_LOCAL_PART_STYLES)
        return style.format(first=first, last=last, initial=first[0], number=number)

    def _phone_field(self, source: _Source) -> dict[str, Any]:
        value, digits = self._phone_value()
        field: dict[str, Any] = {"value": value}
        canonical = self._canonical_form(value, digits)
        if canonical is not None:
            field["canonicalForm"] = canonical
        field["type"] = self._pick(_PHONE_TYPES)
        field["metadata"] = {"primary": True, "source": source}
        return field

    def _phone_value(self) -> tuple[str, str]:
        """The number as typed, and its digits (empty when it is not a number)."""
        if self._random() < _UNPARSEABLE_PHONE_RATE:
            return self._pick(_UNPARSEABLE_PHONES), ""
        if self._phones and self._random() < _DUPLICATE_PHONE_RATE:
            digits = self._pick(self._phones)
        else:
            exchange, line = 200 + int(self._random() * 800), int(self._random() * 10_000)
            digits = f"{self._pick(_AREA_CODES)}{exchange}{line:04d}"
            self._phones.append(digits)
        style = self._pick(_PHONE_STYLES)
        return style.format(area=digits[:3], exchange=digits[3:6], line=digits[6:]), digits

    def _canonical_form(self, value: str, digits: str) -> str | None:
        # Every format of one number has one E.164 form: parse each number once.
        key = digits or value
        if key not in self._canonical:
            self._canonical[key] = _e164(value)
        return self._canonical[key]


def _e164(value: str) -> str | None:
    """Google's ``canonicalForm``: present only when the typed number parses."""
    try:
        parsed = phonenumbers.parse(value, "US")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def _name_field(given: str, family: str, source: _Source) -> dict[str, Any]:
    field: dict[str, Any] = {
        "metadata": {"primary": True, "source": source},
        "displayName": f"{given} {family}".strip(),
        "givenName": given,
    }
    if family:
        field["familyName"] = family
        field["displayNameLastFirst"] = f"{family}, {given}"
    field["unstructuredName"] = field["displayName"]
    return field


def _email_field(address: str, kind: str, source: _Source, *, primary: bool) -> dict[str, Any]:
    return {
        "metadata": {"primary": True, "source": source} if primary else {"source": source},
        "value": address,
        "type": kind,
        "formattedType": kind.title(),
    }
