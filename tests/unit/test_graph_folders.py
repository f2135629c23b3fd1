"""The Microsoft folder walk as the two strings we store: cursor and sync token (pure)."""

from __future__ import annotations

import json

import pytest

from contact_import.errors import CursorExpired
from contact_import.providers.graph_folders import (
    DEFAULT_FOLDER,
    FolderWalk,
    Stop,
    decode_cursor,
    decode_sync_state,
    encode_cursor,
    encode_sync_state,
)
from contact_import.sandbox.folder_tree import ROOT_ID, FolderTree

NEXT = "https://graph.microsoft.com/v1.0/me/contactFolders/contacts/contacts/delta?$skiptoken=a"
DELTA = "https://graph.microsoft.com/v1.0/me/contactFolders/contacts/contacts/delta?$deltatoken=b"


def test_one_folder_keeps_the_bare_delta_link_of_earlier_versions() -> None:
    assert encode_sync_state({DEFAULT_FOLDER: DELTA}) == DELTA
    assert decode_sync_state(DELTA) == {DEFAULT_FOLDER: DELTA}
    assert decode_sync_state(None) == {}
    assert encode_sync_state({}) is None


def test_several_folders_are_versioned_compact_json() -> None:
    links = {DEFAULT_FOLDER: DELTA, "AAMkF1=": DELTA + "1", "AAMkF2": DELTA + "2"}
    token = encode_sync_state(links)
    assert token is not None
    assert json.loads(token) == {"v": 2, "folders": links}
    assert " " not in token
    assert decode_sync_state(token) == links


def test_the_default_folders_cursor_is_its_bare_next_link() -> None:
    walk = FolderWalk(Stop(DEFAULT_FOLDER)).further(NEXT)
    assert encode_cursor(walk) == NEXT
    assert decode_cursor(NEXT) == walk


def test_a_walk_through_the_folders_round_trips_through_its_cursor() -> None:
    start = FolderWalk(Stop(DEFAULT_FOLDER, NEXT))
    todo = (Stop("A", "https://x/delta?$deltatoken=old"), Stop("A/B"), Stop("C"))
    walk = start.finished(DELTA, todo)
    assert walk.at == todo[0]
    assert walk.todo == todo[1:]
    assert dict(walk.done) == {DEFAULT_FOLDER: DELTA}
    assert walk.discovered
    for step in (walk, walk.further(NEXT + "2"), walk.finished(None)):
        assert decode_cursor(encode_cursor(step)) == step
    gone = walk.finished(None).finished("d2").finished("d3")  # A gone, then A/B and C done
    assert gone.over
    assert dict(gone.done) == {DEFAULT_FOLDER: DELTA, "A/B": "d2", "C": "d3"}


@pytest.mark.parametrize(
    "text",
    [
        "{",
        '{"v":1,"folders":{}}',
        '{"v":2,"folders":{"a":3}}',
        '{"v":2,"folders":{"":"x"}}',
        '{"v":2,"folders":["x"]}',
    ],
)
def test_a_state_that_does_not_read_is_cursor_expired(text: str) -> None:
    with pytest.raises(CursorExpired):
        decode_sync_state(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"v":2,"at":["a"],"todo":[],"done":{}}',
        '{"v":2,"at":["",null],"todo":[],"done":{}}',
        '{"v":2,"at":["a",3],"todo":[],"done":{}}',
        '{"v":2,"at":["a",null],"todo":{},"done":{}}',
        '{"v":2,"at":["a",null],"todo":[["b"]],"done":{}}',
        '{"v":2,"at":["a",null],"todo":[],"done":[]}',
        '{"v":3,"at":["a",null],"todo":[],"done":{}}',
    ],
)
def test_a_cursor_that_does_not_read_is_cursor_expired(text: str) -> None:
    with pytest.raises(CursorExpired):
        decode_cursor(text)


# --- the sandbox's folder tree ------------------------------------------------------------------


def path_id(tree: FolderTree, path: str) -> str:
    found = tree.by_path(path)
    assert found is not None
    return found


def test_a_book_is_filed_by_weight_and_people_keep_their_folder() -> None:
    tree = FolderTree({"Work": 2, "Work/Team": 1, "Empty": 0})
    names = [f"people/c{n}" for n in range(4000)]
    filed = [tree.folder_of(name) for name in names]
    counts = {folder: filed.count(folder) for folder in set(filed)}
    work, team, empty = (path_id(tree, path) for path in ("Work", "Work/Team", "Empty"))
    assert empty not in counts
    assert counts[ROOT_ID] == pytest.approx(1000, rel=0.15)
    assert counts[work] == pytest.approx(2000, rel=0.15)
    assert counts[team] == pytest.approx(1000, rel=0.15)
    assert [tree.folder_of(name) for name in names] == filed  # stable
    assert FolderTree({"Work": 2, "Work/Team": 1, "Empty": 0}).folder_of(names[0]) == filed[0]


def test_folders_nest_pin_and_delete_with_their_subfolders() -> None:
    tree = FolderTree({"A/B/C": 1})
    a, b, c = (path_id(tree, path) for path in ("A", "A/B", "A/B/C"))
    assert [f.id for f in tree.children(ROOT_ID)] == [a]
    assert [f.id for f in tree.children(b)] == [c]
    new = tree.add("A/New").id
    tree.pin(["people/c1"], new)
    assert tree.folder_of("people/c1") == new
    with pytest.raises(ValueError, match="exists"):
        tree.add("A/New")
    assert sorted(tree.delete("A")) == sorted([a, b, c, new])
    assert tree.children(ROOT_ID) == []
    assert tree.resolve(new) is None
    assert tree.resolve("contacts") == ROOT_ID
    with pytest.raises(ValueError, match="weight"):
        FolderTree.from_json({"A": -1})
