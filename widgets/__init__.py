"""Storefront widget: JS/CSS assets, Jinja2 templates and the app-proxy routes that serve them."""
