"""Redemption: atomic spending, a real-shaped Shopify discount call, and compensation."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.ledger import engine
from app.ledger import service as ledger
from app.models import LedgerEntry, Member, Redemption, Shop
from app.models.base import utcnow
from app.program.config import RedemptionRule, Reward, RewardKind
from app.program.service import current_config, ensure_default_program, save_program
from app.rewards import service as rewards
from app.settings import Settings
from app.state import State
from tests.builders import api_key_for, create_member, create_shop, row_counts, shopify_webhook

GRAPHQL = "https://some-shop.myshopify.com/admin/api/2026-07/graphql.json"
COST = {
    "requestedQueryCost": 10,
    "actualQueryCost": 10,
    "throttleStatus": {
        "maximumAvailable": 2000.0,
        "currentlyAvailable": 1990,
        "restoreRate": 100.0,
    },
}
CREATED = {
    "data": {
        "discountCodeBasicCreate": {
            "codeDiscountNode": {"id": "gid://shopify/DiscountCodeNode/1057371"},
            "userErrors": [],
        }
    },
    "extensions": {"cost": COST},
}
THROTTLED = {
    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
    "extensions": {"cost": COST},
}
NOT_FOUND = {"data": {"codeDiscountNodeByCode": None}, "extensions": {"cost": COST}}


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(rewards, "platform_sleep", record)
    return waits


async def arrange(
    session: AsyncSession, settings: Settings, balance: int = 600
) -> tuple[Shop, dict[str, str]]:
    shop = await create_shop(session, settings)
    await ensure_default_program(session, shop)
    member = await create_member(
        session, shop, customer_id="207119551", email="r@example.com", tier_name="Bronze"
    )
    await ledger.post(session, shop.id, ledger.Posting(member.id, balance, "earn", "order:1:earn"))
    await session.commit()
    return shop, await api_key_for(session, shop)


def redeem(key: str = "r-1", reward_id: str = "amount-off") -> dict[str, Any]:
    return {"customer_id": "207119551", "reward_id": reward_id, "idempotency_key": key}


async def ledger_rows(session: AsyncSession) -> list[tuple[str, int, str]]:
    await session.rollback()
    result = await session.execute(select(LedgerEntry).order_by(LedgerEntry.id))
    return [(e.kind, e.points, e.idempotency_key) for e in result.scalars()]


async def balance_of(session: AsyncSession) -> int:
    await session.rollback()
    return int((await session.execute(select(Member.points_balance))).scalar_one())


@respx.mock
async def test_redemption_spends_points_and_creates_a_single_use_customer_code(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given 600 points and the default 500-point reward for 5 USD off
    await arrange(session, settings)
    _, headers = await arrange_headers(session)
    shopify = respx.post(GRAPHQL).mock(return_value=httpx.Response(200, json=CREATED))

    # when the member redeems it
    response = await client.post("/api/v1/redemptions", json=redeem(), headers=headers)

    # then a code comes back, 500 points are gone, and Shopify got a one-use, one-customer code
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["points_spent"], body["value"], body["currency"], body["status"]) == (
        500,
        "5",
        "USD",
        "issued",
    )
    assert body["code"].startswith("STAMP-")
    sent = json.loads(shopify.calls.last.request.content)["variables"]["input"]
    assert sent["code"] == body["code"]
    assert sent["usageLimit"] == 1
    assert sent["context"] == {"customers": {"add": ["gid://shopify/Customer/207119551"]}}
    assert sent["customerGets"]["value"] == {
        "discountAmount": {"amount": "5", "appliesOnEachItem": False}
    }
    assert shopify.calls.last.request.headers["X-Shopify-Access-Token"] == (
        "shpat_test_token_0123456789"
    )
    assert await balance_of(session) == 100
    assert (await ledger_rows(session))[-1] == ("redeem", -500, f"redeem:{body['id']}")


async def arrange_headers(session: AsyncSession) -> tuple[Shop, dict[str, str]]:
    shop = (await session.execute(select(Shop))).scalars().first()
    assert shop is not None
    return shop, await api_key_for(session, shop)


@respx.mock
async def test_repeated_idempotency_key_returns_the_same_code_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await arrange(session, settings, balance=1200)
    respx.post(GRAPHQL).mock(return_value=httpx.Response(200, json=CREATED))

    first = await client.post("/api/v1/redemptions", json=redeem(), headers=headers)
    again = await client.post("/api/v1/redemptions", json=redeem(), headers=headers)
    before = await row_counts(session)
    other = await client.post(
        "/api/v1/redemptions", headers=headers, json={**redeem(), "points": 1000}
    )

    assert again.json() == first.json()
    assert respx.calls.call_count == 1
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_key_reused")
    assert await row_counts(session) == before
    assert await balance_of(session) == 700


@pytest.mark.parametrize(
    "failure",
    ["server_error", "throttled", "timeout", "user_error"],
)
@respx.mock
async def test_platform_failure_returns_the_points_and_says_so(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    failure: str,
    no_waiting: list[float],
) -> None:
    # given Shopify failing in one of the ways it does
    await arrange(session, settings)
    _, headers = await arrange_headers(session)
    create = respx.post(GRAPHQL, content__contains="discountCodeBasicCreate")
    if failure == "server_error":
        create.mock(return_value=httpx.Response(502, text="Bad gateway"))
    elif failure == "throttled":
        create.mock(return_value=httpx.Response(200, json=THROTTLED))
    elif failure == "timeout":
        create.mock(side_effect=httpx.ReadTimeout("timed out"))
    else:
        create.mock(
            return_value=httpx.Response(
                200,
                json={
                    "data": {
                        "discountCodeBasicCreate": {
                            "codeDiscountNode": None,
                            "userErrors": [
                                {
                                    "field": ["code"],
                                    "message": "Code must be unique",
                                    "code": "TAKEN",
                                }
                            ],
                        }
                    }
                },
            )
        )
    respx.post(GRAPHQL, content__contains="codeDiscountNodeByCode").mock(
        return_value=httpx.Response(200, json=NOT_FOUND)
    )

    # when the member redeems
    response = await client.post("/api/v1/redemptions", json=redeem(), headers=headers)

    # then they hear it failed and got their points back; the ledger shows both entries
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "discount_failed"
    assert "points were returned" in response.json()["error"]["message"]
    assert await balance_of(session) == 600
    rows = await ledger_rows(session)
    redemption = (await session.execute(select(Redemption))).scalar_one()
    assert rows[-2:] == [
        ("redeem", -500, f"redeem:{redemption.id}"),
        ("redeem", 500, f"redeem:{redemption.id}:returned"),
    ]
    assert redemption.status == "failed"
    if failure in {"server_error", "throttled", "timeout"}:
        assert len(no_waiting) == rewards.PLATFORM_ATTEMPTS - 1  # retried, then gave up
    await session.rollback()
    assert await engine.verify(session) == []


@respx.mock
async def test_a_lost_answer_whose_code_landed_is_not_refunded(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await arrange(session, settings)
    _, headers = await arrange_headers(session)
    respx.post(GRAPHQL, content__contains="discountCodeBasicCreate").mock(
        side_effect=httpx.ReadTimeout("timed out")
    )
    respx.post(GRAPHQL, content__contains="codeDiscountNodeByCode").mock(
        return_value=httpx.Response(
            200,
            json={"data": {"codeDiscountNodeByCode": {"id": "gid://shopify/DiscountCodeNode/9"}}},
        )
    )

    response = await client.post("/api/v1/redemptions", json=redeem(), headers=headers)

    assert response.status_code == 201
    assert response.json()["status"] == "issued"
    assert await balance_of(session) == 100


async def test_refusals_change_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given 400 points, below the 500-point reward, and a Gold-only reward
    shop, headers = await arrange(session, settings, balance=400)
    config = await current_config(session, shop)
    gold = Reward(
        id="gold-gift",
        name="Gold gift",
        kind=RewardKind.free_shipping,
        points_cost=10,
        tier_required="Gold",
    )
    await save_program(
        session, shop, config.model_copy(update={"rewards": (*config.rewards, gold)}), "test"
    )
    await session.commit()
    before = await row_counts(session)

    poor = await client.post("/api/v1/redemptions", json=redeem(), headers=headers)
    locked = await client.post(
        "/api/v1/redemptions", json=redeem("r-2", "gold-gift"), headers=headers
    )
    unknown = await client.post("/api/v1/redemptions", json=redeem("r-3", "nope"), headers=headers)
    stranger = await client.post(
        "/api/v1/redemptions", headers=headers, json={**redeem("r-4"), "customer_id": "999"}
    )
    invalid = await client.post(
        "/api/v1/redemptions", headers=headers, json={"customer_id": "207119551"}
    )

    assert (poor.status_code, poor.json()["error"]["code"]) == (409, "insufficient_points")
    assert (locked.status_code, locked.json()["error"]["code"]) == (422, "reward_unavailable")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "reward_not_found")
    assert stranger.status_code == 404
    assert invalid.status_code == 422
    assert await row_counts(session) == before


async def test_reward_list_says_what_a_member_can_redeem(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await arrange(session, settings, balance=450)

    response = await client.get(
        "/api/v1/rewards", params={"customer_id": "207119551"}, headers=headers
    )

    assert response.status_code == 200
    assert response.json()["data"] == [
        {
            "id": "amount-off",
            "name": "5 USD off",
            "kind": "fixed_amount",
            "points_cost": 500,
            "value": "5",
            "max_value": None,
            "affordable": False,
            "locked_reason": "50 more points needed",
        }
    ]


@respx.mock
async def test_variable_reward_spends_whole_steps_up_to_the_cap(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop, headers = await arrange(session, settings, balance=5000)
    config = await current_config(session, shop)
    variable = Reward(
        id="any-amount",
        name="Points off",
        kind=RewardKind.variable,
        points_cost=100,
        value=1,
        max_value=30,
    )
    await save_program(session, shop, config.model_copy(update={"rewards": (variable,)}), "t")
    await session.commit()
    respx.post(GRAPHQL).mock(return_value=httpx.Response(200, json=CREATED))

    response = await client.post(
        "/api/v1/redemptions",
        headers=headers,
        json={**redeem(reward_id="any-amount"), "points": 4250},
    )

    assert response.status_code == 201
    assert (response.json()["points_spent"], response.json()["value"]) == (3000, "30")
    assert await balance_of(session) == 2000


@respx.mock
async def test_order_carrying_the_code_marks_it_used(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await arrange(session, settings)
    respx.post(GRAPHQL).mock(return_value=httpx.Response(200, json=CREATED))
    code = (await client.post("/api/v1/redemptions", json=redeem(), headers=headers)).json()["code"]
    order = json.loads(
        (
            __import__("pathlib").Path(__file__).parents[1]
            / "fixtures"
            / "shopify"
            / "orders_paid.json"
        ).read_text()
    )
    order["discount_codes"] = [{"code": code.lower(), "amount": "5.00", "type": "fixed_amount"}]

    body, webhook_headers = shopify_webhook(settings, "orders/paid", order)
    assert (
        await client.post("/webhooks/shopify", content=body, headers=webhook_headers)
    ).status_code == 200

    await session.rollback()
    redemption = (await session.execute(select(Redemption))).scalar_one()
    assert (redemption.status, redemption.used_order_id) == ("used", str(order["id"]))


async def test_expired_unused_code_returns_points_when_the_shop_says_so(
    state: State, session: AsyncSession, settings: Settings
) -> None:
    shop, _ = await arrange(session, settings)
    config = await current_config(session, shop)
    await save_program(
        session,
        shop,
        config.model_copy(update={"redemption": RedemptionRule(return_points_on_expiry=True)}),
        "test",
    )
    await session.commit()
    member = (await session.execute(select(Member))).scalar_one()
    async with unit_of_work(state.sessionmaker) as work:
        started = await rewards.start(
            work, shop, member, "amount-off", request_key="k", request_sha256="x"
        )
        redemption_id = started.id
    await rewards.finish(state, redemption_id, "gid://shopify/DiscountCodeNode/1", None)

    async with unit_of_work(state.sessionmaker) as work:
        current = await work.get(Shop, shop.id)
        assert current is not None
        expired = await rewards.expire_codes(work, current, utcnow() + timedelta(days=91))

    assert expired == 1
    assert await balance_of(session) == 600
    assert (await ledger_rows(session))[-1] == ("redeem", 500, f"redeem:{redemption_id}:expired")


@pytest.mark.postgres_only
@respx.mock
async def test_fifty_simultaneous_redemptions_spend_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a member who can afford exactly one 500-point reward
    await arrange(session, settings, balance=999)
    _, headers = await arrange_headers(session)
    respx.post(GRAPHQL).mock(return_value=httpx.Response(200, json=CREATED))

    # when 50 redemptions arrive at once, each with its own key
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/redemptions", json=redeem(f"k-{n}"), headers=headers)
            for n in range(50)
        )
    )

    # then one code, one deduction, and 49 clear refusals
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 49
    refusals = {r.json()["error"]["code"] for r in responses if r.status_code == 409}
    assert refusals == {"insufficient_points"}
    assert await balance_of(session) == 499
    assert [r[0] for r in await ledger_rows(session)] == ["earn", "redeem"]
    assert len((await session.execute(select(Redemption))).scalars().all()) == 1
