"""Segment out: identify calls carrying the loyalty traits, for changed members.

Members go as `identify` messages keyed by `userId` (the platform customer id; guests
without one are skipped), a few one by one, more in `/batch` requests within Segment's
500 KB. `messageId` is derived from the member and its change mark, so a re-send after a
crash is deduplicated by Segment.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson

from app.db import unit_of_work
from app.integrations.connections import ConnectorRepository, Mark, MemberRow
from app.integrations.klaviyo.client import Sleep
from app.integrations.segment.client import (
    MAX_BATCH_BYTES,
    SegmentAuthError,
    SegmentClient,
    SegmentError,
)
from app.members.service import referral_url
from app.models import ConnectionStatus, ConnectorKind, Shop
from app.models.base import utcnow
from app.state import State

logger = logging.getLogger(__name__)

KIND = ConnectorKind.segment
SKIPPED = "-"


@dataclass(frozen=True, slots=True)
class SegmentOptions:
    single_max: int = 20
    batch_bytes: int = MAX_BATCH_BYTES
    page: int = 1000
    lease_seconds: float = 300.0


@dataclass(slots=True)
class SegmentReport:
    status: str = "ok"  # ok | not_connected | busy | revoked | error
    identified: int = 0
    batches: int = 0
    error: str | None = None


def traits(shop: Shop, row: MemberRow) -> dict[str, Any]:
    member = row.member
    return {
        "email": member.email,
        "stamp_points_balance": member.points_balance,
        "stamp_pending_points": member.pending_points,
        "stamp_lifetime_points": member.lifetime_points,
        "stamp_tier": member.tier_name,
        "stamp_referral_url": referral_url(shop, member),
        "stamp_winback_status": row.winback_status,
    }


def identify(shop: Shop, row: MemberRow) -> dict[str, Any] | None:
    member = row.member
    if not member.customer_id or member.redacted_at is not None:
        return None
    stamp = row.mark.isoformat()
    return {
        "type": "identify",
        "userId": member.customer_id,
        "traits": traits(shop, row),
        "messageId": "stamp-"
        + hashlib.sha256(f"{shop.domain}:{member.id}:{stamp}".encode()).hexdigest()[:32],
        "timestamp": stamp,
        "context": {"library": {"name": "stamp", "version": "0.1"}},
    }


async def _send(
    client: SegmentClient, messages: Sequence[dict[str, Any]], options: SegmentOptions
) -> int:
    """One by one when few, else in batches within the byte limit; how many batches."""
    if len(messages) <= options.single_max:
        for message in messages:
            await client.identify(message)
        return 0
    batches = 0
    chunk: list[dict[str, Any]] = []
    size = 0
    for message in messages:
        message_size = len(orjson.dumps(message)) + 1
        if chunk and size + message_size > options.batch_bytes:
            await client.batch(chunk)
            batches += 1
            chunk, size = [], 0
        chunk.append(message)
        size += message_size
    if chunk:
        await client.batch(chunk)
        batches += 1
    return batches


async def sync_shop(
    state: State,
    shop_id: int,
    *,
    options: SegmentOptions | None = None,
    sleep: Sleep = asyncio.sleep,
) -> SegmentReport:
    """Identify the shop's changed members to Segment, if a write key is connected."""
    options = options or SegmentOptions()
    now = utcnow()
    lease = now + timedelta(seconds=options.lease_seconds)
    async with unit_of_work(state.sessionmaker) as session:
        repo = ConnectorRepository(session, KIND)
        status, connection = await repo.lease_connected(shop_id, now, lease)
        if connection is None or connection.secret_enc is None:
            return SegmentReport(status=status)
        shop = await session.get(Shop, shop_id)  # loaded by the lease check: no query
        assert shop is not None
        secret = connection.secret_enc
    client = SegmentClient(
        http=state.http,
        base_url=state.settings.SEGMENT_API_URL,
        write_key=state.cipher.decrypt(secret),
        sleep=sleep,
    )
    report = SegmentReport()
    values: dict[str, Any] = {}
    try:
        after = 0
        while True:
            async with state.sessionmaker() as session:
                rows = await ConnectorRepository(session, KIND).backlog_page(
                    shop_id, after, options.page
                )
            if not rows:
                break
            after = rows[-1].member.id
            messages: list[dict[str, Any]] = []
            marks: list[Mark] = []
            for row in rows:
                message = identify(shop, row)
                if message is None:
                    marks.append(Mark(row.member.id, row.mark, SKIPPED))
                    continue
                digest = hashlib.sha256(
                    orjson.dumps(message["traits"], option=orjson.OPT_SORT_KEYS)
                ).hexdigest()
                marks.append(Mark(row.member.id, row.mark, digest))
                if digest != row.synced_hash:
                    messages.append(message)
            report.batches += await _send(client, messages, options)
            report.identified += len(messages)
            async with unit_of_work(state.sessionmaker) as session:
                await ConnectorRepository(session, KIND).mark_synced(shop_id, marks)
        values = {"last_success_at": utcnow(), "last_error": None}
    except SegmentAuthError as exc:
        report.status, report.error = "revoked", exc.message
        values = {"status": ConnectionStatus.revoked, "last_error": exc.message}
    except (SegmentError, OSError) as exc:
        message_ = exc.message if isinstance(exc, SegmentError) else f"{type(exc).__name__}: {exc}"
        report.status, report.error = "error", message_
        values = {"last_error": message_[:2000]}
    finally:
        async with unit_of_work(state.sessionmaker) as session:
            repo = ConnectorRepository(session, KIND)
            if values.get("last_error"):
                values["last_error_at"] = utcnow()
            await repo.record(shop_id, **values)
            await repo.release_lease(shop_id, lease)
    logger.info("Segment sync of shop %s: %s", shop_id, report)
    return report


async def shops_due(state: State) -> list[int]:
    due: list[int] = []
    async with state.sessionmaker() as session:
        repo = ConnectorRepository(session, KIND)
        for shop_id in await repo.connected_shop_ids():
            if await repo.backlog_count(shop_id):
                due.append(shop_id)
    return due
