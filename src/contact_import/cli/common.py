"""What every command shares: settings, logging, and turning errors into one-line messages."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from functools import wraps
from typing import ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from contact_import.errors import ConfigError, ContactImportError
from contact_import.logs import configure_logging
from contact_import.runtime import Runtime
from contact_import.settings import Settings
from contact_import.store.db_errors import schema_missing

P = ParamSpec("P")
R = TypeVar("R")

console = Console()
err_console = Console(stderr=True)
SANDBOX_EXTRA = "pip install 'contact-import[sandbox]'"


class ExitCode(IntEnum):
    """What every command exits with (README "CLI", and ``contact-import --help``)."""

    OK = 0
    ERROR = 1  # it could not be done: an unknown job, a refused action, settings, the database
    USAGE = 2  # the command line is wrong: an option, a malformed or ambiguous job id
    NOT_STARTED = 3  # `serve`: the app did not start (what uvicorn.run exits with)


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 error (unknown job, refused action, settings, database); "
    "2 usage (bad option or argument, malformed or ambiguous job id); "
    "3 `serve` could not start."
)


def fail(message: str, code: int = ExitCode.ERROR) -> typer.Exit:
    """Print one line to stderr; the caller raises the returned Exit."""
    # escape: a message may hold brackets ("contact-import[sandbox]") that are not markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def require_sandbox(command: str) -> None:
    """Exit with one line unless the sandbox's optional dependencies are installed.

    A production install has no ``faker``: the commands that run the sandbox call this first,
    and import ``contact_import.sandbox`` only inside themselves, so every other command works.
    """
    if importlib.util.find_spec("faker") is None:
        raise fail(f"`{command}` runs the sandbox, which is not installed: {SANDBOX_EXTRA}")


def friendly_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Known failures become one readable line and a non-zero exit, never a traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ContactImportError as exc:
            raise fail(str(exc)) from None
        except (OperationalError, ProgrammingError) as exc:
            raise fail(database_error_message(exc)) from None

    return wrapper


def database_error_message(exc: DBAPIError) -> str:
    """One line for a database failure; hints at ``db upgrade`` only if tables are missing."""
    if schema_missing(exc):
        return (
            f"the database has no contact-import tables: {_first_line(exc.orig)} "
            "(run `contact-import db upgrade`)"
        )
    if isinstance(exc, OperationalError):
        return f"cannot use the database: {_first_line(exc.orig)}"
    return f"database error: {_first_line(exc.orig)}"


def _first_line(error: BaseException | None) -> str:
    text = str(error or "unknown error").strip().splitlines()
    return text[0] if text else "unknown error"


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]).upper()
        raise ConfigError(f"setting {name}: {first['msg']}") from None


@contextmanager
def runtime(settings: Settings | None = None, *, migrate: bool = False) -> Iterator[Runtime]:
    with Runtime.build(settings or load_settings(), migrate=migrate) as rt:
        yield rt


def setup_logging(level: str) -> None:
    """Log to stderr at ``level``, in the format ``LOG_FORMAT`` names (text or json)."""
    try:
        configure_logging(level, load_settings().log_format)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
