"""Structured logs: one JSON object per line, carrying the request id of the request.

The request id lives in a context variable set by the middleware, so every log line a
request causes (ours, SQLAlchemy's, httpx's) carries it without being passed around.
"""

from __future__ import annotations

import logging
import logging.config
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

from app.settings import Settings

request_id_var: ContextVar[str | None] = ContextVar("stamp_request_id", default=None)

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged.
# uvicorn's `color_message` is its message again with terminal colours.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "color_message"}
)


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", "request_id", ...extra}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        # An explicit `extra={"request_id": ...}` (the access line) wins over the context.
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def logging_config(settings: Settings) -> dict[str, Any]:
    """A dictConfig for Stamp and uvicorn alike (`uvicorn.run(log_config=...)`)."""
    formatter = (
        {"()": "app.observability.logs.JsonFormatter"}
        if settings.LOG_FORMAT == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    )
    level = settings.LOG_LEVEL.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"stamp": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "stamp",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # Stamp's own access line replaces uvicorn's (it has the route and request id).
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "huey": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }


def configure_logging(settings: Settings) -> None:
    logging.config.dictConfig(logging_config(settings))
