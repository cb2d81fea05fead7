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


def _naive_rfm(
    customer: list[int], day: list[int], cutoff: int
) -> dict[int, tuple[float, float, float]]:
    """(x, t_x, T) per customer the slow, obvious way."""
    days: dict[int, set[int]] = {}
    for who, when in zip(customer, day, strict=True):
        if when <= cutoff:
            days.setdefault(who, set()).add(when)
    return {
        who: (float(len(seen) - 1), float(max(seen) - min(seen)), float(cutoff - min(seen)))
        for who, seen in days.items()
    }


@pytest.mark.parametrize("offset", [0, 2**61])  # dense ids, and ids too sparse for one key
def test_history_gives_every_cutoff_the_same_rfm_as_counting_by_hand(offset: int) -> None:
    # given 3,000 orders of 400 customers over 300 days, in no particular order
    rng = np.random.default_rng(3)
    customer = rng.integers(0, 400, 3_000) * 7 + offset
    day = rng.integers(1_000, 1_300, 3_000)
    found = models.history(customer, day, 1_250)
    for cutoff in (1_250, 1_200, 1_100, 1_000):
        # when the history is cut, then each customer's (x, t_x, T) is the hand count
        who, rfm, last = found.at(cutoff)
        expected = _naive_rfm(customer.tolist(), day.tolist(), cutoff)
        got = {
            int(found.ids[i]): (float(x), float(t), float(T))
            for i, x, t, T in zip(who, rfm.x, rfm.t_x, rfm.T, strict=True)
        }
        assert got == expected
        assert last.tolist() == [int(cutoff - T + t) for _, t, T in got.values()]


def test_compressed_rows_keep_every_customer_and_the_likelihood() -> None:
    # given CDNOW, compressed to distinct (x, t_x, T) rows with counts
    rfm = cdnow()
    data = models.rows(rfm)
    # then each distinct history is one row, every customer is counted once, and the
    # weighted LL is the per-customer LL
    distinct = set(zip(rfm.x.tolist(), rfm.t_x.tolist(), rfm.T.tolist(), strict=True))
    assert (len(data), data.weight.sum()) == (len(distinct), 2357.0)
    assert set(zip(*(data.rfm().x, data.rfm().t_x, data.rfm().T), strict=True)) == distinct
    per_customer = models.log_likelihood("bgnbd", 0.243, 4.414, 0.793, 2.426, rfm).sum()
    per_row = models._Likelihood("bgnbd", data).per_row(0.243, 4.414, 0.793, 2.426)
    assert float(data.weight @ per_row) == pytest.approx(per_customer, rel=1e-12)
    # and a label splits rows only where customers with the same history differ in it
    label = rfm.x == 0
    labelled = models.rows(rfm, label=label)
    assert labelled.label is not None
    assert len(labelled) == len(distinct)
    assert labelled.label.tolist() == (labelled.x == 0).tolist()


@pytest.mark.parametrize("kind", ["bgnbd", "mbgnbd"])
def test_analytic_gradient_and_hessian_agree_with_finite_differences(kind: models.Kind) -> None:
    objective = models._Likelihood(kind, models.rows(cdnow()), 3.9)
    theta = np.log(np.array([0.3, 1.2, 0.7, 2.0]))
    value, grad, hess = objective.derivatives(theta)
    assert value == pytest.approx(objective.value(theta), abs=1e-12)
    step = 1e-5
    for i in range(4):
        shift = np.zeros(4)
        shift[i] = step
        slope = (objective.value(theta + shift) - objective.value(theta - shift)) / (2 * step)
        bend = (
            objective.derivatives(theta + shift)[1] - objective.derivatives(theta - shift)[1]
        ) / (2 * step)
        assert grad[i] == pytest.approx(slope, abs=1e-8)
        assert hess[i] == pytest.approx(bend, abs=1e-8)


def test_a_warm_start_reaches_the_same_estimates() -> None:
    rfm = cdnow()
    cold = models.fit("mbgnbd", rfm)
    near = models.Params("mbgnbd", 0.6, 5.0, 1.0, 2.0, 0.0)
    warm = models.fit("mbgnbd", rfm, start=near)
    for got, want in zip(
        (warm.r, warm.alpha, warm.a, warm.b, warm.ll),
        (cold.r, cold.alpha, cold.a, cold.b, cold.ll),
        strict=True,
    ):
        assert got == pytest.approx(want, rel=1e-6)


def test_weighted_auc_and_ranks_on_rows_equal_the_per_customer_ones() -> None:
    # given scores with ties, and the same customers as distinct rows with counts
    rng = np.random.default_rng(5)
    level = rng.integers(0, 30, 5_000)
    label = rng.random(5_000) < 0.4
    score = level / 7.0
    distinct, counts = np.unique(level * 2 + label, return_counts=True)
    row_score, row_label = (distinct // 2) / 7.0, distinct % 2 == 1
    # then the weighted AUC is the per-customer Mann-Whitney AUC, ties counted half
    want = models.auc(score, label)
    assert models.auc(row_score, row_label, counts.astype(float)) == pytest.approx(want, abs=1e-12)
    ranks = models._rank01(score)
    assert 0 < float(ranks.min()) < float(ranks.max()) < 1
    # and weighted mid-ranks, expanded back to customers, are the per-customer mid-ranks
    row_ranks = models._rank01(row_score, counts.astype(float))
    expanded = dict(zip(row_score.tolist(), row_ranks.tolist(), strict=False))
    assert [expanded[s] for s in score.tolist()] == pytest.approx(ranks.tolist(), abs=1e-12)


def test_p_zero_is_dead_or_alive_without_an_order_and_never_nan() -> None:
    rfm = cdnow()
    params = models.fit("bgnbd", rfm)
    alive = models.p_alive(params, rfm)
    stay = ((params.alpha + rfm.T) / (params.alpha + rfm.T + 39.0)) ** (params.r + rfm.x)
    assert models.p_zero(params, rfm, 39.0) == pytest.approx((1 - alive) + alive * stay)
    # a customer silent for ages with many past orders: surely gone, not nan
    old = models.Rfm(np.array([60.0]), np.array([1.0]), np.array([1e6]))
    assert models.p_zero(params, old, 39.0).tolist() == [1.0]


def _synthetic_shop(n: int, seed: int) -> tuple[models.IntArray, models.IntArray]:
    """Orders (customer, day) of `n` BG/NBD customers over two years (as bench/winback)."""
    rng = np.random.default_rng(seed)
    lam, p = rng.gamma(0.5, 1 / 60.0, n), rng.beta(0.8, 2.5, n)
    clock = rng.uniform(0.0, 730.0, n)
    customers, days = [np.arange(n)], [np.floor(clock).astype(np.int64)]
    alive = np.arange(n)
    while alive.size:
        clock[alive] += rng.exponential(1.0, alive.size) / lam[alive]
        alive = alive[clock[alive] < 730.0]
        customers.append(alive)
        days.append(np.floor(clock[alive]).astype(np.int64))
        alive = alive[rng.random(alive.size) >= p[alive]]
    return np.concatenate(customers).astype(np.int64), np.concatenate(days)


def test_big_shops_choose_on_a_seeded_sample_but_fit_on_every_customer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a shop of 20,000 customers, and model choice capped at 5,000 of them
    customer, day = _synthetic_shop(20_000, seed=11)
    everyone = models.fit_shop(customer, day, 730)
    monkeypatch.setattr(models, "SELECTION_SAMPLE", 5_000)
    sampled = models.fit_shop(customer, day, 730)
    # then the choice is repeatable (fixed seed) and its AUCs come from the sample ...
    assert models.fit_shop(customer, day, 730).as_json() == sampled.as_json()
    assert sampled.aucs != everyone.aucs
    assert abs(sampled.aucs["recency"] - everyone.aucs["recency"]) < 0.02
    # ... while the final models are the maximum-likelihood fits on all 20,000
    assert sampled.bg is not None
    assert everyone.bg is not None
    assert sampled.mbg is not None
    assert everyone.mbg is not None
    assert sampled.n_customers == 20_000
    for got, want in ((sampled.bg, everyone.bg), (sampled.mbg, everyone.mbg)):
        assert (got.r, got.alpha, got.a, got.b, got.ll) == pytest.approx(
            (want.r, want.alpha, want.a, want.b, want.ll), rel=1e-5
        )


def test_status_codes_index_the_status_names() -> None:
    x = np.array([2.0, 2.0, 2.0, 0.0, 0.0])
    score = np.array([0.3, 0.6, 0.84, 0.9, 0.2])
    assert models.status_codes(x, score).tolist() == [0, 1, 2, 3, 0]
    assert [models.STATUSES[c] for c in models.status_codes(x, score)] == models.status_of(
        x, score
    ).tolist()
