"""Judge.me reviews in Stamp's words, and the pure rules that decide what one earns.

A webhook payload and the REST API describe a review with the same object, so both are
read by `review_from_payload`. The decision is a function of the review and the program,
so every outcome is testable without a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.program.config import ReviewRule

SOURCE = "judgeme"
# Judge.me's `verified` is a string; these mean the reviewer bought the product.
VERIFIED_BUYER = frozenset({"buyer", "verified-purchase"})


@dataclass(frozen=True, slots=True)
class ReviewSnapshot:
    """A review as it stands now. `live` is published and not hidden by the merchant."""

    review_id: str
    live: bool
    verified: str | None
    body_length: int
    has_media: bool
    email: str | None
    product_id: str | None
    rating: int | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class ReviewPolicy:
    """The program's review rule, with the knobs it may not carry yet at their defaults."""

    enabled: bool
    points: int
    media_points: int
    verified_only: bool = False
    once_per_product: bool = True
    min_length: int = 0

    @classmethod
    def of(cls, rule: ReviewRule) -> ReviewPolicy:
        return cls(
            enabled=rule.enabled,
            points=rule.points,
            media_points=rule.media_points,
            verified_only=rule.verified_only,
            once_per_product=rule.once_per_product,
            min_length=rule.min_length,
        )


def normalise_email(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    return email if "@" in email else None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def review_from_payload(review: Mapping[str, Any]) -> ReviewSnapshot:
    """Read Judge.me's review object; ValueError when it has no id (kept as a dead letter)."""
    if not isinstance(review, Mapping):
        raise ValueError("the payload has no review object")
    review_id = _text(review.get("id"))
    if review_id is None:
        raise ValueError("the review has no id")
    reviewer = review.get("reviewer")
    reviewer = reviewer if isinstance(reviewer, Mapping) else {}
    rating = review.get("rating")
    body = review.get("body")
    return ReviewSnapshot(
        review_id=review_id,
        live=review.get("published") is True and review.get("hidden") is not True,
        verified=_text(review.get("verified")),
        body_length=len(body.strip()) if isinstance(body, str) else 0,
        has_media=review.get("has_published_pictures") is True
        or review.get("has_published_videos") is True,
        email=normalise_email(reviewer.get("email")),
        product_id=_text(review.get("product_external_id")),
        rating=rating if isinstance(rating, int) and not isinstance(rating, bool) else None,
        updated_at=_datetime(review.get("updated_at")),
    )


def refusal(policy: ReviewPolicy, review: ReviewSnapshot) -> str | None:
    """Why this review earns nothing now, or None when it earns."""
    if not policy.enabled or (policy.points <= 0 and policy.media_points <= 0):
        return "reviews earn no points in this program"
    if not review.live:
        return "the review is not published"
    if review.email is None:
        return "the reviewer has no email to match a member by"
    if policy.verified_only and (review.verified or "").lower() not in VERIFIED_BUYER:
        return "only verified buyers earn points for reviews"
    if review.body_length < policy.min_length:
        return f"the review is shorter than {policy.min_length} characters"
    return None


def media_bonus(policy: ReviewPolicy, review: ReviewSnapshot, already: int) -> int:
    """The photo/video bonus still owed: once, when the review first shows media."""
    if already > 0 or not review.has_media or not review.live:
        return 0
    return policy.media_points
