"""Referral risk scoring: evidence in, a 0-100 score and plain-word reasons out.

Pure: no database, no clock. The service gathers `Evidence` (comparisons and counts made
on hashed values) and the shop's `Limits`; this module decides what they mean, so every
rule is unit-tested in isolation and a merchant can read why a referral was held.

Weights are chosen so that no single weak signal reaches the default threshold (60):
a household or an office shares an IP and often an address, and that alone is not fraud
(competitors.md §3), and IP evidence counts once however many IP signals fire. Strong
signals (the same person by email, phone or device; an order from a coupon site; a
throwaway inbox) reach it on their own. tests/data/referral_scenarios.json measures the
verdicts on scripted fraud and lookalike cases (tests/referrals/test_scenarios.py).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Domains whose dots Google ignores, and providers that deliver `+tag` aliases.
DOT_INSENSITIVE = frozenset({"gmail.com", "googlemail.com"})
GMAIL_ALIASES = {"googlemail.com": "gmail.com"}

# A small list, on purpose: the well-known throwaway providers.
DISPOSABLE_DOMAINS = frozenset(
    {
        "mailinator.com",
        "guerrillamail.com",
        "guerrillamail.net",
        "sharklasers.com",
        "10minutemail.com",
        "temp-mail.org",
        "tempmail.com",
        "yopmail.com",
        "trashmail.com",
        "getnada.com",
        "dispostable.com",
        "maildrop.cc",
        "throwawaymail.com",
        "fakeinbox.com",
        "mailnesia.com",
        "mohmal.com",
        "emailondeck.com",
        "tempail.com",
        "spamgourmet.com",
        "mintemail.com",
    }
)

# Hosts where leaked codes end up (ReferralCandy's "coupon sites").
COUPON_HOSTS = frozenset(
    {
        "retailmenot.com",
        "couponfollow.com",
        "slickdeals.net",
        "dealspotr.com",
        "knoji.com",
        "coupons.com",
        "couponcabin.com",
        "honey.com",
        "joinhoney.com",
        "wethrift.com",
        "couponbirds.com",
        "hotdeals.com",
        "dontpayfull.com",
    }
)

WEIGHTS = {
    "own_code": 100,
    "same_email": 100,
    "similar_email": 35,
    "same_phone": 70,
    "same_device": 70,
    "same_address": 30,
    "same_ip": 20,
    "same_ip_and_browser": 25,
    "ip_velocity": 40,
    "burst": 30,
    # A coupon host as the order's referring site is direct evidence the friend did not come
    # from a personal share (ReferralCandy); no legitimate referral arrives that way, so it
    # reaches the default threshold alone. Many unrelated networks clicking the code is
    # only circumstantial (a viral post looks the same) and stays a report.
    "coupon_site": 60,
    "code_spread": 40,
    # The list holds only throwaway inboxes (some world-readable, like Mailinator): a real
    # customer needs the order and shipping emails, so it reaches the threshold alone.
    # Privacy relays (Apple Hide My Email, Proton) are deliberately not on it.
    "disposable_email": 60,
}

# Signals that all say "a shared network". They are one fact, counted once: together they
# add at most this much, so a household, office or campus never crosses the threshold on
# IP evidence alone (competitors.md section 3: Rivo, Keystone).
NETWORK_SIGNALS = frozenset({"same_ip", "ip_velocity"})
NETWORK_CAP = 40


def normalise_email(email: str | None) -> str | None:
    """One spelling per mailbox: case, Gmail dots, and `+tags` do not make a new person."""
    if not email or "@" not in email:
        return None
    local, _, domain = email.strip().lower().rpartition("@")
    domain = GMAIL_ALIASES.get(domain, domain)
    local = local.split("+", 1)[0]
    if domain in DOT_INSENSITIVE:
        local = local.replace(".", "")
    if not local or not domain:
        return None
    return f"{local}@{domain}"


def email_domain(email: str | None) -> str | None:
    normal = normalise_email(email)
    return normal.rpartition("@")[2] if normal else None


def normalise_phone(phone: str | None) -> str | None:
    """The last 10 digits: "+1 (207) 555-0100" and "207-555-0100" are one phone.

    Shoppers type country codes and trunk zeros inconsistently; the national number's
    last 10 digits identify it well enough to compare. Under 7 digits is not a phone.
    """
    if not phone:
        return None
    digits = re.sub(r"\D", "", phone).lstrip("0")
    return digits[-10:] if len(digits) >= 7 else None


_ADDRESS_WORDS = {
    "street": "st",
    "str": "st",
    "avenue": "ave",
    "av": "ave",
    "road": "rd",
    "drive": "dr",
    "boulevard": "blvd",
    "lane": "ln",
    "apartment": "apt",
    "suite": "ste",
    "unit": "apt",
    "#": "apt",
}


def normalise_address(
    address1: str | None,
    address2: str | None,
    zip_code: str | None,
    country: str | None,
) -> str | None:
    """Street, flat, postcode and country, folded so "12 Main Street" == "12 main st."."""
    if not address1 or not zip_code:
        return None
    text = f"{address1} {address2 or ''}"
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    text = text.replace("#", " # ")
    words = [_ADDRESS_WORDS.get(word, word) for word in re.findall(r"[a-z0-9#]+", text)]
    postcode = re.sub(r"[^a-z0-9]", "", zip_code.lower())
    return f"{' '.join(words)}|{postcode}|{(country or '').strip().upper()}"


def _edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            )
        previous = current
    return previous[-1]


def similar_emails(a: str | None, b: str | None) -> bool:
    """Near-same mailboxes at one domain: local parts one edit apart (jsmith1 / jsmith2).

    Short local parts are left out (ann / ben are different people), and so are equal
    ones (that is `same_email`).
    """
    first, second = normalise_email(a), normalise_email(b)
    if not first or not second or first == second:
        return False
    local_a, _, domain_a = first.partition("@")
    local_b, _, domain_b = second.partition("@")
    if domain_a != domain_b or min(len(local_a), len(local_b)) < 5:
        return False
    return _edit_distance(local_a, local_b) <= 1


def is_disposable(email: str | None) -> bool:
    return email_domain(email) in DISPOSABLE_DOMAINS


def is_coupon_host(host: str | None) -> bool:
    if not host:
        return False
    host = host.lower().removeprefix("www.")
    return any(host == known or host.endswith("." + known) for known in COUPON_HOSTS)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the service found, already compared; counts exclude the order being scored."""

    own_code: bool = False
    same_email: bool = False
    similar_email: bool = False
    same_phone: bool = False
    same_device: bool = False
    same_address: bool = False
    same_ip: bool = False
    same_browser: bool = False  # same IP *and* user agent as the referrer's own session
    # The friend's device id is known and is none of the referrer's known devices: the
    # IP + user agent proxy (two phones of one model on one wifi match it) is overruled.
    other_device: bool = False
    referrals_from_ip: int = 0  # other referred orders from this IP inside the window
    recent_referrals: int = 0  # the referrer's other referred orders inside the burst window
    distinct_click_networks: int = 0  # networks that clicked this code in the last week
    came_from_coupon_site: bool = False
    disposable_email: bool = False


@dataclass(frozen=True, slots=True)
class Limits:
    """The shop's velocity knobs (`ReferralRule`)."""

    ip_velocity_limit: int = 5
    ip_velocity_days: int = 7
    burst_limit: int = 5
    burst_hours: int = 24
    coupon_click_limit: int = 50


@dataclass(frozen=True, slots=True)
class Reason:
    signal: str
    weight: int
    reason: str

    def as_json(self) -> dict[str, object]:
        return {"signal": self.signal, "weight": self.weight, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Assessment:
    score: int
    reasons: tuple[Reason, ...]

    def at_or_above(self, threshold: int) -> bool:
        return self.score >= threshold


def assess(evidence: Evidence, limits: Limits = Limits()) -> Assessment:
    """Sum the weights of the signals present (capped at 100), each with its reason."""
    found: list[tuple[str, str]] = []
    if evidence.own_code:
        found.append(("own_code", "The referrer placed this order with their own referral"))
    if evidence.same_email:
        found.append(
            ("same_email", "The friend's email is the referrer's (ignoring case, dots, +tags)")
        )
    elif evidence.similar_email:
        found.append(("similar_email", "The friend's email is one letter from the referrer's"))
    if evidence.same_phone:
        found.append(("same_phone", "The friend's phone number is the referrer's"))
    if evidence.same_device:
        found.append(("same_device", "The friend used the same device as the referrer"))
    if evidence.same_address:
        found.append(("same_address", "The friend's address is one the referrer has used"))
    if evidence.same_ip:
        found.append(("same_ip", "The friend ordered from an IP address the referrer has used"))
        if evidence.same_browser and not evidence.other_device:
            found.append(
                ("same_ip_and_browser", "The same IP address and browser as the referrer's")
            )
    if evidence.referrals_from_ip >= limits.ip_velocity_limit:
        found.append(
            (
                "ip_velocity",
                f"{evidence.referrals_from_ip} other referred orders came from this IP address "
                f"in {limits.ip_velocity_days} days",
            )
        )
    if evidence.recent_referrals >= limits.burst_limit:
        found.append(
            (
                "burst",
                f"The referrer had {evidence.recent_referrals} other referred orders "
                f"in {limits.burst_hours} hours",
            )
        )
    if evidence.came_from_coupon_site:
        found.append(("coupon_site", "The friend came to the shop from a coupon site"))
    elif evidence.distinct_click_networks >= limits.coupon_click_limit:
        found.append(
            (
                "code_spread",
                "The code looks published on a coupon site "
                f"({evidence.distinct_click_networks} unrelated networks clicked it this week)",
            )
        )
    if evidence.disposable_email:
        found.append(("disposable_email", "The friend used a disposable email address"))
    reasons: list[Reason] = []
    network_left = NETWORK_CAP
    for signal, text in found:
        weight = WEIGHTS[signal]
        if signal in NETWORK_SIGNALS:
            weight, network_left = (
                min(weight, network_left),
                network_left - min(weight, network_left),
            )
            if weight < WEIGHTS[signal]:
                text += " (a shared network is counted once)"
        reasons.append(Reason(signal, weight, text))
    return Assessment(min(100, sum(r.weight for r in reasons)), tuple(reasons))
