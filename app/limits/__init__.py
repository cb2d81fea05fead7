"""Edge limits: oversized bodies and storefront request rates, refused before any handler."""
