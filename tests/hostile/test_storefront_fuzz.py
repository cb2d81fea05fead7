"""Hostile bodies and queries on the public storefront endpoints, correctly signed.

The app-proxy widget (`/proxy/api/redeem`, `/proxy/api/leave`, `/proxy/api/history`, the
referral landing) and the WooCommerce widget (`/woo/api/redeem`, `/woo/api/history`) get
generated JSON bodies and cursors from a genuine shopper. Never a 5xx; a refused request
(4xx) writes nothing; an accepted redemption moves points only through the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import respx
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from app.integrations.woocommerce.storefront import mint_customer_token
from app.ledger.engine import verify as verify_ledger
from app.settings import Settings
from tests.builders import row_counts
from tests.hostile.test_webhook_fuzz import draw_all, dumps, json_values
from tests.integrations.woocommerce import support as woo
from tests.proxy.test_routes import arrange, signed
from tests.rewards.test_redemptions import CREATED, GRAPHQL

CASES = 15

redeem_like = st.fixed_dictionaries(
    {},
    optional={
        "reward_id": st.one_of(st.just("amount-off"), json_values),
        "request_id": st.one_of(st.text(min_size=8, max_size=70), json_values),
        "points": st.one_of(st.integers(min_value=-(10**20), max_value=10**20), json_values),
        "confirm": json_values,
    },
)
bodies = st.one_of(
    redeem_like.map(dumps),
    json_values.map(dumps),
    st.binary(max_size=200),
)
cursors = st.one_of(
    st.text(max_size=40), st.sampled_from(["aDE", "aDk5OTk5OTk5OTk5OTk5OTk5OTk5", "²"])
)


@pytest.fixture
def shopify() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.post(GRAPHQL).respond(200, json=CREATED)
        router.route(host="stamp.test").pass_through()
        yield router


async def check(
    client: httpx.AsyncClient, session: AsyncSession, method: str, url: str, **kwargs: Any
) -> list[str]:
    before = await row_counts(session)
    try:
        response = await client.request(method, url, **kwargs)
    except Exception as exc:  # escaped the app: a 500 in production
        return [f"{method} {url} {kwargs}: raised {exc!r}"]
    problems: list[str] = []
    if response.status_code >= 500:
        problems.append(f"{method} {url} {kwargs}: {response.status_code} {response.text[:200]}")
    if 400 <= response.status_code < 500 and await row_counts(session) != before:
        problems.append(f"{method} {url} {kwargs}: refused with {response.status_code} but wrote")
    if await verify_ledger(session):
        problems.append(f"{method} {url} {kwargs}: the ledger drifted")
    return problems


async def test_the_app_proxy_widget_survives_hostile_bodies_and_cursors(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    shopify: respx.MockRouter,
) -> None:
    await arrange(session, settings)
    problems: list[str] = []

    for body in draw_all(bodies, CASES):
        for path in ("api/redeem", "api/leave"):
            problems += await check(client, session, "POST", signed(settings, path), content=body)
    for cursor in draw_all(cursors, CASES):
        url = signed(settings, "api/history", extra={"cursor": cursor})
        problems += await check(client, session, "GET", url)
        url = signed(settings, f"r/{quote(cursor, safe='') or 'x'}", customer_id="")
        problems += await check(client, session, "GET", url)

    assert problems == [], "\n".join(problems[:10])


async def test_the_woocommerce_widget_survives_hostile_bodies_and_cursors(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await woo.create_woo_shop(session, settings)
    token = mint_customer_token(
        shop.id, woo.WEBHOOK_SECRET, "12", "jo@example.com", int(time.time())
    )
    headers = {"Authorization": f"Bearer {token}", "Origin": "https://shop.example-store.com"}
    problems: list[str] = []

    with respx.mock(assert_all_called=False) as store:
        store.route(host=woo.STORE_HOST).respond(201, json={"id": 1, "code": "X"})
        store.route(host="stamp.test").pass_through()
        for body in draw_all(bodies, CASES):
            problems += await check(
                client, session, "POST", "/woo/api/redeem", content=body, headers=headers
            )
        for cursor in draw_all(cursors, CASES):
            problems += await check(
                client,
                session,
                "GET",
                "/woo/api/history",
                params={"cursor": cursor},
                headers=headers,
            )

    assert problems == [], "\n".join(problems[:10])
