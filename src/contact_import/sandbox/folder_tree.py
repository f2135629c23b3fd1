"""An account's Outlook contact folders: which folder each person of its book is filed in.

A book is spread over nested folders by a spec of folder paths and weights, ``{"Work": 2,
"Work/Team": 1, "Family": 1, "Empty": 0}``: each person goes to the default Contacts folder
(weight 1) or one of these, drawn by a hash of its resourceName, so the same book is spread the
same way in any process, and a person keeps its folder when edited or deleted. A folder of
weight 0 holds only the people added to it by name later (``pin``). Folders can be added
(weight 0) and deleted (with their subfolders, whose people go with them, as in Outlook) while
the account is in use. Without a spec every person is in the default folder.

Pure data with a lock: ``accounts`` holds one per account, the Graph routes read it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["NESTED_FOLDERS", "ROOT_ID", "Folder", "FolderTree"]

ROOT_ID = "AAMkDefaultContactsFolder"  # the default Contacts folder's own id ("contacts")
MAX_FOLDERS = 1000
# The demo's spread (login hint ``folders:nested``): three levels, two empty folders.
NESTED_FOLDERS = {
    "Work": 3, "Work/Clients": 2, "Work/Clients/Europe": 1, "Work/Old": 0,
    "Family": 1, "Clubs": 0, "Clubs/Chess": 1,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Folder:
    """One contact folder: Graph's ``id``, ``displayName`` and ``parentFolderId``."""

    id: str
    name: str
    parent: str
    path: str


class FolderTree:
    """The folders of one account and where its people are filed."""

    def __init__(self, spec: Mapping[str, int] | None = None) -> None:
        self._lock = threading.Lock()
        self._folders: dict[str, Folder] = {}  # id -> folder, parents before children
        self._by_path: dict[str, str] = {}
        self._weights: list[tuple[str, int]] = [(ROOT_ID, 1)]
        self._pinned: dict[str, str] = {}
        self._gone: set[str] = set()
        for path, weight in (spec or {}).items():
            folder = self._add(path)
            self._weights.append((folder.id, weight))
        self._total = sum(weight for _, weight in self._weights)

    @classmethod
    def from_json(cls, spec: object) -> FolderTree:
        """Build from a JSON object of paths and weights; ValueError names what is wrong."""
        if not isinstance(spec, dict) or len(spec) > MAX_FOLDERS:
            raise ValueError(f"folders must be an object of at most {MAX_FOLDERS} paths")
        for path, weight in spec.items():
            if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
                raise ValueError(f"the weight of folder {path!r} must be an integer >= 0")
        return cls(spec)

    def folder_of(self, resource_name: str) -> str:
        """The id of the folder ``resource_name`` is filed in (ROOT_ID: the default one)."""
        pinned = self._pinned.get(resource_name)
        if pinned is not None or self._total == 1:
            return pinned or ROOT_ID
        draw = int.from_bytes(hashlib.sha256(resource_name.encode()).digest()[:8], "big")
        point = draw % self._total
        for folder_id, weight in self._weights:
            if point < weight:
                return folder_id
            point -= weight
        raise AssertionError("unreachable")  # pragma: no cover

    def filed_in(self, people: list[dict[str, Any]], folder_id: str) -> list[dict[str, Any]]:
        """The people of ``people`` filed in ``folder_id`` (the list itself without folders)."""
        if not self._folders:
            return people if folder_id == ROOT_ID else []
        return [p for p in people if self.folder_of(p["resourceName"]) == folder_id]

    def resolve(self, name_or_id: str) -> str | None:
        """The id a route's folder segment names (``contacts`` is the default); None: no such
        folder, or a deleted one."""
        if name_or_id in {"contacts", ROOT_ID}:
            return ROOT_ID
        with self._lock:
            known = name_or_id in self._folders and name_or_id not in self._gone
        return name_or_id if known else None

    def children(self, parent_id: str) -> list[Folder]:
        """The folders directly below ``parent_id`` that still exist, in creation order."""
        with self._lock:
            return [
                f
                for f in self._folders.values()
                if f.parent == parent_id and f.id not in self._gone
            ]

    def by_path(self, path: str) -> str | None:
        """The id of the live folder at ``path``; None when there is none."""
        with self._lock:
            folder_id = self._by_path.get(path.strip("/"))
        return None if folder_id is None or folder_id in self._gone else folder_id

    def add(self, path: str) -> Folder:
        """Add the folder at ``path`` (and its missing parents), weight 0; ValueError if it is
        there already."""
        with self._lock:
            if path.strip("/") in self._by_path:
                raise ValueError(f"folder {path!r} exists")
            return self._add(path)

    def delete(self, path: str) -> list[str]:
        """Delete the folder at ``path`` and its subfolders; their ids. KeyError: no such one."""
        folder_id = self.by_path(path)
        if folder_id is None:
            raise KeyError(path)
        with self._lock:
            prefix = self._folders[folder_id].path + "/"
            gone = [f.id for f in self._folders.values() if f.id == folder_id or
                    f.path.startswith(prefix)]  # fmt: skip
            self._gone.update(gone)
        return gone

    def pin(self, resource_names: list[str], folder_id: str) -> None:
        """File these people (added to the book just now) in ``folder_id``."""
        with self._lock:
            self._pinned.update(dict.fromkeys(resource_names, folder_id))

    def _add(self, path: str) -> Folder:
        parts = [part for part in path.split("/") if part]
        if not parts:
            raise ValueError("a folder path must name a folder")
        parent = ROOT_ID
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            if sub not in self._by_path:
                if len(self._folders) >= MAX_FOLDERS:
                    raise ValueError(f"at most {MAX_FOLDERS} folders")
                folder = Folder(_folder_id(sub), parts[depth - 1], parent, sub)
                self._folders[folder.id] = folder
                self._by_path[sub] = folder.id
            parent = self._by_path[sub]
        return self._folders[parent]


def _folder_id(path: str) -> str:
    """A stable, opaque, Outlook-looking folder id (base64-ish, with the ``=`` Outlook ids end
    with, so clients must escape it in a path)."""
    return "AAMkF" + hashlib.sha256(path.encode()).hexdigest()[:32] + "AAA="
