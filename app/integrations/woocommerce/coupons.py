"""Rewards as WooCommerce coupons (`POST /wc/v3/coupons`): single use, for one shopper.

`rewards.issue` calls `issue_coupon` for WooCommerce shops; it returns the coupon id or
the error, and `rewards.finish` then marks the redemption issued or gives the points back,
exactly as for Shopify. After a lost answer the code is looked up once before the points
go back, so a coupon that did land is never paid for twice.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from app.integrations.woocommerce.client import WooError, client_for_shop
from app.models import Member, Redemption, Shop
from app.program.config import Reward, RewardKind
from app.state import State


class UnsupportedReward(WooError):
    pass


def _amount(value: Decimal | None) -> str:
    return f"{(value or Decimal(0)).normalize():f}"


def coupon_body(redemption: Redemption, member: Member, reward: Reward | None) -> dict[str, Any]:
    """The coupon WooCommerce should hold for this redemption."""
    body: dict[str, Any] = {
        "code": redemption.code,
        "description": f"Stamp reward: {redemption.reward_name}",
        "usage_limit": 1,
        "usage_limit_per_user": 1,
        "individual_use": False,
        "meta_data": [{"key": "_stamp_redemption_id", "value": str(redemption.id)}],
    }
    if redemption.kind == RewardKind.percentage:
        body.update(discount_type="percent", amount=_amount(redemption.value))
    elif redemption.kind == RewardKind.fixed_amount:
        body.update(discount_type="fixed_cart", amount=_amount(redemption.value))
    elif redemption.kind == RewardKind.free_shipping:
        body.update(discount_type="fixed_cart", amount="0", free_shipping=True)
    elif redemption.kind == RewardKind.free_product and reward and reward.product_id:
        body.update(
            discount_type="percent",
            amount="100",
            product_ids=[int(reward.product_id)],
            limit_usage_to_x_items=1,
        )
    else:
        raise UnsupportedReward(f"a {redemption.kind} reward cannot be a WooCommerce coupon")
    if member.email:
        body["email_restrictions"] = [member.email]
    if redemption.expires_at is not None:
        body["date_expires_gmt"] = redemption.expires_at.strftime("%Y-%m-%dT%H:%M:%S")
    if reward is not None and reward.minimum_order:
        body["minimum_amount"] = _amount(reward.minimum_order)
    return body


async def create_coupon(
    state: State, shop: Shop, redemption: Redemption, member: Member, reward: Reward | None
) -> str:
    """The new coupon's id; raises `WooError` or `httpx.HTTPError` when it was not created."""
    created = await client_for_shop(state, shop).post(
        "/coupons", coupon_body(redemption, member, reward)
    )
    if not isinstance(created, dict) or created.get("id") is None:
        raise WooError("POST /coupons answered without an id")
    return str(created["id"])


async def find_coupon(state: State, shop: Shop, code: str) -> str | None:
    """The id of an existing coupon with this code (WooCommerce matches codes case-blind)."""
    found = await client_for_shop(state, shop).get("/coupons", code=code)
    if isinstance(found, list):
        for coupon in found:
            if isinstance(coupon, dict) and str(coupon.get("code", "")).upper() == code.upper():
                return str(coupon["id"])
    return None


async def issue_coupon(
    state: State, shop: Shop, redemption: Redemption, member: Member, reward: Reward | None
) -> tuple[str | None, str | None]:
    """(coupon id, None) when the coupon exists, else (None, why it could not be created)."""
    try:
        return await create_coupon(state, shop, redemption, member, reward), None
    except UnsupportedReward as exc:
        return None, str(exc)
    except (WooError, httpx.HTTPError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    try:
        return await find_coupon(state, shop, redemption.code), error
    except (WooError, httpx.HTTPError, ValueError):
        return None, error
