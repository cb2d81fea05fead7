"""Settings: the URL forms operators write, and production's refusal of missing secrets."""

from __future__ import annotations

import pytest

from app.settings import ConfigurationError, Settings, async_database_url


@pytest.mark.parametrize(
    ("written", "used"),
    [
        ("sqlite:///var/stamp.db", "sqlite+aiosqlite:///var/stamp.db"),
        ("sqlite:////abs/stamp.db", "sqlite+aiosqlite:////abs/stamp.db"),
        (
            "postgresql://postgres@127.0.0.1:5432/test",
            "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
        ),
        ("postgres://u:p@db/stamp", "postgresql+asyncpg://u:p@db/stamp"),
        ("postgresql+psycopg2://u@db/stamp", "postgresql+asyncpg://u@db/stamp"),
    ],
)
def test_database_url_forms_pick_the_async_driver(written: str, used: str) -> None:
    assert async_database_url(written) == used


def test_production_refuses_to_start_without_secrets_and_names_them() -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings(
            STAMP_ENV="production",
            SECRET_KEY=None,
            SHOPIFY_API_KEY="k",
            SHOPIFY_API_SECRET=None,
            ENCRYPTION_KEYS=None,
        )
    message = str(refused.value)
    assert "SECRET_KEY" in message
    assert "SHOPIFY_API_SECRET" in message
    assert "ENCRYPTION_KEYS" in message
    assert "SHOPIFY_API_KEY" not in message


def test_production_with_every_secret_starts() -> None:
    settings = Settings(
        STAMP_ENV="production",
        SECRET_KEY="s" * 40,
        SHOPIFY_API_KEY="key",
        SHOPIFY_API_SECRET="t" * 40,
        ENCRYPTION_KEYS="A" * 43 + "=",
    )
    assert settings.is_production


def test_dev_derives_a_stable_encryption_key_from_the_secret() -> None:
    first = Settings(STAMP_ENV="dev", SECRET_KEY="abc", ENCRYPTION_KEYS=None).encryption_keys
    again = Settings(STAMP_ENV="dev", SECRET_KEY="abc", ENCRYPTION_KEYS=None).encryption_keys
    other = Settings(STAMP_ENV="dev", SECRET_KEY="xyz", ENCRYPTION_KEYS=None).encryption_keys
    assert first == again != other


def test_rotation_keys_are_newest_first() -> None:
    settings = Settings(ENCRYPTION_KEYS="new-key, old-key")
    assert settings.encryption_keys == [b"new-key", b"old-key"]


def test_production_refuses_to_turn_the_ssrf_guard_off() -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings(
            STAMP_ENV="production",
            SECRET_KEY="s" * 40,
            SHOPIFY_API_KEY="key",
            SHOPIFY_API_SECRET="t" * 40,
            ENCRYPTION_KEYS="A" * 43 + "=",
            ALLOW_PRIVATE_URLS=True,
        )
    assert "ALLOW_PRIVATE_URLS off" in str(refused.value)
