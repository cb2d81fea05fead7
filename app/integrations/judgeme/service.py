"""Points for Judge.me reviews: earn when published, a media bonus, reversal when gone.

Every delivery is applied as the review's current state, so order and repetition do not
matter: a review earns once (`review:<id>:earn`), its photo/video bonus once
(`review:<id>:media`), and loses both once when it is unpublished, hidden or deleted
(`review:<id>:reverse`). A reversed review does not earn again if it is republished, so
toggling a review cannot farm points. Reviewers are matched to members by normalised
email.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto import Cipher
from app.db import unit_of_work
from app.integrations.judgeme.client import WEBHOOK_KEYS, JudgemeClient, JudgemeError
from app.integrations.judgeme.repository import REVERSED, REWARDED, JudgemeRepository
from app.integrations.judgeme.reviews import (
    ReviewPolicy,
    ReviewSnapshot,
    media_bonus,
    refusal,
    review_from_payload,
)
from app.ledger import service as ledger
from app.members import service as members
from app.models import ProgramVersion, Shop
from app.models.base import utcnow
from app.models.integration import ConnectionStatus, IntegrationConnection, ReviewReward
from app.program.config import Participation, ProgramConfig
from app.program.service import config_of, current_version, ensure_default_program
from app.state import State

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/judgeme"


@dataclass(frozen=True, slots=True)
class ReviewOutcome:
    """What a delivery did: earned, bonus, reversed, or nothing (with the reason)."""

    action: str
    points: int = 0
    reason: str | None = None


async def _program(session: AsyncSession, shop: Shop) -> tuple[ProgramVersion, ProgramConfig]:
    version = await current_version(session, shop.id) or await ensure_default_program(session, shop)
    return version, config_of(version)


async def apply_review(session: AsyncSession, shop: Shop, review: ReviewSnapshot) -> ReviewOutcome:
    """Bring the member's review points in line with the review as it stands now."""
    repo = JudgemeRepository(session)
    version, config = await _program(session, shop)
    policy = ReviewPolicy.of(config.review)
    reward = await repo.reward(shop.id, review.review_id)
    if reward is None:
        return await _first_reward(session, shop, review, policy, version, config)
    if reward.status == REVERSED:
        return ReviewOutcome("none", reason="the review's points were already taken back")
    if not review.live:
        return await _reverse(session, shop, reward, "unpublished")
    bonus = media_bonus(policy, review, reward.media_points)
    if bonus > 0:
        await _post_media(session, shop, reward, bonus, version.id)
        return ReviewOutcome("bonus", bonus)
    return ReviewOutcome("none", reason="the review already earned its points")


async def _first_reward(
    session: AsyncSession,
    shop: Shop,
    review: ReviewSnapshot,
    policy: ReviewPolicy,
    version: ProgramVersion,
    config: ProgramConfig,
) -> ReviewOutcome:
    refused = refusal(policy, review)
    if refused is not None:
        return ReviewOutcome("none", reason=refused)
    member = (await members.member_for_customer(session, shop, None, review.email)).member
    if member is None:
        return ReviewOutcome("none", reason="no member matches the reviewer")
    if config.participation is Participation.accounts_only and not member.is_account:
        return ReviewOutcome("none", reason="only members with an account earn points")
    repo = JudgemeRepository(session)
    await repo.lock_member(member.id)
    if (
        policy.once_per_product
        and review.product_id is not None
        and await repo.product_rewarded(shop.id, member.id, review.product_id, review.review_id)
    ):
        return ReviewOutcome("none", reason="a review of this product already earned points")
    reward = await repo.add_reward(
        shop.id, review.review_id, member.id, review.product_id, policy.points
    )
    if reward is None:  # a concurrent delivery of the same review got there first
        return ReviewOutcome("none", reason="the review already earned its points")
    earned = 0
    if policy.points > 0:
        await ledger.post(
            session,
            shop.id,
            ledger.Posting(
                member_id=member.id,
                points=policy.points,
                kind="review",
                idempotency_key=f"review:{review.review_id}:earn",
                source_type="review",
                source_id=review.review_id,
                program_version_id=version.id,
                reason="Wrote a product review",
            ),
        )
        earned = policy.points
    bonus = media_bonus(policy, review, 0)
    if bonus > 0:
        await _post_media(session, shop, reward, bonus, version.id)
        earned += bonus
    await members.reevaluate_tier(session, member.id, config, version.id)
    return ReviewOutcome("earned", earned)


async def _post_media(
    session: AsyncSession, shop: Shop, reward: ReviewReward, bonus: int, version_id: int
) -> None:
    entry = await ledger.post(
        session,
        shop.id,
        ledger.Posting(
            member_id=reward.member_id,
            points=bonus,
            kind="review",
            idempotency_key=f"review:{reward.review_id}:media",
            source_type="review",
            source_id=reward.review_id,
            program_version_id=version_id,
            reason="Added a photo or video to a review",
        ),
    )
    if entry is not None:
        reward.media_points = bonus
        await session.flush()


async def _reverse(
    session: AsyncSession, shop: Shop, reward: ReviewReward, why: str
) -> ReviewOutcome:
    """Take back everything the review earned, in full (the balance may go negative)."""
    total = reward.points + reward.media_points
    if total > 0:
        await ledger.post(
            session,
            shop.id,
            ledger.Posting(
                member_id=reward.member_id,
                points=-total,
                kind="reverse",
                idempotency_key=f"review:{reward.review_id}:reverse",
                source_type="review",
                source_id=reward.review_id,
                reason=f"Review {why}",
            ),
        )
    reward.status = REVERSED
    reward.reversed_at = utcnow()
    await session.flush()
    return ReviewOutcome("reversed", -total)


# --- connecting ------------------------------------------------------------------------------


def client_for(state: State, shop: Shop, token: str) -> JudgemeClient:
    return JudgemeClient(
        http=state.http,
        base_url=state.settings.JUDGEME_API_URL,
        shop_domain=shop.domain,
        token=token,
    )


async def register_webhooks(state: State, shop: Shop, token: str) -> None:
    """Subscribe Stamp to review/created and review/updated; JudgemeAuthError on a bad
    token. Called before anything is saved, so a refused token leaves nothing behind."""
    token = token.strip()
    if not token:
        raise JudgemeError("The Judge.me API token is empty", code="judgeme_token_invalid")
    client = client_for(state, shop, token)
    url = state.settings.external_url(WEBHOOK_PATH)
    for key in WEBHOOK_KEYS:
        await client.register_webhook(key, url)


async def save_token(
    session: AsyncSession, cipher: Cipher, shop: Shop, token: str
) -> IntegrationConnection:
    """Store the token encrypted: it authenticates API calls and signs the webhooks."""
    return await JudgemeRepository(session).save_connection(shop.id, cipher.encrypt(token.strip()))


async def disconnect(session: AsyncSession, shop: Shop) -> bool:
    """Forget the token: reviews stop earning (webhooks no longer verify). False if Judge.me
    was not connected."""
    connection = await JudgemeRepository(session).connection(shop.id)
    if connection is None or connection.status == ConnectionStatus.disconnected:
        return False
    connection.status = ConnectionStatus.disconnected
    connection.secret_enc = None
    connection.updated_at = utcnow()
    await session.flush()
    return True


# --- reviews deleted on Judge.me -----------------------------------------------------------


async def check_rewarded_reviews(
    state: State, shop_id: int, now: datetime, *, limit: int = 100, every: timedelta | None = None
) -> int:
    """Ask Judge.me about rewarded reviews not checked for a day; reverse the ones that are
    gone or no longer published (Judge.me sends no webhook for a deletion). Returns how
    many were reversed."""
    every = every or timedelta(days=1)
    async with state.sessionmaker() as session:
        repo = JudgemeRepository(session)
        shop = await session.get(Shop, shop_id)
        connection = await repo.connection(shop_id)
        if shop is None or connection is None or connection.secret_enc is None:
            return 0
        due = await repo.due_for_check(shop_id, now - every, limit)
        token = state.cipher.decrypt(connection.secret_enc)
    client = client_for(state, shop, token)
    reversed_count = 0
    for reward in due:
        current = await client.get_review(reward.review_id)
        async with unit_of_work(state.sessionmaker) as session:
            shop_now = await session.get(Shop, shop_id)
            assert shop_now is not None
            if current is None:
                locked = await JudgemeRepository(session).reward(shop_id, reward.review_id)
                outcome = (
                    await _reverse(session, shop_now, locked, "deleted")
                    if locked is not None and locked.status == REWARDED
                    else ReviewOutcome("none")
                )
            else:
                outcome = await apply_review(session, shop_now, review_from_payload(current))
            locked = await JudgemeRepository(session).reward(shop_id, reward.review_id)
            if locked is not None:
                locked.checked_at = now
        reversed_count += outcome.action == "reversed"
    return reversed_count


async def check_all_shops(state: State, now: datetime) -> int:
    async with state.sessionmaker() as session:
        shop_ids = await JudgemeRepository(session).connected_shop_ids()
    total = 0
    for shop_id in shop_ids:
        try:
            total += await check_rewarded_reviews(state, shop_id, now)
        except JudgemeError as exc:
            logger.warning("Judge.me review check for shop %s failed: %s", shop_id, exc.message)
    return total
