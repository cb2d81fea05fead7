"""Hypothesis-generated hostile webhook bodies for every source (Shopify, WooCommerce, Judge.me).

Bodies are realistic payloads with one part broken (a field deleted, nulled or replaced by a
wrong type, a huge number, unicode, deep nesting), arbitrary JSON, truncated JSON, invalid
UTF-8 and plain bytes. For each signed delivery:
- never a 5xx (an exception escaping the app counts as one);
- never a partial write: a delivery is processed whole (the ledger still verifies), or only
  a delivery row and a dead letter holding the exact body are written, or nothing (duplicate);
- every dead letter can be replayed without an error escaping.
Unsigned or wrongly signed bodies get 401 and write nothing; 10 MB bodies get 413.

Bodies are drawn up front (derandomized, a fixed number per source) and then delivered one
by one through the real ASGI app on each database.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger.engine import verify as verify_ledger
from app.models import DeadLetter, Shop
from app.program.service import ensure_default_program
from app.settings import Settings
from app.state import State
from tests.builders import DOMAIN, row_counts, shopify_webhook
from tests.integrations.judgeme import support as judgeme
from tests.integrations.woocommerce import support as woo
from webhooks.handlers import handlers_for
from webhooks.judgeme.handlers import HANDLERS as JUDGEME_HANDLERS
from webhooks.pipeline import replay
from webhooks.shopify.handlers import HANDLERS as SHOPIFY_HANDLERS
from webhooks.woocommerce.handlers import HANDLERS as WOO_HANDLERS

BODIES_PER_SOURCE = 40
TEN_MB = 10 * 1024 * 1024
SHOPIFY_FIXTURE = "tests/fixtures/shopify/orders_paid.json"

# Whole-shop topics change what every later delivery sees (uninstalled, erased); their
# hostile bodies are covered separately below, one delivery each.
SHOPIFY_TOPICS = sorted(set(SHOPIFY_HANDLERS) - {"app/uninstalled", "shop/redact"})
WOO_TOPICS = sorted(WOO_HANDLERS)
JUDGEME_TOPICS = sorted(JUDGEME_HANDLERS)

# --- strategies ------------------------------------------------------------------------------

NASTY_STRINGS = [
    "",
    " ",
    "0",
    "-1",
    "NaN",
    "Infinity",
    "1e309",
    "9" * 40,
    "²",
    "٣",
    "\u202e",
    "\x00",
    "🦄" * 50,
    "a" * 10_000,
    "<script>alert(1)</script>",
    "{{ shop.secret }}",
    "'; DROP TABLE members; --",
    "2026-13-45T99:99:99Z",
    "gid://shopify/Order/",
]

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**20]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(NASTY_STRINGS),
)
json_values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a JSON document."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found.extend(paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.append((*prefix, index))
            found.extend(paths(child, (*prefix, index)))
    return found


def mutate(document: Any, path: tuple[Any, ...], how: str, value: Any) -> Any:
    broken = copy.deepcopy(document)
    parent = broken
    for part in path[:-1]:
        parent = parent[part]
    if how == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = None if how == "null" else value
    return broken


def dumps(value: Any) -> bytes:
    """Python's json, not orjson: it writes integers of any size, as an attacker can."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def hostile_body(draw: st.DrawFn, base: dict[str, Any], keep: tuple[str, ...] = ()) -> bytes:
    """One hostile body derived from a realistic payload (`keep` keys are left intact)."""
    kind = draw(
        st.sampled_from(
            ["mutate", "mutate", "mutate", "mutate2", "any", "truncate", "deep", "utf8", "bytes"]
        )
    )
    encoded = dumps(base)
    if kind in {"mutate", "mutate2"}:
        document = base
        for _ in range(1 if kind == "mutate" else 2):
            candidates = [p for p in paths(document) if p[0] not in keep]
            path = draw(st.sampled_from(candidates))
            how = draw(st.sampled_from(["replace", "replace", "null", "delete"]))
            document = mutate(document, path, how, draw(json_values))
        return dumps(document)
    if kind == "any":
        value = draw(json_values)
        if isinstance(value, dict) and keep:
            value.update({key: base[key] for key in keep})
        return dumps(value)
    if kind == "truncate":
        return encoded[: draw(st.integers(min_value=0, max_value=len(encoded) - 1))]
    if kind == "deep":
        depth = draw(st.integers(min_value=100, max_value=20_000))
        inner = b"[" * depth + b"]" * depth
        return encoded[:-1] + b', "deep": ' + inner + b"}"
    if kind == "utf8":
        cut = draw(st.integers(min_value=1, max_value=len(encoded) - 1))
        return (
            encoded[:cut]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"]))
            + encoded[cut:]
        )
    return draw(st.binary(min_size=1, max_size=300))


def draw_all(strategy: st.SearchStrategy[Any], count: int = BODIES_PER_SOURCE) -> list[Any]:
    """A fixed, repeatable sample (no I/O here: the deliveries happen afterwards)."""
    drawn: list[Any] = []

    @hypothesis_settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        drawn.append(value)

    collect()
    return drawn


# --- sources ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    name: str
    url: str
    sign: Callable[[Settings, str, bytes], dict[str, str]]
    bodies: Callable[[], list[tuple[str, bytes]]]
    # Whether a receiver can tell whose secret signs this body (Judge.me names the shop
    # only inside it); one that cannot is refused as unsigned.
    attributable: Callable[[bytes], bool] = lambda body: True


def shopify_base() -> dict[str, Any]:
    with open(SHOPIFY_FIXTURE, encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


def judgeme_base(topic: str, review_id: int) -> dict[str, Any]:
    return {
        "review": judgeme.review(review_id),
        "event": topic,
        "shop_domain": DOMAIN,
        "platform": "shopify",
    }


def shopify_bodies() -> list[tuple[str, bytes]]:
    return draw_all(st.tuples(st.sampled_from(SHOPIFY_TOPICS), hostile_body(shopify_base())))


def woo_bodies() -> list[tuple[str, bytes]]:
    return draw_all(st.tuples(st.sampled_from(WOO_TOPICS), hostile_body(woo.order())))


def judgeme_bodies() -> list[tuple[str, bytes]]:
    # Judge.me sends no delivery id (a review's id and `updated_at` stand in), so each body
    # is about its own review, or most would be answered as duplicates of the first.
    return draw_all(
        st.tuples(st.sampled_from(JUDGEME_TOPICS), st.integers(1, 10**12)).flatmap(
            lambda drawn: st.tuples(
                st.just(drawn[0]), hostile_body(judgeme_base(*drawn), keep=("shop_domain",))
            )
        )
    )


def sign_shopify(settings: Settings, topic: str, body: bytes) -> dict[str, str]:
    return shopify_webhook(settings, topic, body)[1]


def sign_woo(settings: Settings, topic: str, body: bytes) -> dict[str, str]:
    return woo.signed(body, topic)[1]


def sign_judgeme(settings: Settings, topic: str, body: bytes) -> dict[str, str]:
    import hashlib
    import hmac

    digest = hmac.new(judgeme.TOKEN.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "JUDGEME-HMAC-SHA256": digest}


def names_the_shop(body: bytes) -> bool:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(payload, dict) and payload.get("shop_domain") == DOMAIN


@dataclass
class Shops:
    shopify: Shop
    woocommerce: Shop


@pytest.fixture
async def shops(session: AsyncSession, settings: Settings, state: State) -> Shops:
    """A Shopify shop with Judge.me connected and reviews rewarded, and a WooCommerce store."""
    shopify = await judgeme.connected_shop(session, settings, state)
    woocommerce = await woo.create_woo_shop(session, settings)
    await ensure_default_program(session, woocommerce)
    await session.commit()
    return Shops(shopify, woocommerce)


def sources(shops: Shops) -> dict[str, Source]:
    return {
        "shopify": Source("shopify", "/webhooks/shopify", sign_shopify, shopify_bodies),
        "woocommerce": Source(
            "woocommerce",
            f"/webhooks/woocommerce/{shops.woocommerce.id}",
            sign_woo,
            woo_bodies,
        ),
        "judgeme": Source(
            "judgeme", "/webhooks/judgeme", sign_judgeme, judgeme_bodies, names_the_shop
        ),
    }


def changed(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {table: after[table] - before[table] for table in after if after[table] != before[table]}


async def deliver(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
) -> httpx.Response | str:
    try:
        return await client.post(url, content=body, headers=headers)
    except Exception as exc:  # escaped the app: a 500 in production
        return f"raised {exc!r}"


# --- the properties --------------------------------------------------------------------------


@pytest.mark.parametrize("source_name", ["shopify", "woocommerce", "judgeme"])
async def test_hostile_signed_bodies_are_processed_whole_or_dead_lettered(
    source_name: str,
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    state: State,
    shops: Shops,
) -> None:
    source = sources(shops)[source_name]
    failures: list[str] = []
    outcomes: dict[str, int] = {}

    for topic, body in source.bodies():
        before = await row_counts(session)
        response = await deliver(client, source.url, body, source.sign(settings, topic, body))
        after = await row_counts(session)
        where = f"{topic} {body[:160]!r}"
        if isinstance(response, str):
            failures.append(f"{where}: {response}")
            continue
        result = response.json().get("result") if response.status_code == 200 else None
        outcomes[str(result or response.status_code)] = (
            outcomes.get(str(result or response.status_code), 0) + 1
        )
        diff = changed(before, after)
        if response.status_code == 401 and not source.attributable(body):
            if diff:
                failures.append(f"{where}: refused but wrote {diff}")
        elif response.status_code != 200:
            failures.append(f"{where}: {response.status_code} {response.text[:200]}")
        elif result == "dead_letter":
            if diff != {"webhook_deliveries": 1, "dead_letters": 1}:
                failures.append(f"{where}: dead letter with a partial write {diff}")
            letter = (
                await session.execute(select(DeadLetter).order_by(DeadLetter.id.desc()).limit(1))
            ).scalar_one()
            if letter.body != body:
                failures.append(f"{where}: the dead letter does not hold the body as sent")
        elif result == "duplicate":
            if diff:
                failures.append(f"{where}: a duplicate wrote {diff}")
        elif result == "processed":
            if diff.get("webhook_deliveries") != 1:
                failures.append(f"{where}: processed without its delivery row {diff}")
        else:
            failures.append(f"{where}: unexpected result {result}")
        drift = await verify_ledger(session)
        if drift:
            failures.append(f"{where}: the ledger drifted {drift}")

    assert failures == [], "\n".join(failures[:10])
    # The hostile bodies really are hostile: many are not understood (dead letters) or do
    # not even say whose they are (refused).
    hostile = outcomes.get("dead_letter", 0) + outcomes.get("401", 0)
    assert hostile >= BODIES_PER_SOURCE // 4, outcomes

    letters = list((await session.execute(select(DeadLetter.id))).scalars())
    for letter_id in letters:
        try:
            outcome = await replay(state, letter_id, handlers_for)
        except Exception as exc:
            failures.append(f"replaying dead letter {letter_id} raised {exc!r}")
            continue
        if outcome.status_code != 200:
            failures.append(f"replaying dead letter {letter_id}: {outcome}")
    assert failures == [], "\n".join(failures[:10])
    assert await verify_ledger(session) == []


@pytest.mark.parametrize("topic", ["app/uninstalled", "shop/redact"])
async def test_hostile_bodies_on_whole_shop_topics_never_fail_the_request(
    topic: str,
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    shops: Shops,
) -> None:
    for body in draw_all(hostile_body(shopify_base()), count=6):
        body_, headers = shopify_webhook(settings, topic, body)
        response = await deliver(client, "/webhooks/shopify", body_, headers)

        assert not isinstance(response, str), response
        assert response.status_code < 500, (body[:160], response.text)


@pytest.mark.parametrize("source_name", ["shopify", "woocommerce", "judgeme"])
async def test_bad_signatures_get_401_and_write_nothing(
    source_name: str,
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    shops: Shops,
) -> None:
    source = sources(shops)[source_name]
    before = await row_counts(session)
    statuses: set[int] = set()

    for topic, body in source.bodies()[:15]:
        headers = source.sign(settings, topic, body + b" ")  # signed over other bytes
        unsigned = {
            key: value
            for key, value in headers.items()
            if "hmac" not in key.lower() and "signature" not in key.lower()
        }
        for sent in (headers, unsigned):
            response = await deliver(client, source.url, body, sent)
            assert not isinstance(response, str), response
            statuses.add(response.status_code)

    assert statuses == {401}
    assert await row_counts(session) == before


@pytest.mark.parametrize("source_name", ["shopify", "woocommerce", "judgeme"])
async def test_ten_megabyte_bodies_get_413_and_write_nothing(
    source_name: str,
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    shops: Shops,
) -> None:
    source = sources(shops)[source_name]
    topic = {"shopify": "orders/paid", "woocommerce": "order.created", "judgeme": "review/created"}
    body = b'{"padding": "' + b"x" * TEN_MB + b'"}'
    headers = source.sign(settings, topic[source_name], body)
    before = await row_counts(session)

    declared = await client.post(source.url, content=body, headers=headers)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    streamed = await client.post(source.url, content=chunks(), headers=headers)

    assert (declared.status_code, declared.json()["error"]["code"]) == (413, "payload_too_large")
    assert (streamed.status_code, streamed.json()["error"]["code"]) == (413, "payload_too_large")
    assert await row_counts(session) == before


async def test_woocommerce_shop_ids_that_are_not_small_numbers_are_refused_as_401(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, shops: Shops
) -> None:
    body, headers = woo.signed(woo.order(), "order.created")
    before = await row_counts(session)
    statuses = [
        (
            await client.post(f"/webhooks/woocommerce/{shop_id}", content=body, headers=headers)
        ).status_code
        for shop_id in ("99999999999999999999999", "²", "-1", "1e3", "%20")
    ]

    assert statuses == [401, 401, 401, 401, 401]
    assert await row_counts(session) == before
