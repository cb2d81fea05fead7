"""Schemathesis against the headless API's own OpenAPI document, on both databases.

Every `/api/v1` operation gets generated requests (valid ones and deliberately invalid
ones) with a valid API key, against a shop that has a member with points, rewards and a
held referral. Each answer must not be a 5xx and must match the document: a documented
status, JSON, and the documented schema for that status.

Cases are drawn up front by Hypothesis (derandomized, a fixed number per operation, so a
run is bounded and repeatable) and then sent one by one through the real ASGI app; a
failing case is reported with its curl command.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.openapi import build_document
from app.api.routes import _operations
from app.ledger import service as ledger
from app.ledger.engine import verify as verify_ledger
from app.models import Referral, Shop
from app.program.service import ensure_default_program
from app.settings import Settings
from tests.builders import api_key_for, create_member, create_shop
from tests.rewards.test_redemptions import CREATED, GRAPHQL

EXAMPLES_PER_OPERATION = 20
CUSTOMER_ID = "207119551"
REWARD_ID = "amount-off"  # the default program's reward
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def api_schema() -> Any:
    return schemathesis.openapi.from_dict(build_document(_operations(), "1.0.0"))


def draw_cases(operation: Any, mode: GenerationMode) -> list[Case]:
    """A fixed, repeatable sample of cases for one operation (no I/O happens here)."""
    drawn: list[Case] = []

    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def collect(data: st.DataObject) -> None:
        drawn.append(data.draw(operation.as_strategy(generation_mode=mode)))

    collect()
    return drawn


def operations() -> Iterator[Any]:
    for result in api_schema().get_all_operations():
        yield result.ok()


OPERATIONS = list(operations())


def test_the_document_describes_every_api_route() -> None:
    from app.api.routes import routes

    documented = {(op.method.upper(), op.path) for op in OPERATIONS}
    served = {
        (method, route.path)
        for route in routes
        for method in getattr(route, "methods", set()) - {"HEAD"}
        if route.path != "/api/v1/openapi.json"
    }
    assert documented == served


async def arrange(session: AsyncSession, settings: Settings) -> tuple[Shop, dict[str, str], int]:
    shop = await create_shop(session, settings)
    await ensure_default_program(session, shop)
    member = await create_member(
        session, shop, customer_id=CUSTOMER_ID, email="r@example.com", tier_name="Bronze"
    )
    friend = await create_member(session, shop, customer_id="5550002", email="f@example.com")
    await ledger.post(session, shop.id, ledger.Posting(member.id, 5000, "earn", "order:1:earn"))
    referral = Referral(
        shop_id=shop.id,
        referrer_member_id=member.id,
        friend_member_id=friend.id,
        order_id="9001",
        code="PIA23456",
        method="link",
        status="held",
        order_amount=Decimal("50.00"),
        currency="USD",
        reward_points=100,
    )
    session.add(referral)
    await session.commit()
    return shop, await api_key_for(session, shop), referral.id


def request_kwargs(case: Case) -> dict[str, Any]:
    """What schemathesis would send with `requests`, as httpx arguments."""
    kwargs = case.as_transport_kwargs(base_url="https://stamp.test")
    sent: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "headers": kwargs.get("headers") or {},
        "params": kwargs.get("params"),
    }
    if "json" in kwargs:
        sent["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        sent["content"] = data if isinstance(data, bytes | str) else None
        if sent["content"] is None:
            sent["data"] = data
    return sent


def variants(case: Case, referral_id: int) -> list[Case]:
    """The case as drawn and, when it names a member, referral or reward, aimed at a real one."""
    params = case.path_parameters or {}
    real = dict(params)
    if "customer_id" in real:
        real["customer_id"] = CUSTOMER_ID
    if "referral_id" in real:
        real["referral_id"] = str(referral_id)
    body = case.body
    if isinstance(body, dict):
        body = dict(body)
        if "customer_id" in body:
            body["customer_id"] = CUSTOMER_ID
        if "reward_id" in body:
            body["reward_id"] = REWARD_ID
    if real == params and body == case.body:
        return [case]
    aimed = case.operation.Case(
        path_parameters=real,
        query=case.query,
        body=body,
        headers=case.headers,
        media_type=case.media_type,
    )
    return [case, aimed]


@pytest.fixture
def shopify() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.post(GRAPHQL).respond(200, json=CREATED)
        yield router


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
async def test_no_operation_answers_5xx_or_off_schema(
    operation: Any,
    mode: GenerationMode,
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    shopify: respx.MockRouter,
) -> None:
    shopify.route(host="stamp.test").pass_through()
    _shop, auth, referral_id = await arrange(session, settings)
    failures: list[str] = []

    for drawn in draw_cases(operation, mode):
        for case in variants(drawn, referral_id):
            kwargs = request_kwargs(case)
            kwargs["headers"] = {**kwargs["headers"], **auth}
            try:
                response = await client.request(**kwargs)
            except Exception as exc:  # the app raised: a 500 in production
                failures.append(f"raised {exc!r}\n{case.as_curl_command(headers=auth)}")
                continue
            try:
                case.validate_response(response, checks=CHECKS, headers=kwargs["headers"])
            except Exception as exc:
                failures.append(
                    f"{response.status_code} {response.text[:300]}\n"
                    f"{case.as_curl_command(headers=auth)}\n{exc}"
                )

    assert failures == [], "\n\n".join(failures[:5])
    # Whatever was accepted moved points only through the ledger.
    assert await verify_ledger(session) == []


async def test_a_member_of_the_arranged_shop_is_reachable(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The fuzzing above reaches real rows, not only 404s."""
    _shop, auth, _referral = await arrange(session, settings)

    response = await client.get(f"/api/v1/members/{CUSTOMER_ID}", headers=auth)

    assert response.status_code == 200
    assert response.json()["points_balance"] == 5000
