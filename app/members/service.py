"""Reading members the way every surface shows them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound
from app.events import CustomerInfo
from app.members.repository import MemberRepository, MemberWriter
from app.members.schemas import MemberOut, NextTierOut, TierOut
from app.models import Member, Shop
from app.models.base import utcnow
from app.program.config import ProgramConfig
from app.program.service import current_config

PROXY_PATH_PREFIX = "/apps/stamp"


def referral_url(shop: Shop, member: Member, path_prefix: str = PROXY_PATH_PREFIX) -> str | None:
    if not member.referral_code:
        return None
    return f"https://{shop.domain}{path_prefix}/r/{member.referral_code}"


def tier_view(member: Member, config: ProgramConfig, points_in_window: int) -> TierOut | None:
    tiers = config.tiers
    if not tiers.enabled or not tiers.levels:
        return None
    levels = sorted(tiers.levels, key=lambda level: level.threshold)
    current = next((level for level in levels if level.name == member.tier_name), levels[0])
    above = [level for level in levels if level.threshold > current.threshold]
    upcoming = (
        NextTierOut(name=above[0].name, points_needed=max(above[0].threshold - points_in_window, 0))
        if above
        else None
    )
    return TierOut(name=current.name, multiplier=str(current.multiplier), next=upcoming)


async def member_out(
    session: AsyncSession, shop: Shop, member: Member, config: ProgramConfig | None = None
) -> MemberOut:
    """Member JSON; pass the program when the caller has it, to save reading it again."""
    from app.ledger.repository import LedgerRepository
    from app.winback.views import winback_view

    config = config or await current_config(session, shop)
    window_points = await LedgerRepository(session).tier_points(member.id, config)
    return MemberOut(
        customer_id=member.customer_id,
        email=member.email,
        points_balance=member.points_balance,
        pending_points=member.pending_points,
        lifetime_points=member.lifetime_points,
        tier=tier_view(member, config, window_points),
        referral_url=referral_url(shop, member),
        winback=await winback_view(session, member.id),
    )


async def get_member(session: AsyncSession, shop: Shop, customer_id: str) -> Member:
    member = await MemberRepository(session).by_customer_id(shop.id, customer_id)
    if member is None:
        raise NotFound(f"No member with customer id {customer_id}", code="member_not_found")
    return member


REFERRAL_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read aloud safely


def new_referral_code(length: int = 8) -> str:
    """31^8 ≈ 8.5e11 codes: short to share, far too many to enumerate."""
    return "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(length))


def _profile(customer: CustomerInfo) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in ("email", "first_name", "last_name", "phone"):
        value = getattr(customer, name)
        if value:
            values[name] = value
    return values


async def _refresh_profile(member: Member, customer: CustomerInfo) -> bool:
    """Follow the platform's profile (email changes included); True if it became an account.

    Writes only what changed, so a repeat buyer's order costs no member UPDATE here.
    """
    changed = False
    for name, value in _profile(customer).items():
        if getattr(member, name) != value:
            setattr(member, name, value)
            changed = True
    became_account = customer.is_account and not member.is_account
    if became_account:
        member.is_account = True
    if changed or became_account:
        member.updated_at = utcnow()
    return became_account


def profile_is_current(member: Member, customer: CustomerInfo) -> bool:
    """True when `_refresh_profile` would change nothing on this member."""
    if customer.is_account and not member.is_account:
        return False
    return all(getattr(member, name) == value for name, value in _profile(customer).items())


def new_member_values(customer: CustomerInfo) -> dict[str, Any]:
    """A new member's profile columns, every one present (absent ones as None)."""
    profile = _profile(customer)
    return {name: profile.get(name) for name in ("email", "first_name", "last_name", "phone")}


@dataclass(frozen=True, slots=True)
class MemberMatch:
    member: Member | None
    created: bool = False
    became_account: bool = False


async def member_for_customer(
    session: AsyncSession,
    shop: Shop,
    customer: CustomerInfo | None,
    email: str | None,
    *,
    announce: bool = True,
) -> MemberMatch:
    """The member for this customer (claiming a guest member by email), created if needed.

    Says whether the member is new, and whether Stamp saw a known member become an account.
    `announce=False` (imports of existing customers) records no `member.created` event,
    so a history backfill does not look like thousands of sign-ups downstream.
    """
    writer = MemberWriter(session)
    repo = MemberRepository(session)
    email = (customer.email if customer else None) or email
    if customer is not None and customer.customer_id:
        if email:
            member, guest = await repo.by_customer_id_or_guest_email(
                shop.id, customer.customer_id, email
            )
            if member is None and guest is not None:
                member = guest
                member.customer_id = customer.customer_id
        else:
            member = await repo.by_customer_id(shop.id, customer.customer_id)
        if member is not None:
            became = await _refresh_profile(member, customer)
            await session.flush()
            return MemberMatch(member, became_account=became)
        created = await writer.insert_if_absent(
            shop_id=shop.id,
            customer_id=customer.customer_id,
            is_account=customer.is_account,
            referral_code=new_referral_code(),
            **_profile(customer),
        )
        if created is None:  # a concurrent delivery created it
            return MemberMatch(await repo.by_customer_id(shop.id, customer.customer_id))
        if announce:
            await _joined(session, created)
        return MemberMatch(created, created=True)
    if not email:
        return MemberMatch(None)
    # No customer record: the email decides, preferring a member who has an account.
    known = await repo.by_email(shop.id, email)
    if known:
        return MemberMatch(sorted(known, key=lambda m: (not m.is_account, m.id))[0])
    created = await writer.insert_if_absent(
        shop_id=shop.id, email=email, is_account=False, referral_code=new_referral_code()
    )
    if created is None:
        return MemberMatch(await writer.guest_by_email(shop.id, email))
    if announce:
        await _joined(session, created)
    return MemberMatch(created, created=True)


async def _joined(session: AsyncSession, member: Member) -> None:
    """`member.created` for outgoing webhooks and Klaviyo, once per member."""
    from app.ledger import outbox

    unique_id, properties = outbox.member_joined(member.id, member.customer_id, member.is_account)
    await outbox.record(
        session,
        member.shop_id,
        member.id,
        outbox.MEMBER_CREATED,
        unique_id,
        properties,
        member.created_at,
    )


async def reevaluate_tier(
    session: AsyncSession,
    member_id: int,
    config: ProgramConfig,
    version_id: int | None = None,
    window_points: int | None = None,
) -> None:
    """Move a member up as soon as they reach a tier; moving down waits for the window job.

    `window_points`, when the caller already knows them, saves summing the ledger again.
    """
    from app.ledger.repository import LedgerRepository
    from app.program import rules

    member = await session.get(Member, member_id)
    if member is None:
        return
    if window_points is None:
        window_points = await LedgerRepository(session).tier_points(member_id, config)
    tier = rules.tier_for(max(window_points, 0), config)
    if tier is None or tier.name == member.tier_name:
        return
    levels = [level.name for level in config.tiers.levels]
    current_rank = levels.index(member.tier_name) if member.tier_name in levels else -1
    if levels.index(tier.name) > current_rank:
        from app.ledger import outbox

        if member.tier_name is not None or levels.index(tier.name) > 0:  # joining isn't news
            await outbox.record(
                session,
                member.shop_id,
                member.id,
                outbox.TIER_CHANGED,
                f"tier:{member.id}:{member.tier_name}->{tier.name}:{utcnow().date().isoformat()}",
                {"from": member.tier_name, "to": tier.name, "direction": "up"},
            )
        member.tier_name = tier.name
        member.sync_dirty_at = utcnow()
        await session.flush()
        from app.ledger.service import award_tier_entry

        await award_tier_entry(session, member.shop_id, member.id, tier, version_id)
