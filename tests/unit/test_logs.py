"""The log formatters: one JSON object per line, or key=value text, with the ``extra=`` fields."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest

from contact_import.logs import JsonFormatter, KeyValueFormatter, configure_logging, extra_fields

JOB_ID = UUID("6f0c2a4e-8f1d-4a51-9d7c-2b3e4f5a6b7c")


def record(
    message: str = "page imported",
    *args: object,
    level: int = logging.INFO,
    extra: dict[str, object] | None = None,
    exc_info: Any = None,
) -> logging.LogRecord:
    rec = logging.getLogger("contact_import.importer").makeRecord(
        "contact_import.importer", level, __file__, 1, message, args, exc_info, extra=extra
    )
    rec.created = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z
    return rec


def as_json(rec: logging.LogRecord) -> dict[str, object]:
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_a_json_line_has_the_four_fields_and_the_extras() -> None:
    extra = {"job_id": str(JOB_ID), "contacts": 100, "contacts_created": 7, "last_page": False}
    entry = as_json(record(extra=extra))
    assert entry == {
        "ts": "2023-11-14T22:13:20.250+00:00",
        "level": "INFO",
        "logger": "contact_import.importer",
        "message": "page imported",
        **extra,
    }


def test_the_message_is_rendered_with_its_arguments() -> None:
    entry = as_json(record("job %s", "completed", level=logging.WARNING))
    assert (entry["message"], entry["level"]) == ("job completed", "WARNING")


def test_values_json_cannot_encode_are_written_as_text() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5)
    entry = as_json(record(extra={"job_id": JOB_ID, "at": when, "ids": [JOB_ID]}))
    assert entry["job_id"] == str(JOB_ID)
    assert entry["at"] == str(when)
    assert entry["ids"] == [str(JOB_ID)]


def test_unicode_stays_readable() -> None:
    line = JsonFormatter().format(record("job failed: %s", "accès révoqué — reconnectez"))
    assert "accès révoqué — reconnectez" in line


def test_an_extra_field_cannot_overwrite_the_core_fields() -> None:
    entry = as_json(record(extra={"level": "fake", "logger": "fake", "ts": "fake"}))
    assert (entry["level"], entry["logger"]) == ("INFO", "contact_import.importer")
    assert entry["ts"] != "fake"


def test_a_traceback_is_one_field_of_the_same_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        entry = as_json(record("unexpected error", exc_info=sys.exc_info()))
    assert isinstance(entry["exc_info"], str)
    assert "ValueError: boom" in entry["exc_info"]


def test_extra_fields_are_only_what_the_call_added() -> None:
    assert extra_fields(record()) == {}
    assert extra_fields(record(extra={"job_id": "x"})) == {"job_id": "x"}


def test_the_text_format_appends_key_value_pairs() -> None:
    line = KeyValueFormatter().format(record(extra={"job_id": str(JOB_ID), "contacts": 3}))
    assert line.endswith(f"INFO contact_import.importer: page imported job_id={JOB_ID} contacts=3")


@pytest.mark.parametrize(
    ("log_format", "formatter"), [("json", JsonFormatter), ("text", KeyValueFormatter)]
)
def test_configure_logging_installs_the_chosen_formatter(
    log_format: str, formatter: type[logging.Formatter]
) -> None:
    root, httpx = logging.getLogger(), logging.getLogger("httpx")
    saved = root.handlers[:], root.level, httpx.level
    try:
        configure_logging("debug", log_format)  # type: ignore[arg-type]
        (handler,) = root.handlers
        assert isinstance(handler.formatter, formatter)
        assert root.level == logging.DEBUG
        assert httpx.level == logging.WARNING  # it logs request URLs at INFO
    finally:  # give pytest its capture handlers back
        root.handlers[:], root.level, httpx.level = saved


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("verbose")
