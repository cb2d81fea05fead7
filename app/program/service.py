"""Program versions: every change is a new immutable version, and nothing is edited."""

from __future__ import annotations

from functools import cache
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import ColumnElement, ScalarSelect, Select, bindparam, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.models import ProgramVersion, Shop
from app.program.config import ProgramConfig, default_program


async def current_version(session: AsyncSession, shop_id: int) -> ProgramVersion | None:
    result = await session.execute(
        select(ProgramVersion)
        .where(ProgramVersion.shop_id == shop_id)
        .order_by(ProgramVersion.version.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def get_version(session: AsyncSession, version_id: int) -> ProgramVersion | None:
    return await session.get(ProgramVersion, version_id)


_parsed: dict[tuple[int, int, int, object], ProgramConfig] = {}
_PARSED_LIMIT = 4096


def config_of(version: ProgramVersion) -> ProgramConfig:
    """The validated program; versions never change, so each is parsed once per process."""
    # Keyed by more than the id: a recreated database (tests, a fresh dev database) may
    # hand out the same id again for another program.
    key = (version.id, version.shop_id, version.version, version.created_at)
    parsed = _parsed.get(key)
    if parsed is None:
        parsed = ProgramConfig.model_validate(version.config)
        if len(_parsed) >= _PARSED_LIMIT:
            _parsed.clear()
        _parsed[key] = parsed
    return parsed


def latest_version_id(
    shop_id: ColumnElement[int] | InstrumentedAttribute[int] | int,
) -> ScalarSelect[int]:
    """The id of a shop's current version, as a scalar subquery to read beside the shop."""
    return (
        select(ProgramVersion.id)
        .where(ProgramVersion.shop_id == shop_id)
        .order_by(ProgramVersion.version.desc())
        .limit(1)
        .scalar_subquery()
    )


# Parsed programs by version id, per database engine: versions are immutable, so a hit
# needs no query at all. Keyed by engine because two databases may reuse an id.
_by_engine: WeakKeyDictionary[Engine, dict[int, ProgramConfig]] = WeakKeyDictionary()


async def config_for_version(
    session: AsyncSession, shop: Shop, version_id: int | None
) -> ProgramConfig:
    """The program of `version_id` (read and parsed once per process), or the default
    program when the shop has none yet."""
    if version_id is None:
        return default_program(shop.currency)
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    cache = _by_engine.setdefault(engine, {})
    config = cache.get(version_id)
    if config is None:
        version = await session.get(ProgramVersion, version_id)
        if version is None or version.shop_id != shop.id:
            raise LookupError(f"program version {version_id} is not {shop.domain}'s")
        config = config_of(version)
        if len(cache) >= _PARSED_LIMIT:
            cache.clear()
        cache[version_id] = config
    return config


@cache
def _latest_version_statement() -> Select[int]:
    return select(latest_version_id(bindparam("shop_id")))


_SESSION_KEY = "stamp.programs"


def remember_program(session: AsyncSession, shop_id: int, version_id: int | None) -> None:
    """Note the shop's current version id, read along with the shop, for this transaction."""
    session.info.setdefault(_SESSION_KEY, {})[shop_id] = version_id


def _forget_programs(session: Session, *_: Any) -> None:
    session.info.pop(_SESSION_KEY, None)


# What a transaction learnt about current versions ends with it: the next transaction may
# run after a merchant saved a new version.
for _name in ("after_commit", "after_rollback", "after_soft_rollback"):
    event.listen(Session, _name, _forget_programs)


async def current_program(session: AsyncSession, shop: Shop) -> tuple[int | None, ProgramConfig]:
    """The shop's current version id (None before the first) and program: the id is read
    at most once per transaction, the program once per process and version."""
    known: dict[int, int | None] = session.info.setdefault(_SESSION_KEY, {})
    if shop.id in known:
        version_id = known[shop.id]
    else:
        version_id = await session.scalar(_latest_version_statement(), {"shop_id": shop.id})
        known[shop.id] = version_id
    return version_id, await config_for_version(session, shop, version_id)


async def current_config(session: AsyncSession, shop: Shop) -> ProgramConfig:
    return (await current_program(session, shop))[1]


async def save_program(
    session: AsyncSession, shop: Shop, config: ProgramConfig, created_by: str
) -> ProgramVersion:
    """Store `config` as the shop's next version; earlier versions stay for refunds."""
    latest = await session.scalar(
        select(func.max(ProgramVersion.version)).where(ProgramVersion.shop_id == shop.id)
    )
    version = ProgramVersion(
        shop_id=shop.id,
        version=(latest or 0) + 1,
        config=config.model_dump(mode="json"),
        created_by=created_by,
    )
    session.add(version)
    await session.flush()
    remember_program(session, shop.id, version.id)
    return version


async def ensure_default_program(session: AsyncSession, shop: Shop) -> ProgramVersion:
    """Give a newly installed shop its default program, once (a reinstall keeps the old one)."""
    existing = await current_version(session, shop.id)
    if existing is not None:
        return existing
    return await save_program(session, shop, default_program(shop.currency), "install")
