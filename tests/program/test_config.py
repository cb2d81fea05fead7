"""ProgramConfig: validation, JSON round-trip and the currency-aware defaults."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from app.program.config import (
    CURRENCY_SCALES,
    ExpiryMode,
    ProgramConfig,
    RewardKind,
    TierBasis,
    TierWindow,
    currency_scale,
    default_program,
)


def config_json(**changes: Any) -> dict[str, Any]:
    data = default_program("USD").model_dump(mode="json")
    data.update(changes)
    return data


# --- defaults -----------------------------------------------------------------------------


def test_default_usd_program() -> None:
    # Given a USD shop
    # When it gets the default program
    program = default_program("USD")

    # Then it earns 1 point per 1 USD of merchandise, with the documented defaults
    assert program.currency == "USD"
    assert program.earning.rate == Decimal(1)
    assert program.earning.basis == "merchandise"
    assert program.earning.minimum_order == Decimal(0)
    assert program.earning.include_test_orders is False
    assert program.signup.enabled is True
    assert program.signup.points == 100
    assert program.pending_days == 0
    assert program.expiry.mode == ExpiryMode.none
    (reward,) = program.rewards
    assert (reward.kind, reward.points_cost, reward.value) == (
        RewardKind.fixed_amount,
        500,
        Decimal(5),
    )
    assert reward.name == "5 USD off"
    assert program.tiers.enabled is True
    assert program.tiers.basis == TierBasis.points_earned
    assert program.tiers.window == TierWindow.rolling_12_months
    assert [(t.name, t.threshold, t.multiplier) for t in program.tiers.levels] == [
        ("Bronze", 0, Decimal(1)),
        ("Silver", 500, Decimal("1.25")),
        ("Gold", 1500, Decimal("1.5")),
    ]


@pytest.mark.parametrize(
    ("currency", "rate", "reward"),
    [
        ("EUR", Decimal(1), Decimal(5)),
        ("GBP", Decimal(1), Decimal(4)),
        ("CAD", Decimal(1), Decimal(7)),
        ("JPY", Decimal("0.01"), Decimal(750)),  # 1 point per 100 JPY; 5 x ~150 JPY
        ("KRW", Decimal("0.001"), Decimal(7000)),
        ("INR", Decimal("0.01"), Decimal(400)),
        ("SEK", Decimal("0.1"), Decimal(50)),
        ("PLN", Decimal("0.2"), Decimal(20)),
        ("MXN", Decimal("0.05"), Decimal(100)),
    ],
)
def test_defaults_scale_to_the_shop_currency(currency: str, rate: Decimal, reward: Decimal) -> None:
    # Given a shop in a non-USD currency
    # When it gets the default program
    program = default_program(currency)

    # Then the rate and the 500-point reward are round figures near 1 USD / 5 USD
    assert program.earning.rate == rate
    assert program.rewards[0].value == reward
    assert program.rewards[0].points_cost == 500


def test_unknown_currency_falls_back_to_one_to_one() -> None:
    # Given a currency outside the table, written in lower case
    # When it gets the default program
    program = default_program("isk")

    # Then it is treated 1:1 like USD
    assert program.currency == "ISK"
    assert program.earning.rate == Decimal(1)
    assert program.rewards[0].value == Decimal(5)


@pytest.mark.parametrize("currency", sorted(CURRENCY_SCALES))
def test_every_scale_stays_close_to_usd(currency: str) -> None:
    # Given the static table
    scale = currency_scale(currency)

    # Then a point costs between 0.5 and 2 USD of spend, the reward is worth 3 to 7 USD
    usd_per_point = scale.units_per_point / scale.usd_rate
    reward_usd = scale.reward_value / scale.usd_rate
    assert Decimal("0.5") <= usd_per_point <= Decimal(2)
    assert Decimal(3) <= reward_usd <= Decimal(7)
    # and the rate 1 / units_per_point is exact
    assert Decimal(1) / scale.units_per_point * scale.units_per_point == Decimal(1)


def test_invalid_currency_code_is_refused() -> None:
    with pytest.raises(ValidationError):
        default_program("US")


# --- JSON round trip ----------------------------------------------------------------------


@pytest.mark.parametrize("currency", [*sorted(CURRENCY_SCALES), "XYZ"])
def test_default_program_round_trips_through_json(currency: str) -> None:
    # Given a default program
    program = default_program(currency)

    # When it is stored as JSON and read back
    stored = program.model_dump(mode="json")
    restored = ProgramConfig.model_validate(stored)

    # Then nothing changed, and money stayed exact (strings, never floats)
    assert restored == program
    assert isinstance(stored["earning"]["rate"], str)
    assert isinstance(stored["rewards"][0]["value"], str)


def test_full_program_round_trips_through_json() -> None:
    # Given a program with every section switched on
    program = ProgramConfig.model_validate(
        config_json(
            participation="accounts_only",
            earning={
                "rate": "2.5",
                "basis": "total",
                "minimum_order": "20.00",
                "include_test_orders": True,
                "excluded_sources": ["pos"],
                "excluded_product_ids": ["8003"],
                "excluded_variant_ids": ["9009"],
                "excluded_product_tags": ["no-points"],
            },
            birthday={"enabled": True, "points": 200},
            review={"enabled": True, "points": 50, "media_points": 25},
            referral={
                "enabled": True,
                "referrer_points": 500,
                "friend_discount_kind": "fixed_amount",
                "friend_discount_value": "10.00",
                "minimum_order": "30.00",
                "hold_days": 30,
            },
            custom_actions=[
                {
                    "key": "follow-instagram",
                    "name": "Follow us",
                    "points": 50,
                    "limit_per_member": 1,
                }
            ],
            rewards=[
                {
                    "id": "five-off",
                    "name": "$5 off",
                    "kind": "fixed_amount",
                    "points_cost": 500,
                    "value": "5",
                },
                {
                    "id": "ten-pct",
                    "name": "10% off",
                    "kind": "percentage",
                    "points_cost": 900,
                    "value": "10",
                },
                {
                    "id": "ship",
                    "name": "Free shipping",
                    "kind": "free_shipping",
                    "points_cost": 700,
                },
                {
                    "id": "mug",
                    "name": "Free mug",
                    "kind": "free_product",
                    "points_cost": 2000,
                    "product_id": "8021",
                },
            ],
            tiers={
                "enabled": True,
                "basis": "amount_spent",
                "window": "calendar_year",
                "levels": [
                    {"name": "Member", "threshold": 0, "multiplier": "1"},
                    {"name": "VIP", "threshold": 1000, "multiplier": "2"},
                ],
            },
            pending_days=30,
            expiry={"mode": "per_earning", "days": 365, "warning_days": 30},
        )
    )

    # When it round-trips through JSON
    restored = ProgramConfig.model_validate(program.model_dump(mode="json"))

    # Then it is equal, with exact decimals
    assert restored == program
    assert restored.earning.rate == Decimal("2.5")
    assert restored.earning.excluded_sources == ("pos",)


@given(
    rate=st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False),
    minimum=st.decimals(
        min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False
    ),
    pending=st.integers(min_value=0, max_value=365),
)
def test_any_valid_earning_rule_round_trips(rate: Decimal, minimum: Decimal, pending: int) -> None:
    earning = config_json()["earning"] | {"rate": str(rate), "minimum_order": str(minimum)}
    program = ProgramConfig.model_validate(config_json(earning=earning, pending_days=pending))
    assert ProgramConfig.model_validate(program.model_dump(mode="json")) == program


def test_config_is_immutable() -> None:
    program = default_program("USD")
    with pytest.raises(ValidationError):
        program.pending_days = 3  # type: ignore[misc]


# --- validation ---------------------------------------------------------------------------


def invalid(**changes: Any) -> None:
    with pytest.raises(ValidationError):
        ProgramConfig.model_validate(config_json(**changes))


def test_negative_rate_is_refused() -> None:
    invalid(earning=config_json()["earning"] | {"rate": "-1"})


def test_non_finite_rate_is_refused() -> None:
    invalid(earning=config_json()["earning"] | {"rate": "NaN"})


def test_negative_minimum_order_is_refused() -> None:
    invalid(earning=config_json()["earning"] | {"minimum_order": "-0.01"})


def test_unknown_keys_are_refused() -> None:
    invalid(earning=config_json()["earning"] | {"rat": "1"})
    invalid(surprise=True)


@pytest.mark.parametrize(
    "levels",
    [
        [{"name": "A", "threshold": 100}, {"name": "B", "threshold": 100}],
        [{"name": "A", "threshold": 500}, {"name": "B", "threshold": 100}],
        [{"name": "A", "threshold": 0}, {"name": "a", "threshold": 100}],
        [{"name": "A", "threshold": 0, "multiplier": "0.5"}],
        [{"name": "A", "threshold": -1}],
        [],
    ],
    ids=["equal", "descending", "duplicate-name", "multiplier-below-1", "negative", "empty"],
)
def test_bad_tiers_are_refused(levels: list[dict[str, Any]]) -> None:
    invalid(tiers={"enabled": True, "levels": levels})


def test_disabled_tiers_may_be_empty() -> None:
    program = ProgramConfig.model_validate(config_json(tiers={"enabled": False, "levels": []}))
    assert program.tiers.levels == ()


@pytest.mark.parametrize(
    "reward",
    [
        {"id": "x", "name": "x", "kind": "fixed_amount", "points_cost": 100},
        {"id": "x", "name": "x", "kind": "fixed_amount", "points_cost": 100, "value": "0"},
        {"id": "x", "name": "x", "kind": "percentage", "points_cost": 100, "value": "101"},
        {"id": "x", "name": "x", "kind": "free_product", "points_cost": 100},
        {"id": "x", "name": "x", "kind": "free_shipping", "points_cost": 0},
        {"id": "Bad Id", "name": "x", "kind": "free_shipping", "points_cost": 10},
    ],
    ids=["no-value", "zero-value", "over-100-pct", "no-product", "free", "bad-id"],
)
def test_bad_rewards_are_refused(reward: dict[str, Any]) -> None:
    invalid(rewards=[reward])


def test_duplicate_reward_ids_are_refused() -> None:
    reward = {"id": "x", "name": "x", "kind": "free_shipping", "points_cost": 10}
    invalid(rewards=[reward, reward])


def test_duplicate_custom_action_keys_are_refused() -> None:
    action = {"key": "follow", "name": "Follow", "points": 10}
    invalid(custom_actions=[action, action])


@pytest.mark.parametrize(
    "expiry",
    [
        {"mode": "per_earning"},
        {"mode": "inactivity", "days": 0},
        {"mode": "inactivity", "days": 30, "warning_days": 30},
        {"mode": "none", "days": 30},
    ],
    ids=["no-days", "zero-days", "warning-not-before", "days-without-expiry"],
)
def test_bad_expiry_is_refused(expiry: dict[str, Any]) -> None:
    invalid(expiry=expiry)


def test_pending_days_are_bounded() -> None:
    invalid(pending_days=-1)
    invalid(pending_days=366)


def test_percentage_friend_discount_is_bounded() -> None:
    invalid(referral={"enabled": True, "friend_discount_value": "150"})
