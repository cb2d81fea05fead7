"""Win-back benchmark: fit and score 1,000,000 synthetic BG/NBD customers (issue 7).

    .venv/bin/python -m bench.winback [--customers 1000000] [--seed 7] [--json out.json]

The parent draws the orders of `--customers` customers from a BG/NBD process with known
parameters (vectorised numpy, fixed seed, time in days), writes them to a temporary
directory, and runs the measured work in a fresh child process, so the child's peak RSS
(`ru_maxrss`) belongs to the fit and scoring alone plus the interpreter, numpy and scipy,
never to the generator. tracemalloc is not used: it misses most numpy buffers.

What the child runs is the real code path, what `service.scan_shop` does on a day its
model is refitted, after reading the orders from the database:
  * history: `models.history(members, days, today)`, the one sort of the orders;
  * fit: `models.fit_history(found, today)` (time split, model choice by holdout AUC on a
    seeded sample of at most 200k customers, calibration, BG/NBD and MBG/NBD refitted on
    every customer);
  * score: `service.score_history(fitted, found, today)`: every member's status, score
    and dates, as numpy columns (on other days the scan does only history + score).
The records `scan_shop` builds from those columns, 500 at a time as it writes each batch,
are timed separately and are not in the target (the database writes dominate there).
It also times one bare `models.fit("bgnbd", rfm)` on all customers, the figure the
`lifetimes` anchor (about 16 s and 560 MB for 1M) measures, and prints the recovered
parameters against the true ones. Targets: history + fit + score < 3 s and peak RSS of the
whole child process < 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

TARGET_SECONDS = 3.0
BATCH_SIZE = 500  # service.BATCH_SIZE, not imported here: the parent must stay light
TARGET_MB = 500.0
# True BG/NBD parameters in days: a customer orders every alpha / r = 120 days on average
# while alive, and drops out after a repeat order with mean probability a / (a + b) = 0.24.
TRUE = {"r": 0.5, "alpha": 60.0, "a": 0.8, "b": 2.5}
HISTORY_DAYS = 730  # first orders fall uniformly over the two years before today
TODAY = 800_000  # a proleptic ordinal day, like service._day() returns


def generate(
    n: int, seed: int = 7, true: dict[str, float] | None = None
) -> tuple[NDArray[np.int64], NDArray[np.int64], int]:
    """Orders (customer id, day) of `n` customers drawn from a BG/NBD process, up to TODAY.

    Each customer has a first order on a uniform day of the history, a Poisson rate
    lambda ~ Gamma(r, alpha) per day and a drop-out probability p ~ Beta(a, b) applied after
    every repeat order. Gaps are exponential; orders are floored to whole days (the service
    merges same-day orders). Vectorised over the customers still alive, one round per order.
    """
    params = TRUE if true is None else true
    rng = np.random.default_rng(seed)
    lam = rng.gamma(params["r"], 1.0 / params["alpha"], n)
    p = rng.beta(params["a"], params["b"], n)
    first = rng.uniform(0.0, HISTORY_DAYS, n)
    start = TODAY - HISTORY_DAYS
    customers = [np.arange(n, dtype=np.int64)]
    days = [start + np.floor(first).astype(np.int64)]
    alive = np.arange(n, dtype=np.int64)
    clock = first.copy()
    while alive.size:
        clock[alive] += rng.exponential(1.0, alive.size) / lam[alive]
        alive = alive[clock[alive] < HISTORY_DAYS]
        customers.append(alive)
        days.append(start + np.floor(clock[alive]).astype(np.int64))
        alive = alive[rng.random(alive.size) >= p[alive]]
    return np.concatenate(customers), np.concatenate(days), TODAY


@dataclass(frozen=True, slots=True)
class Measured:
    customers: int
    orders: int
    history_s: float
    fit_s: float
    score_s: float
    cpu_s: float
    load_before: float
    load_after: float
    bare_fit_s: float
    records_s: float
    peak_mb: float
    baseline_mb: float
    chosen: str
    recovered: dict[str, float]
    aucs: dict[str, float]
    statuses: dict[str, int]

    @property
    def total_s(self) -> float:
        return self.history_s + self.fit_s + self.score_s


def _rss_mb() -> float:
    """This process's peak RSS so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(directory: Path) -> dict[str, Any]:
    """The measured work, in a fresh process: load, history, fit, score, then extras."""
    from app.winback import models, service

    members = np.load(directory / "members.npy")
    days = np.load(directory / "days.npy")
    today = int(np.load(directory / "today.npy"))
    baseline = _rss_mb()
    load_before = os.getloadavg()[0]

    cpu = time.process_time()
    started = time.perf_counter()
    found = models.history(members, days, today)
    history_s = time.perf_counter() - started

    started = time.perf_counter()
    fitted = models.fit_history(found, today)
    fit_s = time.perf_counter() - started

    started = time.perf_counter()
    scored = service.score_history(fitted, found, today)
    score_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu
    peak = _rss_mb()
    load_after = os.getloadavg()[0]

    statuses = scored.status_counts()
    started = time.perf_counter()
    for start in range(0, len(scored), service.BATCH_SIZE):
        scored.records(start, start + service.BATCH_SIZE)
    records_s = time.perf_counter() - started
    del scored

    _, rfm, _ = models.rfm_from_days(members, days, today)
    started = time.perf_counter()
    bare = models.fit("bgnbd", rfm)
    bare_fit_s = time.perf_counter() - started

    assert fitted.bg is not None, "1M customers must not fall back to the recency rule"
    return {
        "customers": len(rfm),
        "orders": int(members.size),
        "history_s": history_s,
        "fit_s": fit_s,
        "score_s": score_s,
        "cpu_s": cpu_s,
        "load_before": load_before,
        "load_after": load_after,
        "bare_fit_s": bare_fit_s,
        "records_s": records_s,
        "peak_mb": peak,
        "baseline_mb": baseline,
        "chosen": fitted.chosen,
        "recovered": {"r": bare.r, "alpha": bare.alpha, "a": bare.a, "b": bare.b, "ll": bare.ll},
        "aucs": fitted.aucs,
        "statuses": statuses,
    }


def measure(n: int, seed: int) -> tuple[Measured, float]:
    """Generate in this process, measure in a child; returns the figures and gen time."""
    started = time.perf_counter()
    members, days, today = generate(n, seed)
    generate_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="stamp-winback-bench-") as tmp:
        directory = Path(tmp)
        np.save(directory / "members.npy", members)
        np.save(directory / "days.npy", days)
        np.save(directory / "today.npy", np.int64(today))
        del members, days
        done = subprocess.run(
            [sys.executable, "-m", "bench.winback", "--child", str(directory)],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
    return Measured(**json.loads(done.stdout.strip().splitlines()[-1])), generate_s


def _verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def report(result: Measured, generate_s: float) -> list[str]:
    rec = result.recovered
    lines = [
        f"customers {result.customers:,} ({result.orders:,} orders), "
        f"generated in {generate_s:.1f} s (not measured)",
        f"history models.history (one sort of the orders):               {result.history_s:6.2f} s",
        f"fit     models.fit_history (choice on a sample, 2 full fits):    {result.fit_s:6.2f} s",
        f"score   service.score_history (every member, as columns):        {result.score_s:6.2f} s",
        f"history + fit + score: {result.total_s:.2f} s wall  target < {TARGET_SECONDS:.0f} s  "
        f"{_verdict(result.total_s < TARGET_SECONDS)}",
        f"  (CPU time of the child over the same span: {result.cpu_s:.2f} s; 1-min load "
        f"average {result.load_before:.1f} before, {result.load_after:.1f} after, on "
        f"{os.cpu_count()} CPUs: wall time above CPU time is waiting for a core)",
        f"peak RSS of the child: {result.peak_mb:.0f} MB (after loading the orders "
        f"{result.baseline_mb:.0f} MB, so +{result.peak_mb - result.baseline_mb:.0f} MB)  "
        f"target < {TARGET_MB:.0f} MB  {_verdict(result.peak_mb < TARGET_MB)}",
        f"not in the target: the scan's per-batch records for every member "
        f"{result.records_s:.2f} s (built while it writes each batch of "
        f"{BATCH_SIZE})",
        f"one bare BG/NBD fit on all customers: {result.bare_fit_s:.2f} s (lifetimes: about 16 s)",
        "recovered vs true (days): "
        + ", ".join(f"{k} {rec[k]:.4g} vs {v:g} ({(rec[k] - v) / v:+.1%})" for k, v in TRUE.items())
        + f"; LL {rec['ll']:.1f}",
        f"chosen score: {result.chosen}; holdout AUCs "
        + ", ".join(f"{k} {v:.3f}" for k, v in result.aucs.items()),
        "statuses: " + ", ".join(f"{k} {v:,}" for k, v in sorted(result.statuses.items())),
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child)))
        return 0
    result, generate_s = measure(args.customers, args.seed)
    for line in report(result, generate_s):
        print(line)
    if args.json is not None:
        args.json.write_text(json.dumps({**asdict(result), "generate_s": generate_s}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
