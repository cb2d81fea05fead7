"""What the storefront widget shows: one read of the member, program and rewards."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.events import CustomerInfo
from app.ledger.repository import LedgerRepository
from app.members import service as members
from app.members.repository import MemberRepository
from app.models import Member, Shop
from app.program.config import ProgramConfig
from app.program.service import current_config
from app.rewards import service as rewards


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who is looking: the shop, and the logged-in customer id Shopify vouched for.

    `config` is the shop's current program when the caller read it with the shop.
    """

    shop: Shop
    customer_id: str | None
    path_prefix: str
    config: ProgramConfig | None = None


def _amount(value: Decimal, currency: str) -> str:
    return f"{value.normalize():f} {currency}"


def ways_to_earn(config: ProgramConfig) -> list[dict[str, str]]:
    ways: list[dict[str, str]] = []
    rate = config.earning.rate
    if rate > 0:
        per_unit = Decimal(1) / rate
        description = (
            f"{rate.normalize():f} points per 1 {config.currency} spent"
            if rate >= 1
            else f"1 point per {_amount(per_unit, config.currency)} spent"
        )
        ways.append({"title": "Place an order", "description": description})
    if config.signup.enabled and config.signup.points:
        ways.append({"title": "Create an account", "description": f"{config.signup.points} points"})
    if config.birthday.enabled and config.birthday.points:
        ways.append(
            {"title": "Celebrate your birthday", "description": f"{config.birthday.points} points"}
        )
    if config.review.enabled and config.review.points:
        ways.append({"title": "Write a review", "description": f"{config.review.points} points"})
    if config.referral.enabled and config.referral.referrer_points:
        ways.append(
            {"title": "Refer a friend", "description": f"{config.referral.referrer_points} points"}
        )
    for action in config.custom_actions:
        ways.append({"title": action.name, "description": f"{action.points} points"})
    return ways


def _tier_with_threshold(tier: dict[str, Any], config: ProgramConfig) -> dict[str, Any]:
    """The widget draws progress from the next tier's threshold, so it travels along."""
    if tier.get("next"):
        level = next((lv for lv in config.tiers.levels if lv.name == tier["next"]["name"]), None)
        tier["next"]["threshold"] = level.threshold if level else None
    return tier


async def visitor_member(session: AsyncSession, visitor: Visitor) -> Member | None:
    """The logged-in customer's member, created on first sight (no bonus is given here)."""
    if not visitor.customer_id:
        return None
    match = await members.member_for_customer(
        session,
        visitor.shop,
        CustomerInfo(visitor.customer_id, None, None, None, None, is_account=True),
        None,
    )
    return match.member


@dataclass(frozen=True, slots=True)
class KnownMember:
    member: Member
    window_points: int


async def known_member(session: AsyncSession, visitor: Visitor) -> KnownMember | None:
    """The visitor's member if it exists already, with their tier-window points, in one
    read (no write lock is taken)."""
    if not visitor.customer_id:
        return None
    config = visitor.config or await current_config(session, visitor.shop)
    found = await MemberRepository(session).by_customer_id_with_tier_points(
        visitor.shop.id, visitor.customer_id, config
    )
    return None if found is None else KnownMember(*found)


async def widget_state(
    session: AsyncSession, visitor: Visitor, known: KnownMember | None = None
) -> dict[str, Any]:
    """The widget's JSON; a logged-in customer seen for the first time becomes a member."""
    shop = visitor.shop
    config = visitor.config or await current_config(session, shop)
    member = known.member if known else await visitor_member(session, visitor)
    member_json: dict[str, Any] | None = None
    if member is not None:
        window_points = (
            known.window_points
            if known
            else await LedgerRepository(session).tier_points(member.id, config)
        )
        tier = members.tier_view(member, config, window_points)
        member_json = {
            "customer_id": member.customer_id,
            "first_name": member.first_name,
            "points_balance": member.points_balance,
            "pending_points": member.pending_points,
            "lifetime_points": member.lifetime_points,
            "tier": _tier_with_threshold(tier.model_dump(), config) if tier else None,
            "referral_url": members.referral_url(shop, member, visitor.path_prefix),
        }
    storefront = f"https://{shop.domain}"
    return {
        "shop": {"name": shop.name or shop.domain, "currency": config.currency, "locale": "en"},
        "member": member_json,
        "ways_to_earn": ways_to_earn(config),
        "rewards": [
            {
                "id": view.id,
                "name": view.name,
                "points_cost": view.points_cost,
                "affordable": view.affordable,
                "locked_reason": view.locked_reason if member is not None else None,
            }
            for view in rewards.catalog(config, member)
        ],
        "urls": {
            "login": f"{storefront}/account/login",
            "register": f"{storefront}/account/register",
            "rewards_page": f"{storefront}{visitor.path_prefix}/rewards",
        },
    }
