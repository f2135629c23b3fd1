"""Every error the API answers is JSON ``{"error": ...}`` with the right status code.

Our exception tree maps onto statuses here, in one place; anything unexpected is a 500 that
says nothing about the internals (and is logged with its traceback).
"""

from __future__ import annotations

import logging
from typing import ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from contact_import.errors import (
    ConfigError,
    ContactImportError,
    InvalidOAuthState,
    JobNotFound,
    JobStateConflict,
    ProviderError,
    RequestRejected,
)

__all__ = ["ApiProblem", "NotFound", "Unauthorized", "install_problem_handlers"]

log = logging.getLogger("contact_import.web")


class ApiProblem(Exception):
    status_code = 400
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(ApiProblem):
    status_code = 401


class NotFound(ApiProblem):
    status_code = 404


_STATUS: list[tuple[type[ContactImportError], int]] = [
    (JobNotFound, 404),
    (JobStateConflict, 409),
    (InvalidOAuthState, 400),
    (RequestRejected, 400),
    (ConfigError, 503),  # e.g. a provider whose OAuth client is not configured
    (ProviderError, 502),  # the provider failed us while the user waited (code exchange)
]


def _json(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _problem(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiProblem)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else exc.headers
    return _json(exc.status_code, exc.message, headers or None)


async def _domain(_request: Request, exc: Exception) -> JSONResponse:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return _json(status, str(exc))
    return _json(400, str(exc))


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return _json(exc.status_code, str(exc.detail), getattr(exc, "headers", None))


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
    message = f"{where}: {first.get('msg', 'invalid')}" if where else "invalid request"
    return _json(422, message)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return _json(500, "internal error")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiProblem, _problem)
    app.add_exception_handler(ContactImportError, _domain)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Exception, _unexpected)
