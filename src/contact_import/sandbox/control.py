"""The sandbox's own control routes, for tests and benchmarks in other processes:

POST /_sandbox/accounts                {"size", "seed", "faults", "token"?, "folders"?}
                                       -> 201 {"access_token"}
POST /_sandbox/accounts/{id}/changes   {"modified", "added", "deleted", "seed", "folder"?} -> 200
POST /_sandbox/accounts/{id}/folders   {"path"} -> 201 {"id"}: a new, empty Outlook folder
DELETE /_sandbox/accounts/{id}/folders/{path}  -> 200 {"deleted": [ids]}: it and its subfolders
GET  /_sandbox/healthz                 {"ok": true}

``folders`` spreads the book over Outlook folders, ``{"Work": 2, "Work/Team": 1, "Empty": 0}``
(paths and weights, see ``folder_tree``); ``folder`` files the added people in that folder.
"""

from __future__ import annotations

import json
from typing import cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contact_import.sandbox.accounts import Account, Faults, is_count
from contact_import.sandbox.folder_tree import FolderTree
from contact_import.sandbox.state import SandboxState, sandbox_state

__all__ = ["control_routes"]

_CHANGE_KINDS = frozenset({"modified", "added", "deleted", "seed"})


def control_routes() -> list[Route]:
    """Create accounts, change their books, and say the sandbox is up."""
    return [
        Route("/_sandbox/accounts", _create_account, methods=["POST"]),
        Route("/_sandbox/accounts/{account_id}/changes", _change_book, methods=["POST"]),
        Route("/_sandbox/accounts/{account_id}/folders", _add_folder, methods=["POST"]),
        Route(
            "/_sandbox/accounts/{account_id}/folders/{path:path}",
            _delete_folder,
            methods=["DELETE"],
        ),
        Route("/_sandbox/healthz", _healthz, methods=["GET"]),
    ]


async def _create_account(request: Request) -> Response:
    try:
        spec = json.loads(await request.body())
        token = _add_account_from_json(sandbox_state(request), spec)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError too
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"access_token": token}, status_code=201)


def _add_account_from_json(state: SandboxState, spec: object) -> str:
    if not isinstance(spec, dict):
        raise ValueError("expected a JSON object")
    size, seed, token = spec.get("size"), spec.get("seed", 1), spec.get("token")
    if not is_count(size):
        raise ValueError("size must be an integer >= 0")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError("seed must be an integer")
    if token is not None and (not isinstance(token, str) or not token):
        raise ValueError("token must be a non-empty string")
    faults = Faults.from_json(spec.get("faults", {}))
    folders = FolderTree.from_json(spec["folders"]) if "folders" in spec else None
    return state.add_account(cast(int, size), seed, token, faults, folders)


async def _change_book(request: Request) -> Response:
    """{"modified", "added", "deleted", "seed"} -> 200 what changed; the id may be a token."""
    try:
        spec = json.loads(await request.body())
        folder = spec.pop("folder", None) if isinstance(spec, dict) else None
        if not isinstance(spec, dict) or not all(is_count(v) for v in spec.values()):
            raise ValueError("expected an object of integers >= 0")
        if folder is not None and not isinstance(folder, str):
            raise ValueError("folder must be a folder path")
        unknown = set(spec) - _CHANGE_KINDS
        if unknown:
            raise ValueError(f"unknown change {sorted(unknown)[0]!r}")
        account_id = request.path_params["account_id"]
        changed = sandbox_state(request).change_book(account_id, folder=folder, **spec)
    except KeyError:
        return JSONResponse({"error": "no such account or folder"}, status_code=404)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(changed)


async def _healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def _add_folder(request: Request) -> Response:
    """{"path"} -> 201 {"id"}: a new folder (and its missing parents), empty."""
    account = _account(request)
    if account is None:
        return JSONResponse({"error": "no such account"}, status_code=404)
    try:
        spec = json.loads(await request.body())
        if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
            raise ValueError('expected {"path": "Parent/Name"}')
        folder = account.folders.add(spec["path"])
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"id": folder.id}, status_code=201)


async def _delete_folder(request: Request) -> Response:
    """-> 200 {"deleted": [ids]}: the folder at the path, its subfolders and their people."""
    account = _account(request)
    try:
        if account is None:
            raise KeyError("account")
        deleted = account.folders.delete(request.path_params["path"])
    except KeyError:
        return JSONResponse({"error": "no such account or folder"}, status_code=404)
    return JSONResponse({"deleted": deleted})


def _account(request: Request) -> Account | None:
    state, key = sandbox_state(request), request.path_params["account_id"]
    return state.account(key) or state.account_by_id(key)
