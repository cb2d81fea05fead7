"""The pure review rules: reading Judge.me's review object and deciding what it earns."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.integrations.judgeme.reviews import (
    ReviewPolicy,
    media_bonus,
    refusal,
    review_from_payload,
)
from app.program.config import ReviewRule
from tests.integrations.judgeme.support import review

POLICY = ReviewPolicy(enabled=True, points=50, media_points=25)


def test_the_review_object_is_read_in_stamps_words() -> None:
    snapshot = review_from_payload(review(pictures=True, email=" Ada@Example.com "))

    assert (
        snapshot.review_id,
        snapshot.live,
        snapshot.verified,
        snapshot.has_media,
        snapshot.email,
        snapshot.product_id,
        snapshot.rating,
        snapshot.body_length,
    ) == ("1001", True, "buyer", True, "ada@example.com", "7001", 5, 38)
    assert snapshot.updated_at is not None
    assert snapshot.updated_at.isoformat() == ("2026-05-01T10:00:00+00:00")


def test_a_hidden_or_unpublished_review_is_not_live() -> None:
    assert review_from_payload(review(hidden=True)).live is False
    assert review_from_payload(review(published=False)).live is False


def test_verified_buyers_only() -> None:
    strict = ReviewPolicy(enabled=True, points=50, media_points=0, verified_only=True)

    assert refusal(strict, review_from_payload(review(verified="buyer"))) is None
    assert refusal(strict, review_from_payload(review(verified="verified-purchase"))) is None
    assert refusal(strict, review_from_payload(review(verified="not-yet"))) == (
        "only verified buyers earn points for reviews"
    )
    assert refusal(POLICY, review_from_payload(review(verified="not-yet"))) is None


def test_minimum_length_counts_the_trimmed_body() -> None:
    policy = ReviewPolicy(enabled=True, points=50, media_points=0, min_length=20)

    assert refusal(policy, review_from_payload(review(text="  Nice mug.    "))) == (
        "the review is shorter than 20 characters"
    )
    assert refusal(policy, review_from_payload(review(text="A" * 20))) is None


def test_a_disabled_rule_or_a_missing_email_earns_nothing() -> None:
    off = ReviewPolicy(enabled=False, points=50, media_points=25)

    assert refusal(off, review_from_payload(review())) == "reviews earn no points in this program"
    assert refusal(POLICY, review_from_payload(review(email="not an email"))) == (
        "the reviewer has no email to match a member by"
    )


def test_the_media_bonus_is_owed_once() -> None:
    with_photo = review_from_payload(review(pictures=True))

    assert media_bonus(POLICY, with_photo, already=0) == 25
    assert media_bonus(POLICY, with_photo, already=25) == 0
    assert media_bonus(POLICY, review_from_payload(review()), already=0) == 0


def test_the_policy_reads_the_programs_rule_with_defaults_for_newer_knobs() -> None:
    policy = ReviewPolicy.of(ReviewRule(enabled=True, points=40, media_points=10))

    assert policy == ReviewPolicy(
        enabled=True,
        points=40,
        media_points=10,
        verified_only=False,
        once_per_product=True,
        min_length=0,
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=6,
)
review_keys = st.sampled_from(
    ["id", "published", "hidden", "verified", "body", "reviewer", "rating", "updated_at"]
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(review_keys, json_values))
def test_any_review_object_is_read_or_refused_with_a_value_error(item: dict[str, Any]) -> None:
    try:
        snapshot = review_from_payload(item)
    except ValueError:
        assert item.get("id") in (None, "", True, False) or str(item.get("id")).strip() == ""
        return
    assert snapshot.live is (item.get("published") is True and item.get("hidden") is not True)
    assert snapshot.email is None or snapshot.email == snapshot.email.strip().lower()
