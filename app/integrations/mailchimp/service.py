"""Connecting Mailchimp: check the key, choose the audience, prepare the merge fields.

The key is checked and the audience's `STAMP_*` merge fields are created (outside any
transaction) before anything is stored, so a bad key or audience is refused with
Mailchimp's reason and nothing saved. Disconnecting forgets the key and what was sent.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto import Cipher
from app.errors import ValidationFailed
from app.integrations.connections import ConnectorRepository
from app.integrations.mailchimp.client import MailchimpClient
from app.integrations.mailchimp.sync import KIND, MERGE_FIELDS
from app.models import ConnectionStatus, ConnectorConnection, Shop
from app.models.base import utcnow
from app.queue import enqueue
from app.settings import Settings
from app.state import State

KEY_PATTERN = re.compile(r"^[0-9a-f]{32}-([a-z]{2,4}[0-9]{1,3})$")


class MailchimpStatus(BaseModel):
    """`status`: not_connected, connected, revoked (reconnect to resume) or disconnected."""

    status: str
    audience_id: str | None
    add_transactional: bool
    connected_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    backlog: int


def server_of(api_key: str) -> str:
    """The data centre a key belongs to: the part after the dash (`us6`)."""
    match = KEY_PATTERN.match(api_key.strip())
    if match is None:
        raise ValidationFailed(
            "A Mailchimp API key looks like 0123...cdef-us6 (Profile > Extras > API keys)",
            code="mailchimp_key_invalid",
        )
    return match.group(1)


def api_base(settings: Settings, api_key: str) -> str:
    return settings.MAILCHIMP_API_URL.format(dc=server_of(api_key)).rstrip("/")


def client_for(state: State, api_key: str) -> MailchimpClient:
    return MailchimpClient(
        http=state.http,
        base_url=api_base(state.settings, api_key),
        api_key=api_key.strip(),
        max_attempts=3,
    )


async def audiences(state: State, api_key: str) -> list[dict[str, str]]:
    """The account's audiences (id and name), for the merchant to choose one."""
    return await client_for(state, api_key).audiences()


async def prepare(state: State, api_key: str, audience_id: str) -> str:
    """Check the key and audience, create missing `STAMP_*` merge fields; the clean key."""
    client = client_for(state, api_key)
    await client.ping()
    await client.audience(audience_id)
    existing = await client.merge_field_tags(audience_id)
    for merge_field in MERGE_FIELDS:
        if merge_field["tag"] not in existing:
            await client.create_merge_field(audience_id, merge_field)
    return api_key.strip()


async def save(
    session: AsyncSession,
    cipher: Cipher,
    shop: Shop,
    api_key: str,
    audience_id: str,
    *,
    add_transactional: bool = False,
) -> ConnectorConnection:
    """Store a prepared key (encrypted) and start a sync once the transaction commits."""
    from app.integrations.mailchimp.tasks import sync_mailchimp

    repo = ConnectorRepository(session, KIND)
    connection = await repo.connection(shop.id) or await repo.add(shop.id)
    previous = dict(connection.settings or {})
    if connection.status == ConnectionStatus.disconnected or previous.get("audience_id") not in (
        None,
        audience_id,
    ):
        await repo.forget(shop.id)
        connection.connected_at = utcnow()
    connection.secret_enc = cipher.encrypt(api_key)
    connection.settings = {
        "server": server_of(api_key),
        "audience_id": audience_id,
        "add_transactional": add_transactional,
    }
    connection.status = ConnectionStatus.connected
    connection.last_error = None
    connection.last_error_at = None
    connection.lease_until = None
    connection.updated_at = utcnow()
    await session.flush()
    enqueue(sync_mailchimp, shop.id)
    return connection


async def disconnect(session: AsyncSession, shop: Shop) -> bool:
    repo = ConnectorRepository(session, KIND)
    connection = await repo.connection(shop.id)
    if connection is None or connection.status == ConnectionStatus.disconnected:
        return False
    connection.status = ConnectionStatus.disconnected
    connection.secret_enc = None
    connection.lease_until = None
    connection.updated_at = utcnow()
    await repo.forget(shop.id)
    await session.flush()
    return True


async def status(session: AsyncSession, shop: Shop) -> MailchimpStatus:
    repo = ConnectorRepository(session, KIND)
    connection = await repo.connection(shop.id)
    if connection is None:
        return MailchimpStatus(
            status="not_connected",
            audience_id=None,
            add_transactional=False,
            connected_at=None,
            last_success_at=None,
            last_error=None,
            backlog=0,
        )
    settings = dict(connection.settings or {})
    live = connection.status != ConnectionStatus.disconnected
    return MailchimpStatus(
        status=connection.status,
        audience_id=settings.get("audience_id"),
        add_transactional=bool(settings.get("add_transactional")),
        connected_at=connection.connected_at,
        last_success_at=connection.last_success_at,
        last_error=connection.last_error,
        backlog=await repo.backlog_count(shop.id) if live else 0,
    )
