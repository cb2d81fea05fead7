"""The Mailchimp sync: changed members → merge fields and tags on the chosen audience.

Consent rule: Stamp never subscribes anyone who has not consented. A member whose
Shopify email marketing state is `subscribed` is upserted (`PUT`, `status_if_new:
subscribed`); anyone else is only updated if already in the audience (`PATCH`, a 404
means "not there" and is left alone), unless the merchant opted in to adding them as
`transactional` contacts (which receive no campaigns). An existing contact's status is
never changed, except to `unsubscribed` when the customer withdrew consent in Shopify.
Upserts are keyed by the subscriber hash, MD5 of the lower-cased email.

A few changes go one request at a time; a larger backlog (the first sync, an import)
goes as batch operations (`POST /batches`), polled until finished.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

from app.db import unit_of_work
from app.integrations.connections import ConnectorRepository, Mark, MemberRow
from app.integrations.klaviyo.client import Sleep
from app.integrations.mailchimp.client import (
    MailchimpAuthError,
    MailchimpClient,
    MailchimpError,
    MailchimpRejected,
)
from app.members.service import referral_url
from app.models import ConnectionStatus, ConnectorKind, Shop
from app.models.base import utcnow
from app.program.service import config_of, current_version
from app.state import State

logger = logging.getLogger(__name__)

KIND = ConnectorKind.mailchimp
MERGE_FIELDS: tuple[dict[str, Any], ...] = (
    {"tag": "STAMP_PTS", "name": "Stamp points balance", "type": "number"},
    {"tag": "STAMP_TIER", "name": "Stamp VIP tier", "type": "text"},
    {"tag": "STAMP_REF", "name": "Stamp referral URL", "type": "url"},
    {"tag": "STAMP_WB", "name": "Stamp win-back status", "type": "text"},
)
WINBACK_STATUSES = ("active", "at_risk", "lapsed", "one_time_lapsing")
TIER_TAG = "Stamp tier: {}"
WINBACK_TAG = "Stamp win-back: {}"
NO_EMAIL = "-"
ABSENT = "absent"  # not in the audience and not ours to add; tried again when it changes


@dataclass(frozen=True, slots=True)
class MailchimpOptions:
    single_max: int = 50  # a larger backlog goes as batch operations
    operations_per_batch: int = 1000
    poll_first_seconds: float = 2.0
    poll_max_seconds: float = 30.0
    batch_timeout_seconds: float = 3600.0
    lease_seconds: float = 600.0


@dataclass(slots=True)
class MailchimpReport:
    status: str = "ok"  # ok | not_connected | busy | revoked | error
    upserted: int = 0
    updated: int = 0
    absent: int = 0
    batches: int = 0
    errored_operations: int = 0
    error: str | None = None
    rejections: list[str] = field(default_factory=list)


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def merge_fields(shop: Shop, row: MemberRow) -> dict[str, Any]:
    member = row.member
    return {
        "STAMP_PTS": member.points_balance,
        "STAMP_TIER": member.tier_name or "",
        "STAMP_REF": referral_url(shop, member) or "",
        "STAMP_WB": row.winback_status or "",
    }


def tags(row: MemberRow, tier_names: Sequence[str]) -> list[dict[str, str]]:
    """The member's tier and win-back tags active, every other Stamp tag inactive."""
    found = [
        {
            "name": TIER_TAG.format(name),
            "status": "active" if name == row.member.tier_name else "inactive",
        }
        for name in tier_names
    ]
    found += [
        {
            "name": WINBACK_TAG.format(status),
            "status": "active" if status == row.winback_status else "inactive",
        }
        for status in WINBACK_STATUSES
    ]
    return found


@dataclass(frozen=True, slots=True)
class Planned:
    """What one member's sync sends: an upsert or an update, then its tags."""

    member_id: int
    email: str
    method: str  # PUT (upsert) | PATCH (existing contacts only)
    body: dict[str, Any]
    tags: list[dict[str, str]]
    mark: Mark


def plan(
    shop: Shop, row: MemberRow, tier_names: Sequence[str], add_transactional: bool
) -> Planned | Mark:
    """The request for one member, or the mark to store when there is nothing to send."""
    member = row.member
    if not member.email or member.redacted_at is not None:
        return Mark(member.id, row.mark, NO_EMAIL)
    body: dict[str, Any]
    if row.consent == "subscribed":
        method, body = "PUT", {"email_address": member.email, "status_if_new": "subscribed"}
    elif row.consent == "unsubscribed":  # consent withdrawn in Shopify: withdraw it here too
        method, body = "PATCH", {"status": "unsubscribed"}
    elif add_transactional:
        method, body = "PUT", {"email_address": member.email, "status_if_new": "transactional"}
    else:
        method, body = "PATCH", {}
    body["merge_fields"] = merge_fields(shop, row)
    member_tags = tags(row, tier_names)
    digest = hashlib.sha256(
        orjson.dumps([method, body, member_tags], option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    mark = Mark(member.id, row.mark, digest)
    if digest == row.synced_hash:
        return mark
    return Planned(member.id, member.email, method, body, member_tags, mark)


def operations(list_id: str, planned: Planned) -> list[dict[str, Any]]:
    """Batch operations for one member: `body` is a JSON string, as Mailchimp requires."""
    path = f"/lists/{list_id}/members/{subscriber_hash(planned.email)}"
    return [
        {
            "method": planned.method,
            "path": path,
            "body": orjson.dumps(planned.body).decode(),
            "operation_id": f"member-{planned.member_id}",
        },
        {
            "method": "POST",
            "path": path + "/tags",
            "body": orjson.dumps({"tags": planned.tags}).decode(),
            "operation_id": f"member-{planned.member_id}-tags",
        },
    ]


@dataclass(slots=True)
class Run:
    state: State
    shop: Shop
    client: MailchimpClient
    list_id: str
    add_transactional: bool
    tier_names: list[str]
    options: MailchimpOptions
    sleep: Sleep
    report: MailchimpReport = field(default_factory=MailchimpReport)

    async def page(self, after: int, limit: int) -> list[MemberRow]:
        async with self.state.sessionmaker() as session:
            return await ConnectorRepository(session, KIND).backlog_page(self.shop.id, after, limit)

    async def store(self, marks: Sequence[Mark]) -> None:
        if marks:
            async with unit_of_work(self.state.sessionmaker) as session:
                await ConnectorRepository(session, KIND).mark_synced(self.shop.id, marks)

    def split(self, rows: Sequence[MemberRow]) -> tuple[list[Planned], list[Mark]]:
        planned: list[Planned] = []
        quiet: list[Mark] = []
        for row in rows:
            result = plan(self.shop, row, self.tier_names, self.add_transactional)
            if isinstance(result, Planned):
                planned.append(result)
            else:
                quiet.append(result)
        return planned, quiet

    async def run(self) -> None:
        async with self.state.sessionmaker() as session:
            backlog = await ConnectorRepository(session, KIND).backlog_count(self.shop.id)
        if backlog == 0:
            return
        if backlog <= self.options.single_max:
            await self.one_by_one()
        else:
            await self.in_batches()

    async def one_by_one(self) -> None:
        after = 0
        while rows := await self.page(after, self.options.single_max):
            after = rows[-1].member.id
            planned, marks = self.split(rows)
            for item in planned:
                marks.append(await self.send_one(item))
            await self.store(marks)

    async def send_one(self, item: Planned) -> Mark:
        member_hash = subscriber_hash(item.email)
        try:
            if item.method == "PUT":
                await self.client.put_member(self.list_id, member_hash, item.body)
                self.report.upserted += 1
            elif await self.client.patch_member(self.list_id, member_hash, item.body):
                self.report.updated += 1
            else:
                self.report.absent += 1
                return Mark(item.member_id, item.mark.mark, ABSENT)
            await self.client.update_tags(self.list_id, member_hash, item.tags)
        except MailchimpRejected as exc:
            self.reject(f"{item.email}: {exc.message}")
        return item.mark

    async def in_batches(self) -> None:
        after = 0
        per_batch = max(self.options.operations_per_batch // 2, 1)
        while rows := await self.page(after, per_batch):
            after = rows[-1].member.id
            planned, quiet = self.split(rows)
            await self.store(quiet)
            if not planned:
                continue
            ops = [op for item in planned for op in operations(self.list_id, item)]
            batch_id = await self.client.start_batch(ops)
            self.report.batches += 1
            status = await self.wait_for(batch_id)
            if not status.done:
                raise MailchimpError(
                    f"Mailchimp batch {batch_id} did not finish ({status.status}); "
                    "its members will be sent again"
                )
            self.report.errored_operations += status.errored
            absent = await self.failures(status)
            marks = []
            for item in planned:
                if item.method == "PATCH" and item.member_id in absent:
                    self.report.absent += 1
                    marks.append(Mark(item.member_id, item.mark.mark, ABSENT))
                    continue
                if item.method == "PUT":
                    self.report.upserted += 1
                else:
                    self.report.updated += 1
                marks.append(item.mark)
            await self.store(marks)

    async def failures(self, status: Any) -> set[int]:
        """Members whose PATCH found no contact (404, expected for the non-consenting);
        other failed operations are reported as rejections."""
        if not status.errored or not status.response_body_url:
            return set()
        absent: set[int] = set()
        for result in await self.client.batch_results(status.response_body_url):
            code = int(result.get("status_code") or 0)
            operation = str(result.get("operation_id") or "")
            if code < 400 or not operation.startswith("member-"):
                continue
            member_id = operation.removeprefix("member-").removesuffix("-tags")
            if code == 404:
                if member_id.isdigit() and not operation.endswith("-tags"):
                    absent.add(int(member_id))
                continue
            self.reject(f"member {member_id}: HTTP {code}: {str(result.get('response'))[:200]}")
        return absent

    async def wait_for(self, batch_id: str) -> Any:
        waited = 0.0
        interval = self.options.poll_first_seconds
        while True:
            status = await self.client.batch_status(batch_id)
            if status.done or waited >= self.options.batch_timeout_seconds:
                return status
            await self.sleep(interval)
            waited += interval
            interval = min(interval * 1.5, self.options.poll_max_seconds)

    def reject(self, message: str) -> None:
        if len(self.report.rejections) < 20:
            self.report.rejections.append(message)


async def sync_shop(
    state: State,
    shop_id: int,
    *,
    options: MailchimpOptions | None = None,
    sleep: Sleep = asyncio.sleep,
    client: MailchimpClient | None = None,
) -> MailchimpReport:
    """Send the shop's changed members to its Mailchimp audience; record how it went."""
    from app.integrations.mailchimp.service import api_base

    options = options or MailchimpOptions()
    now = utcnow()
    lease = now + timedelta(seconds=options.lease_seconds)
    async with unit_of_work(state.sessionmaker) as session:
        repo = ConnectorRepository(session, KIND)
        status, connection = await repo.lease_connected(shop_id, now, lease)
        if connection is None or connection.secret_enc is None:
            return MailchimpReport(status=status)
        shop = await session.get(Shop, shop_id)  # loaded by the lease check: no query
        assert shop is not None
        settings: Mapping[str, Any] = dict(connection.settings or {})
        secret = connection.secret_enc
        version = await current_version(session, shop_id)
        tier_names = [level.name for level in config_of(version).tiers.levels] if version else []
    key = state.cipher.decrypt(secret)
    client = client or MailchimpClient(
        http=state.http, base_url=api_base(state.settings, key), api_key=key, sleep=sleep
    )
    run = Run(
        state,
        shop,
        client,
        str(settings["audience_id"]),
        bool(settings.get("add_transactional")),
        tier_names,
        options,
        sleep,
    )
    values: dict[str, Any] = {}
    try:
        await run.run()
    except MailchimpAuthError as exc:
        run.report.status, run.report.error = "revoked", exc.message
        values = {"status": ConnectionStatus.revoked, "last_error": exc.message}
    except (MailchimpError, OSError) as exc:
        message = exc.message if isinstance(exc, MailchimpError) else f"{type(exc).__name__}: {exc}"
        run.report.status, run.report.error = "error", message
        values = {"last_error": message[:2000]}
    else:
        values = {
            "last_success_at": utcnow(),
            "last_error": "; ".join(run.report.rejections) or None,
        }
    finally:
        async with unit_of_work(state.sessionmaker) as session:
            repo = ConnectorRepository(session, KIND)
            if values.get("last_error"):
                values["last_error_at"] = utcnow()
            await repo.record(shop_id, **values)
            await repo.release_lease(shop_id, lease)
    logger.info("Mailchimp sync of shop %s: %s", shop_id, run.report)
    return run.report


async def shops_due(state: State) -> list[int]:
    due: list[int] = []
    async with state.sessionmaker() as session:
        repo = ConnectorRepository(session, KIND)
        for shop_id in await repo.connected_shop_ids():
            if await repo.backlog_count(shop_id):
                due.append(shop_id)
    return due
