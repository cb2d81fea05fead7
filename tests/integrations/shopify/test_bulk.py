"""Bulk queries: start, poll to completion, download the JSONL and pair children with parents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from app.integrations.shopify import bulk
from app.integrations.shopify.admin import AdminClient, AdminError, UserErrors
from app.state import State
from tests.builders import DOMAIN

TOKEN = "shpat_bulk_test_0123456789"
URL = f"https://{DOMAIN}/admin/api/2026-07/graphql.json"
OPERATION = "gid://shopify/BulkOperation/720918"
RESULT_URL = (
    "https://storage.googleapis.com/shopify-tiers-assets-prod-us-east1/"
    "bulk-operation-outputs/720918-export.jsonl?X-Goog-Signature=abc"
)
QUERY = "{ orders { edges { node { id lineItems { edges { node { id } } } } } } }"

JSONL = (
    '{"id":"gid://shopify/Order/5001","name":"#1001"}\n'
    '{"id":"gid://shopify/LineItem/9001","quantity":2,"__parentId":"gid://shopify/Order/5001"}\n'
    '{"id":"gid://shopify/LineItem/9002","quantity":1,"__parentId":"gid://shopify/Order/5001"}\n'
    "\n"
    '{"id":"gid://shopify/Order/5002","name":"#1002"}\n'
    '{"id":"gid://shopify/Order/5003","name":"#1003"}\n'
    '{"id":"gid://shopify/LineItem/9003","quantity":4,"__parentId":"gid://shopify/Order/5003"}\n'
)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def run_response(status: str = "CREATED") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "data": {
                "bulkOperationRunQuery": {
                    "bulkOperation": {"id": OPERATION, "status": status},
                    "userErrors": [],
                }
            }
        },
    )


def status_response(status: str, **fields: Any) -> httpx.Response:
    node = {
        "id": OPERATION,
        "status": status,
        "errorCode": None,
        "objectCount": "0",
        "url": None,
        "partialDataUrl": None,
    }
    node.update(fields)
    return httpx.Response(200, json={"data": {"node": node}})


@pytest.fixture
def shopify() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(state: State, sleeps: Sleeps) -> AdminClient:
    async def token() -> str:
        return TOKEN

    return AdminClient(state=state, shop_domain=DOMAIN, token=token, sleep=sleeps)


async def test_full_bulk_flow_is_parsed_exactly(
    shopify: respx.MockRouter, state: State, client: AdminClient, sleeps: Sleeps
) -> None:
    # given Shopify creates the export, reports it RUNNING twice, then COMPLETED with a file
    graphql = shopify.post(URL).mock(
        side_effect=[
            run_response(),
            status_response("RUNNING", objectCount="3"),
            status_response("RUNNING", objectCount="5"),
            status_response("COMPLETED", objectCount="6", url=RESULT_URL),
        ]
    )
    download = shopify.get(RESULT_URL).mock(return_value=httpx.Response(200, text=JSONL))

    # when the query runs and its result is read
    operation = await bulk.run_query(client, QUERY, group_objects=True)
    async with bulk.download(state, operation) as result:
        grouped = [
            (parent["id"], [child["id"] for child in children])
            for parent, children in result.grouped()
        ]
        records = list(result.records())
        path = result.path

    # then the mutation asked for exactly this query, grouped
    sent = json.loads(graphql.calls[0].request.content)
    assert "bulkOperationRunQuery(query: $query, groupObjects: $groupObjects)" in sent["query"]
    assert sent["variables"] == {"query": QUERY, "groupObjects": True}
    # and polled by id, waiting 1 s then 1.5 s between polls
    polls = [json.loads(call.request.content) for call in graphql.calls[1:]]
    assert [poll["variables"] for poll in polls] == [{"id": OPERATION}] * 3
    assert sleeps.calls == [1.0, 1.5]
    assert operation == bulk.BulkOperation(
        id=OPERATION, status="COMPLETED", object_count=6, url=RESULT_URL
    )
    # and the file came from storage without the shop's token
    assert download.call_count == 1
    assert "X-Shopify-Access-Token" not in download.calls[0].request.headers
    # and every parent carries exactly its children, in file order
    assert grouped == [
        (
            "gid://shopify/Order/5001",
            ["gid://shopify/LineItem/9001", "gid://shopify/LineItem/9002"],
        ),
        ("gid://shopify/Order/5002", []),
        ("gid://shopify/Order/5003", ["gid://shopify/LineItem/9003"]),
    ]
    assert len(records) == 6
    assert records[1] == {
        "id": "gid://shopify/LineItem/9001",
        "quantity": 2,
        "__parentId": "gid://shopify/Order/5001",
    }
    # and the temporary file is gone afterwards
    assert path is not None
    with pytest.raises(FileNotFoundError):
        open(path, "rb")  # noqa: ASYNC230


async def test_completed_without_objects_is_an_empty_result(
    shopify: respx.MockRouter, state: State, client: AdminClient
) -> None:
    shopify.post(URL).mock(side_effect=[run_response(), status_response("COMPLETED")])

    operation = await bulk.run_query(client, QUERY)
    async with bulk.download(state, operation) as result:
        assert list(result.records()) == []
        assert list(result.grouped()) == []


async def test_failed_operation_raises_with_its_error_code(
    shopify: respx.MockRouter, client: AdminClient
) -> None:
    shopify.post(URL).mock(
        side_effect=[run_response(), status_response("FAILED", errorCode="ACCESS_DENIED")]
    )

    with pytest.raises(bulk.BulkOperationFailed) as raised:
        await bulk.run_query(client, QUERY)

    assert raised.value.message == f"Shopify's bulk export {OPERATION} ended FAILED (ACCESS_DENIED)"
    assert raised.value.retryable is False


async def test_timeout_failure_is_retryable(shopify: respx.MockRouter, client: AdminClient) -> None:
    shopify.post(URL).mock(
        side_effect=[run_response(), status_response("FAILED", errorCode="TIMEOUT")]
    )

    with pytest.raises(bulk.BulkOperationFailed) as raised:
        await bulk.run_query(client, QUERY)

    assert raised.value.retryable is True


async def test_operation_still_running_after_the_limit_gives_up(
    shopify: respx.MockRouter, client: AdminClient, sleeps: Sleeps
) -> None:
    shopify.post(URL).mock(
        side_effect=[run_response(), *[status_response("RUNNING") for _ in range(4)]]
    )

    with pytest.raises(bulk.BulkOperationFailed, match="still RUNNING after 4 s"):
        await bulk.run_query(client, QUERY, max_wait_seconds=3.0)

    assert sleeps.calls == [1.0, 1.5, 2.25]


async def test_second_export_while_one_runs_is_refused(
    shopify: respx.MockRouter, client: AdminClient
) -> None:
    shopify.post(URL).mock(
        return_value=httpx.Response(
            200,
            json={
                "data": {
                    "bulkOperationRunQuery": {
                        "bulkOperation": None,
                        "userErrors": [
                            {
                                "field": None,
                                "message": "A bulk query operation for this app and shop is "
                                "already in progress",
                                "code": "OPERATION_IN_PROGRESS",
                            }
                        ],
                    }
                }
            },
        )
    )

    with pytest.raises(UserErrors, match="already in progress"):
        await bulk.run_query(client, QUERY)


async def test_child_away_from_its_parent_is_refused(
    shopify: respx.MockRouter, state: State, client: AdminClient
) -> None:
    shopify.post(URL).mock(
        side_effect=[run_response(), status_response("COMPLETED", url=RESULT_URL)]
    )
    shopify.get(RESULT_URL).mock(
        return_value=httpx.Response(
            200,
            text=(
                '{"id":"gid://shopify/Order/1"}\n'
                '{"id":"gid://shopify/Order/2"}\n'
                '{"id":"gid://shopify/LineItem/3","__parentId":"gid://shopify/Order/1"}\n'
            ),
        )
    )

    operation = await bulk.run_query(client, QUERY)
    async with bulk.download(state, operation) as result:
        with pytest.raises(bulk.BulkOutputError, match="does not follow its parent"):
            list(result.grouped())


async def test_bad_json_line_is_named(
    shopify: respx.MockRouter, state: State, client: AdminClient
) -> None:
    shopify.post(URL).mock(
        side_effect=[run_response(), status_response("COMPLETED", url=RESULT_URL)]
    )
    shopify.get(RESULT_URL).mock(
        return_value=httpx.Response(200, text='{"id":"gid://shopify/Order/1"}\n{"id":\n')
    )

    operation = await bulk.run_query(client, QUERY)
    async with bulk.download(state, operation) as result:
        with pytest.raises(bulk.BulkOutputError, match="Line 2 of the bulk result is not JSON"):
            list(result.records())


async def test_expired_download_link_says_so(
    shopify: respx.MockRouter, state: State, client: AdminClient
) -> None:
    shopify.post(URL).mock(
        side_effect=[run_response(), status_response("COMPLETED", url=RESULT_URL)]
    )
    shopify.get(RESULT_URL).mock(return_value=httpx.Response(403, text="expired"))

    operation = await bulk.run_query(client, QUERY)
    with pytest.raises(AdminError, match="refused with 403"):
        async with bulk.download(state, operation):
            pass
