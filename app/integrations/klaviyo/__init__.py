"""Klaviyo: loyalty properties on profiles and loyalty events, synced from the ledger."""
