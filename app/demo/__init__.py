"""`stamp demo`: a local, offline demo shop with a storefront and a Shopify Admin stand-in.

Only mounted when `DEMO_MODE` is on (production refuses it). Everything the demo puts in
the database arrives the way Shopify would send it: signed webhooks to `/webhooks/shopify`.
"""

from __future__ import annotations

DEMO_SHOP = "stamp-demo.myshopify.com"
DEMO_SHOP_NAME = "Stamp Demo Store"
DEMO_SHOP_EMAIL = "owner@stamp-demo.example"
DEMO_SHOP_ID = "gid://shopify/Shop/68000000001"
DEMO_TIMEZONE = "America/New_York"
DEMO_CURRENCY = "USD"
# Said on every demo response, so nobody mistakes the stand-in for Shopify.
DEMO_HEADER = "X-Stamp-Demo"
DEMO_HEADER_VALUE = "local stand-in (DEMO_MODE); not Shopify"
