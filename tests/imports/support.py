"""Shared helpers for the import tests: reading rows outside the code's sessions, and a
Shopify stand-in for the bulk exports with a small shop's customers and orders."""

from __future__ import annotations

import json
from typing import Any

import httpx
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import LedgerEntry, Member
from tests.builders import DOMAIN


async def members_by_email(session: AsyncSession) -> dict[str | None, Member]:
    await session.rollback()  # see what the code under test committed in its own sessions
    result = await session.execute(select(Member).execution_options(populate_existing=True))
    return {member.email: member for member in result.scalars()}


async def entries(session: AsyncSession) -> list[LedgerEntry]:
    await session.rollback()
    result = await session.execute(select(LedgerEntry).order_by(LedgerEntry.id))
    return list(result.scalars())


async def balances(session: AsyncSession) -> dict[str | None, int]:
    return {
        email: member.points_balance for email, member in (await members_by_email(session)).items()
    }


GRAPHQL = f"https://{DOMAIN}/admin/api/2026-07/graphql.json"
CUSTOMERS_OP = "gid://shopify/BulkOperation/1"
ORDERS_OP = "gid://shopify/BulkOperation/2"
CUSTOMERS_URL = "https://storage.googleapis.com/bulk/customers.jsonl?sig=1"
ORDERS_URL = "https://storage.googleapis.com/bulk/orders.jsonl?sig=2"


def jsonl(*objects: dict[str, Any]) -> str:
    return "".join(json.dumps(item) + "\n" for item in objects)


def money(amount: str, currency: str | None = None) -> dict[str, Any]:
    shop_money: dict[str, Any] = {"amount": amount}
    if currency:
        shop_money["currencyCode"] = currency
    return {"shopMoney": shop_money}


def order(
    number: int, *, customer: int | None, status: str = "PAID", **fields: Any
) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": f"gid://shopify/Order/{number}",
        "name": f"#{number}",
        "email": None,
        "createdAt": "2026-03-01T09:00:00Z",
        "processedAt": "2026-03-01T09:00:05Z",
        "cancelledAt": None,
        "test": False,
        "sourceName": "web",
        "displayFinancialStatus": status,
        "displayFulfillmentStatus": "UNFULFILLED",
        "customer": (
            {"id": f"gid://shopify/Customer/{customer}", "defaultEmailAddress": None}
            if customer
            else None
        ),
    }
    node.update(fields)
    return node


def line(
    number: int,
    order_number: int,
    price: str,
    *,
    quantity: int = 1,
    current: int | None = None,
    discount: str | None = None,
    gift_card: bool = False,
) -> dict[str, Any]:
    return {
        "id": f"gid://shopify/LineItem/{number}",
        "quantity": quantity,
        "currentQuantity": quantity if current is None else current,
        "isGiftCard": gift_card,
        "product": {"id": f"gid://shopify/Product/{number + 100}"},
        "variant": {"id": f"gid://shopify/ProductVariant/{number + 200}"},
        "originalUnitPriceSet": money(price),
        "discountAllocations": (
            [{"allocatedAmountSet": money(discount)}] if discount is not None else []
        ),
        "__parentId": f"gid://shopify/Order/{order_number}",
    }


CUSTOMERS = jsonl(
    {
        "id": "gid://shopify/Customer/1001",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "state": "ENABLED",
        "defaultEmailAddress": {"emailAddress": " Ada@Example.com"},
        "defaultPhoneNumber": {"phoneNumber": "+442071234567"},
    },
    # protected customer data not granted: Shopify sends the customer with nulls
    {
        "id": "gid://shopify/Customer/1002",
        "firstName": None,
        "lastName": None,
        "state": "DISABLED",
        "defaultEmailAddress": None,
        "defaultPhoneNumber": None,
    },
    {
        "id": "gid://shopify/Customer/1003",
        "firstName": "Grace",
        "lastName": "Hopper",
        "state": "ENABLED",
        "defaultEmailAddress": {"emailAddress": "grace@example.com"},
        "defaultPhoneNumber": None,
    },
    {"id": "gid://shopify/Customer/not-a-number", "firstName": "Broken"},
)

ORDERS = jsonl(
    # paid: 2 × 50.00 less 10.00, plus a 25.00 gift card that never earns → 90 points
    order(
        5001,
        customer=1001,
        displayFulfillmentStatus="FULFILLED",
        currentTotalPriceSet=money("115.00", "USD"),
    ),
    line(1, 5001, "50.00", quantity=2, discount="10.00"),
    line(2, 5001, "25.00", gift_card=True),
    # partly refunded, by the protected customer: 2 of 3 × 20.00 kept, 6.00 discount on
    # all three → 4.00 on the two kept → 36 points
    order(
        5002, customer=1002, status="PARTIALLY_REFUNDED", currentTotalPriceSet=money("38.88", "USD")
    ),
    line(3, 5002, "20.00", quantity=3, current=2, discount="6.00"),
    # a test order and a cancelled one never earn
    order(5003, customer=1001, test=True, currentTotalPriceSet=money("30.00", "USD")),
    line(4, 5003, "30.00"),
    order(
        5004,
        customer=1001,
        cancelledAt="2026-03-02T10:00:00Z",
        currentTotalPriceSet=money("40.00", "USD"),
    ),
    line(5, 5004, "40.00"),
    # a guest checkout that is not paid yet
    order(
        5005,
        customer=None,
        status="PENDING",
        email="Guest@Example.com",
        currentTotalPriceSet=money("15.00", "USD"),
    ),
    line(6, 5005, "15.00"),
)


class FakeShopify:
    """Shopify's bulk API at the HTTP boundary: every export completes at the first poll."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.runs: list[dict[str, Any]] = []
        self.router = router
        self.graphql = router.post(GRAPHQL).mock(side_effect=self.answer)
        router.get(CUSTOMERS_URL).mock(return_value=httpx.Response(200, text=CUSTOMERS))
        router.get(ORDERS_URL).mock(return_value=httpx.Response(200, text=ORDERS))

    def answer(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if "bulkOperationRunQuery" in body["query"]:
            self.runs.append(body["variables"])
            operation = ORDERS_OP if "lineItems" in body["variables"]["query"] else CUSTOMERS_OP
            return httpx.Response(
                200,
                json={
                    "data": {
                        "bulkOperationRunQuery": {
                            "bulkOperation": {"id": operation, "status": "CREATED"},
                            "userErrors": [],
                        }
                    }
                },
            )
        operation = body["variables"]["id"]
        url = ORDERS_URL if operation == ORDERS_OP else CUSTOMERS_URL
        return httpx.Response(
            200,
            json={
                "data": {
                    "node": {
                        "id": operation,
                        "status": "COMPLETED",
                        "errorCode": None,
                        "objectCount": "10",
                        "url": url,
                        "partialDataUrl": None,
                    }
                }
            },
        )
