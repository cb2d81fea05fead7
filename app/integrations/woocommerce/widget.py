"""The storefront widget's view of a WooCommerce shopper, from the plugin's token."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Unauthorized
from app.events import CustomerInfo
from app.integrations.woocommerce.storefront import (
    TokenRefused,
    shop_id_claim,
    verify_customer_token,
)
from app.members import service as members
from app.models import Member, Platform, Shop, ShopStatus
from app.state import State
from widgets.service import Visitor

PATH_PREFIX = "/woo/api"


@dataclass(frozen=True, slots=True)
class Shopper:
    shop: Shop
    customer_id: str
    member: Member

    @property
    def visitor(self) -> Visitor:
        return Visitor(shop=self.shop, customer_id=self.customer_id, path_prefix=PATH_PREFIX)


def bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Sign in to use your points", code="not_signed_in")
    return token.strip()


async def shopper(state: State, session: AsyncSession, token: str) -> Shopper:
    """The shop and member a verified token names; the member is created on first sight."""
    shop = await session.get(Shop, shop_id_claim(token))
    if (
        shop is None
        or shop.platform != Platform.woocommerce
        or shop.status != ShopStatus.installed
        or shop.webhook_secret_enc is None
    ):
        raise TokenRefused("Stamp is not connected to this store")
    customer_id, email = verify_customer_token(
        shop, state.cipher.decrypt(shop.webhook_secret_enc), token
    )
    match = await members.member_for_customer(
        session, shop, CustomerInfo(customer_id, email, None, None, None, is_account=True), email
    )
    assert match.member is not None
    return Shopper(shop, customer_id, match.member)
