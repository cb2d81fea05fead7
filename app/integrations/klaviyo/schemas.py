"""Klaviyo shapes for the headless API (and, later, the admin)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class Backlog(BaseModel):
    profiles: int
    events: int


class KlaviyoStatus(BaseModel):
    """`status`: not_connected, connected, revoked (reconnect to resume) or disconnected."""

    status: str
    connected_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    backlog: Backlog
