"""Current program lookups: read once per transaction, parsed once per version."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.program.service import current_program, ensure_default_program, save_program
from app.settings import Settings
from app.state import State
from tests.builders import create_shop


async def test_a_program_saved_elsewhere_is_seen_by_the_next_transaction(
    session: AsyncSession, settings: Settings, state: State
) -> None:
    # Given a shop whose program this session has read
    shop = await create_shop(session, settings)
    first = await ensure_default_program(session, shop)
    await session.commit()
    version_id, config = await current_program(session, shop)
    assert (version_id, config.earning.rate) == (first.id, Decimal(1))

    # When another session saves a new rate
    async with state.sessionmaker() as other:
        changed = config.model_copy(
            update={"earning": config.earning.model_copy(update={"rate": Decimal(2)})}
        )
        second = await save_program(other, shop, changed, "merchant")
        await other.commit()

    # Then this session's next transaction sees it
    await session.rollback()
    await session.refresh(shop)
    version_id, config = await current_program(session, shop)
    assert (version_id, config.earning.rate) == (second.id, Decimal(2))


async def test_a_program_saved_in_this_transaction_is_current_at_once(
    session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    await ensure_default_program(session, shop)
    _, config = await current_program(session, shop)

    changed = config.model_copy(
        update={"earning": config.earning.model_copy(update={"rate": Decimal("1.5")})}
    )
    saved = await save_program(session, shop, changed, "merchant")

    version_id, config = await current_program(session, shop)
    assert (version_id, config.earning.rate) == (saved.id, Decimal("1.5"))
