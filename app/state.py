"""Long-lived resources, built once per process (web lifespan, worker thread, CLI command)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from app.crypto import Cipher
from app.db import SessionMaker, create_engine, create_reader, create_sessionmaker
from app.http import create_http_client
from app.settings import Settings


@dataclass(slots=True)
class State:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: SessionMaker
    reader: SessionMaker  # read-only requests: autocommit on PostgreSQL (see create_reader)
    http: httpx.AsyncClient
    cipher: Cipher

    @classmethod
    def create(cls, settings: Settings) -> State:
        engine = create_engine(settings)
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            reader=create_reader(engine),
            http=create_http_client(settings),
            cipher=Cipher.from_settings(settings),
        )

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.engine.dispose()


def get_state(request: Request) -> State:
    state: State = request.state.stamp
    return state
