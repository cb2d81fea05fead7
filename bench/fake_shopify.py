"""A small local stand-in for the Shopify Admin GraphQL API (discount codes), with faults.

    python -m bench.fake_shopify --port 8124

Answers `POST /{shop}/admin/api/{version}/graphql.json` for the three operations a
redemption uses (basic and free-shipping code creation, lookup by code), with Shopify's
response shapes and query cost. Faults are set at run time with
`POST /_fake/faults {"429": 0.2, "500": 0.1, "timeout": 0.05, "timeout_seconds": 15}`:
each request draws one outcome with those probabilities. A fault decided before the
mutation is applied; a `lost` fault applies the mutation and then answers 502, like an
answer lost on the way back. `GET /_fake/state` counts requests by outcome and codes.
Only 127.0.0.1 is served.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
from collections import Counter
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

COST = {
    "requestedQueryCost": 10,
    "actualQueryCost": 10,
    "throttleStatus": {
        "maximumAvailable": 2000.0,
        "currentlyAvailable": 1990,
        "restoreRate": 100.0,
    },
}


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


class FakeShopify:
    def __init__(self, seed: int = 5) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.faults: dict[str, float] = {}
        self.timeout_seconds = 15.0
        self.codes: dict[str, str] = {}
        self.outcomes: Counter[str] = Counter()
        self.app = Starlette(
            routes=[
                Route("/{shop}/admin/api/{version}/graphql.json", self.graphql, methods=["POST"]),
                Route("/_fake/faults", self.set_faults, methods=["POST"]),
                Route("/_fake/state", self.state, methods=["GET"]),
            ]
        )

    def _draw(self) -> str:
        with self.lock:
            roll = self.rng.random()
            for outcome, share in self.faults.items():
                if roll < share:
                    return outcome
                roll -= share
        return "ok"

    async def graphql(self, request: Request) -> Response:
        if not request.headers.get("x-shopify-access-token"):
            return _json(401, {"errors": "[API] Invalid API key or access token"})
        outcome = self._draw()
        self.outcomes[outcome] += 1
        if outcome == "429":
            return _json(429, {"errors": "Exceeded 2 calls per second"}, {"Retry-After": "1.0"})
        if outcome == "500":
            return _json(500, {"errors": "Internal Server Error"})
        if outcome == "timeout":
            await asyncio.sleep(self.timeout_seconds)
        body = orjson.loads(await request.body())
        query: str = body.get("query", "")
        variables: dict[str, Any] = body.get("variables") or {}
        if "codeDiscountNodeByCode" in query:
            gid = self.codes.get(str(variables.get("code")))
            data: dict[str, Any] = {"codeDiscountNodeByCode": {"id": gid} if gid else None}
        else:
            field = next(
                name
                for name in ("discountCodeFreeShippingCreate", "discountCodeBasicCreate")
                if name in query
            )
            code_input = variables["input"]
            code = str(code_input["code"])
            gid = self.codes.setdefault(
                code, f"gid://shopify/DiscountCodeNode/{len(self.codes) + 1}"
            )
            data = {field: {"codeDiscountNode": {"id": gid}, "userErrors": []}}
        if outcome == "lost":
            return _json(502, {"errors": "Bad Gateway"})
        return _json(200, {"data": data, "extensions": {"cost": COST}})

    async def set_faults(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.timeout_seconds = float(body.pop("timeout_seconds", self.timeout_seconds))
        with self.lock:
            self.faults = {str(k): float(v) for k, v in body.items()}
        return _json(200, {"faults": self.faults, "timeout_seconds": self.timeout_seconds})

    async def state(self, request: Request) -> Response:
        return _json(
            200,
            {
                "codes": len(self.codes),
                "code_list": sorted(self.codes),
                "outcomes": dict(self.outcomes),
            },
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8124)
    args = parser.parse_args()
    uvicorn.run(FakeShopify().app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
