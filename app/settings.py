"""One typed settings object, read from environment variables (and `.env`).

Names are plain and unprefixed, as operators write them (design.md, "Decisions and
conventions"). Outside dev and test a missing secret stops start-up with an error that
names the variable, so a misconfigured production box never runs with a guessable key.
"""

from __future__ import annotations

import base64
import hashlib
from enum import StrEnum
from functools import lru_cache
from typing import Literal

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "stamp-dev-secret-change-me-0123456789abcdef"


class Environment(StrEnum):
    dev = "dev"
    test = "test"
    production = "production"


class ConfigurationError(RuntimeError):
    """Raised at start-up when the environment cannot run Stamp safely."""


def async_database_url(url: str) -> str:
    """Accept the URL forms operators write and pick the async driver ourselves."""
    if url.startswith("sqlite:///") or url.startswith("sqlite://"):
        return "sqlite+aiosqlite:" + url[len("sqlite:") :]
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("postgresql+psycopg2://") or url.startswith("postgresql+psycopg://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=True)

    STAMP_ENV: Environment = Environment.dev
    DATABASE_URL: str = "sqlite:///var/stamp.db"
    QUEUE_URL: str = "sqlite:///var/queue.db"
    APP_URL: str = "http://127.0.0.1:8000"
    SECRET_KEY: SecretStr | None = None
    ENCRYPTION_KEYS: SecretStr | None = None
    SHOPIFY_API_KEY: str | None = None
    SHOPIFY_API_SECRET: SecretStr | None = None
    SHOPIFY_API_VERSION: str = "2026-07"
    SHOPIFY_ADMIN_URL: str = "https://{shop}"
    SHOPIFY_SCOPES: str = (
        "read_customers,write_customers,read_orders,write_discounts,write_app_proxy"
    )
    KLAVIYO_API_URL: str = "https://a.klaviyo.com"
    KLAVIYO_REVISION: str = "2026-07-15"
    JUDGEME_API_URL: str = "https://judge.me/api/v1"
    # `{dc}` is the data centre at the end of the merchant's key (`...-us6`).
    MAILCHIMP_API_URL: str = "https://{dc}.api.mailchimp.com/3.0"
    SEGMENT_API_URL: str = "https://api.segment.io/v1"
    ALLOW_PRIVATE_URLS: bool = False
    WEBHOOK_BODY_RETENTION_DAYS: int = 30
    # Order webhooks waiting together in one web process share a transaction, at most this
    # many (webhooks/batch.py); 1 turns batching off.
    WEBHOOK_BATCH_SIZE: int = 64
    # Logs: `json` (one object per line, with the request id) or `text`; Stamp's own access
    # line per request replaces uvicorn's.
    LOG_FORMAT: Literal["json", "text"] = "json"
    LOG_LEVEL: str = "INFO"
    ACCESS_LOG: bool = True
    # Bearer token for GET /metrics; production serves no metrics without one.
    METRICS_TOKEN: SecretStr | None = None
    HTTP_TIMEOUT_SECONDS: float = 10.0
    DB_POOL_SIZE: int = 10
    # Request bodies are refused (413) above these sizes, from Content-Length before reading.
    WEBHOOK_MAX_BODY_BYTES: int = 5 * 1024 * 1024
    REQUEST_MAX_BODY_BYTES: int = 1024 * 1024
    # Public storefront endpoints (/proxy/*, /woo/api/*): a token bucket per shopper or IP.
    # RATE_LIMIT_RATE tokens per second refill a bucket of RATE_LIMIT_BURST; 0 turns it off.
    RATE_LIMIT_RATE: float = 2.0
    RATE_LIMIT_BURST: int = 60
    # Redis shared by every web process; defaults to QUEUE_URL when that is Redis.
    RATE_LIMIT_URL: str | None = None
    # How many reverse proxies of ours append to X-Forwarded-For in front of Stamp.
    TRUSTED_PROXY_HOPS: int = 0
    # Serves /webhooks/bench/bare (HMAC check only) for the intake benchmark's baseline.
    BENCH_ENDPOINTS: bool = False
    # Serves the demo storefront and the local Shopify Admin stand-in (`stamp demo`).
    DEMO_MODE: bool = False

    @field_validator("APP_URL")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _require_secrets_in_production(self) -> Settings:
        if self.STAMP_ENV is not Environment.production:
            return self
        missing = [
            name
            for name in ("SECRET_KEY", "SHOPIFY_API_KEY", "SHOPIFY_API_SECRET", "ENCRYPTION_KEYS")
            if not getattr(self, name)
        ]
        if self.BENCH_ENDPOINTS or self.DEMO_MODE:
            missing.append("BENCH_ENDPOINTS and DEMO_MODE off")
        if self.ALLOW_PRIVATE_URLS:  # it turns the SSRF guard off for merchant-supplied URLs
            missing.append("ALLOW_PRIVATE_URLS off")
        if missing:
            raise ConfigurationError(
                "Stamp refuses to start in production without: " + ", ".join(missing)
            )
        return self

    @property
    def rate_limit_redis_url(self) -> str | None:
        """Where buckets are shared between web processes; None keeps them in process."""
        if self.RATE_LIMIT_URL:
            return self.RATE_LIMIT_URL
        if self.QUEUE_URL.startswith(("redis://", "rediss://", "unix://")):
            return self.QUEUE_URL
        return None

    @property
    def is_production(self) -> bool:
        return self.STAMP_ENV is Environment.production

    @property
    def secret_key(self) -> str:
        return self.SECRET_KEY.get_secret_value() if self.SECRET_KEY else DEV_SECRET

    @property
    def shopify_api_key(self) -> str:
        return self.SHOPIFY_API_KEY or "stamp-dev-api-key"

    @property
    def shopify_api_secret(self) -> str:
        if self.SHOPIFY_API_SECRET:
            return self.SHOPIFY_API_SECRET.get_secret_value()
        return "stamp-dev-shopify-secret-0123456789abcdef"

    @property
    def encryption_keys(self) -> list[bytes]:
        """Fernet keys, newest first; derived from SECRET_KEY when unset outside production."""
        if self.ENCRYPTION_KEYS:
            raw = self.ENCRYPTION_KEYS.get_secret_value()
            return [key.strip().encode() for key in raw.split(",") if key.strip()]
        digest = hashlib.sha256(("stamp-encryption:" + self.secret_key).encode()).digest()
        return [base64.urlsafe_b64encode(digest)]

    @property
    def async_database_url(self) -> str:
        return async_database_url(self.DATABASE_URL)

    @property
    def is_sqlite(self) -> bool:
        return self.async_database_url.startswith("sqlite")

    def shopify_admin_base(self, shop_domain: str) -> str:
        """Base URL for a shop's Admin API and OAuth endpoints (a local stand-in in tests)."""
        return self.SHOPIFY_ADMIN_URL.format(shop=shop_domain).rstrip("/")

    def external_url(self, path: str) -> str:
        return self.APP_URL + path


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
