"""Erase personal data from stored webhook payloads, keeping ids and amounts.

Pure functions: the caller decides which stored bodies concern the person, and this
module rewrites them. A body that is not JSON has the identifiers blanked byte-wise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

REDACTED = "[redacted]"
PERSONAL_KEYS = frozenset(
    {
        "email",
        "contact_email",
        "first_name",
        "last_name",
        "name",
        "phone",
        "address1",
        "address2",
        "city",
        "zip",
        "company",
        "latitude",
        "longitude",
        "browser_ip",
        "note",
        "customer_locale",
        "user_agent",
        "billing_email",
        "username",
    }
)


@dataclass(frozen=True, slots=True)
class Person:
    customer_id: str | None
    email: str | None
    phone: str | None

    def needles(self) -> list[str]:
        return [value for value in (self.email, self.phone) if value]

    def mentioned_in(self, body: bytes) -> bool:
        """Cheap pre-filter before parsing: does the body mention this person at all?"""
        lowered = body.lower()
        if any(needle.lower().encode() in lowered for needle in self.needles()):
            return True
        return bool(self.customer_id) and str(self.customer_id).encode() in body


def _scrub_value(value: Any, needles: list[str]) -> Any:
    if isinstance(value, dict):
        return {
            key: (
                REDACTED
                if key in PERSONAL_KEYS and item not in (None, "")
                else _scrub_value(item, needles)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_scrub_value(item, needles) for item in value]
    if isinstance(value, str) and needles:
        lowered = value.lower()
        if any(needle.lower() in lowered for needle in needles):
            return REDACTED
    return value


def scrub_body(body: bytes, person: Person | None = None) -> bytes:
    """Return the body with every personal field (and any mention of the person) redacted."""
    needles = person.needles() if person else []
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        scrubbed = body
        for needle in needles:
            scrubbed = scrubbed.replace(needle.encode(), REDACTED.encode())
        return scrubbed
    return orjson.dumps(_scrub_value(document, needles))
