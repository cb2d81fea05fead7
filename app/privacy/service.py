"""Privacy requests: export what Stamp holds on a customer, and erase it on request.

Erasure keeps the ledger's amounts (so a merchant's totals stay true) and drops every
name, email, phone and address: on the member row, in stored webhook bodies and dead
letters, and in earlier exports. The request itself is recorded as ids and a hash only.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ComplianceRequest, DataExport, Member, Shop, ShopStatus
from app.models.base import utcnow
from app.privacy.repository import PrivacyRepository
from app.privacy.scrub import Person, scrub_body


def _digest(raw_body: bytes) -> str:
    return hashlib.sha256(raw_body).hexdigest()


def _id(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


async def member_export(session: AsyncSession, shop: Shop, members: list[Member]) -> dict[str, Any]:
    """Everything Stamp holds on these members, as one JSON document."""
    repo = PrivacyRepository(session)
    export: dict[str, Any] = {"shop": shop.domain, "generated_at": utcnow().isoformat()}
    export["members"] = []
    for member in members:
        entries = await repo.ledger_for(member.id)
        orders = await repo.orders_for(member.id)
        export["members"].append(
            {
                "customer_id": member.customer_id,
                "email": member.email,
                "first_name": member.first_name,
                "last_name": member.last_name,
                "phone": member.phone,
                "birthday": member.birthday.isoformat() if member.birthday else None,
                "points_balance": member.points_balance,
                "pending_points": member.pending_points,
                "lifetime_points": member.lifetime_points,
                "tier": member.tier_name,
                "referral_code": member.referral_code,
                "joined_at": member.created_at.isoformat(),
                "ledger": [
                    {
                        "points": entry.points,
                        "kind": entry.kind,
                        "status": entry.status,
                        "source": f"{entry.source_type}:{entry.source_id}",
                        "reason": entry.reason,
                        "created_at": entry.created_at.isoformat(),
                    }
                    for entry in entries
                ],
                "orders": [
                    {
                        "order_id": order.order_id,
                        "amount": str(order.merchandise_amount),
                        "currency": order.currency,
                        "points_earned": order.points_earned,
                        "points_reversed": order.points_reversed,
                    }
                    for order in orders
                ],
            }
        )
    return export


async def export_customer(
    session: AsyncSession, shop: Shop, payload: dict[str, Any], raw_body: bytes
) -> DataExport:
    """Assemble everything Stamp holds on the customer and keep it for the merchant."""
    customer = payload.get("customer") or {}
    customer_id = _id(customer.get("id"))
    repo = PrivacyRepository(session)
    members = await repo.members_for(shop.id, customer_id, customer.get("email"))
    export = await member_export(session, shop, members)
    await repo.record_request(
        ComplianceRequest(
            shop_id=shop.id,
            topic="customers/data_request",
            customer_id=customer_id,
            request_id=_id((payload.get("data_request") or {}).get("id")),
            payload_sha256=_digest(raw_body),
        )
    )
    return await repo.add_export(
        DataExport(
            shop_id=shop.id,
            customer_id=customer_id,
            request_id=_id((payload.get("data_request") or {}).get("id")),
            export=export,
        )
    )


async def redact_customer(
    session: AsyncSession, shop: Shop, payload: dict[str, Any], raw_body: bytes
) -> int:
    """Erase one customer's personal data everywhere; returns how many members it touched."""
    customer = payload.get("customer") or {}
    person = Person(
        customer_id=_id(customer.get("id")),
        email=(customer.get("email") or "").strip().lower() or None,
        phone=(customer.get("phone") or "").strip() or None,
    )
    repo = PrivacyRepository(session)
    members = await repo.members_for(shop.id, person.customer_id, person.email)
    names = [name for member in members for name in (member.first_name, member.last_name) if name]
    phones = [member.phone for member in members if member.phone]
    await repo.anonymise_members([member.id for member in members])

    needle_person = Person(
        customer_id=person.customer_id,
        email=person.email,
        phone=person.phone or (phones[0] if phones else None),
    )
    rewrites: list[tuple[str, int, bytes]] = []
    async for kind, row_id, body in repo.stored_bodies(shop.id):
        lowered = body.lower()
        if needle_person.mentioned_in(body) or any(n.lower().encode() in lowered for n in names):
            rewrites.append((kind, row_id, scrub_body(body, needle_person)))
    for kind, row_id, body in rewrites:
        await repo.replace_body(kind, row_id, body)
    await repo.delete_exports(shop.id, person.customer_id)
    await repo.record_request(
        ComplianceRequest(
            shop_id=shop.id,
            topic="customers/redact",
            customer_id=person.customer_id,
            request_id=None,
            payload_sha256=_digest(raw_body),
        )
    )
    return len(members)


async def redact_shop(session: AsyncSession, shop: Shop, raw_body: bytes) -> None:
    """Erase all personal data a shop left behind, 48 hours after it uninstalled."""
    repo = PrivacyRepository(session)
    await repo.anonymise_all_members(shop.id)
    rewrites = [
        (kind, row_id, scrub_body(body)) async for kind, row_id, body in repo.stored_bodies(shop.id)
    ]
    for kind, row_id, body in rewrites:
        await repo.replace_body(kind, row_id, body)
    await repo.delete_exports(shop.id, None)
    await repo.erase_shop_profile(shop)
    shop.status = ShopStatus.redacted
    await repo.record_request(
        ComplianceRequest(
            shop_id=shop.id,
            topic="shop/redact",
            customer_id=None,
            request_id=None,
            payload_sha256=_digest(raw_body),
        )
    )
