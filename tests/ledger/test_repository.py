"""Balance moves are one prebuilt `SET x = x + :delta`; a loaded member follows them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger.repository import BalanceDelta, LedgerRepository
from app.members.repository import MemberRepository
from app.models import Member
from app.settings import Settings
from tests.builders import create_member, create_shop


async def test_a_balance_move_updates_a_loaded_member_without_making_it_dirty(
    session: AsyncSession, settings: Settings
) -> None:
    # Given a member loaded in the session
    shop = await create_shop(session, settings)
    member = await create_member(session, shop, customer_id="11", referral_code="AAAA2222")

    # When points move
    await LedgerRepository(session).move_balance(member.id, BalanceDelta(available=30, lifetime=30))
    await LedgerRepository(session).move_balance(member.id, BalanceDelta(pending=5))

    # Then the loaded object shows the new balances and has nothing to write back
    assert (member.points_balance, member.pending_points, member.lifetime_points) == (30, 5, 30)
    assert member not in session.dirty
    await session.commit()
    stored = (
        await session.execute(
            select(Member.points_balance, Member.pending_points, Member.lifetime_points)
        )
    ).one()
    assert tuple(stored) == (30, 5, 30)


async def test_a_customer_and_a_guest_with_the_same_email_are_read_together(
    session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    guest = await create_member(session, shop, email="a@example.com", referral_code="GGGG2222")
    other = await create_member(session, shop, customer_id="7", referral_code="CCCC2222")

    repo = MemberRepository(session)
    assert await repo.by_customer_id_or_guest_email(shop.id, "7", "a@example.com") == (
        other,
        guest,
    )
    assert await repo.by_customer_id_or_guest_email(shop.id, "8", "a@example.com") == (
        None,
        guest,
    )
    assert await repo.by_customer_id_or_guest_email(shop.id, "8", "b@example.com") == (None, None)
