"""Referrals: link clicks, the friend's welcome code, attribution, qualification and review.

Attribution needs no cookie: the friend's own welcome code on the order, the `stamp_ref`
cart attribute the widget sets, or `?ref=<code>` / `/r/<code>` in the order's
`landing_site` or `referring_site` is enough, so a friend who buys days later in another
browser is still credited. The referrer's reward is a pending ledger entry
(`referral:<order id>:referrer`) released by the ordinary release job when the hold
window closes; a refund or cancellation inside the window cancels it.

Shoppers' traits (IP, browser, device, phone, address, email) are compared only as keyed
hashes (`fingerprint`); the reasons stored on a referral are plain words, never values.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto import keyed_hash
from app.db import unit_of_work
from app.errors import Conflict, NotFound
from app.events import OrderPaid
from app.integrations.shopify import discounts
from app.integrations.shopify.admin import AdminError, client_for_shop
from app.ledger import outbox
from app.ledger import service as ledger
from app.ledger.repository import LedgerRepository
from app.members import service as members
from app.models import EntryStatus, Member, Order, Shop
from app.models.base import utcnow
from app.models.referral import Referral, ReferralClick, ReferralOffer
from app.program.config import ProgramConfig, ReferralRule, RiskPolicy
from app.program.service import current_config
from app.referrals import fraud
from app.referrals.repository import ReferralRepository
from app.settings import get_settings
from app.shops.tokens import ShopTokenError
from app.state import State

CODE_PATTERN = re.compile(r"^[A-Z0-9]{4,32}$")
REF_ATTRIBUTE = "stamp_ref"
DEVICE_ATTRIBUTE = "stamp_device"
OFFER_PREFIX = "FRIEND-"
OFFER_ALPHABET = members.REFERRAL_ALPHABET


class ReferralNotReviewable(Conflict):
    code = "referral_not_held"


def fingerprint(kind: str, value: str) -> str:
    """A keyed hash: comparable and countable, not reversible by guessing IPs or emails."""
    return keyed_hash(get_settings().secret_key, f"referral:{kind}:{value}")


def _maybe(kind: str, value: str | None) -> str | None:
    return fingerprint(kind, value) if value else None


def network_of(ip: str | None) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) an address sits in: one household or office network."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _ip(ip: str | None) -> str | None:
    if not ip:
        return None
    try:
        return str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        return None


# --- what an order tells us -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderSignals:
    """Fraud-relevant traits of an order's buyer, hashed (`fingerprint`); built from the payload."""

    ip_hash: str | None = None
    network_hash: str | None = None
    ip_ua_hash: str | None = None  # the IP and user agent together: one browser
    phone_hash: str | None = None
    address_hashes: tuple[str, ...] = ()


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _address_hash(address: Any) -> str | None:
    if not isinstance(address, Mapping):
        return None
    normal = fraud.normalise_address(
        _text(address.get("address1")),
        _text(address.get("address2")),
        _text(address.get("zip")),
        _text(address.get("country_code")) or _text(address.get("country")),
    )
    return _maybe("address", normal)


def order_signals(payload: Mapping[str, Any]) -> OrderSignals:
    """Read IP, browser, phone and addresses from a Shopify order payload (never raises)."""
    details = payload.get("client_details")
    details = details if isinstance(details, Mapping) else {}
    ip = _ip(_text(payload.get("browser_ip")) or _text(details.get("browser_ip")))
    user_agent = _text(details.get("user_agent"))
    customer = payload.get("customer")
    customer = customer if isinstance(customer, Mapping) else {}
    shipping, billing = payload.get("shipping_address"), payload.get("billing_address")
    phones = [
        _text(payload.get("phone")),
        _text(customer.get("phone")),
        *(_text(a.get("phone")) for a in (shipping, billing) if isinstance(a, Mapping)),
    ]
    phone = next((fraud.normalise_phone(p) for p in phones if fraud.normalise_phone(p)), None)
    addresses = tuple(
        dict.fromkeys(h for h in (_address_hash(shipping), _address_hash(billing)) if h)
    )
    return OrderSignals(
        ip_hash=_maybe("ip", ip),
        network_hash=_maybe("network", network_of(ip)),
        ip_ua_hash=fingerprint("ip_ua", f"{ip}|{user_agent}") if ip and user_agent else None,
        phone_hash=_maybe("phone", phone),
        address_hashes=addresses,
    )


def code_in_url(url: str | None) -> str | None:
    """`?ref=<code>` or `/r/<code>` in a landing or referring URL (also inside `redirect=`)."""
    if not url:
        return None
    for _ in range(3):  # a /discount/<code>?redirect=/?ref=<code> link nests one level
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        for value in query.get("ref", []):
            if CODE_PATTERN.match(value.strip().upper()):
                return value.strip().upper()
        match = re.search(r"/r/([A-Za-z0-9]{4,32})(?:/|$)", parts.path)
        if match:
            return match.group(1).upper()
        redirect = query.get("redirect")
        if not redirect:
            return None
        url = redirect[0]
    return None


def _attribute(event: OrderPaid, name: str) -> str | None:
    return next((v.strip() for k, v in event.note_attributes if k == name and v.strip()), None)


@dataclass(frozen=True, slots=True)
class Attribution:
    referrer: Member
    code: str
    method: str  # discount_code | cart_attribute | landing_site | referring_site
    offer: ReferralOffer | None = None


async def _attribution(
    repo: ReferralRepository, shop: Shop, event: OrderPaid
) -> Attribution | None:
    offer = await repo.offer_by_codes(shop.id, event.discount_codes)
    if offer is not None:
        referrer = await repo.session.get(Member, offer.referrer_member_id)
        if referrer is not None and referrer.redacted_at is None:
            return Attribution(referrer, offer.code, "discount_code", offer)
    candidates = [
        ("cart_attribute", (_attribute(event, REF_ATTRIBUTE) or "").upper() or None),
        ("landing_site", code_in_url(event.landing_site)),
        ("referring_site", code_in_url(event.referring_site)),
    ]
    for method, code in candidates:
        if code and CODE_PATTERN.match(code):
            referrer = await repo.member_by_code(shop.id, code)
            if referrer is not None:
                return Attribution(referrer, code, method)
    return None


# --- attribution and qualification --------------------------------------------------------


def _limits(rule: ReferralRule) -> fraud.Limits:
    return fraud.Limits(
        ip_velocity_limit=rule.ip_velocity_limit,
        ip_velocity_days=rule.ip_velocity_days,
        burst_limit=rule.burst_limit,
        burst_hours=rule.burst_hours,
        coupon_click_limit=rule.coupon_click_limit,
    )


async def _remember(
    repo: ReferralRepository,
    shop_id: int,
    member: Member,
    signals: OrderSignals,
    device_hash: str | None,
    email: str | None,
) -> None:
    """Keep the buyer's hashed traits, so their later referrals can be compared with them."""
    traits = [
        ("ip", signals.ip_hash),
        ("ip_ua", signals.ip_ua_hash),
        ("phone", signals.phone_hash),
        ("device", device_hash),
        ("email", _maybe("email", fraud.normalise_email(email))),
        *(("address", h) for h in signals.address_hashes),
    ]
    for kind, value_hash in traits:
        if value_hash:
            await repo.remember(shop_id, member.id, kind, value_hash)


async def _existing_customer(
    repo: ReferralRepository,
    shop_id: int,
    friend: Member,
    referrer: Member,
    email: str | None,
    phone_hash: str | None,
    order_id: str,
) -> bool:
    """An earlier order or account under the friend's normalised email or phone.

    The referrer is left out: a friend who *is* the referrer is a fraud signal with its own
    reason, not an existing customer.
    """
    if await repo.has_other_orders(shop_id, [friend.id], order_id):
        return True
    normal = fraud.normalise_email(email)
    friend_phone = fraud.normalise_phone(friend.phone)
    candidates: list[Member] = []
    if normal:
        local, _, domain = normal.partition("@")
        candidates += await repo.members_like(shop_id, friend.id, {normal}, None)
        candidates += await repo.members_with_local_prefix(shop_id, friend.id, local, domain)
    if friend_phone or phone_hash:
        candidates += await repo.members_like(shop_id, friend.id, set(), friend_phone)
    same_person = [
        m
        for m in candidates
        if m.id != referrer.id
        and (
            (normal is not None and fraud.normalise_email(m.email) == normal)
            or (friend_phone is not None and fraud.normalise_phone(m.phone) == friend_phone)
        )
    ]
    if any(m.is_account for m in same_person):
        return True
    return await repo.has_other_orders(shop_id, [m.id for m in same_person], order_id)


async def _evidence(
    repo: ReferralRepository,
    shop: Shop,
    rule: ReferralRule,
    attribution: Attribution,
    friend: Member,
    email: str | None,
    signals: OrderSignals,
    device_hash: str | None,
    event: OrderPaid,
    now: datetime,
) -> fraud.Evidence:
    referrer = attribution.referrer
    seen = await repo.fingerprints(referrer.id)
    referrer_phone = _maybe("phone", fraud.normalise_phone(referrer.phone))
    referrer_phones = seen.get("phone", set()) | ({referrer_phone} if referrer_phone else set())
    referrer_emails = seen.get("email", set())
    friend_email_hash = _maybe("email", fraud.normalise_email(email))
    referring_host = urlsplit(event.referring_site or "").hostname
    return fraud.Evidence(
        own_code=friend.id == referrer.id,
        same_email=(
            fraud.normalise_email(email) is not None
            and fraud.normalise_email(email) == fraud.normalise_email(referrer.email)
        )
        or (friend_email_hash is not None and friend_email_hash in referrer_emails),
        similar_email=fraud.similar_emails(email, referrer.email),
        same_phone=signals.phone_hash is not None and signals.phone_hash in referrer_phones,
        same_device=device_hash is not None and device_hash in seen.get("device", set()),
        same_address=bool(set(signals.address_hashes) & seen.get("address", set())),
        same_ip=signals.ip_hash is not None and signals.ip_hash in seen.get("ip", set()),
        same_browser=signals.ip_ua_hash is not None
        and signals.ip_ua_hash in seen.get("ip_ua", set()),
        other_device=device_hash is not None
        and bool(seen.get("device"))
        and device_hash not in seen.get("device", set()),
        referrals_from_ip=(
            await repo.count_from_ip(
                shop.id, signals.ip_hash, now - timedelta(days=rule.ip_velocity_days)
            )
            if signals.ip_hash
            else 0
        ),
        recent_referrals=await repo.count_for_referrer(
            referrer.id, now - timedelta(hours=rule.burst_hours)
        ),
        distinct_click_networks=await repo.distinct_click_networks(
            referrer.id, now - timedelta(days=7)
        ),
        came_from_coupon_site=fraud.is_coupon_host(referring_host),
        disposable_email=fraud.is_disposable(email),
    )


def _refusal(signal: str, reason: str) -> dict[str, Any]:
    return {"signal": signal, "weight": 0, "reason": reason}


async def attribute_order(
    session: AsyncSession,
    shop: Shop,
    event: OrderPaid,
    member: Member | None,
    order: Order,
    signals: OrderSignals,
    *,
    now: datetime | None = None,
) -> Referral | None:
    """Credit a referrer for this order if it is a referred friend's first order.

    Called by the engine for every paid order, in its transaction, after the order row is
    written. Idempotent: a repeated delivery finds the referral by order id and changes
    nothing. Returns the referral (new or existing), or None when the order is not one.
    """
    config = await current_config(session, shop)
    rule = config.referral
    if not rule.enabled or member is None or event.cancelled or order.cancelled_at is not None:
        return None
    if event.is_test and not config.earning.include_test_orders:
        return None
    now = now or utcnow()
    repo = ReferralRepository(session)
    existing = await repo.by_order(shop.id, event.order_id)
    if existing is not None:
        return existing
    email = (event.customer.email if event.customer else None) or event.email or member.email
    device_raw = _attribute(event, DEVICE_ATTRIBUTE)
    device_hash = _maybe("device", device_raw[:128] if device_raw else None)
    attribution = await _attribution(repo, shop, event)
    if attribution is None:
        await _remember(repo, shop.id, member, signals, device_hash, email)
        return None
    if attribution.offer is not None and attribution.offer.device_hash:
        device_hash = device_hash or attribution.offer.device_hash
    if await repo.for_friend(shop.id, member.id) is not None:
        await _remember(repo, shop.id, member, signals, device_hash, email)
        return None  # one referral per friend: later orders are not referrals
    evidence = await _evidence(
        repo, shop, rule, attribution, member, email, signals, device_hash, event, now
    )
    assessment = fraud.assess(evidence, _limits(rule))
    reasons = [r.as_json() for r in assessment.reasons]
    status, reward = _decide(rule, assessment)
    if evidence.own_code:
        status, reward = "rejected", False
    elif await _existing_customer(
        repo, shop.id, member, attribution.referrer, email, signals.phone_hash, event.order_id
    ):
        reasons.append(_refusal("not_first_order", "The friend had ordered or signed up before"))
        status, reward = "rejected", False
    elif event.merchandise < rule.minimum_order:
        reasons.append(
            _refusal(
                "below_minimum",
                f"The order ({event.merchandise} {event.currency} after discounts) is below "
                f"the {rule.minimum_order} {event.currency} minimum",
            )
        )
        status, reward = "rejected", False
    await _remember(repo, shop.id, member, signals, device_hash, email)
    referral = await repo.insert(
        shop_id=shop.id,
        referrer_member_id=attribution.referrer.id,
        friend_member_id=member.id,
        friend_email_hash=_maybe("email", fraud.normalise_email(email)),
        ip_hash=signals.ip_hash,
        order_id=event.order_id,
        code=attribution.code,
        method=attribution.method,
        status=status,
        risk_score=assessment.score,
        reasons=reasons,
        order_amount=event.merchandise,
        currency=event.currency,
        reward_points=rule.referrer_points,
        decided_by="rules" if status != "held" else None,
        updated_at=now,
    )
    if referral is None:  # a concurrent delivery for this order or friend won
        return await repo.by_order(shop.id, event.order_id)
    if reward:
        await _pay(session, shop, config, referral, now, actor="rules")
    return referral


def _decide(rule: ReferralRule, assessment: fraud.Assessment) -> tuple[str, bool]:
    """(status, pay the referrer?) from the score and the shop's policy."""
    if not assessment.at_or_above(rule.risk_threshold) or rule.risk_policy is RiskPolicy.allow:
        return "qualified", True
    if rule.risk_policy is RiskPolicy.block:
        return "rejected", False
    return "held", False


def _reward_key(order_id: str) -> str:
    return f"referral:{order_id}:referrer"


async def _pay(
    session: AsyncSession,
    shop: Shop,
    config: ProgramConfig,
    referral: Referral,
    now: datetime,
    *,
    actor: str,
) -> None:
    """Post the referrer's reward: pending until `hold_days` after the referral, then released."""
    release_at = referral.created_at + timedelta(days=config.referral.hold_days)
    pending = release_at > now
    referral.status = "qualified" if pending else "completed"
    referral.release_at = release_at
    referral.updated_at = now
    if referral.reward_points > 0:
        await ledger.post(
            session,
            shop.id,
            ledger.Posting(
                member_id=referral.referrer_member_id,
                points=referral.reward_points,
                kind="referral",
                idempotency_key=_reward_key(referral.order_id),
                status=EntryStatus.pending if pending else EntryStatus.available,
                source_type="referral",
                source_id=referral.order_id,
                reason=f"Referred a friend (order {referral.order_id})",
                actor=actor,
                available_at=release_at if pending else None,
                created_at=now,
            ),
        )
    if not pending:
        await _completed(session, referral, now)
    await session.flush()


async def _completed(session: AsyncSession, referral: Referral, now: datetime) -> None:
    await outbox.record(
        session,
        referral.shop_id,
        referral.referrer_member_id,
        outbox.REFERRAL_COMPLETED,
        f"referral:{referral.id}:completed",
        {"order_id": referral.order_id, "points": referral.reward_points},
        now,
    )


async def complete_released(session: AsyncSession, shop: Shop, now: datetime) -> int:
    """Referrals whose hold has ended and whose reward was released become `completed`.

    Run after `app.ledger.periodic.release_due`; a reward still pending (the release job
    has not run yet) waits for the next run. How many were completed.
    """
    repo = ReferralRepository(session)
    ledger_repo = LedgerRepository(session)
    done = 0
    for referral in await repo.qualified_due(shop.id, now, 500):
        entry = await ledger_repo.entry_by_key(shop.id, _reward_key(referral.order_id))
        if entry is not None and entry.status != EntryStatus.available:
            continue
        referral.status = "completed"
        referral.updated_at = now
        await _completed(session, referral, now)
        done += 1
    await session.flush()
    return done


async def on_order_reversed(
    session: AsyncSession, shop: Shop, order_id: str, fully: bool, *, now: datetime | None = None
) -> Referral | None:
    """A refund or cancellation: inside the hold window it cancels the referral's reward.

    A partial refund cancels only when what is left falls below the minimum order. Once
    the reward was released (window over), nothing changes.
    """
    repo = ReferralRepository(session)
    referral = await repo.by_order(shop.id, order_id)
    if referral is None or referral.status not in ("qualified", "held"):
        return referral
    if not fully:
        config = await current_config(session, shop)
        left = referral.order_amount - await repo.refunded_merchandise(shop.id, order_id)
        if left > 0 and left >= config.referral.minimum_order:
            return referral
    entry = await LedgerRepository(session).entry_by_key(shop.id, _reward_key(order_id))
    if entry is not None and entry.status == EntryStatus.available:
        return referral  # released: the window had closed
    if entry is not None:
        await ledger.cancel_pending(session, entry)
    now = now or utcnow()
    referral.status = "cancelled"
    referral.decided_by = "rules"
    referral.decision_reason = "The order was refunded or cancelled inside the hold window"
    referral.decided_at = now
    referral.updated_at = now
    await session.flush()
    return referral


# --- review -------------------------------------------------------------------------------


async def _reviewable(session: AsyncSession, shop: Shop, referral_id: int) -> Referral:
    referral = await ReferralRepository(session).get(shop.id, referral_id)
    if referral is None:
        raise NotFound(f"No referral {referral_id}", code="referral_not_found")
    return referral


async def approve(
    session: AsyncSession,
    shop: Shop,
    referral_id: int,
    *,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> Referral:
    """A held referral is paid: pending until its hold window (from the order) closes."""
    referral = await _reviewable(session, shop, referral_id)
    if referral.status != "held":
        raise ReferralNotReviewable(f"Referral {referral_id} is {referral.status}, not held")
    now = now or utcnow()
    referral.decided_by, referral.decision_reason, referral.decided_at = actor, reason, now
    await _pay(session, shop, await current_config(session, shop), referral, now, actor=actor)
    return referral


async def reject(
    session: AsyncSession,
    shop: Shop,
    referral_id: int,
    *,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> Referral:
    """Refuse a held referral, or one whose reward is still pending (the reward is cancelled)."""
    referral = await _reviewable(session, shop, referral_id)
    if referral.status not in ("held", "qualified"):
        raise ReferralNotReviewable(f"Referral {referral_id} is {referral.status}")
    entry = await LedgerRepository(session).entry_by_key(shop.id, _reward_key(referral.order_id))
    if entry is not None and entry.status == EntryStatus.available:
        raise ReferralNotReviewable(
            f"Referral {referral_id}'s reward was already released; adjust the points instead"
        )
    if entry is not None:
        await ledger.cancel_pending(session, entry)
    now = now or utcnow()
    referral.status = "rejected"
    referral.decided_by, referral.decision_reason, referral.decided_at = actor, reason, now
    referral.updated_at = now
    await session.flush()
    return referral


# --- the link: clicks and the friend's welcome code ---------------------------------------


@dataclass(frozen=True, slots=True)
class Visit:
    """One request to the referral link, as the app proxy forwards it."""

    code: str
    customer_id: str | None
    ip: str | None
    user_agent: str | None
    device: str | None


@dataclass(frozen=True, slots=True)
class Landing:
    """Where to send the visitor, and the welcome code still to be created (outside the tx)."""

    ref_code: str | None
    offer_id: int | None = None
    offer_code: str | None = None
    needs_issue: bool = False


def new_offer_code() -> str:
    return OFFER_PREFIX + "".join(secrets.choice(OFFER_ALPHABET) for _ in range(10))


def storefront_location(ref_code: str | None, discount_code: str | None) -> str:
    """A path on the shop's own domain (the proxy serves it there).

    Shopify applies a discount through its shareable link `/discount/<code>`, which takes a
    `redirect` path; the `ref` parameter rides along so `landing_site` carries it too.
    """
    landing = f"/?ref={quote(ref_code)}" if ref_code else "/"
    if discount_code:
        return f"/discount/{quote(discount_code)}?redirect={quote(landing, safe='')}"
    return landing


async def land(session: AsyncSession, shop: Shop, visit: Visit) -> Landing:
    """Record the click and find or reserve the friend's welcome code (once per device).

    The referrer clicking their own link is remembered as their own session (its IP and
    device later flag self-referrals) and gets no welcome code.
    """
    config = await current_config(session, shop)
    repo = ReferralRepository(session)
    code = visit.code.strip().upper()
    referrer = await repo.member_by_code(shop.id, code) if CODE_PATTERN.match(code) else None
    if referrer is None or not config.referral.enabled:
        return Landing(ref_code=None)
    ip = _ip(visit.ip)
    device_hash = _maybe("device", visit.device[:128] if visit.device else None)
    ip_ua = fingerprint("ip_ua", f"{ip}|{visit.user_agent}") if ip and visit.user_agent else None
    by_referrer = bool(visit.customer_id) and visit.customer_id == referrer.customer_id
    now = utcnow()
    await repo.add_click(
        ReferralClick(
            shop_id=shop.id,
            referrer_member_id=referrer.id,
            code=code,
            clicked_at=now,
            ip_hash=_maybe("ip", ip),
            network_hash=_maybe("network", network_of(ip)),
            ua_hash=_maybe("ua", visit.user_agent[:512] if visit.user_agent else None),
            device_hash=device_hash,
            by_referrer=by_referrer,
            created_at=now,
        )
    )
    if by_referrer:
        for kind, value_hash in (
            ("ip", _maybe("ip", ip)),
            ("ip_ua", ip_ua),
            ("device", device_hash),
        ):
            if value_hash:
                await repo.remember(shop.id, referrer.id, kind, value_hash)
        return Landing(ref_code=None)
    rule = config.referral
    visitor_hash = device_hash or ip_ua or _maybe("ip", ip)
    if rule.friend_discount_value <= 0 or visitor_hash is None:
        return Landing(ref_code=code)
    offer = await repo.offer_for(shop.id, referrer.id, visitor_hash)
    if offer is None:
        offer = await repo.insert_offer(
            shop_id=shop.id,
            referrer_member_id=referrer.id,
            visitor_hash=visitor_hash,
            device_hash=device_hash,
            ip_hash=_maybe("ip", ip),
            code=new_offer_code(),
            status="pending",
            expires_at=(
                now + timedelta(days=rule.friend_discount_expires_after_days)
                if rule.friend_discount_expires_after_days
                else None
            ),
        )
        if offer is None:  # a concurrent click from this device reserved it
            offer = await repo.offer_for(shop.id, referrer.id, visitor_hash)
    assert offer is not None
    return Landing(
        ref_code=code,
        offer_id=offer.id,
        offer_code=offer.code,
        needs_issue=offer.status != "issued",
    )


async def issue_offer(state: State, shop_id: int, offer_id: int) -> str | None:
    """Create the welcome code on Shopify (one use, anyone); None if it could not be made.

    Outside any transaction, like reward codes: a slow platform holds no database lock.
    A failed code is retried on the friend's next click.
    """
    async with state.sessionmaker() as session:
        offer = await session.get(ReferralOffer, offer_id)
        shop = await session.get(Shop, shop_id)
        if offer is None or shop is None:
            return None
        if offer.status == "issued":
            return offer.code
        config = await current_config(session, shop)
    rule = config.referral
    spec = discounts.DiscountSpec(
        code=offer.code,
        title="Stamp referral: friend's welcome offer",
        kind=rule.friend_discount_kind,
        value=rule.friend_discount_value,
        customer_gid=None,
        minimum_order=rule.minimum_order or None,
        starts_at=offer.created_at,
        ends_at=offer.expires_at,
    )
    try:
        client = await client_for_shop(state, shop_id)
        client.max_attempts = 2
        discount_id: str | None = await discounts.create_code(client, spec)
    except (AdminError, ShopTokenError, httpx.HTTPError):
        discount_id = None
    async with unit_of_work(state.sessionmaker) as session:
        repo = ReferralRepository(session)
        if discount_id is None:
            await repo.move_offer(offer_id, offer.status, "failed")
            return None
        await repo.move_offer(offer_id, offer.status, "issued", platform_discount_id=discount_id)
    return offer.code
