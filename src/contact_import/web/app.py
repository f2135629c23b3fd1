"""``create_app(settings)``: the FastAPI application, with everything built in its lifespan."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import Headers

from contact_import import __version__
from contact_import.errors import DatabaseUnavailable
from contact_import.runner.worker import Worker
from contact_import.runtime import Runtime
from contact_import.settings import Settings
from contact_import.store.db_errors import translate_db_error
from contact_import.web import deps
from contact_import.web.bearer import BearerVerifier, checked_user_id
from contact_import.web.pages import status as status_pages
from contact_import.web.problems import install_problem_handlers
from contact_import.web.routes import connections, contacts, cron, imports, ops
from contact_import.web.supervision import InProcessWorker

__all__ = ["create_app", "lifespan_of"]

log = logging.getLogger("contact_import.web")


def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    run_worker: bool = False,
    on_worker_stopped: Callable[[str], None] | None = None,
    bearer: BearerVerifier | None = None,
    current_user: Callable[..., Any] | None = None,
) -> FastAPI:
    """The API and the status page. ``run_worker`` also imports in this process (`serve`).

    Pass ``runtime`` to share one (tests); otherwise it is built when the app starts. If the
    in-process worker stops on its own, /healthz answers 503 and ``on_worker_stopped`` is
    called with the reason (`serve` exits non-zero then, for its supervisor to restart it).
    ``bearer`` verifies users' JWTs (default: as the settings say, see ``web.bearer``).

    To mount the API in an app of your own (README "Mounting it in a FastAPI app"): pass
    ``current_user``, a FastAPI dependency of that app returning the signed-in user's id
    (it replaces the bearer JWT), set PUBLIC_BASE_URL to where it is mounted, mount the
    returned app there, and enter ``lifespan_of(it)`` in your app's lifespan.
    """
    settings.require_secrets("token_encryption_key", "cron_secret", "jwt_secret")

    holder = _RuntimeHolder(settings, runtime)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = holder.get()
        worker = _start_worker(rt, on_worker_stopped) if run_worker else None
        app.state.in_process_worker = worker
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            holder.close()

    app = FastAPI(
        title="contact-import",
        version=__version__,
        summary="Import address books from Google and Microsoft in background jobs.",
        lifespan=lifespan,
        # Vercel's cron does not follow redirects: no 307 from /path/ to /path, ever.
        redirect_slashes=False,
    )
    app.state.runtime_holder = holder
    app.state.bearer = bearer or BearerVerifier.from_settings(settings)
    if current_user is not None:
        app.dependency_overrides[deps.current_user] = _host_user(current_user)
    app.state.in_process_worker = None
    install_problem_handlers(app)
    _install_outage_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            JsonCORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "x-cron-secret"],
            max_age=600,
        )
    for module in (cron, imports, connections, contacts, ops, status_pages):
        app.include_router(module.router)
    return app


def lifespan_of(app: FastAPI) -> AbstractAsyncContextManager[Any]:
    """What ``app`` (from ``create_app``) does at startup and shutdown, for the lifespan of an
    app that mounts it: Starlette does not run a mounted app's lifespan by itself."""
    return app.router.lifespan_context(app)


def _host_user(dependency: Callable[..., Any]) -> Callable[..., str]:
    """The host app's ``current_user``, with the user id checked as a token's ``sub`` is."""

    # A default, not Annotated[..., Depends(dependency)]: with postponed annotations FastAPI
    # would look ``dependency`` up in the module's globals, where this closure's is not.
    def host_user(user_id: object = Depends(dependency)) -> str:
        return checked_user_id(user_id, source="the signed-in")

    return host_user


def _install_outage_handlers(app: FastAPI) -> None:
    """Any route that meets a database outage answers 503 with Retry-After, not a 500."""

    async def unavailable(_request: Request, _exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"error": "the database is unavailable; try again shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(translate_db_error(exc), DatabaseUnavailable):
            return await unavailable(request, exc)
        raise exc  # not an outage: the catch-all answers 500 and logs the traceback

    app.add_exception_handler(DatabaseUnavailable, unavailable)
    app.add_exception_handler(SQLAlchemyError, database_error)


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, but a refused preflight is JSON ``{"error": ...}`` like every error."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        message = bytes(response.body).decode() or "CORS preflight refused"
        return JSONResponse({"error": message}, status_code=response.status_code)


class _RuntimeHolder:
    """Builds the runtime once, at startup or (serverless hosts that skip the ASGI lifespan)
    on the first request."""

    def __init__(self, settings: Settings, runtime: Runtime | None) -> None:
        self._settings = settings
        self._runtime = runtime
        self._own = runtime is None
        self._lock = threading.Lock()

    def get(self) -> Runtime:
        with self._lock:
            if self._runtime is None:
                self._runtime = Runtime.build(self._settings, migrate=self._settings.dev_mode)
            return self._runtime

    def close(self) -> None:
        with self._lock:
            if self._own and self._runtime is not None:
                self._runtime.close()
                self._runtime = None


def _start_worker(rt: Runtime, on_stopped: Callable[[str], None] | None) -> InProcessWorker:
    worker = Worker(
        rt.jobs,
        rt.importer,
        metrics=rt.metrics,
        concurrency=rt.settings.worker_concurrency,
        poll_seconds=rt.settings.worker_poll_seconds,
        listen_url=rt.listen_url,
        sync_interval=rt.settings.sync_interval_seconds,
        deliverer=rt.deliverer,
        retention=rt.retention,
    )
    supervised = InProcessWorker(worker, on_stopped)
    supervised.start()
    return supervised
