"""Integrations page: outgoing webhook subscriptions (add, secret once, delete, re-enable,
delivery log, replay), Mailchimp (key → audience → connect, disconnect) and Segment
(event map, URL and secret once, disconnect); every refusal shown and nothing stored."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.integrations.mailchimp import service as mailchimp_service
from app.integrations.mailchimp import sync as mailchimp_sync
from app.integrations.outgoing.schemas import EVENT_TYPES
from app.models import (
    ConnectorConnection,
    OutgoingDelivery,
    Shop,
    WebhookSubscription,
)
from app.models.base import utcnow
from app.program.config import CustomActionRule
from app.program.service import current_config, ensure_default_program, save_program
from app.settings import Settings
from app.state import State
from tests.admin.support import HOOK, bearer, field_error, sign_in, subscription_with_delivery
from tests.admin.test_queries import counted
from tests.builders import create_shop, row_counts

PAGE = "/admin/integrations"
KEY = "0123456789abcdef0123456789abcdef-us6"
MAILCHIMP = "https://us6.api.mailchimp.com/3.0"
AUDIENCE = "a1b2c3d4e5"
KEY_REFUSED = (
    "Mailchimp refused the API key (401: Nope). Create an API key under Profile &gt; Extras &gt; "
    "API keys and connect Mailchimp again."
)


# --- outgoing webhooks ---------------------------------------------------------------------


async def test_a_subscription_is_added_and_its_secret_is_shown_only_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    headers = bearer(settings, shop)

    created = await client.post(
        f"{PAGE}/webhooks",
        data={"url": HOOK, "events": ["points.earned", "tier.changed"]},
        headers=headers,
    )
    again = await client.get(PAGE, headers=headers)
    reloaded = await client.get(f"{PAGE}/webhooks", headers=headers)

    assert created.status_code == 200
    await session.rollback()
    stored = (await session.scalars(select(WebhookSubscription))).one()
    secret = state_secret(created.text)
    assert secret.startswith("whsec_")
    assert (stored.shop_id, stored.url, stored.events, stored.status) == (
        shop.id,
        HOOK,
        ["points.earned", "tier.changed"],
        "active",
    )
    assert secret not in again.text
    assert reloaded.status_code == 200
    assert secret not in reloaded.text
    assert f'id="subscription-{stored.id}"' in again.text


def state_secret(html: str) -> str:
    start = html.index('id="webhook-secret"')
    code = html.index("<code>", start) + len("<code>")
    return html[code : html.index("</code>", code)]


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        (
            {"url": "", "events": ["points.earned"]},
            "webhooks.url",
            "Enter the https URL that should receive the events",
        ),
        ({"url": HOOK}, "webhooks.events", "Choose at least one event"),
        (
            {"url": HOOK, "events": ["points.stolen"]},
            "webhooks.events",
            "unknown event type &#39;points.stolen&#39;; choose from " + ", ".join(EVENT_TYPES),
        ),
        (
            {"url": "https://10.0.0.7/hook", "events": ["points.earned"]},
            "webhooks.url",
            "The host 10.0.0.7 points at a private address",
        ),
        (
            {"url": "http://93.184.215.14/hook", "events": ["points.earned"]},
            "webhooks.url",
            "The URL must start with https://",
        ),
    ],
)
async def test_a_bad_subscription_is_refused_next_to_its_field_and_nothing_is_stored(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    form: dict[str, object],
    field: str,
    message: str,
) -> None:
    shop = await create_shop(session, settings)
    before = await row_counts(session)

    response = await client.post(f"{PAGE}/webhooks", data=form, headers=bearer(settings, shop))

    assert response.status_code == 422
    assert field_error(response.text, field) == message
    assert 'id="webhook-secret"' not in response.text
    assert await row_counts(session) == before


async def test_a_subscription_is_deleted_and_a_disabled_one_re_enabled(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    state: State,
    queue: object,
) -> None:
    shop = await create_shop(session, settings)
    disabled, _ = await subscription_with_delivery(session, state, shop, status="disabled")
    headers = bearer(settings, shop)

    page = await client.get(PAGE, headers=headers)
    enabled = await client.post(f"{PAGE}/webhooks/{disabled}/enable", headers=headers)
    deleted = await client.post(f"{PAGE}/webhooks/{disabled}/delete", headers=headers)
    gone = await client.post(f"{PAGE}/webhooks/{disabled}/delete", headers=headers)

    assert "The receiver failed for 24 hours" in page.text
    assert f"/webhooks/{disabled}/enable" in page.text
    assert enabled.status_code == 303
    assert enabled.headers["location"] == f"{PAGE}?done=Webhook+subscription+enabled"
    assert deleted.status_code == 303
    assert deleted.headers["location"] == f"{PAGE}?done=Webhook+subscription+deleted"
    assert gone.status_code == 404
    await session.rollback()
    assert list(await session.execute(select(WebhookSubscription.status))) == [("deleted",)]


async def test_the_delivery_log_lists_deliveries_and_replays_one(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    state: State,
    queue: object,
) -> None:
    shop = await create_shop(session, settings)
    subscription_id, delivery_id = await subscription_with_delivery(session, state, shop)
    headers = bearer(settings, shop)

    log = await client.get(f"{PAGE}/webhooks/{subscription_id}", headers=headers)
    replayed = await client.post(
        f"{PAGE}/webhooks/{subscription_id}/deliveries/{delivery_id}/replay", headers=headers
    )

    assert log.status_code == 200
    assert f'id="delivery-{delivery_id}"' in log.text
    assert "HTTP 500" in log.text
    assert replayed.status_code == 303
    assert replayed.headers["location"] == (
        f"{PAGE}/webhooks/{subscription_id}?replayed={delivery_id}"
    )
    await session.rollback()
    rows = list(await session.execute(select(OutgoingDelivery.status, OutgoingDelivery.attempts)))
    assert rows == [("pending", 0)]


async def test_replaying_for_a_disabled_subscription_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, state: State
) -> None:
    shop = await create_shop(session, settings)
    subscription_id, delivery_id = await subscription_with_delivery(
        session, state, shop, status="disabled"
    )
    before = await row_counts(session)

    response = await client.post(
        f"{PAGE}/webhooks/{subscription_id}/deliveries/{delivery_id}/replay",
        headers=bearer(settings, shop),
    )

    assert response.status_code == 409
    assert "The subscription is disabled; enable it before replaying its deliveries" in (
        response.text
    )
    assert await row_counts(session) == before
    await session.rollback()
    assert list(await session.execute(select(OutgoingDelivery.status))) == [("failed",)]


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/abc/delete",
        "/webhooks/\u00b2/enable",
        "/webhooks/9999999999999999999/delete",
        "/webhooks/1/deliveries/x/replay",
    ],
)
async def test_junk_ids_are_not_found(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, path: str
) -> None:
    shop = await create_shop(session, settings)
    before = await row_counts(session)

    response = await client.post(PAGE + path, headers=bearer(settings, shop))

    assert response.status_code == 404
    assert await row_counts(session) == before


# --- Mailchimp -----------------------------------------------------------------------------


@pytest.fixture
def mailchimp() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=MAILCHIMP, assert_all_mocked=True, assert_all_called=False) as r:
        yield r


async def test_mailchimp_lists_audiences_then_connects_and_disconnects(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    mailchimp: respx.MockRouter,
    queue: object,
) -> None:
    shop = await create_shop(session, settings)
    headers = bearer(settings, shop)
    mailchimp.get("/lists").respond(200, json={"lists": [{"id": AUDIENCE, "name": "Newsletter"}]})
    mailchimp.get("/ping").respond(200, json={"health_status": "Everything's Chimpy!"})
    mailchimp.get(f"/lists/{AUDIENCE}").respond(200, json={"id": AUDIENCE})
    mailchimp.get(f"/lists/{AUDIENCE}/merge-fields").respond(
        200,
        json={"merge_fields": [{"tag": "FNAME"}]},
    )
    created = mailchimp.post(f"/lists/{AUDIENCE}/merge-fields").respond(200, json={})

    chosen = await client.post(f"{PAGE}/mailchimp/connect", data={"api_key": KEY}, headers=headers)
    connected = await client.post(
        f"{PAGE}/mailchimp/connect",
        data={"api_key": KEY, "audience_id": AUDIENCE, "add_transactional": "on"},
        headers=headers,
    )
    page = await client.get(PAGE, headers=headers)

    assert chosen.status_code == 200
    assert f'<option value="{AUDIENCE}">Newsletter</option>' in chosen.text
    assert 'name="add_transactional"' in chosen.text
    assert connected.status_code == 303
    assert created.call_count == len(mailchimp_sync.MERGE_FIELDS)
    assert connected.headers["location"] == (
        f"{PAGE}?done=Mailchimp+connected%3B+the+first+sync+has+started"
    )
    assert f"audience {AUDIENCE}" in page.text
    assert "added as transactional" in page.text
    assert KEY not in page.text

    disconnected = await client.post(f"{PAGE}/mailchimp/disconnect", headers=headers)

    assert disconnected.status_code == 303
    await session.rollback()
    status = await mailchimp_service.status(session, shop)
    assert (status.status, status.add_transactional) == ("disconnected", True)
    stored = (await session.scalars(select(ConnectorConnection))).one()
    assert stored.secret_enc is None


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"api_key": " "}, "mailchimp.api_key", "Enter your Mailchimp API key"),
        (
            {"api_key": "nope"},
            "mailchimp.api_key",
            "A Mailchimp API key looks like 0123...cdef-us6 (Profile &gt; Extras &gt; API keys)",
        ),
        ({"api_key": KEY, "audience_id": AUDIENCE}, "mailchimp.api_key", KEY_REFUSED),
        ({"api_key": KEY}, "mailchimp.api_key", KEY_REFUSED),
        (
            {"api_key": KEY, "audience_id": "missing"},
            "mailchimp.audience_id",
            "Mailchimp refused the audience missing (404: No such list)",
        ),
    ],
)
async def test_a_bad_mailchimp_key_or_audience_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    mailchimp: respx.MockRouter,
    form: dict[str, str],
    field: str,
    message: str,
) -> None:
    shop = await create_shop(session, settings)
    good = form.get("audience_id") == "missing"
    if good:
        mailchimp.get("/ping").respond(200, json={"health_status": "ok"})
    else:
        mailchimp.get("/ping").respond(401, json={"title": "Bad", "detail": "Nope"})
    mailchimp.get("/lists").respond(401, json={"title": "Bad", "detail": "Nope"})
    mailchimp.get("/lists/missing").respond(404, json={"title": "Gone", "detail": "No such list"})
    before = await row_counts(session)

    response = await client.post(
        f"{PAGE}/mailchimp/connect", data=form, headers=bearer(settings, shop)
    )

    assert response.status_code == 422
    assert field_error(response.text, field) == message
    assert await row_counts(session) == before


# --- Segment -------------------------------------------------------------------------------


async def shop_with_action(session: AsyncSession, settings: Settings) -> Shop:
    shop = await create_shop(session, settings)
    await ensure_default_program(session, shop)
    config = await current_config(session, shop)
    action = CustomActionRule(key="left_review", name="Left a review", points=25)
    await save_program(session, shop, config.model_copy(update={"custom_actions": (action,)}), "t")
    await session.commit()
    return shop


async def test_segment_connects_shows_the_url_and_secret_once_and_disconnects(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await shop_with_action(session, settings)
    headers = bearer(settings, shop)
    secret = "segment-shared-secret-0123456789"

    form = await client.get(PAGE, headers=headers)
    connected = await client.post(
        f"{PAGE}/segment/connect",
        data={"event_0": "Product Reviewed", "action_0": "left_review", "shared_secret": secret},
        headers=headers,
    )
    page = await client.get(PAGE, headers=headers)
    reloaded = await client.get(f"{PAGE}/segment/connect", headers=headers)
    disconnected = await client.post(f"{PAGE}/segment/disconnect", headers=headers)

    assert '<option value="left_review">Left a review (left_review)</option>' in form.text
    assert connected.status_code == 200
    assert f"Shared secret: <code>{secret}</code>" in connected.text
    assert f"/webhooks/segment/{shop.id}</code>" in connected.text
    assert secret not in page.text
    assert (reloaded.status_code, secret in reloaded.text) == (200, False)
    assert "Product Reviewed → left_review" in page.text
    assert disconnected.status_code == 303
    assert disconnected.headers["location"] == f"{PAGE}?done=Segment+disconnected"
    await session.rollback()
    stored = (await session.scalars(select(ConnectorConnection))).one()
    assert (stored.kind, stored.status, stored.inbound_secret_enc) == (
        "segment",
        "disconnected",
        None,
    )


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        (
            {"event_0": "Product Reviewed", "action_0": "wrote_poem"},
            "segment.events",
            "No custom action &#39;wrote_poem&#39; in this shop&#39;s program (known: left_review)",
        ),
        (
            {"event_0": "", "action_0": "left_review"},
            "segment.events",
            "A Segment event name is 1-200 characters",
        ),
        (
            {"event_0": "Product Reviewed", "action_0": "left_review", "shared_secret": "short"},
            "segment.shared_secret",
            "Use a shared secret of at least 16 characters",
        ),
    ],
)
async def test_a_bad_segment_mapping_or_secret_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    form: dict[str, str],
    field: str,
    message: str,
) -> None:
    shop = await shop_with_action(session, settings)
    before = await row_counts(session)

    response = await client.post(
        f"{PAGE}/segment/connect", data=form, headers=bearer(settings, shop)
    )

    assert response.status_code == 422
    assert field_error(response.text, field) == message
    assert 'id="segment-secret"' not in response.text
    assert await row_counts(session) == before


async def test_with_the_login_cookie_a_subscription_needs_the_page_csrf_token(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await create_shop(session, settings)
    csrf = await sign_in(client, settings, shop)
    form = {"url": HOOK, "events": ["points.earned"]}
    before = await row_counts(session)

    missing = await client.post(f"{PAGE}/webhooks", data=form)
    unchanged = await row_counts(session)
    created = await client.post(f"{PAGE}/webhooks", data={**form, "csrf_token": csrf})

    assert missing.status_code == 403
    assert "The form expired" in missing.text
    assert unchanged == before
    assert created.status_code == 200
    assert f'name="csrf_token" value="{csrf}"' in created.text
    assert 'id="webhook-secret"' in created.text


async def test_the_integrations_page_statement_count_does_not_grow_with_subscriptions(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, state: State
) -> None:
    shop = await create_shop(session, settings)
    headers = bearer(settings, shop)
    counts = []
    for _ in range(2):
        for _ in range(3):
            session.add(
                WebhookSubscription(
                    shop_id=shop.id,
                    url=HOOK,
                    events=["points.earned"],
                    secret_enc=state.cipher.encrypt("whsec_x"),
                    created_at=utcnow(),
                )
            )
        await session.commit()
        with counted(state) as statements:
            response = await client.get(PAGE, headers=headers)
        assert response.status_code == 200
        counts.append(len(statements))

    assert counts[0] == counts[1]


async def test_re_enabling_a_subscription_whose_url_is_now_private_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, state: State
) -> None:
    shop = await create_shop(session, settings)
    subscription_id, _ = await subscription_with_delivery(session, state, shop, status="disabled")
    subscription = await session.get(WebhookSubscription, subscription_id)
    assert subscription is not None
    subscription.url = "https://10.0.0.7/hook"
    await session.commit()
    before = await row_counts(session)

    response = await client.post(
        f"{PAGE}/webhooks/{subscription_id}/enable", headers=bearer(settings, shop)
    )

    assert response.status_code == 422
    assert field_error(response.text, f"subscription-{subscription_id}") == (
        "The host 10.0.0.7 points at a private address"
    )
    assert await row_counts(session) == before
    await session.rollback()
    assert list(await session.execute(select(WebhookSubscription.status))) == [("disabled",)]


async def test_a_mailchimp_account_without_an_audience_is_told_so(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    mailchimp: respx.MockRouter,
) -> None:
    shop = await create_shop(session, settings)
    mailchimp.get("/lists").respond(200, json={"lists": []})
    before = await row_counts(session)

    response = await client.post(
        f"{PAGE}/mailchimp/connect", data={"api_key": KEY}, headers=bearer(settings, shop)
    )

    assert response.status_code == 422
    assert field_error(response.text, "mailchimp.api_key") == (
        "This Mailchimp account has no audience yet"
    )
    assert await row_counts(session) == before
