"""All tables, imported together so metadata (and Alembic) sees every one."""

from app.models.api_key import ApiKey
from app.models.base import Base
from app.models.compliance import ComplianceRequest, DataExport
from app.models.connector import (
    ConnectorConnection,
    ConnectorKind,
    ConnectorMemberSync,
    DeliveryStatus,
    EmailConsent,
    OutgoingDelivery,
    SubscriptionStatus,
    WebhookSubscription,
)
from app.models.idempotency import IdempotentRequest
from app.models.integration import (
    ConnectionStatus,
    EventSync,
    IntegrationConnection,
    IntegrationKind,
    MemberSync,
    ReviewReward,
)
from app.models.ledger import EntryKind, EntryStatus, LedgerEntry
from app.models.member import Member
from app.models.member_event import MemberEvent
from app.models.order import Order, OrderRefund
from app.models.program import ProgramVersion
from app.models.redemption import Redemption
from app.models.referral import MemberFingerprint, Referral, ReferralClick, ReferralOffer
from app.models.rollup import PointsDay
from app.models.shop import OAuthState, Platform, Shop, ShopStatus
from app.models.webhook import DeadLetter, WebhookDelivery
from app.models.winback import WinbackModel, WinbackState, WinbackStatusChange

__all__ = [
    "ApiKey",
    "Base",
    "ComplianceRequest",
    "ConnectionStatus",
    "ConnectorConnection",
    "ConnectorKind",
    "ConnectorMemberSync",
    "DataExport",
    "DeadLetter",
    "DeliveryStatus",
    "EmailConsent",
    "EntryKind",
    "EntryStatus",
    "EventSync",
    "IdempotentRequest",
    "IntegrationConnection",
    "IntegrationKind",
    "LedgerEntry",
    "Member",
    "MemberEvent",
    "MemberFingerprint",
    "MemberSync",
    "OAuthState",
    "Order",
    "OrderRefund",
    "OutgoingDelivery",
    "Platform",
    "PointsDay",
    "ProgramVersion",
    "Redemption",
    "Referral",
    "ReferralClick",
    "ReferralOffer",
    "ReviewReward",
    "Shop",
    "ShopStatus",
    "SubscriptionStatus",
    "WebhookDelivery",
    "WebhookSubscription",
    "WinbackModel",
    "WinbackState",
    "WinbackStatusChange",
]
