"""Shapes of what Shopify sends back when a shop installs Stamp.

Parsed with pydantic so a response that lacks a field we rely on fails loudly at the
edge instead of storing `None` where a token should be.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class TokenGrant(BaseModel):
    """`/admin/oauth/access_token` answer for code exchange, token exchange and refresh.

    Expiring offline tokens carry `expires_in`, `refresh_token` and
    `refresh_token_expires_in`; legacy non-expiring tokens carry only the first two fields.
    """

    model_config = ConfigDict(extra="ignore")

    access_token: str = Field(min_length=1)
    scope: str = ""
    expires_in: int | None = Field(default=None, ge=0)
    refresh_token: str | None = None
    refresh_token_expires_in: int | None = Field(default=None, ge=0)

    @property
    def scopes(self) -> frozenset[str]:
        return parse_scopes(self.scope)


class ShopInfo(BaseModel):
    """The `shop` object of the Admin GraphQL query run at install."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str
    name: str
    email: str | None = None
    currency_code: str = Field(alias="currencyCode", min_length=3, max_length=3)
    iana_timezone: str = Field(alias="ianaTimezone")
    myshopify_domain: str = Field(alias="myshopifyDomain")


@dataclass(frozen=True, slots=True)
class VerifiedCallback:
    """An OAuth callback whose hmac, shop, timestamp and signed state all checked out."""

    shop: str
    code: str
    nonce: str
    host: str | None


def parse_scopes(value: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (value or "").split(",") if part.strip())
