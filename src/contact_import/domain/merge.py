"""Match a page of incoming contacts to a user's existing ones and plan the writes.

Pure: the store reads the key owners and the matched contacts, this module decides, the store
writes the plan in a few set-based statements.

Keys are strings with a kind prefix, unique per user in the database:
``id:<provider>:<provider contact id>``, ``email:<trimmed lowercase address>``,
``phone:<E.164>``. An email key belongs to exactly one contact, so a merge never copies an email
that another contact owns. A phone key is owned by the first contact that had it; a phone may
still appear on several contacts (a shared landline), it just matches the first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from enum import StrEnum
from uuid import UUID

from contact_import.domain.contact import IncomingContact, NormalizedContact, RejectedContact

__all__ = [
    "Action",
    "ContactOutcome",
    "ContactState",
    "PagePlan",
    "ProviderVersion",
    "email_match_key",
    "identity_key",
    "phone_match_key",
    "plan_page_merge",
]


class Action(StrEnum):
    """What one incoming contact did, as ``imported_contacts.action`` records it."""

    CREATED = "created"
    UPDATED = "updated"
    SKIPPED = "skipped"
    FAILED = "failed"


def identity_key(provider: str, provider_contact_id: str) -> str:
    return f"id:{provider}:{provider_contact_id}"


def email_match_key(key: str) -> str:
    return "email:" + key


def phone_match_key(key: str) -> str:
    return "phone:" + key


@dataclass(slots=True)
class ContactState:
    """A contact as stored: display values plus the email/phone keys it carries."""

    id: UUID
    display_name: str
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    def copy(self) -> ContactState:
        return replace(
            self, emails=list(self.emails), phones=list(self.phones), keys=list(self.keys)
        )


@dataclass(frozen=True, slots=True)
class ContactOutcome:
    provider_contact_id: str
    action: Action
    contact_id: UUID | None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderVersion:
    """The provider's version of a contact now merged into ``contact_id``: recorded, so the
    next full listing can skip it while the version stays the same."""

    provider_contact_id: str
    contact_id: UUID
    version: str


UNCHANGED_DETAIL = "unchanged at the provider"


@dataclass(slots=True)
class PagePlan:
    """The writes one page needs: new rows, changed rows, new key owners, the provider versions
    to record and one outcome each."""

    creates: list[ContactState] = field(default_factory=list)
    updates: list[ContactState] = field(default_factory=list)
    new_keys: dict[str, UUID] = field(default_factory=dict)
    outcomes: list[ContactOutcome] = field(default_factory=list)
    versions: list[ProviderVersion] = field(default_factory=list)
    # Contacts unchanged at the provider: skipped, their audit rows written by the store
    # already (``store.seen``), so no outcome here; counted.
    unchanged: int = 0

    def counts(self) -> Counter[Action]:
        counts = Counter(o.action for o in self.outcomes)
        if self.unchanged:
            counts[Action.SKIPPED] += self.unchanged
        return counts


def plan_page_merge(
    incoming: Sequence[NormalizedContact | RejectedContact | IncomingContact],
    *,
    provider: str,
    owners: Mapping[str, UUID],
    existing: Mapping[UUID, ContactState],
    new_id: Callable[[], UUID],
    already_recorded: Set[str] = frozenset(),
    unchanged: Set[str] = frozenset(),
) -> PagePlan:
    """Decide created/updated/skipped/failed for each incoming contact, in order.

    ``owners`` maps every key of this page that already has an owner to that contact;
    ``existing`` holds those contacts. A contact id in ``already_recorded`` (seen earlier in
    the same job) and a repeat inside the page are dropped: no outcome, counted once.
    ``unchanged``: contact ids whose provider version is the one recorded with the contact
    they went into (the store checked that contact still carries their identity, and recorded
    them ``skipped`` into it, ``UNCHANGED_DETAIL``): counted ``skipped`` once, no outcome, their
    keys need not be among ``owners``, and each may still be the ``IncomingContact`` the
    provider sent (every other contact is normalized). Inputs are not mutated.
    """
    planner = _Planner(provider, owners, existing, new_id)
    seen = set(already_recorded)
    skipped_unchanged = 0
    for contact in incoming:
        pcid = contact.provider_contact_id
        if pcid in seen:
            continue
        seen.add(pcid)
        if pcid in unchanged:
            skipped_unchanged += 1
        elif isinstance(contact, IncomingContact):
            raise ValueError(f"contact {pcid!r} was not normalized")
        else:
            planner.add(contact)
    plan = planner.plan()
    plan.unchanged = skipped_unchanged
    return plan


class _Planner:
    def __init__(
        self,
        provider: str,
        owners: Mapping[str, UUID],
        existing: Mapping[UUID, ContactState],
        new_id: Callable[[], UUID],
    ) -> None:
        self._provider = provider
        self._owners = dict(owners)
        self._existing = existing
        self._new_id = new_id
        self._touched: dict[UUID, ContactState] = {}
        self._owned: set[UUID] = set()  # created here, or copied before we changed them
        self._created: dict[UUID, None] = {}  # in order; a dict for O(1) membership
        self._changed: dict[UUID, None] = {}
        self._new_keys: dict[str, UUID] = {}
        self._outcomes: list[ContactOutcome] = []
        self._versions: list[ProviderVersion] = []

    def add(self, contact: NormalizedContact | RejectedContact) -> None:
        pcid = contact.provider_contact_id
        if isinstance(contact, RejectedContact):
            self.record(pcid, Action.FAILED, None, contact.reason)
        elif contact.deleted:
            self.record(pcid, Action.SKIPPED, None, "deleted at the provider")
        elif not contact.importable:
            self.record(pcid, Action.SKIPPED, None, "no name, email or phone")
        else:
            self._add_importable(contact)

    def _add_importable(self, contact: NormalizedContact) -> None:
        target = self._match(contact)
        if target is None:
            target = ContactState(id=self._new_id(), display_name="")
            self._touched[target.id] = target
            self._owned.add(target.id)
            self._created[target.id] = None
            self._absorb(target, contact)
            self.record(contact.provider_contact_id, Action.CREATED, target.id)
            self._version(contact, target.id)
            return
        changed = self._absorb(target, contact)
        if changed and target.id not in self._created:
            self._changed[target.id] = None
        action = Action.UPDATED if changed else Action.SKIPPED
        self.record(contact.provider_contact_id, action, target.id)
        self._version(contact, target.id)

    def _match(self, contact: NormalizedContact) -> ContactState | None:
        """Same provider identity, else a shared email, else (no email at all) a shared phone."""
        candidates = [identity_key(self._provider, contact.provider_contact_id)]
        candidates += [email_match_key(e.key) for e in contact.emails if e.key]
        if not contact.has_email:
            candidates += [phone_match_key(p.key) for p in contact.phones if p.key]
        for key in candidates:
            state = self._state(self._owners.get(key))
            if state is not None:
                return state
        return None

    def _state(self, contact_id: UUID | None) -> ContactState | None:
        if contact_id is None:
            return None
        if contact_id not in self._touched:
            found = self._existing.get(contact_id)
            if found is None:
                return None
            self._touched[contact_id] = found  # copied only if we change it (_writable)
        return self._touched[contact_id]

    def _writable(self, state: ContactState) -> ContactState:
        """Our own copy of an existing contact, made on its first change: inputs stay intact."""
        if state.id not in self._owned:
            state = state.copy()
            self._touched[state.id] = state
            self._owned.add(state.id)
        return state

    def _absorb(self, target: ContactState, contact: NormalizedContact) -> bool:
        """Union the contact into ``target`` (existing values first); True if anything was added.

        Additions are worked out first, so a contact with nothing new is never copied.
        """
        self._claim(identity_key(self._provider, contact.provider_contact_id), target)
        emails = [e for e in contact.emails if self._email_is_new(target, e.key or "")]
        phones = [p for p in contact.phones if self._phone_is_new(target, p.value, p.key)]
        rename = not target.display_name and bool(contact.display_name)
        if not (emails or phones or rename):
            return False
        target = self._writable(target)
        for email in emails:
            self._add_value(target, target.emails, email.value, email_match_key(email.key or ""))
        for phone in phones:
            key = phone_match_key(phone.key) if phone.key else None
            self._add_value(target, target.phones, phone.value, key)
        if rename:
            target.display_name = contact.display_name
        return True

    def _email_is_new(self, target: ContactState, email_key: str) -> bool:
        key = email_match_key(email_key)
        owner = self._owners.get(key)
        # Already there, or another contact's address: never copy it.
        return key not in target.keys and (owner is None or owner == target.id)

    def _phone_is_new(self, target: ContactState, value: str, key: str | None) -> bool:
        if key is None:
            return value not in target.phones
        return phone_match_key(key) not in target.keys

    def _add_value(
        self, target: ContactState, values: list[str], value: str, key: str | None
    ) -> None:
        values.append(value)
        if key is not None and key not in target.keys:
            target.keys.append(key)
            self._claim(key, target)

    def _claim(self, key: str, target: ContactState) -> None:
        """Make ``target`` the owner of ``key`` unless some contact already owns it."""
        if key not in self._owners:
            self._owners[key] = target.id
            self._new_keys[key] = target.id

    def record(
        self, pcid: str, action: Action, contact_id: UUID | None, detail: str | None = None
    ) -> None:
        self._outcomes.append(ContactOutcome(pcid, action, contact_id, detail))

    def _version(self, contact: NormalizedContact, contact_id: UUID) -> None:
        if contact.version is not None:
            pcid = contact.provider_contact_id
            self._versions.append(ProviderVersion(pcid, contact_id, contact.version))

    def plan(self) -> PagePlan:
        return PagePlan(
            creates=[self._touched[i] for i in self._created],
            updates=[self._touched[i] for i in self._changed],
            new_keys=self._new_keys,
            outcomes=self._outcomes,
            versions=self._versions,
        )
