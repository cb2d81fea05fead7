"""The pure program rules: earning, refund reversal, tiers, pending and expiry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.events import OrderLine, OrderPaid
from app.program.config import (
    EarningBasis,
    ExpiryMode,
    ExpiryRule,
    ProgramConfig,
    TierWindow,
    default_program,
)
from app.program.rules import (
    Entry,
    ExpiryDates,
    Lot,
    NextTier,
    earning_basis,
    inactivity_expiry,
    last_activity,
    lots_to_warn,
    next_tier,
    open_lots,
    order_earning,
    pending_release_at,
    points_for,
    points_to_expire,
    reversal_for_refund,
    round_half_up,
    tier_for,
    tier_multiplier,
    tier_points,
    window_start,
)

USD = default_program("USD")
NOW = datetime(2026, 9, 20, 12, 0, tzinfo=UTC)


def line(
    line_id: str,
    unit_price: str,
    quantity: int = 1,
    discount: str = "0",
    *,
    gift_card: bool = False,
    product_id: str | None = None,
    variant_id: str | None = None,
) -> OrderLine:
    price, cut = Decimal(unit_price), Decimal(discount)
    return OrderLine(
        line_id=line_id,
        product_id=product_id or f"p{line_id}",
        variant_id=variant_id or f"v{line_id}",
        quantity=quantity,
        unit_price=price,
        discount=cut,
        gift_card=gift_card,
        merchandise=price * quantity - cut,
    )


def worked_example(**changes: Any) -> OrderPaid:
    """A 2 x 25.00 (-5.00), B 1 x 30.00 (-3.00), C 20.00 gift card; 7.50 shipping, 6.40 tax."""
    order = OrderPaid(
        order_id="1042",
        name="#1042",
        customer=None,
        email="ada@example.com",
        currency="USD",
        merchandise=Decimal("72.00"),
        total=Decimal("105.90"),
        lines=(
            line("A", "25.00", 2, "5.00"),
            line("B", "30.00", 1, "3.00"),
            line("C", "20.00", 1, gift_card=True),
        ),
        discount_codes=("WELCOME10",),
        is_test=False,
        source_name="web",
        financial_status="paid",
        placed_at=NOW,
        landing_site=None,
        referring_site=None,
        note_attributes=(),
        tags=(),
        cancelled=False,
    )
    return replace(order, **changes)


def with_earning(config: ProgramConfig, **changes: Any) -> ProgramConfig:
    return config.model_copy(update={"earning": config.earning.model_copy(update=changes)})


# --- rounding -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2.5", 3), ("3.5", 4), ("2.4999", 2), ("0.5", 1), ("-2.5", -3), ("27", 27), ("0", 0)],
)
def test_round_half_up(value: str, expected: int) -> None:
    assert round_half_up(Decimal(value)) == expected


def test_round_half_up_refuses_nan() -> None:
    with pytest.raises(ValueError, match="round"):
        round_half_up(Decimal("NaN"))


# --- earning ------------------------------------------------------------------------------


def test_worked_example_earns_72_points() -> None:
    # Given the worked example and the default USD program (rate 1, Bronze x1)
    # When it is scored
    # Then basis 72.00 -> floor(72.00 x 1 x 1) = 72
    assert earning_basis(worked_example(), USD) == Decimal("72.00")
    assert order_earning(worked_example(), USD, Decimal(1)) == 72


def test_tier_multiplier_applies_once_then_floors() -> None:
    # Given Silver (x1.25) and Gold (x1.5)
    # Then floor(72 x 1.25) = floor(90.0) = 90 and floor(72 x 1.5) = 108
    assert order_earning(worked_example(), USD, Decimal("1.25")) == 90
    assert order_earning(worked_example(), USD, Decimal("1.5")) == 108
    # and 19.99 x 1.25 = 24.9875 floors to 24 (never rounded up)
    assert order_earning(worked_example(merchandise=Decimal("19.99")), USD, Decimal("1.25")) == 24


def test_jpy_program_earns_one_point_per_100_yen() -> None:
    # Given a JPY shop and a 12,345 JPY order
    jpy = default_program("JPY")
    order = worked_example(currency="JPY", merchandise=Decimal(12345), lines=())

    # When it is scored, Then floor(12345 x 0.01) = 123
    assert order_earning(order, jpy, Decimal(1)) == 123


def test_total_basis_includes_shipping_and_tax_but_not_gift_cards() -> None:
    # Given a program earning on the order total
    config = with_earning(USD, basis=EarningBasis.total)

    # When the worked example is scored
    # Then basis = 105.90 - 20.00 gift card = 85.90, earning floor(85.90) = 85
    assert earning_basis(worked_example(), config) == Decimal("85.90")
    assert order_earning(worked_example(), config, Decimal(1)) == 85


def test_excluded_products_do_not_earn() -> None:
    # Given a program excluding product pB, and the caller resolving a tag to variant vA
    config = with_earning(USD, excluded_product_ids=("pB",))

    # When the worked example is scored
    # Then B's 27.00 is out: 72.00 - 27.00 = 45.00
    assert earning_basis(worked_example(), config) == Decimal("45.00")
    # and with A's variant excluded by tag too, nothing is left
    assert earning_basis(worked_example(), config, frozenset({"vA"})) == Decimal(0)
    assert order_earning(worked_example(), config, Decimal(1), frozenset({"vA"})) == 0


def test_excluded_variant_ids_from_config_apply() -> None:
    config = with_earning(USD, excluded_variant_ids=("vA",))
    assert earning_basis(worked_example(), config) == Decimal("27.00")


def test_test_orders_do_not_qualify_unless_allowed() -> None:
    # Given a test order
    order = worked_example(is_test=True)

    # Then it earns nothing by default, and 72 when the program counts test orders
    assert order_earning(order, USD, Decimal(1)) is None
    assert order_earning(order, with_earning(USD, include_test_orders=True), Decimal(1)) == 72


def test_minimum_order_is_compared_with_the_basis() -> None:
    # Given a 72.01 minimum, Then 72.00 does not qualify; at 72.00 it does
    assert (
        order_earning(
            worked_example(), with_earning(USD, minimum_order=Decimal("72.01")), Decimal(1)
        )
        is None
    )
    assert (
        order_earning(
            worked_example(), with_earning(USD, minimum_order=Decimal("72.00")), Decimal(1)
        )
        == 72
    )


def test_excluded_channel_and_cancelled_orders_do_not_qualify() -> None:
    no_pos = with_earning(USD, excluded_sources=("pos",))
    assert order_earning(worked_example(source_name="pos"), no_pos, Decimal(1)) is None
    assert order_earning(worked_example(source_name="web"), no_pos, Decimal(1)) == 72
    assert order_earning(worked_example(cancelled=True), USD, Decimal(1)) is None


def test_negative_multiplier_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="multiplier"):
        order_earning(worked_example(), USD, Decimal(-1))


money = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False)
rates = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)
multipliers = st.sampled_from([Decimal(1), Decimal("1.25"), Decimal("1.5"), Decimal(2)])


@given(low=money, high=money, rate=rates, multiplier=multipliers)
def test_floor_earning_is_monotonic_in_basis(
    low: Decimal, high: Decimal, rate: Decimal, multiplier: Decimal
) -> None:
    low, high = min(low, high), max(low, high)
    assert points_for(low, rate, multiplier) <= points_for(high, rate, multiplier)


@given(basis=money, rate=rates, multiplier=multipliers)
def test_floor_earning_never_exceeds_the_exact_product(
    basis: Decimal, rate: Decimal, multiplier: Decimal
) -> None:
    points = points_for(basis, rate, multiplier)
    exact = basis * rate * multiplier
    assert points <= exact < points + 1


# --- refunds ------------------------------------------------------------------------------


def test_worked_example_refund_of_line_b_reverses_27() -> None:
    # Given 72 points on 72.00 merchandise, nothing refunded yet
    # When line B (27.00) is refunded
    # Then round_half_up(72 x 27.00 / 72.00) = 27 is reversed
    assert reversal_for_refund(72, Decimal("72.00"), Decimal(0), Decimal("27.00"), 0) == 27


def test_partial_refunds_reverse_cumulatively_without_drift() -> None:
    # Given 10 points on 3.00 of merchandise, refunded 1.00 at a time
    earned, merchandise = 10, Decimal("3.00")
    # When the first 1.00 comes back: round_half_up(10 x 1/3 = 3.33) = 3
    first = reversal_for_refund(earned, merchandise, Decimal(0), Decimal(1), 0)
    # and the second: total round_half_up(10 x 2/3 = 6.67) = 7, so this one is 7 - 3 = 4
    second = reversal_for_refund(earned, merchandise, Decimal(1), Decimal(1), first)
    # and the third: total round_half_up(10 x 3/3) = 10, so 10 - 7 = 3
    third = reversal_for_refund(earned, merchandise, Decimal(2), Decimal(1), first + second)
    # Then the steps are 3, 4, 3 and add up to exactly what was earned
    assert (first, second, third) == (3, 4, 3)


def test_refund_beyond_merchandise_is_capped() -> None:
    # Given a refund of 100.00 (shipping, goodwill) on 72.00 of merchandise
    # Then at most the 72 earned points are reversed
    assert reversal_for_refund(72, Decimal("72.00"), Decimal(0), Decimal("100.00"), 0) == 72
    # and a later refund reverses nothing more
    assert reversal_for_refund(72, Decimal("72.00"), Decimal(100), Decimal(5), 72) == 0


def test_zero_merchandise_reverses_everything_on_any_refund() -> None:
    assert reversal_for_refund(15, Decimal(0), Decimal(0), Decimal(0), 0) == 15
    assert reversal_for_refund(15, Decimal(0), Decimal(0), Decimal(3), 15) == 0


def test_after_a_cancellation_reversed_everything_a_refund_reverses_nothing() -> None:
    assert reversal_for_refund(72, Decimal(72), Decimal(0), Decimal(27), 72) == 0


def test_nothing_earned_nothing_reversed() -> None:
    assert reversal_for_refund(0, Decimal(72), Decimal(0), Decimal(27), 0) == 0


@pytest.mark.parametrize(
    "args",
    [
        (-1, Decimal(1), Decimal(0), Decimal(1), 0),
        (1, Decimal(-1), Decimal(0), Decimal(1), 0),
        (1, Decimal(1), Decimal(0), Decimal(-1), 0),
        (1, Decimal(1), Decimal(-1), Decimal(1), 0),
        (1, Decimal(1), Decimal(0), Decimal(1), -1),
    ],
)
def test_negative_inputs_are_refused(args: tuple[int, Decimal, Decimal, Decimal, int]) -> None:
    with pytest.raises(ValueError, match="negative"):
        reversal_for_refund(*args)


def run_refunds(earned: int, merchandise: Decimal, refunds: Sequence[Decimal]) -> list[int]:
    """Apply refunds in order, as the engine does, returning each refund's reversal."""
    steps: list[int] = []
    refunded = Decimal(0)
    for amount in refunds:
        steps.append(reversal_for_refund(earned, merchandise, refunded, amount, sum(steps)))
        refunded += amount
    return steps


positive_money = st.decimals(
    min_value=Decimal("0.01"), max_value=10**6, places=2, allow_nan=False, allow_infinity=False
)
points = st.integers(min_value=0, max_value=10**7)


@given(earned=points, merchandise=positive_money, refunds=st.lists(money, max_size=12))
def test_reversals_are_never_negative_and_never_exceed_earned(
    earned: int, merchandise: Decimal, refunds: list[Decimal]
) -> None:
    steps = run_refunds(earned, merchandise, refunds)
    assert all(step >= 0 for step in steps)
    assert sum(steps) <= earned


@given(earned=points, merchandise=positive_money)
def test_a_full_refund_reverses_exactly_what_was_earned(earned: int, merchandise: Decimal) -> None:
    assert reversal_for_refund(earned, merchandise, Decimal(0), merchandise, 0) == earned


@given(
    earned=points,
    cents=st.integers(min_value=1, max_value=10**8),
    cuts=st.lists(st.integers(min_value=0, max_value=10**8), max_size=10),
)
def test_partial_refunds_summing_to_merchandise_reverse_exactly_earned(
    earned: int, cents: int, cuts: list[int]
) -> None:
    # Given the merchandise split at arbitrary points into partial refunds (some may be 0)
    bounds = sorted({0, cents, *(cut % (cents + 1) for cut in cuts)})
    refunds = [Decimal(high - low) / 100 for low, high in zip(bounds, bounds[1:], strict=False)]
    merchandise = Decimal(cents) / 100
    assert sum(refunds) == merchandise

    # When they are refunded one after another
    steps = run_refunds(earned, merchandise, refunds)

    # Then the reversals add up to exactly what was earned, each one >= 0
    assert sum(steps) == earned
    assert all(step >= 0 for step in steps)


@given(earned=points, merchandise=positive_money, refunds=st.lists(money, max_size=12))
def test_cumulative_total_matches_one_refund_of_the_same_sum(
    earned: int, merchandise: Decimal, refunds: list[Decimal]
) -> None:
    # Splitting a refund never changes the total reversed (no drift)
    steps = run_refunds(earned, merchandise, refunds)
    assert sum(steps) == reversal_for_refund(
        earned, merchandise, Decimal(0), sum(refunds, Decimal(0)), 0
    )


# --- tiers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("progress", "tier", "upcoming"),
    [
        (0, "Bronze", NextTier("Silver", 500)),
        (499, "Bronze", NextTier("Silver", 1)),
        (500, "Silver", NextTier("Gold", 1000)),
        (1499, "Silver", NextTier("Gold", 1)),
        (1500, "Gold", None),
        (10_000, "Gold", None),
        (Decimal("499.5"), "Bronze", NextTier("Silver", 1)),
    ],
)
def test_default_tiers(progress: int | Decimal, tier: str, upcoming: NextTier | None) -> None:
    reached = tier_for(progress, USD)
    assert reached is not None
    assert reached.name == tier
    assert next_tier(progress, USD) == upcoming


def test_tier_multipliers() -> None:
    assert tier_multiplier(tier_for(0, USD)) == Decimal(1)
    assert tier_multiplier(tier_for(500, USD)) == Decimal("1.25")
    assert tier_multiplier(tier_for(1500, USD)) == Decimal("1.5")
    assert tier_multiplier(None) == Decimal(1)


def test_no_tier_below_the_lowest_threshold_or_when_tiers_are_off() -> None:
    levels = USD.tiers.levels[1:]
    high_start = USD.model_copy(update={"tiers": USD.tiers.model_copy(update={"levels": levels})})
    assert tier_for(100, high_start) is None
    assert next_tier(100, high_start) == NextTier("Silver", 400)
    off = USD.model_copy(update={"tiers": USD.tiers.model_copy(update={"enabled": False})})
    assert tier_for(5000, off) is None
    assert next_tier(0, off) is None


def test_window_starts() -> None:
    # Given a moment on 20 September 2026
    # Then lifetime has no start, the calendar year starts on 1 January, the rolling window
    # one year earlier to the second
    assert window_start(TierWindow.lifetime, NOW) is None
    assert window_start(TierWindow.calendar_year, NOW) == datetime(2026, 1, 1, tzinfo=UTC)
    assert window_start(TierWindow.rolling_12_months, NOW) == datetime(2025, 9, 20, 12, tzinfo=UTC)


def test_calendar_year_starts_in_the_shops_time_zone() -> None:
    tokyo = timezone(timedelta(hours=9))
    now = datetime(2026, 1, 1, 3, 0, tzinfo=tokyo)  # still 31 December in UTC
    assert window_start(TierWindow.calendar_year, now) == datetime(2026, 1, 1, tzinfo=tokyo)


def test_rolling_window_from_29_february() -> None:
    leap = datetime(2028, 2, 29, 8, 30, tzinfo=UTC)
    assert window_start(TierWindow.rolling_12_months, leap) == datetime(
        2027, 2, 28, 8, 30, tzinfo=UTC
    )


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        window_start(TierWindow.calendar_year, datetime(2026, 1, 1))


def entry(points: int, kind: str, days_ago: float, status: str = "available") -> Entry:
    return Entry(points=points, kind=kind, status=status, created_at=NOW - timedelta(days=days_ago))


def test_tier_points_count_earnings_minus_reversals_in_the_window() -> None:
    # Given a year of ledger entries
    entries = [
        entry(72, "earn", 10),
        entry(-27, "reverse", 5),
        entry(100, "signup", 200),
        entry(50, "review", 30),
        entry(20, "adjust", 3),
        entry(-40, "adjust", 2),  # a negative adjustment is not a reversal of earning
        entry(-500, "redeem", 1),  # spending never lowers tier progress
        entry(-10, "expire", 1),
        entry(300, "earn", 2, status="pending"),  # pending does not count towards tiers
        entry(80, "earn", 4, status="cancelled"),
        entry(1000, "earn", 400),  # outside the rolling 12 months
    ]
    start = window_start(TierWindow.rolling_12_months, NOW)

    # When points earned in the window are summed
    # Then 72 - 27 + 100 + 50 + 20 = 215
    assert tier_points(entries, start, NOW) == 215
    # and over a lifetime the old 1000 counts too
    assert tier_points(entries, None, NOW) == 1215


def test_released_pending_points_count_from_their_release() -> None:
    released = Entry(
        points=300,
        kind="earn",
        status="available",
        created_at=NOW - timedelta(days=400),
        available_at=NOW - timedelta(days=340),
    )
    start = window_start(TierWindow.rolling_12_months, NOW)
    assert tier_points([released], start, NOW) == 300


def test_tier_points_never_below_zero() -> None:
    assert tier_points([entry(-50, "reverse", 1)], None, NOW) == 0


# --- pending ------------------------------------------------------------------------------


def test_no_pending_period_by_default() -> None:
    assert pending_release_at(NOW, USD) is None


def test_pending_release_after_the_return_window() -> None:
    held = USD.model_copy(update={"pending_days": 30})
    assert pending_release_at(NOW, held) == NOW + timedelta(days=30)


# --- expiry -------------------------------------------------------------------------------


def with_expiry(mode: ExpiryMode, days: int, warning_days: int = 0) -> ProgramConfig:
    return USD.model_copy(
        update={"expiry": ExpiryRule(mode=mode, days=days, warning_days=warning_days)}
    )


def test_no_expiry_by_default() -> None:
    entries = [entry(100, "earn", 1000)]
    assert inactivity_expiry(NOW, USD) is None
    assert open_lots(entries, USD) == []
    assert points_to_expire(entries, USD, NOW) == 0


def test_inactivity_expiry_counts_from_the_last_earn_or_spend() -> None:
    # Given 365-day inactivity expiry with a 30-day warning
    config = with_expiry(ExpiryMode.inactivity, 365, 30)
    entries = [entry(100, "earn", 300), entry(-50, "redeem", 100), entry(-5, "expire", 10)]

    # When the last activity is the spend 100 days ago (expiry entries are not activity)
    last = last_activity(entries)
    assert last == NOW - timedelta(days=100)

    # Then the balance lapses 365 days after it, with a warning 30 days before
    assert inactivity_expiry(last, config) == ExpiryDates(
        expires_at=NOW + timedelta(days=265), warn_at=NOW + timedelta(days=235)
    )


def test_inactivity_expiry_without_activity_or_warning() -> None:
    config = with_expiry(ExpiryMode.inactivity, 90)
    assert inactivity_expiry(None, config) is None
    assert last_activity([]) is None
    assert inactivity_expiry(NOW, config) == ExpiryDates(NOW + timedelta(days=90), None)


def test_per_earning_expiry_spends_soonest_expiring_first() -> None:
    # Given 365-day per-earning expiry and three earnings, then a 150-point spend
    config = with_expiry(ExpiryMode.per_earning, 365, 30)
    entries = [
        entry(100, "earn", 400),  # expires 35 days ago
        entry(100, "earn", 350),  # expires in 15 days
        entry(100, "earn", 10),  # expires in 355 days
        entry(-150, "redeem", 5),
    ]

    # When the lots are worked out
    lots = open_lots(entries, config)

    # Then the spend used all of the oldest lot and half of the next
    assert lots == [
        Lot(50, NOW - timedelta(days=350), NOW + timedelta(days=15), NOW - timedelta(days=15)),
        Lot(100, NOW - timedelta(days=10), NOW + timedelta(days=355), NOW + timedelta(days=325)),
    ]
    # and nothing is due to expire now, but the 50 are inside their warning period
    assert points_to_expire(entries, config, NOW) == 0
    assert [lot.points for lot in lots_to_warn(entries, config, NOW)] == [50]
    # and 16 days on, those 50 are due
    assert points_to_expire(entries, config, NOW + timedelta(days=16)) == 50


def test_expired_lots_are_consumed_by_the_expire_entry() -> None:
    # Given a lot that expired and was written off by the expire job
    config = with_expiry(ExpiryMode.per_earning, 365)
    entries = [entry(100, "earn", 400), entry(-100, "expire", 30), entry(40, "earn", 20)]

    # Then only the newer 40 remain and nothing more is due
    assert [lot.points for lot in open_lots(entries, config)] == [40]
    assert points_to_expire(entries, config, NOW) == 0


def test_a_debt_is_paid_by_later_earnings_before_they_form_lots() -> None:
    # Given a reversal that left the member 30 points in debt
    config = with_expiry(ExpiryMode.per_earning, 365)
    entries = [entry(50, "earn", 100), entry(-80, "reverse", 50), entry(100, "earn", 10)]

    # Then the next 100 pay the 30 first, leaving a lot of 70
    assert [lot.points for lot in open_lots(entries, config)] == [70]


def test_pending_and_cancelled_credits_are_not_lots() -> None:
    config = with_expiry(ExpiryMode.per_earning, 30)
    entries = [entry(100, "earn", 40, status="pending"), entry(60, "earn", 40, status="cancelled")]
    assert open_lots(entries, config) == []
