"""Where a listing of every Microsoft contact folder is, as the two opaque strings we store.

A Microsoft listing walks the default Contacts folder first, then every other contact folder
(child folders included), each through its own contact delta. Two strings carry that walk:

- the **sync token** the grant keeps between imports: each folder's ``@odata.deltaLink``,
  ``{"v":2,"folders":{folder id: delta link}}`` (compact JSON). An account with only the default
  folder keeps the form every earlier version stored, its bare delta link, and such a string is
  read as the default folder's link;
- the **page cursor** the job checkpoints after every page: the folder being listed and where
  in it (an ``@odata.nextLink``, a stored delta link, or nothing: a full round), the folders still
  to list (each with the delta link to start from, if any), and the delta links of the folders
  already done. While the default folder is listed it is the bare next link, as before.

Both are ours and travel through the database only, but a string that does not read is never
trusted: it raises ``CursorExpired``, and the importer lists everything again. The links inside
are checked against the API's origin by the source before it follows one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from contact_import.errors import CursorExpired

__all__ = [
    "DEFAULT_FOLDER",
    "FolderWalk",
    "Stop",
    "decode_cursor",
    "decode_sync_state",
    "encode_cursor",
    "encode_sync_state",
]

DEFAULT_FOLDER = "contacts"  # Graph's well-known name of the default Contacts folder
_VERSION = 2


@dataclass(frozen=True, slots=True)
class Stop:
    """A folder to list, and the link to start from (a stored delta link; None: a full round)."""

    folder: str
    link: str | None = None


@dataclass(frozen=True, slots=True)
class FolderWalk:
    """Where a listing of every folder is: ``at`` now, ``todo`` next, ``done`` behind it.

    ``discovered``: the other folders were listed already (they are listed once, when the
    default folder is done).
    """

    at: Stop
    todo: tuple[Stop, ...] = ()
    done: Mapping[str, str] = field(default_factory=dict)
    discovered: bool = False

    def further(self, link: str) -> FolderWalk:
        """The same folder, at its next page."""
        return replace(self, at=Stop(self.at.folder, link))

    def finished(self, delta_link: str | None, todo: tuple[Stop, ...] | None = None) -> FolderWalk:
        """The current folder is done (``delta_link``: its link for next time; None: the folder
        is gone or sent none); ``todo`` replaces the folders still to list when given."""
        done = dict(self.done)
        if delta_link:
            done[self.at.folder] = delta_link
        left = self.todo if todo is None else todo
        at = left[0] if left else Stop("")
        return FolderWalk(at, left[1:], done, self.discovered or todo is not None)

    @property
    def over(self) -> bool:
        """Every folder is done: the walk produced its sync token."""
        return not self.at.folder


def decode_sync_state(token: str | None) -> dict[str, str]:
    """Each folder's delta link in a stored sync token; {} for None."""
    if not token:
        return {}
    if not token.startswith("{"):
        return {DEFAULT_FOLDER: token}  # the one-folder form (and every token stored before)
    data = _loads(token)
    folders = data.get("folders")
    if data.get("v") != _VERSION or not isinstance(folders, dict) or not _is_str_map(folders):
        raise _unreadable()
    return dict(folders)


def encode_sync_state(links: Mapping[str, str]) -> str | None:
    """The sync token for ``links``; None when no folder handed out a link."""
    if not links:
        return None
    if set(links) == {DEFAULT_FOLDER}:
        return links[DEFAULT_FOLDER]
    return _dumps({"v": _VERSION, "folders": dict(links)})


def encode_cursor(walk: FolderWalk) -> str:
    """The page cursor for ``walk`` (not over: an over walk has no next page)."""
    if walk.at.folder == DEFAULT_FOLDER and walk.at.link and not walk.discovered:
        return walk.at.link
    return _dumps(
        {
            "v": _VERSION,
            "at": [walk.at.folder, walk.at.link],
            "todo": [[stop.folder, stop.link] for stop in walk.todo],
            "done": dict(walk.done),
        }
    )


def decode_cursor(cursor: str) -> FolderWalk:
    """The walk a page cursor stands for (a bare link: the default folder's next page)."""
    if not cursor.startswith("{"):
        return FolderWalk(Stop(DEFAULT_FOLDER, cursor))
    data = _loads(cursor)
    todo, done = data.get("todo"), data.get("done")
    if data.get("v") != _VERSION or not isinstance(todo, list) or not isinstance(done, dict):
        raise _unreadable()
    if not _is_str_map(done):
        raise _unreadable()
    return FolderWalk(_stop(data.get("at")), tuple(_stop(s) for s in todo), done, True)


def _stop(value: object) -> Stop:
    if not isinstance(value, list) or len(value) != 2:
        raise _unreadable()
    folder, link = value
    if not (isinstance(folder, str) and folder) or not (link is None or isinstance(link, str)):
        raise _unreadable()
    return Stop(folder, link or None)


def _is_str_map(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items()
    )


def _loads(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise _unreadable() from None
    if not isinstance(data, dict):
        raise _unreadable()
    return data


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def _unreadable() -> CursorExpired:
    return CursorExpired("the stored Microsoft folder state does not read; listing again")
