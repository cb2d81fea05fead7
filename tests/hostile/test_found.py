"""Regressions for what the hostile-input runs found, each pinned with its exact input."""

from __future__ import annotations

import time

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.pagination import decode_cursor
from app.errors import AppError
from app.integrations.woocommerce.storefront import TokenRefused, shop_id_claim
from app.models import ReferralClick
from app.referrals.service import fingerprint
from app.settings import Settings
from tests.builders import api_key_for, create_member, create_shop, row_counts
from tests.proxy.test_routes import signed
from tests.referrals.conftest import referral_shop
from tests.rewards.test_redemptions import CREATED, GRAPHQL


@pytest.mark.parametrize(
    "cursor",
    [
        "\U000d233e«¨\x8a#oE\U00075418",  # not ASCII: was a 500 (found by schemathesis)
        "ZTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ",  # "e9999999999999999999": past BIGINT
        "ZcKy",  # "e²": a digit to str.isdigit, not to int()
        "!!!!",
    ],
)
def test_a_cursor_the_api_did_not_issue_is_a_400(cursor: str) -> None:
    with pytest.raises(AppError) as refused:
        decode_cursor("e", cursor)

    assert (refused.value.status_code, refused.value.code) == (400, "invalid_cursor")


async def test_a_non_ascii_cursor_on_the_api_is_a_400_not_a_500(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    await create_member(session, shop, customer_id="1")
    headers = await api_key_for(session, shop)

    response = await client.get(
        "/api/v1/members/1/activity", params={"cursor": "«¨#oE"}, headers=headers
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize("referral_id", ["²", "99999999999999999999", "٣"])
async def test_a_referral_id_that_is_not_a_small_ascii_number_is_a_404(
    referral_id: str, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    headers = await api_key_for(session, shop)
    before = await row_counts(session)

    response = await client.post(
        f"/api/v1/referrals/{referral_id}/approve", json={"reason": "x"}, headers=headers
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "referral_not_found"
    assert await row_counts(session) == before


@pytest.mark.parametrize("claim", [10**30, 2**63, 0, -1, True, "1", None])
def test_a_storefront_token_claiming_an_impossible_shop_is_refused(claim: object) -> None:
    import jwt

    token = jwt.encode({"shop": claim}, "k" * 32, algorithm="HS256")

    with pytest.raises(TokenRefused):
        shop_id_claim(token)


async def test_a_storefront_token_past_bigint_is_a_401_not_a_500(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    import jwt

    token = jwt.encode({"shop": 10**30, "sub": "1"}, "k" * 32, algorithm="HS256")
    before = await row_counts(session)

    response = await client.get("/woo/api/state", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert await row_counts(session) == before


@respx.mock
async def test_a_referral_click_records_the_address_shopify_saw_not_the_one_claimed(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The client wrote 6.6.6.6 into X-Forwarded-For; Shopify's proxy appended the real one."""
    await referral_shop(session, settings)
    respx.post(GRAPHQL).respond(200, json=CREATED)
    url = signed(settings, "r/rita2345", customer_id="", timestamp=int(time.time()))

    response = await client.get(url, headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.7"})

    assert response.status_code == 302
    await session.rollback()
    click = (await session.execute(select(ReferralClick))).scalar_one()
    assert click.ip_hash == fingerprint("ip", "198.51.100.7")
