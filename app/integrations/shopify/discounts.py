"""Single-use discount codes for one customer, through the Admin GraphQL API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.integrations.shopify.admin import AdminClient

BASIC_CREATE = """
mutation StampRewardCode($input: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $input) {
    codeDiscountNode { id }
    userErrors { field message code }
  }
}
"""

FREE_SHIPPING_CREATE = """
mutation StampFreeShippingCode($input: DiscountCodeFreeShippingInput!) {
  discountCodeFreeShippingCreate(freeShippingCodeDiscount: $input) {
    codeDiscountNode { id }
    userErrors { field message code }
  }
}
"""

BY_CODE = """
query StampCodeLookup($code: String!) {
  codeDiscountNodeByCode(code: $code) { id }
}
"""


@dataclass(frozen=True, slots=True)
class DiscountSpec:
    """What the shopper bought with points, as the platform needs it."""

    code: str
    title: str
    kind: str  # fixed_amount | percentage | free_shipping | free_product
    value: Decimal | None
    customer_gid: str | None
    minimum_order: Decimal | None
    starts_at: datetime
    ends_at: datetime | None
    variant_gid: str | None = None


def _customer_gets(spec: DiscountSpec) -> dict[str, Any]:
    if spec.kind == "percentage":
        assert spec.value is not None
        return {"items": {"all": True}, "value": {"percentage": float(spec.value / 100)}}
    if spec.kind == "free_product":
        assert spec.variant_gid is not None
        return {
            "items": {"products": {"productVariantsToAdd": [spec.variant_gid]}},
            "value": {"discountOnQuantity": {"quantity": "1", "effect": {"percentage": 1.0}}},
        }
    assert spec.value is not None
    return {
        "items": {"all": True},
        "value": {"discountAmount": {"amount": str(spec.value), "appliesOnEachItem": False}},
    }


def discount_input(spec: DiscountSpec) -> dict[str, Any]:
    """The mutation input: one use in total, one customer, optional minimum and end date."""
    payload: dict[str, Any] = {
        "title": spec.title,
        "code": spec.code,
        "startsAt": spec.starts_at.isoformat(),
        "endsAt": spec.ends_at.isoformat() if spec.ends_at else None,
        "usageLimit": 1,
        "appliesOncePerCustomer": True,
        "context": (
            {"customers": {"add": [spec.customer_gid]}} if spec.customer_gid else {"all": "ALL"}
        ),
    }
    if spec.minimum_order:
        payload["minimumRequirement"] = {
            "subtotal": {"greaterThanOrEqualToSubtotal": str(spec.minimum_order)}
        }
    if spec.kind == "free_shipping":
        payload["destination"] = {"all": True}
    else:
        payload["customerGets"] = _customer_gets(spec)
        payload["combinesWith"] = {
            "orderDiscounts": False,
            "productDiscounts": True,
            "shippingDiscounts": True,
        }
    return payload


async def create_code(client: AdminClient, spec: DiscountSpec) -> str:
    """Create the code; returns the discount node's gid. Raises AdminError when refused."""
    if spec.kind == "free_shipping":
        data = await client.execute(FREE_SHIPPING_CREATE, {"input": discount_input(spec)})
        node = data["discountCodeFreeShippingCreate"]["codeDiscountNode"]
    else:
        data = await client.execute(BASIC_CREATE, {"input": discount_input(spec)})
        node = data["discountCodeBasicCreate"]["codeDiscountNode"]
    return str(node["id"])


async def find_code(client: AdminClient, code: str) -> str | None:
    """The discount's gid if the code exists (a create whose answer was lost may have landed)."""
    data = await client.execute(BY_CODE, {"code": code})
    node = data.get("codeDiscountNodeByCode")
    return str(node["id"]) if node else None
