"""The ``dirty_every`` fault: the contacts real address books hold now and then.

With ``dirty_every=N`` the book's Persons number N, 2N, 3N, ... (counting from 1) are dirty, the
kinds of ``KINDS`` in turn: the first dirty Person gets the first kind, the eighth the first
again. Each kind is one thing providers really send, in their real wire formats (a lone surrogate
travels as the JSON escape ``"\\ud800"``, as Google sends it; see ``state.wire_json``):

    nul_email        a NUL byte inside the first email address            the contact fails
    nul_name         a NUL byte inside the name                            stored, NUL stripped
    surrogate_name   a lone surrogate (U+D800) at the end of the name      stored, as U+FFFD
    no_id            no ``resourceName`` (Google) / no ``id`` (Graph)      the contact fails
    plus_phone       no email, one phone typed "+" with canonicalForm "+"  stored, no match key
    control_chars    BEL and DEL in the name, NUL in the typed phone        stored, stripped
    surrogate_email  a lone surrogate (U+DC00) inside the first email      the contact fails

Everything else about a dirty Person stays as ``generate_book`` drew it, so a test can tell
which contacts must fail from the book and the knob alone (``dirty_kind``, ``FAILING``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

__all__ = ["FAILING", "KINDS", "dirty_kind", "has_no_id", "soil", "wire_person"]

Person = dict[str, Any]

KINDS = (
    "nul_email",
    "nul_name",
    "surrogate_name",
    "no_id",
    "plus_phone",
    "control_chars",
    "surrogate_email",
)
FAILING = frozenset({"nul_email", "no_id", "surrogate_email"})
# Kept inside the sandbox (its change log needs every Person's resourceName); the wire form
# drops it together with the id.
_NO_ID = "_sandboxWithoutId"


def dirty_kind(index: int, every: int) -> str | None:
    """The kind of dirt of the book's Person at ``index`` (from 0); None when it is clean."""
    if every <= 0 or (index + 1) % every:
        return None
    return KINDS[((index + 1) // every - 1) % len(KINDS)]


def soil(people: list[Person], every: int) -> list[Person]:
    """``people`` with every ``every``-th Person made dirty (a copy; the input is left alone)."""
    if every <= 0:
        return people
    soiled = list(people)
    for index in range(every - 1, len(people), every):
        kind = dirty_kind(index, every)
        assert kind is not None
        person = copy.deepcopy(people[index])
        _SOILERS[kind](person)
        soiled[index] = person
    return soiled


def has_no_id(person: Person) -> bool:
    """Whether the wire form of ``person`` goes without its id."""
    return _NO_ID in person


def wire_person(person: Person) -> Person:
    """``person`` as Google sends it: a ``no_id`` Person without its resourceName."""
    if _NO_ID not in person:
        return person
    return {key: value for key, value in person.items() if key not in {_NO_ID, "resourceName"}}


# --- the kinds -----------------------------------------------------------------------------------


def _first_email(person: Person) -> dict[str, Any]:
    fields = person.setdefault("emailAddresses", [])
    if not fields:  # a Person drawn without an email gets one, so the dirt has a place
        fields.append({"value": "dirty@sandbox.example", "type": "home"})
    field: dict[str, Any] = fields[0]
    return field


def _first_name(person: Person) -> dict[str, Any]:
    names = person.setdefault("names", [])
    if not names:
        names.append({"displayName": "Dirty Name", "givenName": "Dirty", "familyName": "Name"})
    name: dict[str, Any] = names[0]
    return name


def _insert(text: str, dirt: str) -> str:
    """``text`` with ``dirt`` after its first character (inside, where trimming cannot reach)."""
    return text[:1] + dirt + text[1:]


def _nul_email(person: Person) -> None:
    field = _first_email(person)
    field["value"] = _insert(field["value"], "\x00")


def _surrogate_email(person: Person) -> None:
    field = _first_email(person)
    field["value"] = _insert(field["value"], "\udc00")


def _nul_name(person: Person) -> None:
    name = _first_name(person)
    name["displayName"] = _insert(name["displayName"], "\x00")


def _surrogate_name(person: Person) -> None:
    name = _first_name(person)
    name["displayName"] += " \ud800"


def _no_id(person: Person) -> None:
    person[_NO_ID] = True


def _plus_phone(person: Person) -> None:
    person.pop("emailAddresses", None)
    person["phoneNumbers"] = [{"value": "+", "canonicalForm": "+", "type": "mobile"}]


def _control_chars(person: Person) -> None:
    name = _first_name(person)
    name["displayName"] = "\x07" + name["displayName"] + "\x7f"
    for field in person.get("phoneNumbers", []):
        field["value"] = _insert(field["value"], "\x00")


_SOILERS: dict[str, Callable[[Person], None]] = {
    "nul_email": _nul_email,
    "nul_name": _nul_name,
    "surrogate_name": _surrogate_name,
    "no_id": _no_id,
    "plus_phone": _plus_phone,
    "control_chars": _control_chars,
    "surrogate_email": _surrogate_email,
}
