"""JSON log lines carry the request id of the request that wrote them."""

from __future__ import annotations

import json
import logging

from app.observability.logs import JsonFormatter, logging_config, request_id_var
from app.settings import Settings


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("stamp.test", logging.WARNING, __file__, 1, message, None, None)
    made.__dict__.update(extra)
    return made


def test_a_line_written_inside_a_request_carries_its_id() -> None:
    # given a request id in the context
    token = request_id_var.set("abc123")
    try:
        # when something logs with extra fields
        line = json.loads(JsonFormatter().format(record("balance %s", shop_id=7)))
    finally:
        request_id_var.reset(token)

    # then the line is one JSON object with the id and the fields
    del line["ts"]
    assert line == {
        "level": "warning",
        "logger": "stamp.test",
        "message": "balance %s",
        "request_id": "abc123",
        "shop_id": 7,
    }


def test_a_line_outside_any_request_has_no_request_id() -> None:
    line = json.loads(JsonFormatter().format(record("tick")))

    assert "request_id" not in line
    assert line["message"] == "tick"


def test_text_format_is_available_for_a_terminal() -> None:
    config = logging_config(Settings(LOG_FORMAT="text"))

    assert config["formatters"]["stamp"] == {
        "format": "%(asctime)s %(levelname)s %(name)s %(message)s"
    }
    assert config["loggers"]["uvicorn.access"]["handlers"] == []
