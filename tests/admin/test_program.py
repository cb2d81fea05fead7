"""The program page: the form saves a new version, bad input is named next to its field
and changes nothing, the preview follows the form, history says who changed what."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin import service
from app.models import ProgramVersion, Shop
from app.program.config import default_program
from app.program.service import ensure_default_program
from app.settings import Settings
from tests.admin.support import bearer, field_error, sign_in
from tests.builders import create_shop, row_counts


async def program_shop(session: AsyncSession, settings: Settings) -> Shop:
    shop = await create_shop(session, settings)
    await ensure_default_program(session, shop)
    await session.commit()
    return shop


def default_form(**changes: str) -> dict[str, str]:
    """The form exactly as the page fills it for the default USD program, with changes."""
    values = service.flatten(default_program("USD"))
    values = {key: value for key, value in values.items() if value != "" or "." in key}
    for key in [k for k, v in values.items() if v == "" and k in service.BOOLEANS]:
        del values[key]
    values["form"] = "program"
    values.update(changes)
    return values


async def versions(session: AsyncSession) -> list[ProgramVersion]:
    await session.rollback()
    return list(await session.scalars(select(ProgramVersion).order_by(ProgramVersion.version)))


async def test_saving_the_form_stores_a_new_version_by_the_session_user(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await program_shop(session, settings)

    response = await client.post(
        "/admin/program",
        data=default_form(**{"earning.rate": "2.5"}),
        headers=bearer(settings, shop),
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/program?saved=1"
    stored = await versions(session)
    assert [v.version for v in stored] == [1, 2]
    assert stored[1].created_by == "admin:shopify-user:42"
    assert stored[1].config["earning"]["rate"] == "2.5"
    # everything else is as it was
    rest = {**stored[1].config, "earning": {**stored[1].config["earning"], "rate": "1"}}
    assert rest == stored[0].config
    page = await client.get("/admin/program?saved=1", headers=bearer(settings, shop))
    assert "Program saved" in page.text
    assert "earning.rate: 1 → 2.5" in page.text
    assert "admin:shopify-user:42" in page.text


async def test_an_unchanged_form_saves_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await program_shop(session, settings)
    before = await row_counts(session)
    response = await client.post(
        "/admin/program", data=default_form(), headers=bearer(settings, shop)
    )
    assert response.status_code == 200
    assert "Nothing changed" in response.text
    assert await row_counts(session) == before


async def test_the_cookie_path_saves_with_the_csrf_token(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await program_shop(session, settings)
    csrf = await sign_in(client, settings, shop)
    response = await client.post(
        "/admin/program", data={**default_form(**{"pending_days": "14"}), "csrf_token": csrf}
    )
    assert response.status_code == 303
    stored = await versions(session)
    assert stored[-1].config["pending_days"] == 14
    assert stored[-1].created_by == "admin:login-link"


BAD_INPUT: list[tuple[dict[str, str], str, str]] = [
    ({"earning.rate": "-1"}, "earning.rate", "Input should be greater than or equal to 0"),
    ({"earning.rate": "lots"}, "earning.rate", "Input should be a valid decimal"),
    (
        {"tiers.levels.1.threshold": "1500"},
        "tiers",
        "Tier thresholds must be strictly ascending",
    ),
    (
        {"rewards.0.points_cost": "0"},
        "rewards.0.points_cost",
        "Input should be greater than or equal to 1",
    ),
    (
        {
            "rewards.1.name": "Free tote",
            "rewards.1.kind": "fixed_amount",
            "rewards.1.points_cost": "0",
        },
        "rewards.1.points_cost",
        "Input should be greater than or equal to 1",
    ),
    ({"expiry.mode": "inactivity"}, "expiry", "Expiry mode inactivity needs days"),
    (
        {"referral.risk_threshold": "101"},
        "referral.risk_threshold",
        "Input should be less than or equal to 100",
    ),
]


async def test_bad_input_is_named_next_to_its_field_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await program_shop(session, settings)
    before = await row_counts(session)
    for changes, field, message in BAD_INPUT:
        response = await client.post(
            "/admin/program", data=default_form(**changes), headers=bearer(settings, shop)
        )
        assert response.status_code == 422, changes
        assert field_error(response.text, field) == message, (changes, response.text[:0])
        assert "Nothing was saved" in response.text
        # the merchant's input is shown back, not the stored value
        for value in changes.values():
            assert f'value="{value}"' in response.text or value in response.text
    assert await row_counts(session) == before


async def test_the_live_preview_follows_the_form_without_saving(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await program_shop(session, settings)
    before = await row_counts(session)

    response = await client.post(
        "/admin/program/preview",
        data=default_form(**{"earning.rate": "3", "preview_amount": "72.50"}),
        headers=bearer(settings, shop),
    )
    bad = await client.post(
        "/admin/program/preview",
        data=default_form(**{"earning.rate": "-3"}),
        headers=bearer(settings, shop),
    )

    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["points"] == 217
    assert body["tiers"] == [
        {"name": "Bronze", "multiplier": "1", "points": 217},
        {"name": "Silver", "multiplier": "1.25", "points": 271},
        {"name": "Gold", "multiplier": "1.5", "points": 326},
    ]
    assert body["summary"] == (
        "An order of 72.50 USD earns 217 points (Bronze: 217, Silver: 271, Gold: 326)."
    )
    assert bad.status_code == 422
    assert bad.json()["errors"] == {"earning.rate": "Input should be greater than or equal to 0"}
    assert await row_counts(session) == before


async def test_the_no_script_preview_button_renders_the_preview_without_saving(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await program_shop(session, settings)
    before = await row_counts(session)
    response = await client.post(
        "/admin/program",
        data=default_form(**{"earning.rate": "2", "preview_amount": "10", "action": "preview"}),
        headers=bearer(settings, shop),
    )
    assert response.status_code == 200
    assert "An order of 10.00 USD earns 20 points" in response.text
    assert await row_counts(session) == before


def test_parse_keeps_knobs_the_form_does_not_show() -> None:
    current = default_program("USD").model_copy(
        update={
            "earning": default_program("USD").earning.model_copy(
                update={"excluded_product_ids": ("42",)}
            )
        }
    )
    parsed = service.parse_program(default_form(**{"earning.rate": "2"}), current)
    assert parsed.errors == {}
    assert parsed.config is not None
    assert parsed.config.earning.excluded_product_ids == ("42",)
    assert parsed.config.earning.rate == Decimal(2)


def test_a_blank_reward_row_is_dropped_and_a_named_one_gets_an_id() -> None:
    form = default_form(
        **{
            "rewards.1.name": "Ten Off!",
            "rewards.1.kind": "fixed_amount",
            "rewards.1.points_cost": "900",
            "rewards.1.value": "10",
            "rewards.1.enabled": "on",
            "rewards.2.name": "",
            "rewards.2.kind": "fixed_amount",
            "rewards.2.enabled": "on",
            "rewards.2.points_cost": "",
        }
    )
    parsed = service.parse_program(form, default_program("USD"))
    assert parsed.config is not None
    assert [(r.id, r.points_cost, r.enabled) for r in parsed.config.rewards] == [
        ("amount-off", 500, True),
        ("ten-off", 900, True),
    ]


def test_changes_lists_what_a_version_changed() -> None:
    old = {"earning": {"rate": "1", "basis": "merchandise"}, "rewards": [{"id": "a"}]}
    new = {"earning": {"rate": "2", "basis": "merchandise"}, "rewards": [{"id": "a"}, {"id": "b"}]}
    assert service.changes(old, new) == ["earning.rate: 1 → 2", "rewards changed"]
    assert service.changes(None, new) == ["first version"]
