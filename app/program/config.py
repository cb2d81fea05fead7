"""The loyalty program a shop runs, as one versioned, validated JSON document.

Each change to a program is stored as a new immutable `ProgramVersion` whose `config` is
`ProgramConfig.model_dump(mode="json")`; earnings record the version that produced them,
so refunds reverse with the rule that awarded the points, not today's. The models are
frozen and reject unknown keys, so a typo in stored or submitted JSON fails loudly.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Name = Annotated[str, Field(min_length=1, max_length=100)]
Money = Annotated[Decimal, Field(ge=0, max_digits=20, decimal_places=6)]
Points = Annotated[int, Field(ge=0, le=10_000_000)]


class EarningBasis(StrEnum):
    """What an order earns on."""

    merchandise = "merchandise"  # goods after discounts; no shipping, tax, tips, gift cards
    total = "total"  # the order total, shipping and tax included (gift cards still left out)


class Participation(StrEnum):
    """Who earns: everyone who orders, or only shoppers with a store account."""

    all_customers = "all_customers"
    accounts_only = "accounts_only"


class TierBasis(StrEnum):
    points_earned = "points_earned"
    amount_spent = "amount_spent"


class TierWindow(StrEnum):
    lifetime = "lifetime"
    calendar_year = "calendar_year"
    rolling_12_months = "rolling_12_months"


class ExpiryMode(StrEnum):
    none = "none"
    inactivity = "inactivity"  # the whole balance lapses N days after the last earn or spend
    per_earning = "per_earning"  # each earning lapses N days after it became available


class RewardKind(StrEnum):
    fixed_amount = "fixed_amount"
    percentage = "percentage"
    free_shipping = "free_shipping"
    free_product = "free_product"
    variable = "variable"  # the shopper picks how many points: N points per 1 unit off


class EarningTrigger(StrEnum):
    """When an order earns: once paid, or once fulfilled (fewer reversals for slow shippers)."""

    paid = "paid"
    fulfilled = "fulfilled"


class TierDowngrade(StrEnum):
    """Whether a member can fall to a lower tier when the window moves on."""

    window_end = "window_end"
    never = "never"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EarningRule(_Model):
    """Points per order: `floor(basis × rate × tier multiplier)`.

    Product tags are not in order payloads, so `excluded_product_tags` is resolved to
    product ids by the caller; `excluded_product_ids` / `excluded_variant_ids` apply as is.
    """

    rate: Annotated[Decimal, Field(ge=0, le=1_000, max_digits=12, decimal_places=6)] = Decimal(1)
    basis: EarningBasis = EarningBasis.merchandise
    trigger: EarningTrigger = EarningTrigger.paid
    minimum_order: Money = Decimal(0)
    include_test_orders: bool = False
    excluded_sources: tuple[str, ...] = ()
    excluded_product_ids: tuple[str, ...] = ()
    excluded_variant_ids: tuple[str, ...] = ()
    excluded_product_tags: tuple[str, ...] = ()


class BonusRule(_Model):
    """A one-off bonus such as signing up or a birthday."""

    enabled: bool = False
    points: Points = 0


class ReviewRule(_Model):
    enabled: bool = False
    points: Points = 0
    media_points: Points = 0  # extra for a review with a photo or video
    verified_only: bool = False  # only reviews Judge.me marks as from verified buyers
    once_per_product: bool = True  # one reward per product per customer
    min_length: Annotated[int, Field(ge=0, le=5_000)] = 0  # characters of review text


class RiskPolicy(StrEnum):
    """What happens to a referral whose risk score reaches the shop's threshold."""

    block = "block"  # rejected at once; the referrer is not paid
    review = "review"  # held until the merchant approves or rejects it
    allow = "allow"  # paid as usual, the reasons kept for the report


class ReferralRule(_Model):
    """Referrer earns points when the friend's first qualifying order is placed.

    The reward stays pending for `hold_days` (the referral return window) so a refund or
    cancellation inside it cancels the reward. Referrals scoring `risk_threshold` or more
    (0-100, see `app.referrals.fraud`) follow `risk_policy`.
    """

    enabled: bool = False
    referrer_points: Points = 0
    friend_discount_kind: Literal[RewardKind.fixed_amount, RewardKind.percentage] = (
        RewardKind.percentage
    )
    friend_discount_value: Money = Decimal(0)
    friend_discount_expires_after_days: Annotated[int, Field(ge=1, le=3_650)] | None = 30
    minimum_order: Money = Decimal(0)
    hold_days: Annotated[int, Field(ge=0, le=365)] = 14
    risk_threshold: Annotated[int, Field(ge=1, le=100)] = 60
    risk_policy: RiskPolicy = RiskPolicy.review
    # Velocity: more referred orders than this from one IP, or for one referrer, per window.
    ip_velocity_limit: Annotated[int, Field(ge=1, le=1_000)] = 5
    ip_velocity_days: Annotated[int, Field(ge=1, le=90)] = 7
    burst_limit: Annotated[int, Field(ge=1, le=1_000)] = 5
    burst_hours: Annotated[int, Field(ge=1, le=168)] = 24
    # Coupon sites: clicks on one code from this many different networks in a week.
    coupon_click_limit: Annotated[int, Field(ge=2, le=100_000)] = 50

    @model_validator(mode="after")
    def _friend_discount(self) -> Self:
        if self.friend_discount_kind == RewardKind.percentage and self.friend_discount_value > 100:
            raise ValueError("a percentage friend discount cannot exceed 100")
        return self


class CustomActionRule(_Model):
    """An action the merchant reports through the API (`CustomAction.action == key`)."""

    key: Slug
    name: Name
    points: Annotated[int, Field(ge=1, le=10_000_000)]
    limit_per_member: Annotated[int, Field(ge=1)] | None = None
    cooldown_days: Annotated[int, Field(ge=1, le=3_650)] | None = None


class Reward(_Model):
    """Something points buy; redeemed as a platform discount code."""

    id: Slug
    name: Name
    kind: RewardKind
    points_cost: Annotated[int, Field(ge=1, le=10_000_000)]
    value: Money | None = None
    minimum_order: Money | None = None
    product_id: str | None = None
    variant_id: str | None = None
    enabled: bool = True
    # How long the discount code stays valid; None means no end date.
    expires_after_days: Annotated[int, Field(ge=1, le=3_650)] | None = 90
    # Only members of this tier (or a higher one) may redeem it.
    tier_required: str | None = None
    # Variable rewards: `points_cost` points buy `value` off, in steps, up to `max_value`.
    max_value: Money | None = None

    @model_validator(mode="after")
    def _value_fits_kind(self) -> Self:
        if self.kind == RewardKind.variable:
            if self.value is None or self.value <= 0:
                raise ValueError("a variable reward needs the value one step buys")
            if self.max_value is None or self.max_value < self.value:
                raise ValueError("a variable reward needs a max_value of at least one step")
        if self.kind in (RewardKind.fixed_amount, RewardKind.percentage):
            if self.value is None or self.value <= 0:
                raise ValueError(f"a {self.kind} reward needs a value above 0")
            if self.kind == RewardKind.percentage and self.value > 100:
                raise ValueError("a percentage reward cannot exceed 100")
        if self.kind == RewardKind.free_product and not (self.product_id or self.variant_id):
            raise ValueError("a free_product reward needs a product_id or variant_id")
        return self


class Tier(_Model):
    """A VIP level, reached at `threshold` points (or whole currency units of spend)."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    threshold: Annotated[int, Field(ge=0)]
    multiplier: Annotated[Decimal, Field(ge=1, le=10, max_digits=6, decimal_places=4)] = Decimal(1)
    entry_reward: Points = 0  # bonus points the first time a member reaches this tier


class TierProgram(_Model):
    enabled: bool = True
    basis: TierBasis = TierBasis.points_earned
    window: TierWindow = TierWindow.rolling_12_months
    downgrade: TierDowngrade = TierDowngrade.window_end
    levels: tuple[Tier, ...] = ()

    @model_validator(mode="after")
    def _ascending(self) -> Self:
        thresholds = [tier.threshold for tier in self.levels]
        if any(low >= high for low, high in zip(thresholds, thresholds[1:], strict=False)):
            raise ValueError("tier thresholds must be strictly ascending")
        names = [tier.name.casefold() for tier in self.levels]
        if len(set(names)) != len(names):
            raise ValueError("tier names must be unique")
        if self.enabled and not self.levels:
            raise ValueError("enabled tiers need at least one level")
        return self


class ExpiryRule(_Model):
    mode: ExpiryMode = ExpiryMode.none
    days: Annotated[int, Field(ge=1, le=3_650)] | None = None
    warning_days: Annotated[int, Field(ge=0, le=365)] = 0

    @model_validator(mode="after")
    def _days_match_mode(self) -> Self:
        if self.mode == ExpiryMode.none:
            if self.days is not None:
                raise ValueError("days is only set when points expire")
        elif self.days is None:
            raise ValueError(f"expiry mode {self.mode} needs days")
        elif self.warning_days >= self.days:
            raise ValueError("warning_days must be fewer than days")
        return self


class RedemptionRule(_Model):
    """What happens to codes after they are issued."""

    return_points_on_expiry: bool = False  # an unused code that expires gives its points back


class ProgramConfig(_Model):
    """Every knob of a shop's program. Amounts are in `currency`, the shop currency."""

    schema_version: Literal[1] = 1
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    participation: Participation = Participation.all_customers
    earning: EarningRule = EarningRule()
    signup: BonusRule = BonusRule()
    birthday: BonusRule = BonusRule()
    review: ReviewRule = ReviewRule()
    referral: ReferralRule = ReferralRule()
    custom_actions: tuple[CustomActionRule, ...] = ()
    rewards: tuple[Reward, ...] = ()
    redemption: RedemptionRule = RedemptionRule()
    tiers: TierProgram = TierProgram(enabled=False)
    pending_days: Annotated[int, Field(ge=0, le=365)] = 0
    expiry: ExpiryRule = ExpiryRule()

    @model_validator(mode="after")
    def _unique_keys(self) -> Self:
        reward_ids = [reward.id for reward in self.rewards]
        if len(set(reward_ids)) != len(reward_ids):
            raise ValueError("reward ids must be unique")
        action_keys = [action.key for action in self.custom_actions]
        if len(set(action_keys)) != len(action_keys):
            raise ValueError("custom action keys must be unique")
        return self


@dataclass(frozen=True, slots=True)
class CurrencyScale:
    """How a currency compares with USD, and the round figures Stamp picks from that.

    `usd_rate` is an approximate number of units per 1 USD (static, deliberately rough: it
    only chooses defaults). `units_per_point` and `reward_value` are the round figures
    nearest to "1 point ≈ 1 USD of spend" and "500 points ≈ 5 USD off".
    """

    usd_rate: Decimal
    units_per_point: Decimal
    reward_value: Decimal


def _scale(usd_rate: str, units_per_point: int, reward_value: int) -> CurrencyScale:
    return CurrencyScale(Decimal(usd_rate), Decimal(units_per_point), Decimal(reward_value))


# Rounded by hand: USD-like currencies (within 2x of USD) earn 1 point per whole unit; the
# others use 5, 10, 20, 100 or 1000 units per point. The 5-USD reward is rounded to a
# figure a merchant would print on a voucher (JPY 5 × 150 = 750 stays 750).
CURRENCY_SCALES: dict[str, CurrencyScale] = {
    "USD": _scale("1", 1, 5),
    "EUR": _scale("0.92", 1, 5),
    "GBP": _scale("0.79", 1, 4),
    "CHF": _scale("0.88", 1, 4),
    "CAD": _scale("1.38", 1, 7),
    "AUD": _scale("1.55", 1, 8),
    "NZD": _scale("1.70", 1, 8),
    "SGD": _scale("1.35", 1, 7),
    "JPY": _scale("150", 100, 750),
    "KRW": _scale("1400", 1000, 7000),
    "INR": _scale("85", 100, 400),
    "CNY": _scale("7.2", 5, 35),
    "HKD": _scale("7.8", 10, 40),
    "SEK": _scale("10.5", 10, 50),
    "NOK": _scale("10.8", 10, 50),
    "DKK": _scale("6.9", 5, 35),
    "PLN": _scale("4.0", 5, 20),
    "BRL": _scale("5.5", 5, 25),
    "MXN": _scale("18", 20, 100),
    "ZAR": _scale("18", 20, 100),
}
FALLBACK_SCALE = _scale("1", 1, 5)

DEFAULT_REWARD_POINTS = 500
DEFAULT_SIGNUP_POINTS = 100
DEFAULT_TIERS = (
    Tier(name="Bronze", threshold=0, multiplier=Decimal(1)),
    Tier(name="Silver", threshold=500, multiplier=Decimal("1.25")),
    Tier(name="Gold", threshold=1500, multiplier=Decimal("1.5")),
)


def currency_scale(currency: str) -> CurrencyScale:
    """The scale for a currency; an unknown one is treated like USD (1:1)."""
    return CURRENCY_SCALES.get(currency.strip().upper(), FALLBACK_SCALE)


def default_program(currency: str) -> ProgramConfig:
    """The program a newly installed shop starts with, scaled to its currency.

    1 point per ≈1 USD of merchandise, a 500-point fixed discount worth ≈5 USD, 100 points
    for signing up, no pending period, no expiry, and Bronze / Silver / Gold tiers on points
    earned over a rolling 12 months.
    """
    code = currency.strip().upper()
    scale = currency_scale(code)
    reward_value = scale.reward_value
    return ProgramConfig(
        currency=code,
        earning=EarningRule(rate=Decimal(1) / scale.units_per_point),
        signup=BonusRule(enabled=True, points=DEFAULT_SIGNUP_POINTS),
        rewards=(
            Reward(
                id="amount-off",
                name=f"{reward_value} {code} off",
                kind=RewardKind.fixed_amount,
                points_cost=DEFAULT_REWARD_POINTS,
                value=reward_value,
            ),
        ),
        tiers=TierProgram(
            enabled=True,
            basis=TierBasis.points_earned,
            window=TierWindow.rolling_12_months,
            levels=DEFAULT_TIERS,
        ),
        pending_days=0,
        expiry=ExpiryRule(mode=ExpiryMode.none),
    )
