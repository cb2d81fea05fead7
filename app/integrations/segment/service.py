"""Connecting Segment: the webhook destination's shared secret (events in), the event
name → custom action map, and optionally a source write key (identify calls out).

Segment's Webhooks destination signs each request with `X-Signature`, the hex HMAC-SHA1
of the raw body under the shared secret; Stamp generates that secret unless the merchant
brings one, and shows it once, with the URL to paste into Segment.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto import Cipher, new_token
from app.errors import ValidationFailed
from app.integrations.connections import ConnectorRepository
from app.integrations.segment.sync import KIND
from app.models import ConnectionStatus, Shop
from app.models.base import utcnow
from app.program.service import config_of, current_version
from app.queue import enqueue
from app.settings import Settings


class SegmentStatus(BaseModel):
    status: str  # not_connected | connected | revoked | disconnected
    webhook_url: str
    events: dict[str, str]
    identify: bool
    connected_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    backlog: int


class SegmentConnected(BaseModel):
    webhook_url: str
    shared_secret: str
    events: dict[str, str]
    identify: bool


def webhook_url(settings: Settings, shop: Shop) -> str:
    """Where the merchant points Segment's Webhooks destination."""
    return settings.external_url(f"/webhooks/segment/{shop.id}")


async def checked_events(
    session: AsyncSession, shop: Shop, events: Mapping[str, str]
) -> dict[str, str]:
    """Each Segment track event name must map to a custom action of the shop's program."""
    version = await current_version(session, shop.id)
    known = {action.key for action in config_of(version).custom_actions} if version else set()
    cleaned: dict[str, str] = {}
    for name, action in events.items():
        if not name.strip() or len(name) > 200:
            raise ValidationFailed("A Segment event name is 1-200 characters", code="event_invalid")
        if action not in known:
            raise ValidationFailed(
                f"No custom action {action!r} in this shop's program "
                f"(known: {', '.join(sorted(known)) or 'none'})",
                code="unknown_custom_action",
            )
        cleaned[name.strip()] = action
    return cleaned


async def connect(
    session: AsyncSession,
    cipher: Cipher,
    settings: Settings,
    shop: Shop,
    events: Mapping[str, str],
    *,
    shared_secret: str | None = None,
    write_key: str | None = None,
) -> SegmentConnected:
    """Save (or replace) the connection; the shared secret is returned this once."""
    from app.integrations.segment.tasks import sync_segment

    mapping = await checked_events(session, shop, events)
    secret = (shared_secret or "").strip() or new_token(24)
    if len(secret) < 16:
        raise ValidationFailed(
            "Use a shared secret of at least 16 characters", code="shared_secret_too_short"
        )
    repo = ConnectorRepository(session, KIND)
    connection = await repo.connection(shop.id) or await repo.add(shop.id)
    if connection.status == ConnectionStatus.disconnected:
        connection.connected_at = utcnow()
    connection.inbound_secret_enc = cipher.encrypt(secret)
    connection.secret_enc = cipher.encrypt(write_key.strip()) if write_key else None
    connection.settings = {"events": mapping}
    connection.status = ConnectionStatus.connected
    connection.last_error = None
    connection.lease_until = None
    connection.updated_at = utcnow()
    await session.flush()
    if write_key:
        enqueue(sync_segment, shop.id)
    return SegmentConnected(
        webhook_url=webhook_url(settings, shop),
        shared_secret=secret,
        events=mapping,
        identify=bool(write_key),
    )


async def disconnect(session: AsyncSession, shop: Shop) -> bool:
    repo = ConnectorRepository(session, KIND)
    connection = await repo.connection(shop.id)
    if connection is None or connection.status == ConnectionStatus.disconnected:
        return False
    connection.status = ConnectionStatus.disconnected
    connection.secret_enc = None
    connection.inbound_secret_enc = None
    connection.updated_at = utcnow()
    await repo.forget(shop.id)
    await session.flush()
    return True


async def status(session: AsyncSession, settings: Settings, shop: Shop) -> SegmentStatus:
    repo = ConnectorRepository(session, KIND)
    connection = await repo.connection(shop.id)
    if connection is None:
        return SegmentStatus(
            status="not_connected",
            webhook_url=webhook_url(settings, shop),
            events={},
            identify=False,
            connected_at=None,
            last_success_at=None,
            last_error=None,
            backlog=0,
        )
    identify = connection.secret_enc is not None
    return SegmentStatus(
        status=connection.status,
        webhook_url=webhook_url(settings, shop),
        events=dict((connection.settings or {}).get("events") or {}),
        identify=identify,
        connected_at=connection.connected_at,
        last_success_at=connection.last_success_at,
        last_error=connection.last_error,
        backlog=await repo.backlog_count(shop.id) if identify else 0,
    )
