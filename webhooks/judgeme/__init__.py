"""Judge.me webhook receiver (`POST /webhooks/judgeme`) and its topic handlers."""
