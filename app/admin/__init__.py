"""The merchant's admin, embedded in Shopify: document loads, the bounce page, session auth."""
