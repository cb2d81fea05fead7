"""What the admin pages show and accept, as functions over the domain services.

Rules live where they always did (`app.program`, `app.ledger`, `app.referrals`, ...); this
module only shapes their data for pages: the analytics figures and tables, the program
form (flattened to field names and back, validated by `ProgramConfig` itself), the live
preview (the pure earning rule), version diffs and the onboarding checklist.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.charts import Series, line_chart
from app.admin.repository import (
    AdminRepository,
    Balances,
    Cohort,
    DayRow,
    PointsTotals,
)
from app.errors import ValidationFailed
from app.events import OrderLine, OrderPaid
from app.models import Shop
from app.program import rules
from app.program.config import ProgramConfig, RewardKind
from app.winback.service import ArmReport, incentive_report

DEFAULT_DAYS = 30
MAX_DAYS = 366

# --- date range -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DateRange:
    """Whole UTC days, `first` to `last` inclusive."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=UTC)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def date_range(raw_from: str | None, raw_to: str | None, today: date) -> DateRange:
    """The range asked for (`from`/`to` as YYYY-MM-DD), by default the last 30 days."""
    try:
        last = date.fromisoformat(raw_to) if raw_to else today
        default_first = last - timedelta(days=DEFAULT_DAYS - 1)
        first = date.fromisoformat(raw_from) if raw_from else default_first
    except ValueError as exc:
        raise ValidationFailed("Dates are written YYYY-MM-DD", code="invalid_date") from exc
    if first > last:
        raise ValidationFailed("The range starts after it ends", code="invalid_range")
    if (last - first).days >= MAX_DAYS:
        raise ValidationFailed(f"A range covers at most {MAX_DAYS} days", code="invalid_range")
    return DateRange(first, last)


# --- analytics ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Table:
    """One table on the home page, and the CSV the merchant can download of it."""

    name: str
    title: str
    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Analytics:
    period: DateRange
    currency: str
    balances: Balances
    points: PointsTotals
    point_value: Decimal | None
    cohorts: Mapping[bool, Cohort]
    referrals: tuple[int, Decimal]
    winback: Mapping[str, ArmReport]
    points_days: list[DayRow]
    member_days: list[DayRow]
    revenue_days: list[DayRow]

    @property
    def liability(self) -> Decimal | None:
        """What the outstanding points would cost if all were redeemed at the best rate."""
        if self.point_value is None:
            return None
        return (self.point_value * self.balances.outstanding).quantize(Decimal("0.01"))

    @property
    def redemption_rate(self) -> Decimal | None:
        if not self.points.issued:
            return None
        return percent(self.points.redeemed, self.points.issued)


def percent(part: int | Decimal, whole: int | Decimal) -> Decimal:
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"))


def point_value(config: ProgramConfig) -> Decimal | None:
    """Currency per point of the best enabled fixed-amount reward (None without one)."""
    rates = [
        reward.value / reward.points_cost
        for reward in config.rewards
        if reward.enabled
        and reward.kind in (RewardKind.fixed_amount, RewardKind.variable)
        and reward.value
    ]
    return max(rates) if rates else None


async def analytics(
    session: AsyncSession, shop: Shop, config: ProgramConfig, period: DateRange
) -> Analytics:
    repo = AdminRepository(session)
    start, end = period.start, period.end
    points_days = await repo.points_by_day(shop.id, period.first, period.last)
    orders = await repo.order_figures(shop.id, start, end)
    # The range's totals are the sum of its days: one pass over the entries, not two.
    totals = PointsTotals(
        issued=sum(int(row.values[0]) for row in points_days),
        redeemed=sum(int(row.values[1]) for row in points_days),
    )
    return Analytics(
        period=period,
        currency=shop.currency,
        balances=await repo.balances(shop.id),
        points=totals,
        point_value=point_value(config),
        cohorts=orders.cohorts,
        referrals=await repo.referral_revenue(shop.id, start, end),
        winback=await incentive_report(session, shop, start),
        points_days=points_days,
        member_days=await repo.new_members_by_day(shop.id, start, end),
        revenue_days=orders.revenue_days,
    )


def _daily(period: DateRange, rows: Sequence[DayRow], width: int) -> list[tuple[Any, ...]]:
    """One row per day of the range (days without activity are zeros)."""
    found = {row.day: row.values for row in rows}
    zero: tuple[Any, ...] = (0,) * width
    return [(day, *found.get(day, zero)) for day in period.days]


def _per_customer(cohort: Cohort) -> str:
    return (
        str((cohort.revenue / cohort.customers).quantize(Decimal("0.01")))
        if cohort.customers
        else "-"
    )


def _rate(part: int, whole: int) -> str:
    return f"{percent(part, whole)}%" if whole else "-"


def tables(data: Analytics) -> list[Table]:
    """Every table of the home page, as text cells (the same ones go into the CSV files)."""
    cur = data.currency
    summary = [
        ("Members", str(data.balances.members)),
        ("Points issued", str(data.points.issued)),
        ("Points redeemed", str(data.points.redeemed)),
        ("Points outstanding", str(data.balances.outstanding)),
        ("Points pending", str(data.balances.pending)),
        (f"Liability ({cur})", str(data.liability) if data.liability is not None else "-"),
        (
            "Redemption rate",
            f"{data.redemption_rate}%" if data.redemption_rate is not None else "-",
        ),
        ("Referred orders", str(data.referrals[0])),
        (f"Referral revenue ({cur})", str(data.referrals[1])),
    ]
    cohorts = [
        (
            label,
            str(cohort.customers),
            str(cohort.orders),
            _rate(cohort.repeat_customers, cohort.customers),
            str(cohort.revenue),
            _per_customer(cohort),
        )
        for label, cohort in (("Members", data.cohorts[True]), ("Non-members", data.cohorts[False]))
    ]
    winback = [
        (
            arm.arm,
            str(arm.flagged),
            str(arm.won_back),
            f"{Decimal(arm.won_back_rate * 100).quantize(Decimal('0.1'))}%",
            str(arm.revenue),
        )
        for arm in data.winback.values()
    ]
    day_rows = [
        (day.isoformat(), *(str(v) for v in values))
        for day, *values in _daily(data.period, data.points_days, 2)
    ]
    members = {row.day: row.values[0] for row in data.member_days}
    revenue = {row.day: row.values for row in data.revenue_days}
    for index, day in enumerate(data.period.days):
        member_rev, other_rev = revenue.get(day, (Decimal("0.00"), Decimal("0.00")))
        day_rows[index] = (
            *day_rows[index],
            str(members.get(day, 0)),
            str(member_rev),
            str(other_rev),
        )
    return [
        Table("summary", "Summary", ("Figure", "Value"), summary),
        Table(
            "customers",
            "Members vs non-members",
            (
                "Who",
                "Customers",
                "Orders",
                "Repeat purchase rate",
                f"Revenue ({cur})",
                f"Revenue per customer ({cur})",
            ),
            cohorts,
        ),
        Table(
            "winback",
            "Win-back: treated vs holdout",
            ("Arm", "Flagged at risk", "Won back", "Won-back rate", f"Revenue after flag ({cur})"),
            winback,
        ),
        Table(
            "daily",
            "By day",
            (
                "Day",
                "Points issued",
                "Points redeemed",
                "New members",
                f"Member revenue ({cur})",
                f"Other revenue ({cur})",
            ),
            day_rows,
        ),
    ]


def charts(data: Analytics) -> list[Any]:
    days = data.period.days
    points = _daily(data.period, data.points_days, 2)
    members = _daily(data.period, data.member_days, 1)
    revenue = _daily(data.period, data.revenue_days, 2)
    return [
        line_chart(
            "Points issued and redeemed per day",
            days,
            [Series("Issued", [r[1] for r in points]), Series("Redeemed", [r[2] for r in points])],
        ),
        line_chart("New members per day", days, [Series("New members", [r[1] for r in members])]),
        line_chart(
            f"Revenue per day ({data.currency})",
            days,
            [Series("Members", [r[1] for r in revenue]), Series("Others", [r[2] for r in revenue])],
        ),
    ]


def csv_text(table: Table) -> str:
    """RFC 4180 CSV; cells a spreadsheet would run as formulas are quoted with a `'`."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.headers)
    for row in table.rows:
        writer.writerow(["'" + c if c[:1] in ("=", "+", "@") else c for c in row])
    return out.getvalue()


# --- the program form -----------------------------------------------------------------------------

SCALARS = (
    "participation",
    "earning.rate",
    "earning.basis",
    "earning.trigger",
    "earning.minimum_order",
    "pending_days",
    "signup.points",
    "birthday.points",
    "expiry.mode",
    "expiry.days",
    "expiry.warning_days",
    "tiers.basis",
    "tiers.window",
    "tiers.downgrade",
    "referral.referrer_points",
    "referral.friend_discount_kind",
    "referral.friend_discount_value",
    "referral.minimum_order",
    "referral.hold_days",
    "referral.risk_threshold",
    "referral.risk_policy",
    "referral.ip_velocity_limit",
    "referral.ip_velocity_days",
    "referral.burst_limit",
    "referral.burst_hours",
    "referral.coupon_click_limit",
)
BOOLEANS = (
    "earning.include_test_orders",
    "signup.enabled",
    "birthday.enabled",
    "tiers.enabled",
    "referral.enabled",
    "redemption.return_points_on_expiry",
)
OPTIONAL = frozenset({"expiry.days"})
ROWS: dict[str, tuple[str, ...]] = {
    "rewards": ("id", "name", "kind", "points_cost", "value", "max_value", "expires_after_days"),
    "tiers.levels": ("name", "threshold", "multiplier", "entry_reward"),
}
ROW_BOOLEANS: dict[str, tuple[str, ...]] = {"rewards": ("enabled",), "tiers.levels": ()}
ROW_SELECTS = frozenset({"kind"})
ROW_OPTIONAL = frozenset({"value", "max_value", "expires_after_days"})
MAX_ROWS = 50
PREVIEW_FIELD = "preview_amount"
FORM_MARKER = ("form", "program")


@dataclass(frozen=True, slots=True)
class ProgramForm:
    """A submitted program: the config when valid, else the messages per field name."""

    config: ProgramConfig | None
    errors: dict[str, str]
    values: dict[str, str]


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _get(data: Mapping[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        node = node[part]
    return node


def flatten(config: ProgramConfig) -> dict[str, str]:
    """The form's field values for a stored program."""
    data = config.model_dump(mode="json")
    values: dict[str, str] = {}
    for name in SCALARS:
        value = _get(data, name)
        values[name] = "" if value is None else str(value)
    for name in BOOLEANS:
        values[name] = "on" if _get(data, name) else ""
    for prefix, fields in ROWS.items():
        for index, row in enumerate(_get(data, prefix)):
            for name in (*fields, *ROW_BOOLEANS[prefix]):
                value = row.get(name)
                if name in ROW_BOOLEANS[prefix]:
                    values[f"{prefix}.{index}.{name}"] = "on" if value else ""
                else:
                    values[f"{prefix}.{index}.{name}"] = "" if value is None else str(value)
    return values


def row_count(values: Mapping[str, str], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    indexes = [int(m.group(1)) for key in values if (m := pattern.match(key))]
    return max(indexes, default=-1) + 1


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64] or "reward"


def parse_program(form: Mapping[str, str], current: ProgramConfig) -> ProgramForm:
    """Overlay the submitted fields on the current program and validate the result.

    Knobs the form does not show (excluded products, custom actions, ...) are kept. Reward
    and tier rows left entirely blank are dropped; error names point at the form's rows.
    """
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    # The whole form says so: then an unticked box (absent) means off and a missing row
    # means removed. A partial submission (the API-like use) changes only what it names.
    full = values.get(FORM_MARKER[0]) == FORM_MARKER[1]
    for name in BOOLEANS:
        if full or name in values:
            values[name] = "on" if values.get(name) not in (None, "", "false", "off") else ""
    data = current.model_dump(mode="json")
    for name in SCALARS:
        if name in values:
            raw = values[name].strip()
            _set(data, name, None if (raw == "" and name in OPTIONAL) else raw)
    for name in BOOLEANS:
        if name in values:
            _set(data, name, bool(values[name]))
    row_of: dict[str, list[int]] = {}
    for prefix, fields in ROWS.items():
        if not full and not row_count(values, prefix):
            continue
        existing = {row.get("id", i): row for i, row in enumerate(_get(data, prefix))}
        rows: list[dict[str, Any]] = []
        kept: list[int] = []
        for index in range(min(row_count(values, prefix), MAX_ROWS)):
            cells = {f: values.get(f"{prefix}.{index}.{f}", "").strip() for f in fields}
            # A select always has a value, so a row counts as filled by its typed cells.
            if not any(value for name, value in cells.items() if name not in ROW_SELECTS):
                continue
            key = cells.get("id") or index
            row = dict(existing.get(key, {})) if prefix == "rewards" else {}
            for name, raw in cells.items():
                row[name] = None if (raw == "" and name in ROW_OPTIONAL) else raw
            if prefix == "rewards" and not row.get("id"):
                row["id"] = _slug(cells["name"])
            for name in ROW_BOOLEANS[prefix]:
                flag = values.get(f"{prefix}.{index}.{name}", "")
                values[f"{prefix}.{index}.{name}"] = "on" if flag else ""
                row[name] = bool(flag)
            rows.append(row)
            kept.append(index)
        _set(data, prefix, rows)
        row_of[prefix] = kept
    try:
        return ProgramForm(ProgramConfig.model_validate(data), {}, values)
    except ValidationError as exc:
        return ProgramForm(None, _field_errors(exc, row_of), values)


def _field_errors(exc: ValidationError, row_of: Mapping[str, list[int]]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        # Rows: the config index back to the form's row number.
        for prefix, kept in row_of.items():
            depth = prefix.count(".") + 1
            if ".".join(loc[:depth]) == prefix and len(loc) > depth and loc[depth].isdigit():
                loc[depth] = str(kept[int(loc[depth])])
        name = ".".join(loc) or "program"
        message = str(error["msg"]).removeprefix("Value error, ")
        errors.setdefault(name, message[:1].upper() + message[1:])
    return errors


# --- the preview ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreviewLine:
    tier: str
    multiplier: Decimal
    points: int | None


def _sample_order(amount: Decimal, currency: str) -> OrderPaid:
    line = OrderLine("preview", None, None, 1, amount, Decimal(0), False, amount)
    return OrderPaid(
        order_id="preview",
        name=None,
        customer=None,
        email=None,
        currency=currency,
        merchandise=amount,
        total=amount,
        lines=(line,),
        discount_codes=(),
        is_test=False,
        source_name=None,
        financial_status="paid",
        placed_at=datetime(2000, 1, 1, tzinfo=UTC),
        landing_site=None,
        referring_site=None,
        note_attributes=(),
        tags=(),
        cancelled=False,
    )


def sample_amount(raw: str | None, config: ProgramConfig) -> Decimal:
    """The preview order's amount: what the merchant typed, else ~100 USD in shop currency."""
    from app.program.config import currency_scale

    try:
        amount = Decimal((raw or "").strip())
    except InvalidOperation:
        amount = Decimal(-1)
    if not amount.is_finite() or amount < 0 or amount > Decimal(10) ** 12:
        amount = currency_scale(config.currency).usd_rate * 100
    return amount.quantize(Decimal("0.01"))


def preview(config: ProgramConfig, amount: Decimal) -> list[PreviewLine]:
    """What an order of `amount` earns under `config`, without a tier and in every tier."""
    order = _sample_order(amount, config.currency)
    lines = [PreviewLine("No tier", Decimal(1), rules.order_earning(order, config, Decimal(1)))]
    if config.tiers.enabled:
        lines.extend(
            PreviewLine(t.name, t.multiplier, rules.order_earning(order, config, t.multiplier))
            for t in config.tiers.levels
        )
    return lines


def preview_summary(config: ProgramConfig, amount: Decimal, lines: Sequence[PreviewLine]) -> str:
    head = lines[0]
    if head.points is None:
        return f"An order of {amount} {config.currency} earns nothing (below the minimum order)."
    tiers = ", ".join(f"{line.tier}: {line.points}" for line in lines[1:])
    return f"An order of {amount} {config.currency} earns {head.points} points" + (
        f" ({tiers})." if tiers else "."
    )


# --- version history ------------------------------------------------------------------------------


def changes(older: Mapping[str, Any] | None, newer: Mapping[str, Any]) -> list[str]:
    """The settings a version changed, as readable paths (`earning.rate: 1 → 2`)."""
    if older is None:
        return ["first version"]
    found: list[str] = []

    def walk(path: str, a: Any, b: Any) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(f"{path}.{key}" if path else key, a.get(key), b.get(key))
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for index, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(f"{path}.{index}", x, y)
        elif a != b:
            if isinstance(a, list | dict) or isinstance(b, list | dict):
                found.append(f"{path} changed")
            else:
                found.append(f"{path}: {a} → {b}")

    walk("", dict(older), dict(newer))
    return found


# --- onboarding -----------------------------------------------------------------------------------

APP_EMBED_HANDLE = "app-embed"  # extensions/shopify/blocks/app-embed.liquid


@dataclass(frozen=True, slots=True)
class Step:
    label: str
    href: str
    done: bool | None  # None: Stamp cannot tell (the theme editor is Shopify's)
    external: bool = False


def theme_editor_url(shop_domain: str, api_key: str) -> str:
    """Deep link that opens the theme editor with Stamp's app embed switched on."""
    return (
        f"https://{shop_domain}/admin/themes/current/editor?context=apps"
        f"&activateAppId={api_key}/{APP_EMBED_HANDLE}"
    )


def checklist(
    shop: Shop, api_key: str, reviewed: bool, klaviyo_connected: bool, links: Mapping[str, str]
) -> list[Step]:
    steps: list[Step] = []
    if shop.platform == "shopify":
        steps.append(
            Step(
                "Turn on the Stamp app embed in your theme",
                theme_editor_url(shop.domain, api_key),
                None,
                external=True,
            )
        )
    steps.append(Step("Review the default program and save it", links["program"], reviewed))
    steps.append(Step("Connect Klaviyo", links["integrations"], klaviyo_connected))
    return steps


def form_values(items: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """The text fields of a submitted form (file uploads left out)."""
    return {key: value for key, value in items if isinstance(value, str)}
