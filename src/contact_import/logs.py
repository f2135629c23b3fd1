"""Log lines: ``key=value`` text for people, one JSON object per line for log pipelines.

Either way a record's ``extra=`` fields (``job_id``, counts, …) travel with its message, so
every step of an import can be found by its job id. ``LOG_FORMAT`` chooses (text | json).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["JsonFormatter", "KeyValueFormatter", "LogFormat", "configure_logging", "extra_fields"]

LogFormat = Literal["text", "json"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a call passed as ``extra=``."""
    return {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS}


class KeyValueFormatter(logging.Formatter):
    """The message, then the record's ``extra=`` fields as key=value (job_id=…, contacts=…)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return line + "".join(f" {k}={v}" for k, v in extra_fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the extra fields, and
    ``exc_info`` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # An extra field never overwrites the four above.
        entry |= {k: v for k, v in extra_fields(record).items() if k not in entry}
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """Send every record at ``level`` and above to stderr, as text or JSON lines."""
    name = level.upper()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; one of debug, info, warning, error")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else KeyValueFormatter())
    logging.basicConfig(level=name, handlers=[handler], force=True)
    # httpx logs every request URL (query strings included) at INFO; ours say what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
