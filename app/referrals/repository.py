"""SQL for referrals: clicks, welcome codes, fingerprints, referrals and the counts fraud needs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import insert_if_absent
from app.models import Member, Order, OrderRefund
from app.models.base import utcnow
from app.models.referral import MemberFingerprint, Referral, ReferralClick, ReferralOffer


class ReferralRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- members ------------------------------------------------------------------------

    async def member_by_code(self, shop_id: int, code: str) -> Member | None:
        return await self.session.scalar(
            select(Member).where(
                Member.shop_id == shop_id,
                Member.referral_code == code.upper(),
                Member.redacted_at.is_(None),
            )
        )

    async def members_like(
        self, shop_id: int, exclude_id: int, emails: Iterable[str], phone_digits: str | None
    ) -> list[Member]:
        """Other members whose email (any spelling listed) or phone might be this person's.

        Emails are compared case-insensitively in SQL; the caller re-checks normalised forms
        and phone digits, since stored phones keep their punctuation.
        """
        conditions = [func.lower(Member.email).in_(list(emails))]
        if phone_digits:
            conditions.append(Member.phone.like(f"%{phone_digits[-7:]}%"))
        result = await self.session.scalars(
            select(Member).where(
                Member.shop_id == shop_id, Member.id != exclude_id, or_(*conditions)
            )
        )
        return list(result)

    async def members_with_local_prefix(
        self, shop_id: int, exclude_id: int, local: str, domain: str
    ) -> list[Member]:
        """Candidates for alias spellings (dots, +tags): the caller re-checks normalised forms.

        Dots are removed on both sides in SQL, so `j.ane+x@gmail.com` is found for
        `jane@gmail.com`; `_` and `%` in the pattern only widen the candidate set.
        """
        squeezed = func.replace(func.lower(Member.email), ".", "")
        pattern = f"{local.replace('.', '')}%@{domain.replace('.', '')}"
        result = await self.session.scalars(
            select(Member)
            .where(Member.shop_id == shop_id, Member.id != exclude_id, squeezed.like(pattern))
            .limit(200)
        )
        return list(result)

    async def members_by_email_domain(
        self, shop_id: int, exclude_id: int, domain: str, limit: int = 2000
    ) -> list[Member]:
        result = await self.session.scalars(
            select(Member)
            .where(
                Member.shop_id == shop_id,
                Member.id != exclude_id,
                func.lower(Member.email).like(f"%@{domain}"),
            )
            .limit(limit)
        )
        return list(result)

    async def has_other_orders(self, shop_id: int, member_ids: list[int], order_id: str) -> bool:
        if not member_ids:
            return False
        found = await self.session.scalar(
            select(Order.id)
            .where(
                Order.shop_id == shop_id,
                Order.member_id.in_(member_ids),
                Order.order_id != order_id,
            )
            .limit(1)
        )
        return found is not None

    async def refunded_merchandise(self, shop_id: int, order_id: str) -> Decimal:
        amounts = await self.session.scalars(
            select(OrderRefund.merchandise_amount).where(
                OrderRefund.shop_id == shop_id, OrderRefund.order_id == order_id
            )
        )
        return sum(amounts, Decimal(0))

    # --- clicks and offers --------------------------------------------------------------

    async def add_click(self, click: ReferralClick) -> ReferralClick:
        self.session.add(click)
        await self.session.flush()
        return click

    async def distinct_click_networks(self, referrer_id: int, since: datetime) -> int:
        """Networks (other than the referrer's own clicks) that clicked this code since."""
        count = await self.session.scalar(
            select(func.count(func.distinct(ReferralClick.network_hash))).where(
                ReferralClick.referrer_member_id == referrer_id,
                ReferralClick.clicked_at >= since,
                ReferralClick.by_referrer.is_(False),
            )
        )
        return int(count or 0)

    async def offer_for(
        self, shop_id: int, referrer_id: int, visitor_hash: str
    ) -> ReferralOffer | None:
        return await self.session.scalar(
            select(ReferralOffer).where(
                ReferralOffer.shop_id == shop_id,
                ReferralOffer.referrer_member_id == referrer_id,
                ReferralOffer.visitor_hash == visitor_hash,
            )
        )

    async def insert_offer(self, **values: object) -> ReferralOffer | None:
        return await insert_if_absent(self.session, ReferralOffer, created_at=utcnow(), **values)

    async def offer_by_codes(self, shop_id: int, codes: Iterable[str]) -> ReferralOffer | None:
        wanted = [code.upper() for code in codes]
        if not wanted:
            return None
        return await self.session.scalar(
            select(ReferralOffer)
            .where(ReferralOffer.shop_id == shop_id, func.upper(ReferralOffer.code).in_(wanted))
            .limit(1)
        )

    async def move_offer(self, offer_id: int, old: str, new: str, **values: object) -> bool:
        result = await self.session.execute(
            update(ReferralOffer)
            .where(ReferralOffer.id == offer_id, ReferralOffer.status == old)
            .values(status=new, **values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # --- fingerprints -------------------------------------------------------------------

    async def remember(self, shop_id: int, member_id: int, kind: str, value_hash: str) -> None:
        await insert_if_absent(
            self.session,
            MemberFingerprint,
            shop_id=shop_id,
            member_id=member_id,
            kind=kind,
            value_hash=value_hash,
            created_at=utcnow(),
        )

    async def fingerprints(self, member_id: int) -> dict[str, set[str]]:
        result = await self.session.execute(
            select(MemberFingerprint.kind, MemberFingerprint.value_hash).where(
                MemberFingerprint.member_id == member_id
            )
        )
        found: dict[str, set[str]] = {}
        for kind, value_hash in result:
            found.setdefault(kind, set()).add(value_hash)
        return found

    # --- referrals ----------------------------------------------------------------------

    async def by_order(self, shop_id: int, order_id: str) -> Referral | None:
        return await self.session.scalar(
            select(Referral)
            .where(Referral.shop_id == shop_id, Referral.order_id == order_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def for_friend(self, shop_id: int, friend_id: int) -> Referral | None:
        return await self.session.scalar(
            select(Referral).where(
                Referral.shop_id == shop_id, Referral.friend_member_id == friend_id
            )
        )

    async def get(self, shop_id: int, referral_id: int) -> Referral | None:
        return await self.session.scalar(
            select(Referral)
            .where(Referral.shop_id == shop_id, Referral.id == referral_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def insert(self, **values: object) -> Referral | None:
        """The new referral, or None when the order or the friend already has one."""
        return await insert_if_absent(self.session, Referral, created_at=utcnow(), **values)

    async def count_from_ip(self, shop_id: int, ip_hash: str, since: datetime) -> int:
        count = await self.session.scalar(
            select(func.count()).where(
                Referral.shop_id == shop_id,
                Referral.ip_hash == ip_hash,
                Referral.created_at >= since,
            )
        )
        return int(count or 0)

    async def count_for_referrer(self, referrer_id: int, since: datetime) -> int:
        count = await self.session.scalar(
            select(func.count()).where(
                Referral.referrer_member_id == referrer_id, Referral.created_at >= since
            )
        )
        return int(count or 0)

    async def page(
        self,
        shop_id: int,
        status: str | None,
        limit: int,
        after_id: int | None,
        referrer_id: int | None = None,
    ) -> list[Referral]:
        """Oldest first (a review queue is worked from the front), keyset on id."""
        query = select(Referral).where(Referral.shop_id == shop_id)
        if status:
            query = query.where(Referral.status == status)
        if referrer_id is not None:
            query = query.where(Referral.referrer_member_id == referrer_id)
        if after_id is not None:
            query = query.where(Referral.id > after_id)
        result = await self.session.scalars(query.order_by(Referral.id).limit(limit))
        return list(result)

    async def qualified_due(self, shop_id: int, now: datetime, limit: int) -> list[Referral]:
        result = await self.session.scalars(
            select(Referral)
            .where(
                Referral.shop_id == shop_id,
                Referral.status == "qualified",
                Referral.release_at <= now,
            )
            .order_by(Referral.id)
            .limit(limit)
        )
        return list(result)
