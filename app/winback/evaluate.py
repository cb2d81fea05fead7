"""Offline evaluation: fit on orders up to a cut-off, score who ordered within a horizon.

The merchant-facing proof that the shop's chosen score beats (or at least matches) plain
recency on their own data, with the same code path the scan uses (`models.fit_shop`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any

import numpy as np

from app.winback import models


class EvaluationError(ValueError):
    """The file cannot be evaluated (missing columns, bad dates, no customers)."""


REQUIRED = ("customer_id", "order_id", "created_at")


def _day(value: str) -> int:
    text = value.strip()
    try:
        if len(text) <= 10:
            return date.fromisoformat(text).toordinal()
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date().toordinal()
    except ValueError as exc:
        raise EvaluationError(f"created_at {value!r} is not an ISO date") from exc


def read_orders(
    handle: IO[str], progress: Callable[[int], None] | None = None
) -> tuple[models.IntArray, models.IntArray]:
    """(customer index, day) per order, in any row order; customer ids may be any text."""
    reader = csv.DictReader(handle)
    missing = [name for name in REQUIRED if name not in (reader.fieldnames or [])]
    if missing:
        raise EvaluationError(f"missing columns: {', '.join(missing)}")
    index: dict[str, int] = {}
    customers: list[int] = []
    days: list[int] = []
    for count, row in enumerate(reader, start=1):
        customers.append(index.setdefault(row["customer_id"], len(index)))
        days.append(_day(row["created_at"]))
        if progress is not None and count % 10_000 == 0:
            progress(count)
    return np.asarray(customers, dtype=np.int64), np.asarray(days, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class ScoreReport:
    name: str
    auc: float
    auc_repeaters: float
    precision: float
    recall: float
    mean_predicted: float

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "auc": round(self.auc, 4),
            "auc_repeaters": round(self.auc_repeaters, 4),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "mean_predicted": round(self.mean_predicted, 4),
        }


def _report(name: str, score: models.FloatArray, label: Any, repeat: Any) -> ScoreReport:
    flag = score >= models.AT_RISK
    hits = int((flag & label).sum())
    return ScoreReport(
        name,
        models.auc(score, label),
        models.auc(score[repeat], label[repeat]),
        hits / int(flag.sum()) if flag.any() else 0.0,
        hits / int(label.sum()) if label.any() else 0.0,
        float(score.mean()),
    )


@dataclass(frozen=True, slots=True)
class Evaluation:
    model: ScoreReport
    recency: ScoreReport
    candidates: dict[str, float]
    selection_aucs: dict[str, float]
    customers: int
    repeaters: int
    lapse_rate: float

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model.as_json(),
            "recency": self.recency.as_json(),
            "candidates": {k: round(v, 4) for k, v in self.candidates.items()},
            "selection_aucs": {k: round(v, 4) for k, v in self.selection_aucs.items()},
            "customers": self.customers,
            "repeaters": self.repeaters,
            "lapse_rate": round(self.lapse_rate, 4),
        }


def evaluate(
    customers: models.IntArray,
    days: models.IntArray,
    cutoff: date,
    horizon: int,
    min_repeaters: int = models.MIN_REPEATERS,
) -> Evaluation:
    """Fit at `cutoff` (inclusive), label = no order in the next `horizon` days."""
    end = cutoff.toordinal()
    fitted = models.fit_shop(customers, days, end, tau=horizon, min_repeaters=min_repeaters)
    ids, rfm, _ = models.rfm_from_days(customers, days, end)
    if len(rfm) == 0:
        raise EvaluationError("no customer ordered on or before the cut-off")
    later = (days > end) & (days <= end + horizon)
    label = ~np.isin(ids, customers[later])
    repeat = rfm.x > 0
    recency = models.fallback_score(rfm.since_last, fitted.cycle_days)
    raw = fitted.raw_scores(rfm, horizon)
    return Evaluation(
        model=_report(fitted.chosen, fitted.score(rfm, horizon), label, repeat),
        recency=_report("recency", recency, label, repeat),
        candidates={name: models.auc(values, label) for name, values in raw.items()},
        selection_aucs=dict(fitted.aucs),
        customers=len(rfm),
        repeaters=int(repeat.sum()),
        lapse_rate=float(label.mean()),
    )


def lines(evaluation: Evaluation) -> Iterable[str]:
    """The human-readable report, side by side."""
    yield (
        f"{evaluation.customers} customers ({evaluation.repeaters} repeat buyers); "
        f"{evaluation.lapse_rate:.1%} did not order within the horizon"
    )
    yield f"{'score':<24}{'AUC':>8}{'AUC rep.':>10}{'precision':>11}{'recall':>8}{'mean pred.':>12}"
    for report in (evaluation.model, evaluation.recency):
        label = f"{report.name} (shop)" if report is evaluation.model else "recency baseline"
        yield (
            f"{label:<24}{report.auc:>8.3f}{report.auc_repeaters:>10.3f}"
            f"{report.precision:>11.3f}{report.recall:>8.3f}{report.mean_predicted:>12.3f}"
        )
    yield "AUC per candidate on the holdout: " + ", ".join(
        f"{name} {value:.3f}" for name, value in evaluation.candidates.items()
    )
    yield f"chosen: {evaluation.model.name} (best AUC on the last stretch before the cut-off)"
