"""Opaque id cursors for `limit`/`cursor` pagination (design.md API conventions).

A tag per list keeps a cursor from one list from being accepted by another.
"""

from __future__ import annotations

import base64
import re

from app.errors import AppError

# ASCII digits that fit a BIGINT: `isdigit` also accepts "²", and a longer number overflows
# the database's integer and would fail as a 500 instead of a 400.
ROW_ID = re.compile(r"[0-9]{1,18}")


def encode_cursor(tag: str, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{tag}{row_id}".encode()).decode().rstrip("=")


def decode_cursor(tag: str, cursor: str | None) -> int | None:
    """The id a cursor points past; None for the first page; 400 for a foreign cursor."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:  # not base64, not ASCII, not UTF-8
        raw = ""
    if raw.startswith(tag) and ROW_ID.fullmatch(raw[len(tag) :]):
        return int(raw[len(tag) :])
    raise AppError("The cursor is not one this API returned", code="invalid_cursor")
