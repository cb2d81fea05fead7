"""The headless API's edge: authenticate, open the unit of work, render JSON errors.

Every endpoint is `async def handler(ctx: ApiContext) -> ApiResult` wrapped by
`endpoint`, so the transaction is committed in one place, before the response is sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.api.auth import api_shop
from app.db import unit_of_work
from app.errors import AppError, ValidationFailed
from app.models import Shop
from app.state import State, get_state

M = TypeVar("M", bound=BaseModel)
ApiResult = BaseModel | dict[str, Any] | Response


@dataclass(slots=True)
class ApiContext:
    request: Request
    state: State
    session: AsyncSession
    shop: Shop
    raw_body: bytes = b""

    async def body(self, model: type[M]) -> M:
        self.raw_body = await self.request.body()
        return parse_body(self.raw_body, model)

    def query(self, model: type[M]) -> M:
        try:
            return model.model_validate(dict(self.request.query_params))
        except ValidationError as exc:
            raise validation_error(exc) from exc

    @property
    def actor(self) -> str:
        """Who did it, as recorded on ledger entries: the API key's shop and channel."""
        return f"api:{self.shop.domain}"

    def body_sha256(self) -> str:
        return body_sha256(self.raw_body)


NUL_MESSAGE = "Text may not contain the NUL character (\\u0000)"


def has_nul(value: Any) -> bool:
    """True if any string in a decoded JSON value (keys included) holds a NUL character:
    PostgreSQL cannot store one in text, so it is refused at the edge, not as a 500."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(key) or has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(has_nul(item) for item in value)
    return False


def parse_body(raw: bytes, model: type[M]) -> M:
    """Parse and validate a JSON body; a 422 names the first field that is wrong."""
    try:
        data = orjson.loads(raw or b"null")
    except orjson.JSONDecodeError as exc:
        raise AppError("The request body is not valid JSON", code="invalid_json") from exc
    if has_nul(data):
        raise ValidationFailed(NUL_MESSAGE, code="validation_failed")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from exc


def body_sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def validation_error(exc: ValidationError) -> ValidationFailed:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return ValidationFailed(f"{where}: {first['msg']}", code="validation_failed")


def render(result: ApiResult, status_code: int = 200) -> Response:
    if isinstance(result, Response):
        return result
    if isinstance(result, BaseModel):
        return JSONResponse(result.model_dump(mode="json"), status_code=status_code)
    return JSONResponse(result, status_code=status_code)


def endpoint(
    handler: Callable[[ApiContext], Awaitable[ApiResult]], status_code: int = 200
) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        state = get_state(request)
        if has_nul(dict(request.query_params)) or has_nul(dict(request.path_params)):
            raise AppError(NUL_MESSAGE, code="invalid_request")
        async with unit_of_work(state.sessionmaker) as session:
            shop = await api_shop(request, session)
            result = await handler(ApiContext(request, state, session, shop))
        return render(result, status_code)

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run
