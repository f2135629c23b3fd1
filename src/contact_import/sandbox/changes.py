"""An account's edits on top of its shared, read-only book: one version per ``change_book``.

Books are generated once per (size, seed) and shared by every account that asks for the same
one, so an account never edits its book: it keeps a ``ChangeLog``, and what it lists at version
``v`` is the book with the first ``v`` changes laid over it. A deleted person stays in the log as
a tombstone, a Person in the shape Google lists it in a sync (``resourceName``, ``etag`` and
``metadata.deleted``); the Graph routes turn it into an ``@removed`` entry.

Changes are deterministic: the same calls in the same order on the same book give the same
people, the same emails and the same resource names, in any process.
"""

from __future__ import annotations

import base64
import copy
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from contact_import.sandbox.book import generate_book

__all__ = ["BookChange", "ChangeLog", "is_tombstone"]

Person = dict[str, Any]


@dataclass(frozen=True, slots=True)
class BookChange:
    """What one version changed: each touched Person's new state (a tombstone when deleted)."""

    version: int
    people: dict[str, Person]  # resourceName -> the Person as it is from this version on
    modified: tuple[str, ...]
    added: tuple[str, ...]
    deleted: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        """The resource names of each kind of change, as ``change_book`` reports them."""
        return {
            "version": self.version,
            "modified": list(self.modified),
            "added": list(self.added),
            "deleted": list(self.deleted),
        }


class ChangeLog:
    """The versions of one account's book; version 0 is the generated book itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changes: list[BookChange] = []
        self._views: dict[int, list[Person]] = {}

    @property
    def version(self) -> int:
        """The latest version (0 until the first change)."""
        return len(self._changes)

    def view(self, base: list[Person], version: int) -> list[Person]:
        """The people listed at ``version``: the book's order, then the people added since."""
        if version == 0:
            return base
        with self._lock:
            if version not in self._views:
                self._views[version] = _materialize(base, self._changes[:version])
            return self._views[version]

    def changed_since(self, since: int, version: int) -> list[Person]:
        """Each Person touched after ``since`` up to ``version``, once, as it is at ``version``."""
        latest: dict[str, Person] = {}
        for change in self._changes[since:version]:
            latest.update(change.people)  # a key already there keeps its place: first touch
        return list(latest.values())

    def apply(
        self,
        base: list[Person],
        *,
        modified: int = 0,
        added: int = 0,
        deleted: int = 0,
        seed: int = 0,
    ) -> BookChange:
        """Record a new version; ValueError when the book has fewer people than asked for."""
        with self._lock:
            version = len(self._changes) + 1
            current = self._views.get(version - 1) or _materialize(base, self._changes)
            if modified + deleted > len(current):
                raise ValueError(f"the book has only {len(current)} people")
            change = _draw_change(current, version, (modified, added, deleted), seed)
            self._changes.append(change)
            return change


def is_tombstone(person: Person) -> bool:
    """Whether ``person`` stands for a deleted contact."""
    metadata = person.get("metadata")
    return isinstance(metadata, dict) and metadata.get("deleted") is True


def _materialize(base: list[Person], changes: Sequence[BookChange]) -> list[Person]:
    overlay: dict[str, Person] = {}
    added: list[str] = []
    for change in changes:
        overlay.update(change.people)
        added += change.added
    people = [overlay.get(person["resourceName"], person) for person in base]
    people += [overlay[name] for name in added]
    return [person for person in people if not is_tombstone(person)]


def _draw_change(
    current: list[Person], version: int, counts: tuple[int, int, int], seed: int
) -> BookChange:
    modified, added, deleted = counts
    rng = random.Random(f"{seed}:{version}")
    picked = [current[i] for i in rng.sample(range(len(current)), modified + deleted)]
    edited = [_edited(person, version, i, rng) for i, person in enumerate(picked[:modified])]
    removed = [_tombstone(person, rng) for person in picked[modified:]]
    known = {person["resourceName"] for person in current}
    new = _new_people(added, version, rng.getrandbits(32), known)
    return BookChange(
        version=version,
        people={p["resourceName"]: p for p in [*edited, *new, *removed]},
        modified=tuple(p["resourceName"] for p in edited),
        added=tuple(p["resourceName"] for p in new),
        deleted=tuple(p["resourceName"] for p in removed),
    )


def _edited(person: Person, version: int, index: int, rng: random.Random) -> Person:
    """The person renamed and with one more email: something an import must add."""
    edited = copy.deepcopy(person)
    edited["etag"] = _etag(rng)
    source = edited["metadata"]["sources"][0]
    address = f"edited.v{version}.{index}@sandbox.example"
    edited.setdefault("emailAddresses", []).append(
        {"metadata": {"source": source}, "value": address}
    )
    for name in edited.get("names", []):
        name["displayName"] = f"{name['displayName']} ({version})".strip()
    return edited


def _tombstone(person: Person, rng: random.Random) -> Person:
    metadata = {**person["metadata"], "deleted": True}
    return {"resourceName": person["resourceName"], "etag": _etag(rng), "metadata": metadata}


def _new_people(count: int, version: int, draw_seed: int, known: set[str]) -> list[Person]:
    """``count`` new people, each with an email no one else has (so each is a new contact)."""
    drawn = generate_book(count + 4, 1, draw_seed=draw_seed)  # a few spare: an id may be taken
    people = [person for person in drawn if person["resourceName"] not in known][:count]
    for index, person in enumerate(people):
        fields = person.setdefault("emailAddresses", [])
        for field in fields:
            field["value"] = f"v{version}.{index}.{field['value']}"
        if not fields:
            source = person["metadata"]["sources"][0]
            address = f"added.v{version}.{index}@sandbox.example"
            fields.append({"metadata": {"primary": True, "source": source}, "value": address})
    return people


def _etag(rng: random.Random) -> str:
    return "%EgUBAi43PRoEAQIFByIM" + base64.b64encode(rng.randbytes(12)).decode()
