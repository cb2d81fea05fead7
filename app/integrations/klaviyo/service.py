"""Connecting Klaviyo, disconnecting it, and what the merchant sees of the sync.

A key is checked with one API call before anything is stored, so a bad key is refused
with Klaviyo's reason and nothing saved. The check and the save are separate steps: the
edge makes the call outside its transaction, then saves inside it.

Reconnecting after a revoked key resumes where the sync stopped (the backlog and event
cursor are kept). Disconnecting forgets what was sent, since the next key may belong to
another Klaviyo account; the next connection starts with a full first sync and sends
only events recorded after it.
"""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto import Cipher
from app.errors import ValidationFailed
from app.integrations.klaviyo.client import KlaviyoClient
from app.integrations.klaviyo.repository import KlaviyoRepository
from app.integrations.klaviyo.schemas import Backlog, KlaviyoStatus
from app.models import Shop
from app.models.base import utcnow
from app.models.integration import ConnectionStatus, IntegrationConnection
from app.queue import enqueue
from app.state import State

KEY_PATTERN = re.compile(r"^pk_[A-Za-z0-9_]{10,200}$")


def normalise_key(api_key: str) -> str:
    key = api_key.strip()
    if not KEY_PATTERN.match(key):
        raise ValidationFailed(
            "A Klaviyo private API key starts with pk_ (Settings > API keys in Klaviyo)",
            code="klaviyo_key_invalid",
        )
    return key


async def check_key(state: State, api_key: str) -> str:
    """The normalised key, once Klaviyo has accepted it; KlaviyoAuthError if it did not."""
    key = normalise_key(api_key)
    client = KlaviyoClient(
        http=state.http,
        base_url=state.settings.KLAVIYO_API_URL,
        api_key=key,
        revision=state.settings.KLAVIYO_REVISION,
        max_attempts=3,
    )
    await client.check_key()
    return key


async def save_key(
    session: AsyncSession, cipher: Cipher, shop: Shop, api_key: str
) -> IntegrationConnection:
    """Store a checked key (encrypted) and start a sync once the transaction commits."""
    from app.integrations.klaviyo.tasks import sync_klaviyo

    repo = KlaviyoRepository(session)
    now = utcnow()
    connection = await repo.connection(shop.id)
    if connection is None:
        connection = await repo.add_connection(shop.id, cipher.encrypt(api_key))
        connection.event_cursor = await repo.max_event_id(shop.id)
    else:
        if connection.status == ConnectionStatus.disconnected:
            connection.event_cursor = await repo.max_event_id(shop.id)
            connection.connected_at = now
        connection.secret_enc = cipher.encrypt(api_key)
        connection.status = ConnectionStatus.connected
        connection.connected_at = connection.connected_at or now
        connection.last_error = None
        connection.last_error_at = None
        connection.lease_until = None
        connection.updated_at = now
    await session.flush()
    enqueue(sync_klaviyo, shop.id)
    return connection


async def disconnect(session: AsyncSession, shop: Shop) -> bool:
    """Forget the key and what was sent; False if Klaviyo was not connected."""
    repo = KlaviyoRepository(session)
    connection = await repo.connection(shop.id)
    if connection is None or connection.status == ConnectionStatus.disconnected:
        return False
    connection.status = ConnectionStatus.disconnected
    connection.secret_enc = None
    connection.lease_until = None
    connection.updated_at = utcnow()
    await repo.forget_profiles(shop.id)
    await session.flush()
    return True


async def status(session: AsyncSession, shop: Shop) -> KlaviyoStatus:
    repo = KlaviyoRepository(session)
    connection = await repo.connection(shop.id)
    if connection is None:
        return KlaviyoStatus(
            status="not_connected",
            connected_at=None,
            last_success_at=None,
            last_error=None,
            last_error_at=None,
            backlog=Backlog(profiles=0, events=0),
        )
    waiting = connection.status != ConnectionStatus.disconnected
    return KlaviyoStatus(
        status=connection.status,
        connected_at=connection.connected_at,
        last_success_at=connection.last_success_at,
        last_error=connection.last_error,
        last_error_at=connection.last_error_at,
        backlog=Backlog(
            profiles=await repo.backlog_count(shop.id) if waiting else 0,
            events=await repo.unsent_event_count(shop.id, connection.event_cursor)
            if waiting
            else 0,
        ),
    )
