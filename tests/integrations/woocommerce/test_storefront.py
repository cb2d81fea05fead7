"""The plugin's customer token: Stamp accepts exactly what the PHP mints, nothing else."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Unauthorized
from app.integrations.woocommerce.storefront import mint_customer_token, verify_customer_token
from app.settings import Settings
from tests.integrations.woocommerce.support import WEBHOOK_SECRET, create_woo_shop, order, signed

PLUGIN = (
    Path(__file__).resolve().parents[3]
    / "extensions"
    / "woocommerce"
    / "stamp-loyalty"
    / "stamp-loyalty.php"
)
HARNESS = """
define('ABSPATH', '/');
function add_action() {}
function add_shortcode() {}
require $argv[1];
echo stamp_customer_token((int) $argv[2], $argv[3], (int) $argv[4], $argv[5], (int) $argv[6]);
"""


def php_token(shop_id: int, secret: str, user_id: int, email: str, now: int) -> str:
    """A token minted by the plugin's own PHP function."""
    php = shutil.which("php")
    if php is None:
        pytest.skip("php is not installed (apt-get install -y php-cli)")
    result = subprocess.run(
        [
            php,
            "-r",
            HARNESS,
            "--",
            str(PLUGIN),
            str(shop_id),
            secret,
            str(user_id),
            email,
            str(now),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout.strip()


def test_php_and_python_mint_the_same_token() -> None:
    # given the same inputs
    now = 1_780_000_000

    # when the plugin and Stamp's reference minter each sign a token
    from_php = php_token(5, WEBHOOK_SECRET, 12, "jo.buyer@example.com", now)
    from_python = mint_customer_token(5, WEBHOOK_SECRET, "12", "jo.buyer@example.com", now)

    # then they are byte-for-byte equal
    assert from_php == from_python


async def test_state_accepts_the_plugins_token(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a connected store where customer 12 earned 72 points
    shop = await create_woo_shop(session, settings)
    body, headers = signed(order(status="processing"), "order.created")
    await client.post(f"/webhooks/woocommerce/{shop.id}", content=body, headers=headers)
    token = php_token(shop.id, WEBHOOK_SECRET, 12, "jo.buyer@example.com", int(time.time()))

    # when the widget asks for the state with the plugin's token
    response = await client.get(
        "/woo/api/state",
        headers={"Authorization": f"Bearer {token}", "Origin": "https://shop.example-store.com"},
    )

    # then it sees the member's balance, readable across origins
    assert response.status_code == 200
    assert response.json()["member"]["points_balance"] == 72
    assert response.headers["access-control-allow-origin"] == "https://shop.example-store.com"


@pytest.mark.parametrize(
    ("secret", "issued_ago", "code"),
    [
        (WEBHOOK_SECRET, 700, "customer_token_expired"),  # 600 s lifetime + 30 s leeway passed
        ("a-forger-guessed-this-secret", 0, "invalid_customer_token"),
    ],
)
async def test_state_rejects_expired_or_forged_tokens(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    secret: str,
    issued_ago: int,
    code: str,
) -> None:
    shop = await create_woo_shop(session, settings)
    token = php_token(shop.id, secret, 12, "jo.buyer@example.com", int(time.time()) - issued_ago)

    response = await client.get("/woo/api/state", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


async def test_token_for_another_shop_or_too_long_lived_is_rejected(
    session: AsyncSession, settings: Settings
) -> None:
    shop = await create_woo_shop(session, settings)
    now = 1_780_000_000
    other_shop = mint_customer_token(shop.id + 1, WEBHOOK_SECRET, "12", "a@b.example", now)
    long_lived = mint_customer_token(shop.id, WEBHOOK_SECRET, "12", "a@b.example", now, ttl=3600)

    for token in (other_shop, long_lived):
        with pytest.raises(Unauthorized):
            verify_customer_token(shop, WEBHOOK_SECRET, token, now=now + 1)
    assert verify_customer_token(
        shop,
        WEBHOOK_SECRET,
        mint_customer_token(shop.id, WEBHOOK_SECRET, "12", "A@B.example", now),
        now=now + 1,
    ) == ("12", "a@b.example")


async def test_no_token_is_not_signed_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/woo/api/state")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_signed_in"
