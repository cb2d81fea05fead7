"""Pure referral scoring: each signal fires with its reason; lookalikes do not."""

from __future__ import annotations

from dataclasses import fields, replace

from hypothesis import given
from hypothesis import strategies as st

from app.referrals import fraud
from app.referrals.fraud import Evidence, Limits, assess


def signals(evidence: Evidence) -> list[str]:
    return [reason.signal for reason in assess(evidence).reasons]


def test_email_normalisation_ignores_case_gmail_dots_and_plus_tags() -> None:
    assert (
        fraud.normalise_email(" Rita.Referrer+Friend@GoogleMail.com ") == "ritareferrer@gmail.com"
    )
    assert fraud.normalise_email("r.ita+x@example.com") == "r.ita@example.com"  # dots count here
    assert fraud.normalise_email("not-an-email") is None


def test_phone_and_address_normalisation() -> None:
    assert fraud.normalise_phone("+1 (207) 555-0100") == fraud.normalise_phone("207-555-0100")
    assert fraud.normalise_phone("12-34") is None
    assert fraud.normalise_address("12 Main Street", "Apt 4", "04101", "us") == (
        fraud.normalise_address("12 main st.", "#4", "04 101", "US")
    )
    assert fraud.normalise_address("12 Main Street", None, "04101", "US") != (
        fraud.normalise_address("14 Main Street", None, "04101", "US")
    )


def test_similar_email_is_one_edit_at_one_domain_and_not_short_names() -> None:
    assert fraud.similar_emails("jsmith1@example.com", "jsmith2@example.com")
    assert not fraud.similar_emails("jsmith1@example.com", "jsmith2@example.org")
    assert not fraud.similar_emails("ann@example.com", "ben@example.com")
    assert not fraud.similar_emails("anna.smith@gmail.com", "ben.smith@gmail.com")


def test_each_strong_signal_alone_reaches_the_default_threshold() -> None:
    for flag, score in (
        ("own_code", 100),
        ("same_email", 100),
        ("same_phone", 70),
        ("same_device", 70),
    ):
        result = assess(Evidence(**{flag: True}))
        assert (result.score, [r.signal for r in result.reasons]) == (score, [flag])
        assert result.at_or_above(60)


def test_household_same_ip_and_address_stays_below_the_threshold() -> None:
    # given two people in one home: one IP, one address, different emails, phones, devices
    result = assess(Evidence(same_ip=True, same_address=True))
    # then the referral is reported with its reasons but not flagged
    assert result.score == 50
    assert [r.reason for r in result.reasons] == [
        "The friend's address is one the referrer has used",
        "The friend ordered from an IP address the referrer has used",
    ]
    assert not result.at_or_above(60)


def test_same_ip_and_browser_together_flag_one_machine() -> None:
    result = assess(Evidence(same_ip=True, same_browser=True, same_address=True))
    assert (result.score, signals(Evidence(same_ip=True, same_browser=True))) == (
        75,
        ["same_ip", "same_ip_and_browser"],
    )


def test_velocity_burst_coupon_and_disposable_have_their_own_reasons() -> None:
    limits = Limits(ip_velocity_limit=5, burst_limit=5, coupon_click_limit=50)
    below = Evidence(referrals_from_ip=4, recent_referrals=4, distinct_click_networks=49)
    assert assess(below, limits).reasons == ()
    at = Evidence(referrals_from_ip=5, recent_referrals=5, distinct_click_networks=50)
    assert [(r.signal, r.weight, r.reason) for r in assess(at, limits).reasons] == [
        ("ip_velocity", 40, "5 other referred orders came from this IP address in 7 days"),
        ("burst", 30, "The referrer had 5 other referred orders in 24 hours"),
        (
            "code_spread",
            40,
            "The code looks published on a coupon site "
            "(50 unrelated networks clicked it this week)",
        ),
    ]
    assert signals(Evidence(came_from_coupon_site=True)) == ["coupon_site"]
    assert signals(Evidence(disposable_email=True)) == ["disposable_email"]
    assert fraud.is_disposable("x@Mailinator.com")
    assert not fraud.is_disposable("x@gmail.com")
    assert fraud.is_coupon_host("www.retailmenot.com")
    assert not fraud.is_coupon_host("instagram.com")


flags = st.fixed_dictionaries(
    {f.name: st.booleans() for f in fields(Evidence) if f.type == "bool"},
).map(lambda values: Evidence(**values))


@given(flags, st.integers(0, 100), st.integers(0, 100), st.integers(0, 1000))
def test_score_is_bounded_explained_and_monotone(
    evidence: Evidence, from_ip: int, recent: int, networks: int
) -> None:
    evidence = replace(
        evidence,
        referrals_from_ip=from_ip,
        recent_referrals=recent,
        distinct_click_networks=networks,
    )
    result = assess(evidence)
    assert 0 <= result.score <= 100
    assert result.score == min(100, sum(r.weight for r in result.reasons))
    assert all(r.reason for r in result.reasons)
    # adding any signal never lowers the score
    for name in ("same_phone", "same_device", "same_address", "disposable_email"):
        assert assess(replace(evidence, **{name: True})).score >= result.score


def test_strong_without_lookalikes_coupon_host_and_disposable_inbox_reach_the_threshold() -> None:
    assert assess(Evidence(came_from_coupon_site=True)).score == 60
    assert assess(Evidence(disposable_email=True)).score == 60
    # the lookalikes: many networks from a viral post, a privacy relay address
    assert assess(Evidence(distinct_click_networks=80)).score == 40
    assert not fraud.is_disposable("x7fq2k9d@privaterelay.appleid.com")


def test_shared_network_evidence_is_counted_once_so_an_office_is_not_flagged() -> None:
    # given a busy office: the referrer's IP, and six referred orders from it this week
    result = assess(Evidence(same_ip=True, referrals_from_ip=6))
    # then both reasons are shown but the network counts once
    assert [(r.signal, r.weight) for r in result.reasons] == [("same_ip", 20), ("ip_velocity", 20)]
    assert result.reasons[1].reason.endswith("(a shared network is counted once)")
    assert (result.score, result.at_or_above(60)) == (40, False)
    # a farm on one IP with throwaway inboxes still is
    assert assess(Evidence(referrals_from_ip=6, disposable_email=True)).score == 100


def test_a_known_different_device_overrules_the_ip_and_browser_proxy() -> None:
    # two iPhones of one model on one home wifi share IP and user agent
    partner = Evidence(same_ip=True, same_browser=True, same_address=True, other_device=True)
    assert signals(partner) == ["same_address", "same_ip"]
    assert assess(partner).score == 50
    # without a device id the proxy stands
    assert signals(replace(partner, other_device=False)) == [
        "same_address",
        "same_ip",
        "same_ip_and_browser",
    ]
