"""Shapes of the webhook subscriptions API (and, later, the admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, field_validator

from app.ledger.outbox import WEBHOOK_TYPES
from app.models import OutgoingDelivery, WebhookSubscription

EVENT_TYPES: tuple[str, ...] = tuple(WEBHOOK_TYPES.values())

EventType = Annotated[str, Field(min_length=1, max_length=64)]


class SubscriptionIn(BaseModel):
    url: str = Field(min_length=8, max_length=2048, description="https URL on a public host")
    events: list[EventType] = Field(
        min_length=1,
        max_length=len(EVENT_TYPES),
        description="Event types to receive: " + ", ".join(EVENT_TYPES) + ", or '*' for all",
    )

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str]) -> list[str]:
        if events == ["*"]:
            return list(EVENT_TYPES)
        unknown = [event for event in events if event not in EVENT_TYPES]
        if unknown:
            raise ValueError(
                f"unknown event type {unknown[0]!r}; choose from {', '.join(EVENT_TYPES)}"
            )
        return sorted(set(events), key=EVENT_TYPES.index)


class SubscriptionOut(BaseModel):
    id: int
    url: str
    events: list[str]
    status: str  # active | disabled
    disabled_reason: str | None
    disabled_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, subscription: WebhookSubscription) -> SubscriptionOut:
        return cls(
            id=subscription.id,
            url=subscription.url,
            events=list(subscription.events),
            status=subscription.status,
            disabled_reason=subscription.disabled_reason,
            disabled_at=subscription.disabled_at,
            created_at=subscription.created_at,
        )


class SubscriptionCreated(SubscriptionOut):
    """Returned once, at creation: the secret signs every delivery (docs/connectors.md)."""

    secret: str


class SubscriptionPage(BaseModel):
    data: list[SubscriptionOut]
    next_cursor: str | None


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    event_type: str
    status: str  # pending | delivered | failed
    attempts: int
    response_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, delivery: OutgoingDelivery) -> DeliveryOut:
        return cls(
            id=delivery.id,
            event_id=event_id(delivery.member_event_id),
            event_type=delivery.event_type,
            status=delivery.status,
            attempts=delivery.attempts,
            response_status=delivery.response_status,
            last_error=delivery.last_error,
            next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
            last_attempt_at=delivery.last_attempt_at,
            delivered_at=delivery.delivered_at,
            created_at=delivery.created_at,
        )


class DeliveryPage(BaseModel):
    data: list[DeliveryOut]
    next_cursor: str | None


def event_id(member_event_id: int) -> str:
    """The id receivers dedupe on: one per outbox event, the same on every retry and replay."""
    return f"evt_{member_event_id}"
