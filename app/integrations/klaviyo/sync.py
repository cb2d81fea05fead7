"""The Klaviyo sync engine: coalesce changed members and unsent events, send, remember.

A run holds a lease on the shop (so two workers never send one backlog), reads in short
transactions, calls Klaviyo outside any transaction, and writes what Klaviyo accepted
afterwards. A crash between sending and writing only means a member or event is sent
again: profiles are upserts, and events carry a stable `unique_id` Klaviyo dedupes on.

- Profiles: a few changes go one by one through `/api/profile-import` (synchronous, a
  409 `duplicate_profile` is patched onto the existing profile); a large backlog (a
  shop's first sync, an import) goes as bulk import jobs of up to 10,000 profiles and
  5 MB, polled until complete. Profiles go first, so flows triggered by the events below
  read fresh properties.
- Events: the member-event outbox above the shop's cursor, one by one when there are a
  few, else as bulk jobs of up to 1,000 events grouped by profile.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from app.db import unit_of_work
from app.integrations.klaviyo.client import (
    JobStatus,
    KlaviyoAuthError,
    KlaviyoClient,
    KlaviyoError,
    KlaviyoRejected,
    Sleep,
)
from app.integrations.klaviyo.repository import (
    BacklogRow,
    EventRow,
    KlaviyoRepository,
    SyncMark,
)
from app.members.service import referral_url
from app.models import Member, Shop, ShopStatus
from app.models.base import utcnow
from app.models.integration import ConnectionStatus
from app.state import State

logger = logging.getLogger(__name__)

POINTS_BALANCE = "Stamp Points Balance"
PENDING_POINTS = "Stamp Pending Points"
LIFETIME_POINTS = "Stamp Lifetime Points"
VIP_TIER = "Stamp VIP Tier"
REFERRAL_URL = "Stamp Referral URL"
POINTS_EXPIRING = "Stamp Points Expiring"
POINTS_EXPIRY_DATE = "Stamp Points Expiry Date"
WINBACK_STATUS = "Stamp Win-back Status"
WINBACK_SCORE = "Stamp Win-back Score"
PROFILE_PROPERTIES = (
    POINTS_BALANCE,
    PENDING_POINTS,
    LIFETIME_POINTS,
    VIP_TIER,
    REFERRAL_URL,
    POINTS_EXPIRING,
    POINTS_EXPIRY_DATE,
    WINBACK_STATUS,
    WINBACK_SCORE,
)

MAX_PROFILES_PER_JOB = 10_000
MAX_EVENTS_PER_JOB = 1_000
MAX_JOB_BYTES = 5_000_000 - 10_000  # Klaviyo's 5 MB, less room for the envelope
NO_PROFILE = "-"  # the hash stored for a member Klaviyo cannot identify (no email)
REJECTED = "rejected"  # the hash stored for a profile Klaviyo refused until it changes again


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """Knobs with production defaults; tests and the benchmark shrink them."""

    single_profiles_max: int = 50  # a larger backlog goes through bulk import jobs
    single_events_max: int = 10  # more unsent events than this go as bulk jobs
    profiles_per_job: int = MAX_PROFILES_PER_JOB
    events_per_job: int = MAX_EVENTS_PER_JOB
    job_bytes: int = MAX_JOB_BYTES
    pending_jobs_max: int = 20  # submitted import jobs awaited before reading more members
    poll_first_seconds: float = 1.0
    poll_max_seconds: float = 10.0
    job_timeout_seconds: float = 1800.0
    lease_seconds: float = 300.0
    # PostgreSQL may commit event ids out of order; the cursor passes only events older
    # than this, so a slow transaction's event below the cursor is never skipped.
    event_settle_seconds: float = 3600.0


@dataclass(slots=True)
class SyncReport:
    status: str = "ok"  # ok | not_connected | busy | revoked | error
    profiles_sent: int = 0
    profiles_unchanged: int = 0
    rejected: int = 0
    events_sent: int = 0
    jobs: int = 0
    requests: int = 0
    error: str | None = None
    rejections: list[str] = field(default_factory=list)


# --- what is sent ---------------------------------------------------------------------------


def profile_properties(
    shop: Shop,
    member: Member,
    winback_status: str | None = None,
    winback_score: float | None = None,
) -> dict[str, Any]:
    """The loyalty properties, named as merchants know them; None means "remove"."""
    expiring = member.expiring_points if member.expiring_at is not None else 0
    return {
        POINTS_BALANCE: member.points_balance,
        PENDING_POINTS: member.pending_points,
        LIFETIME_POINTS: member.lifetime_points,
        VIP_TIER: member.tier_name,
        REFERRAL_URL: referral_url(shop, member),
        POINTS_EXPIRING: expiring,
        POINTS_EXPIRY_DATE: member.expiring_at.isoformat() if member.expiring_at else None,
        WINBACK_STATUS: winback_status,
        WINBACK_SCORE: round(winback_score, 4) if winback_score is not None else None,
    }


def profile_resource(email: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON:API profile; properties without a value are unset rather than sent as null."""
    resource: dict[str, Any] = {
        "type": "profile",
        "attributes": {
            "email": email,
            "properties": {k: v for k, v in properties.items() if v is not None},
        },
    }
    unset = [name for name, value in properties.items() if value is None]
    if unset:
        resource["meta"] = {"patch_properties": {"unset": unset}}
    return resource


def profile_hash(email: str, properties: Mapping[str, Any]) -> str:
    payload = orjson.dumps({"email": email, "properties": properties}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()


def event_unique_id(shop: Shop, event: EventRow) -> str:
    """Stable across re-sends and distinct across shops sharing one Klaviyo account."""
    return f"{shop.domain}:{event.unique_id}"


def event_resource(shop: Shop, event: EventRow, *, with_profile: bool) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "properties": {k: v for k, v in event.properties.items() if v is not None},
        "metric": {"data": {"type": "metric", "attributes": {"name": event.name}}},
        "time": event.occurred_at.replace(microsecond=0).isoformat(),
        "unique_id": event_unique_id(shop, event),
    }
    if with_profile:
        attributes["profile"] = {"data": {"type": "profile", "attributes": {"email": event.email}}}
    return {"type": "event", "attributes": attributes}


def event_groups(shop: Shop, events: Sequence[EventRow]) -> list[dict[str, Any]]:
    """Bulk-create items: one per profile, its events in outbox order."""
    by_email: dict[str, list[EventRow]] = defaultdict(list)
    for event in events:
        assert event.email is not None
        by_email[event.email].append(event)
    return [
        {
            "type": "event-bulk-create",
            "attributes": {
                "profile": {"data": {"type": "profile", "attributes": {"email": email}}},
                "events": {"data": [event_resource(shop, e, with_profile=False) for e in grouped]},
            },
        }
        for email, grouped in by_email.items()
    ]


@dataclass(slots=True)
class Outgoing:
    """One profile ready to send, with the mark to store once Klaviyo has it."""

    member_id: int
    email: str
    resource: dict[str, Any]
    mark: SyncMark
    size: int = 0


def chunks(
    profiles: Sequence[Outgoing], max_count: int, max_bytes: int
) -> Iterator[list[Outgoing]]:
    """Consecutive chunks within both the profile count and the byte budget of one job."""
    chunk: list[Outgoing] = []
    size = 0
    for profile in profiles:
        profile.size = profile.size or len(orjson.dumps(profile.resource)) + 1
        if chunk and (len(chunk) >= max_count or size + profile.size > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(profile)
        size += profile.size
    if chunk:
        yield chunk


# --- a run ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    state: State
    shop: Shop
    client: KlaviyoClient
    options: SyncOptions
    lease: datetime
    sleep: Sleep
    report: SyncReport = field(default_factory=SyncReport)

    async def renew(self) -> None:
        """Extend the lease; a run that lost it stops (another worker took the shop over)."""
        until = utcnow() + timedelta(seconds=self.options.lease_seconds)
        async with unit_of_work(self.state.sessionmaker) as session:
            renewed = await KlaviyoRepository(session).renew_lease(self.shop.id, self.lease, until)
        if not renewed:
            raise LeaseLost(f"shop {self.shop.id}'s Klaviyo sync was taken over")
        self.lease = until

    async def write_marks(self, marks: Sequence[SyncMark]) -> None:
        if marks:
            async with unit_of_work(self.state.sessionmaker) as session:
                await KlaviyoRepository(session).mark_synced(self.shop.id, marks)

    def prepare(self, rows: Sequence[BacklogRow]) -> tuple[list[Outgoing], list[SyncMark]]:
        """Profiles to send, and marks to store at once for those with nothing to send."""
        outgoing: list[Outgoing] = []
        quiet: list[SyncMark] = []
        for row in rows:
            member = row.member
            if not member.email or member.redacted_at is not None:
                quiet.append(SyncMark(member.id, row.mark, NO_PROFILE))
                continue
            properties = profile_properties(
                self.shop, member, row.winback_status, row.winback_score
            )
            digest = profile_hash(member.email, properties)
            if digest == row.synced_hash:
                quiet.append(SyncMark(member.id, row.mark, digest))
                self.report.profiles_unchanged += 1
                continue
            outgoing.append(
                Outgoing(
                    member.id,
                    member.email,
                    profile_resource(member.email, properties),
                    SyncMark(member.id, row.mark, digest),
                )
            )
        return outgoing, quiet

    async def backlog(self, after: int, limit: int) -> list[BacklogRow]:
        async with self.state.sessionmaker() as session:
            return await KlaviyoRepository(session).backlog_page(self.shop.id, after, limit)

    async def profiles(self) -> None:
        async with self.state.sessionmaker() as session:
            backlog = await KlaviyoRepository(session).backlog_count(self.shop.id)
        if backlog == 0:
            return
        if backlog <= self.options.single_profiles_max:
            await self.profiles_one_by_one()
        else:
            await self.profiles_in_bulk()

    async def profiles_one_by_one(self) -> None:
        after = 0
        while rows := await self.backlog(after, self.options.single_profiles_max):
            after = rows[-1].member.id
            outgoing, marks = self.prepare(rows)
            for profile in outgoing:
                try:
                    await self.client.import_profile(profile.resource)
                    marks.append(profile.mark)
                    self.report.profiles_sent += 1
                except KlaviyoRejected as exc:
                    marks.append(SyncMark(profile.member_id, profile.mark.mark, REJECTED))
                    self.reject(f"{profile.email}: {exc.message}")
            await self.write_marks(marks)
            await self.renew()

    async def profiles_in_bulk(self) -> None:
        after = 0
        pending: list[tuple[str, list[Outgoing]]] = []
        while rows := await self.backlog(after, self.options.profiles_per_job):
            after = rows[-1].member.id
            outgoing, quiet = self.prepare(rows)
            await self.write_marks(quiet)
            for chunk in chunks(outgoing, self.options.profiles_per_job, self.options.job_bytes):
                await self.submit(chunk, pending)
            await self.renew()
            while len(pending) >= self.options.pending_jobs_max:
                await self.finish_job(*pending.pop(0))
        while pending:
            await self.finish_job(*pending.pop(0))

    async def submit(
        self, chunk: list[Outgoing], pending: list[tuple[str, list[Outgoing]]]
    ) -> None:
        """Start an import job; a refused chunk is halved until the bad profile stands alone."""
        try:
            job_id = await self.client.bulk_import_profiles([p.resource for p in chunk])
        except KlaviyoRejected as exc:
            if len(chunk) == 1:
                await self.write_marks([SyncMark(chunk[0].member_id, chunk[0].mark.mark, REJECTED)])
                self.reject(f"{chunk[0].email}: {exc.message}")
                return
            half = len(chunk) // 2
            await self.submit(chunk[:half], pending)
            await self.submit(chunk[half:], pending)
            return
        self.report.jobs += 1
        pending.append((job_id, chunk))

    async def finish_job(self, job_id: str, chunk: list[Outgoing]) -> None:
        """Poll the job until Klaviyo is done, then store the marks of what it imported."""
        status = await self.wait_for(job_id)
        if status.status != "complete":
            raise KlaviyoError(
                f"Klaviyo {status.status or 'never finished'} profile import job {job_id}; "
                "its profiles will be sent again"
            )
        rejected: set[str] = set()
        if status.failed:
            for error in await self.client.import_errors(job_id):
                email, detail = _import_error(error)
                if email:
                    rejected.add(email.lower())
                self.reject(f"{email or 'a profile'}: {detail}")
        marks = [
            SyncMark(p.member_id, p.mark.mark, REJECTED) if p.email.lower() in rejected else p.mark
            for p in chunk
        ]
        self.report.profiles_sent += sum(mark.hash != REJECTED for mark in marks)
        await self.write_marks(marks)

    async def wait_for(self, job_id: str) -> JobStatus:
        waited = 0.0
        interval = self.options.poll_first_seconds
        while True:
            status = await self.client.profile_import_job(job_id)
            if status.done or waited >= self.options.job_timeout_seconds:
                return status
            await self.sleep(interval)
            waited += interval
            interval = min(interval * 1.5, self.options.poll_max_seconds)
            await self.renew()

    async def events(self) -> None:
        cursor = await self.cursor()
        while True:
            async with self.state.sessionmaker() as session:
                events = await KlaviyoRepository(session).unsent_events(
                    self.shop.id, cursor, self.options.events_per_job
                )
            if not events:
                break
            await self.send_events([event for event in events if event.email])
            async with unit_of_work(self.state.sessionmaker) as session:
                await KlaviyoRepository(session).mark_events_sent(
                    self.shop.id, [event.id for event in events]
                )
            await self.renew()
        settled_before = utcnow() - timedelta(seconds=self.options.event_settle_seconds)
        async with unit_of_work(self.state.sessionmaker) as session:
            await KlaviyoRepository(session).advance_cursor(self.shop.id, cursor, settled_before)

    async def send_events(self, events: Sequence[EventRow]) -> None:
        """A few events one by one, more as bulk jobs within the count and byte limits."""
        if len(events) <= self.options.single_events_max:
            await self.send_each(events)
            return
        batch: list[EventRow] = []
        size = 0
        for event in events:
            event_size = len(orjson.dumps(event_resource(self.shop, event, with_profile=True)))
            if batch and size + event_size > self.options.job_bytes:
                await self.send_event_batch(batch)
                batch, size = [], 0
            batch.append(event)
            size += event_size
        if batch:
            await self.send_event_batch(batch)

    async def send_each(self, events: Sequence[EventRow]) -> None:
        for event in events:
            try:
                await self.client.create_event(event_resource(self.shop, event, with_profile=True))
                self.report.events_sent += 1
            except KlaviyoRejected as exc:
                self.reject(f"event {event.unique_id}: {exc.message}")

    async def send_event_batch(self, batch: list[EventRow]) -> None:
        """One bulk job; a refused batch is halved until the bad events go one by one."""
        try:
            await self.client.bulk_create_events(event_groups(self.shop, batch))
        except KlaviyoRejected:
            if len(batch) <= max(self.options.single_events_max, 1):
                await self.send_each(batch)  # only the bad ones are refused
                return
            half = len(batch) // 2
            await self.send_event_batch(batch[:half])
            await self.send_event_batch(batch[half:])
            return
        self.report.jobs += 1
        self.report.events_sent += len(batch)

    async def cursor(self) -> int:
        async with self.state.sessionmaker() as session:
            connection = await KlaviyoRepository(session).connection(self.shop.id)
        return connection.event_cursor if connection else 0

    def reject(self, message: str) -> None:
        self.report.rejected += 1
        if len(self.report.rejections) < 20:
            self.report.rejections.append(message)


class LeaseLost(KlaviyoError):
    retryable = True


def _import_error(error: Mapping[str, Any]) -> tuple[str | None, str]:
    attributes = error.get("attributes") or {}
    detail = str(attributes.get("detail") or attributes.get("title") or "rejected")
    payload = attributes.get("original_payload") or {}
    if isinstance(payload, Mapping):
        inner = payload.get("attributes")
        email = (inner if isinstance(inner, Mapping) else payload).get("email")
        return (str(email) if email else None), detail
    return None, detail


async def sync_shop(
    state: State,
    shop_id: int,
    *,
    options: SyncOptions | None = None,
    sleep: Sleep = asyncio.sleep,
    client: KlaviyoClient | None = None,
) -> SyncReport:
    """Send the shop's changed profiles, then its unsent events; record how it went."""
    options = options or SyncOptions()
    now = utcnow()
    lease = now + timedelta(seconds=options.lease_seconds)
    async with unit_of_work(state.sessionmaker) as session:
        repo = KlaviyoRepository(session)
        connection = await repo.connection(shop_id)
        shop = await session.get(Shop, shop_id)
        if (
            connection is None
            or shop is None
            or shop.status != ShopStatus.installed
            or connection.status != ConnectionStatus.connected
        ):
            return SyncReport(status="not_connected")
        if not await repo.acquire_lease(shop_id, now, lease):
            return SyncReport(status="busy")
        secret = connection.secret_enc
    assert secret is not None
    client = client or KlaviyoClient(
        http=state.http,
        base_url=state.settings.KLAVIYO_API_URL,
        api_key=state.cipher.decrypt(secret),
        revision=state.settings.KLAVIYO_REVISION,
        sleep=sleep,
    )
    run = Run(state, shop, client, options, lease, sleep)
    started = time.monotonic()
    try:
        await run.profiles()
        await run.events()
    except KlaviyoAuthError as exc:
        run.report.status, run.report.error = "revoked", exc.message
        await _record(state, shop_id, status=ConnectionStatus.revoked, error=exc.message)
    except (KlaviyoError, OSError) as exc:
        message = exc.message if isinstance(exc, KlaviyoError) else f"{type(exc).__name__}: {exc}"
        run.report.status, run.report.error = "error", message
        await _record(state, shop_id, error=message)
    else:
        rejections = "; ".join(run.report.rejections) or None
        await _record(state, shop_id, success=True, error=rejections)
    finally:
        run.report.requests = client.requests
        async with unit_of_work(state.sessionmaker) as session:
            await KlaviyoRepository(session).release_lease(shop_id, run.lease)
    logger.info(
        "Klaviyo sync of shop %s: %s in %.1fs", shop_id, run.report, time.monotonic() - started
    )
    return run.report


async def _record(
    state: State,
    shop_id: int,
    *,
    status: ConnectionStatus | None = None,
    success: bool = False,
    error: str | None = None,
) -> None:
    now = utcnow()
    values: dict[str, Any] = {}
    if status is not None:
        values["status"] = status
    if success:
        values["last_success_at"] = now
    if error is not None:
        values.update(last_error=error[:2000], last_error_at=now)
    elif success:
        values["last_error"] = None
    async with unit_of_work(state.sessionmaker) as session:
        await KlaviyoRepository(session).record(shop_id, **values)


async def shops_due(state: State) -> list[int]:
    """Connected shops with a profile or event Klaviyo has not had yet (the sweep)."""
    due: list[int] = []
    async with state.sessionmaker() as session:
        repo = KlaviyoRepository(session)
        for shop_id in await repo.connected_shop_ids():
            connection = await repo.connection(shop_id)
            cursor = connection.event_cursor if connection else 0
            if await repo.backlog_count(shop_id) or await repo.unsent_event_count(shop_id, cursor):
                due.append(shop_id)
    return due


async def sync_until_settled(
    state: State,
    shop_id: int,
    *,
    options: SyncOptions | None = None,
    max_runs: int = 100,
    busy_wait: float = 1.0,
) -> SyncReport:
    """Run syncs until nothing is left or one fails (the CLI, and after a crash)."""
    report = SyncReport()
    for _ in range(max_runs):
        report = await sync_shop(state, shop_id, options=options)
        if report.status == "busy":
            await asyncio.sleep(busy_wait)
            continue
        if report.status != "ok" or shop_id not in await shops_due(state):
            return report
    return report
