"""Bringing existing data into Stamp: balances from another program, history from Shopify."""
