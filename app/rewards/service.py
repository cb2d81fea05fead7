"""Rewards and redemption: spend points atomically, then turn them into a discount code.

A redemption is two steps. First, in one transaction, the redemption row is written and
the points are spent (the balance guard makes concurrent redemptions safe). Then, outside
any transaction, the platform creates the code. If the platform refuses or cannot be
reached, a compensating entry returns the points and the redemption is marked failed.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.errors import AppError, Conflict, NotFound
from app.integrations.shopify import discounts
from app.integrations.shopify.admin import AdminError, client_for_shop
from app.ledger import outbox
from app.ledger import service as ledger
from app.models import Member, Platform, Redemption, Shop
from app.models.base import utcnow
from app.program.config import ProgramConfig, Reward, RewardKind
from app.program.service import current_config
from app.rewards.repository import RedemptionRepository
from app.shops.tokens import ShopTokenError
from app.state import State

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_PREFIX = "STAMP-"
PLATFORM_ATTEMPTS = 3  # a shopper is waiting: retry throttles briefly, then give the points back

Sleep = Callable[[float], Awaitable[None]]


async def platform_sleep(seconds: float) -> None:
    """The pause between platform retries (a seam, so tests need not wait)."""
    await asyncio.sleep(seconds)


class RewardUnavailable(AppError):
    status_code = 422
    code = "reward_unavailable"


class RedemptionFailed(AppError):
    status_code = 502
    code = "discount_failed"


class RequestReused(Conflict):
    code = "idempotency_key_reused"


@dataclass(frozen=True, slots=True)
class RewardView:
    id: str
    name: str
    kind: str
    points_cost: int
    value: Decimal | None
    max_value: Decimal | None
    affordable: bool
    locked_reason: str | None


def new_code() -> str:
    return CODE_PREFIX + "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))


def _tier_rank(config: ProgramConfig, name: str | None) -> int:
    names = [level.name for level in config.tiers.levels]
    return names.index(name) if name in names else -1


def lock_reason(config: ProgramConfig, reward: Reward, member: Member | None) -> str | None:
    """Why this member cannot redeem the reward right now, in words a shopper understands."""
    if reward.tier_required and (
        member is None
        or _tier_rank(config, member.tier_name) < _tier_rank(config, reward.tier_required)
    ):
        return f"For {reward.tier_required} members"
    if member is not None and member.points_balance < reward.points_cost:
        return f"{reward.points_cost - member.points_balance} more points needed"
    return None


def catalog(config: ProgramConfig, member: Member | None) -> list[RewardView]:
    return [
        RewardView(
            id=reward.id,
            name=reward.name,
            kind=reward.kind,
            points_cost=reward.points_cost,
            value=reward.value,
            max_value=reward.max_value,
            affordable=member is not None and lock_reason(config, reward, member) is None,
            locked_reason=lock_reason(config, reward, member),
        )
        for reward in config.rewards
        if reward.enabled
    ]


def price(reward: Reward, points: int | None) -> tuple[int, Decimal | None]:
    """Points to spend and the discount value they buy (variable rewards: in whole steps)."""
    if reward.kind != RewardKind.variable:
        return reward.points_cost, reward.value
    assert reward.value is not None
    assert reward.max_value is not None
    max_steps = int(reward.max_value // reward.value)
    steps = min((points or reward.points_cost) // reward.points_cost, max_steps)
    if steps < 1:
        raise RewardUnavailable(f"Spend at least {reward.points_cost} points on this reward")
    return steps * reward.points_cost, steps * reward.value


async def start(
    session: AsyncSession,
    shop: Shop,
    member: Member,
    reward_id: str,
    *,
    request_key: str,
    request_sha256: str,
    points: int | None = None,
) -> Redemption:
    """Write the redemption and spend its points, atomically; a repeated key returns the first."""
    repo = RedemptionRepository(session)
    existing = await repo.by_request_key(shop.id, request_key)
    if existing is not None:
        if existing.request_sha256 != request_sha256 or existing.member_id != member.id:
            raise RequestReused("This idempotency key was used for another redemption")
        return existing
    config = await current_config(session, shop)
    reward = next((r for r in config.rewards if r.id == reward_id and r.enabled), None)
    if reward is None:
        raise NotFound(f"No reward {reward_id!r} in this shop", code="reward_not_found")
    if reward.tier_required and _tier_rank(config, member.tier_name) < _tier_rank(
        config, reward.tier_required
    ):
        raise RewardUnavailable(f"{reward.name} is for {reward.tier_required} members")
    cost, value = price(reward, points)
    now = utcnow()
    redemption = await repo.add(
        Redemption(
            shop_id=shop.id,
            member_id=member.id,
            request_key=request_key,
            request_sha256=request_sha256,
            reward_id=reward.id,
            reward_name=reward.name,
            kind=RewardKind.fixed_amount if reward.kind == RewardKind.variable else reward.kind,
            points_spent=cost,
            value=value,
            currency=config.currency,
            code=new_code(),
            status="pending",
            expires_at=now + timedelta(days=reward.expires_after_days)
            if reward.expires_after_days
            else None,
            created_at=now,
        )
    )
    await ledger.spend(
        session,
        shop.id,
        ledger.Posting(
            member_id=member.id,
            points=-cost,
            kind="redeem",
            idempotency_key=f"redeem:{redemption.id}",
            source_type="redemption",
            source_id=str(redemption.id),
            reason=f"Redeemed {reward.name}",
        ),
    )
    return redemption


async def issue(state: State, redemption_id: int, sleep: Sleep | None = None) -> Redemption:
    """Create the platform code for a pending redemption, or give the points back."""
    async with state.sessionmaker() as session:
        redemption = await session.get(Redemption, redemption_id)
        if redemption is None:
            raise NotFound(f"No redemption {redemption_id}")
        if redemption.status != "pending":
            return redemption
        member = await session.get(Member, redemption.member_id)
        shop = await session.get(Shop, redemption.shop_id)
        assert member is not None
        assert shop is not None
        config = await current_config(session, shop)
    reward = next((r for r in config.rewards if r.id == redemption.reward_id), None)
    if shop.platform == Platform.woocommerce:
        from app.integrations.woocommerce.coupons import issue_coupon

        coupon_id, error = await issue_coupon(state, shop, redemption, member, reward)
        return await finish(state, redemption_id, coupon_id, error)
    spec = discounts.DiscountSpec(
        code=redemption.code,
        title=f"Stamp reward: {redemption.reward_name}",
        kind=redemption.kind,
        value=redemption.value,
        customer_gid=f"gid://shopify/Customer/{member.customer_id}" if member.customer_id else None,
        minimum_order=reward.minimum_order if reward else None,
        starts_at=redemption.created_at,
        ends_at=redemption.expires_at,
        variant_gid=(
            f"gid://shopify/ProductVariant/{reward.variant_id}"
            if reward and reward.variant_id
            else None
        ),
    )
    try:
        client = await client_for_shop(state, redemption.shop_id, sleep or platform_sleep)
        client.max_attempts = PLATFORM_ATTEMPTS
        discount_id: str | None = await discounts.create_code(client, spec)
        error = None
    except (AdminError, ShopTokenError, httpx.HTTPError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        discount_id = await _landed_anyway(state, redemption.shop_id, spec.code, sleep)
    return await finish(state, redemption_id, discount_id, error)


async def _landed_anyway(state: State, shop_id: int, code: str, sleep: Sleep | None) -> str | None:
    """After a lost answer, ask once whether the code exists before returning the points."""
    try:
        client = await client_for_shop(state, shop_id, sleep or platform_sleep)
        client.max_attempts = 1
        return await discounts.find_code(client, code)
    except (AdminError, ShopTokenError, httpx.HTTPError):
        return None


async def finish(
    state: State, redemption_id: int, discount_id: str | None, error: str | None
) -> Redemption:
    async with unit_of_work(state.sessionmaker) as session:
        repo = RedemptionRepository(session)
        if discount_id is not None and await repo.move(
            redemption_id, "pending", "issued", platform_discount_id=discount_id
        ):
            issued = await session.get(Redemption, redemption_id)
            assert issued is not None
            await outbox.record(
                session,
                issued.shop_id,
                issued.member_id,
                outbox.REWARD_REDEEMED,
                f"redemption:{issued.id}",
                {
                    "reward": issued.reward_name,
                    "code": issued.code,
                    "points_spent": issued.points_spent,
                    "value": str(issued.value) if issued.value is not None else None,
                    "currency": issued.currency,
                    "expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
                },
            )
        elif await repo.move(redemption_id, "pending", "failed", error=(error or "")[:2000]):
            redemption = await session.get(Redemption, redemption_id)
            assert redemption is not None
            await return_points(session, redemption, "returned", "Code could not be created")
        redemption = await session.get(Redemption, redemption_id, populate_existing=True)
        assert redemption is not None
    if redemption.status == "failed":
        raise RedemptionFailed(
            "We couldn't create your discount code right now; your points were returned. "
            "Please try again in a moment."
        )
    return redemption


async def return_points(
    session: AsyncSession, redemption: Redemption, why: str, reason: str
) -> int | None:
    return await ledger.post(
        session,
        redemption.shop_id,
        ledger.Posting(
            member_id=redemption.member_id,
            points=redemption.points_spent,
            kind="redeem",
            idempotency_key=f"redeem:{redemption.id}:{why}",
            source_type="redemption",
            source_id=str(redemption.id),
            reason=f"{reason}: {redemption.reward_name}",
        ),
    )


async def mark_codes_used(
    session: AsyncSession, shop_id: int, codes: tuple[str, ...], order_id: str, at: datetime
) -> int:
    """Mark Stamp's codes on an order as used (other discount codes cost no query)."""
    ours = tuple(code for code in codes if code.upper().startswith(CODE_PREFIX))
    if not ours:
        return 0
    return await RedemptionRepository(session).mark_used(shop_id, ours, order_id, at)


async def expire_codes(session: AsyncSession, shop: Shop, now: datetime) -> int:
    """Issued codes past their end date become expired; their points return if the shop says so."""
    config = await current_config(session, shop)
    repo = RedemptionRepository(session)
    expired = 0
    for redemption in await repo.expired_unused(shop.id, now, limit=500):
        if not await repo.move(redemption.id, "issued", "expired"):
            continue
        expired += 1
        if config.redemption.return_points_on_expiry:
            await return_points(session, redemption, "expired", "Unused code expired")
    return expired


async def settle_stale_pending(state: State, shop_id: int, older_than: timedelta) -> int:
    """Redemptions stuck pending (a crash between spending and issuing) are resolved."""
    async with state.sessionmaker() as session:
        stale = [
            r.id
            for r in await RedemptionRepository(session).stale_pending(
                shop_id, utcnow() - older_than
            )
        ]
    for redemption_id in stale:
        try:
            await issue(state, redemption_id)
        except RedemptionFailed:
            pass
    return len(stale)
