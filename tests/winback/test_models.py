"""The closed forms against the published CDNOW figures, the fallback, AUC, model choice."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.winback import models

DATA = Path(__file__).parent / "data"


def cdnow() -> models.Rfm:
    """The 2,357-customer CDNOW summary (weeks), as shipped in the lifetimes 0.11.3 wheel."""
    with (DATA / "cdnow_summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    column = lambda name: np.array([float(row[name]) for row in rows])  # noqa: E731
    return models.Rfm(column("frequency"), column("recency"), column("T"))


def test_bgnbd_log_likelihood_at_the_papers_estimates_is_the_papers() -> None:
    # given the paper's parameters, when the LL is summed, then it is FHL 2005's -9582.4
    ll = models.log_likelihood("bgnbd", 0.243, 4.414, 0.793, 2.426, cdnow()).sum()
    assert ll == pytest.approx(-9582.43, abs=0.01)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("bgnbd", (0.243, 4.414, 0.793, 2.426, -9582.4)),
        ("mbgnbd", (0.5248, 6.183, 0.8914, 1.614, -9582.13)),
    ],
)
def test_fit_reproduces_published_cdnow_estimates_within_half_a_percent(
    kind: models.Kind, expected: tuple[float, ...]
) -> None:
    fitted = models.fit(kind, cdnow())
    got = (fitted.r, fitted.alpha, fitted.a, fitted.b, fitted.ll)
    for value, paper in zip(got, expected, strict=True):
        assert value == pytest.approx(paper, rel=0.005)


def test_p_alive_of_customers_1_and_6_and_one_time_buyers() -> None:
    rfm = cdnow()
    alive = models.p_alive(models.Params("bgnbd", 0.2426, 4.4135, 0.7929, 2.4258, 0.0), rfm)
    assert (round(alive[0], 3), round(alive[5], 3)) == (0.727, 0.642)
    # the trap: a BG/NBD one-time buyer is always alive, whatever their age
    assert np.all(alive[rfm.x == 0] == 1.0)


def test_expected_purchases_and_p_zero_agree_with_the_papers_group_figures() -> None:
    # the x = 0 group's 39-week holdout mean is predicted 0.225 (paper 0.23; actual 0.237)
    rfm = cdnow()
    params = models.fit("bgnbd", rfm)
    expected = models.expected_purchases(params, rfm, 39.0)
    assert round(float(expected[rfm.x == 0].mean()), 3) == 0.225
    zero = models.p_zero(params, rfm, 39.0)
    assert round(float(zero.mean()), 3) == 0.738  # the reference's mean P(zero in 39 wk)


def test_fit_recovers_known_parameters_from_simulated_customers() -> None:
    # given 40,000 customers drawn from a BG/NBD with CDNOW-like parameters
    rng = np.random.default_rng(7)
    n, r, alpha, a, b = 40_000, 0.5, 8.0, 0.8, 2.5
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    T = rng.integers(180, 360, n).astype(float)
    N = rng.poisson(lam * T)
    J = rng.geometric(p)
    x = np.minimum(N, J).astype(float)
    t_x = np.zeros(n)
    m = x > 0
    t_x[m] = np.floor(T[m] * rng.beta(x[m], N[m] - x[m] + 1))
    # when fitted, then the parameters come back within 10%
    fitted = models.fit("bgnbd", models.Rfm(x, t_x, T))
    assert fitted.r == pytest.approx(r, rel=0.1)
    assert fitted.alpha == pytest.approx(alpha, rel=0.1)
    assert fitted.a == pytest.approx(a, rel=0.1)
    assert fitted.b == pytest.approx(b, rel=0.1)


def test_rfm_merges_orders_placed_on_the_same_day_and_ignores_later_ones() -> None:
    customer = np.array([1, 1, 1, 2, 1], dtype=np.int64)
    day = np.array([100, 100, 130, 120, 400], dtype=np.int64)
    ids, rfm, last = models.rfm_from_days(customer, day, 150)
    assert ids.tolist() == [1, 2]
    assert rfm.x.tolist() == [1.0, 0.0]
    assert rfm.t_x.tolist() == [30.0, 0.0]
    assert rfm.T.tolist() == [50.0, 30.0]
    assert last.tolist() == [130, 120]


def test_auc_counts_ties_as_half_and_is_nan_with_one_class() -> None:
    label = np.array([False, False, True, True])
    assert models.auc(np.array([0.1, 0.4, 0.35, 0.8]), label) == 0.75
    assert models.auc(np.array([0.1, 0.5, 0.5, 0.8]), label) == 0.875
    assert np.isnan(models.auc(np.array([0.1, 0.2]), np.array([True, True])))


@given(
    st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=40).filter(
        lambda rows: len({flag for _, flag in rows}) == 2
    )
)
def test_auc_of_a_score_and_its_negation_sum_to_one(rows: list[tuple[int, bool]]) -> None:
    score = np.array([float(value) for value, _ in rows])
    label = np.array([flag for _, flag in rows])
    assert models.auc(score, label) + models.auc(-score, label) == pytest.approx(1.0)


def test_fallback_flags_after_one_and_a_half_gaps_and_lapses_after_three() -> None:
    score = models.fallback_score(np.array([0.0, 30.0, 45.0, 90.0]), 30.0)
    assert np.round(score, 4).tolist() == [0.0, 0.4571, 0.6, 0.84]
    status = models.status_of(
        np.array([2.0, 2.0, 2.0, 0.0, 0.0]), np.array([0.3, 0.6, 0.84, 0.6, 0.2])
    )
    assert status.tolist() == ["active", "at_risk", "lapsed", "one_time_lapsing", "active"]


def test_recency_wins_unless_a_model_beats_it_by_the_margin() -> None:
    assert models.choose({"recency": 0.77, "bgnbd_p_zero": 0.771}) == "recency"
    assert models.choose({"recency": 0.77, "bgnbd_p_zero": 0.78, "blend": 0.79}) == "blend"
    assert models.choose({"recency": float("nan"), "blend": float("nan")}) == "recency"


def test_shop_with_few_repeat_buyers_falls_back_to_recency_scaled_by_its_gap() -> None:
    # given 3 customers, two repeaters with 20- and 40-day gaps
    customer = np.array([1, 1, 2, 2, 3], dtype=np.int64)
    day = np.array([0, 20, 10, 50, 60], dtype=np.int64)
    fitted = models.fit_shop(customer, day, 100)
    assert (fitted.chosen, fitted.cycle_days, fitted.tau_days) == ("recency_fallback", 30.0, 60.0)
    # when scored, then 80 days since the last order (2.67 gaps) is at risk, not lapsed
    _, rfm, _ = models.rfm_from_days(customer, day, 100)
    assert np.round(fitted.score(rfm), 4).tolist() == [0.8039, 0.6387, 0.5571]
    round_trip = models.ShopModel.from_json(fitted.as_json())
    assert round_trip.as_json() == fitted.as_json()
