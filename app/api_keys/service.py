"""Headless API keys: shown once, stored as a SHA-256 hash, revocable."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.api_keys.repository import ApiKeyRepository
from app.crypto import sha256_hex
from app.errors import NotFound, Unauthorized
from app.models import ApiKey, Shop, ShopStatus

KEY_PREFIX = "stamp_sk_"


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: ApiKey
    plaintext: str


async def create_key(session: AsyncSession, shop: Shop, name: str = "default") -> CreatedKey:
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        shop_id=shop.id,
        name=name,
        prefix=plaintext[: len(KEY_PREFIX) + 6],
        key_hash=sha256_hex(plaintext),
    )
    await ApiKeyRepository(session).add(key)
    return CreatedKey(key=key, plaintext=plaintext)


async def authenticate(session: AsyncSession, plaintext: str) -> Shop:
    """The shop a key belongs to; the same refusal whatever is wrong, so keys can't be probed."""
    if not plaintext.startswith(KEY_PREFIX):
        raise Unauthorized("Invalid API key", code="invalid_api_key")
    found = await ApiKeyRepository(session).active_by_hash(sha256_hex(plaintext))
    if found is None or found[1].status != ShopStatus.installed:
        raise Unauthorized("Invalid API key", code="invalid_api_key")
    return found[1]


async def list_keys(session: AsyncSession, shop: Shop) -> list[ApiKey]:
    return await ApiKeyRepository(session).list_for_shop(shop.id)


async def revoke_key(session: AsyncSession, shop: Shop, key_id: int) -> None:
    if not await ApiKeyRepository(session).revoke(shop.id, key_id):
        raise NotFound(f"No active API key {key_id} for {shop.domain}")
