"""`make bench`'s table: each benchmark's JSON becomes figures against their targets."""

from __future__ import annotations

import json
from pathlib import Path

from bench import all as bench_all
from bench.all import Figure, Run


def test_intake_cases_become_rate_and_latency_figures() -> None:
    data = {
        "targets": {"orders_per_s": 1000.0, "p99_ms": 250.0},
        "cases": [
            {"database": "postgresql", "workers": 2, "error": None,
             "intake": {"processed_per_s": 1200.5, "p99_ms": 300.0}},
            {"database": "sqlite", "workers": 1, "error": "uvicorn exited", "intake": None},
        ],
    }  # fmt: skip

    figures = bench_all.intake_figures(data)

    assert figures == [
        Figure("intake", "orders/s, PostgreSQL, 2 worker(s)", 1200.5, "/s", ">= 1,000", True),
        Figure("intake", "p99 ack, PostgreSQL, 2 worker(s)", 300.0, "ms", "< 250 ms", False),
        Figure("intake", "orders/s, SQLite, 1 worker(s)", None, "", ">= 1,000", False,
               "uvicorn exited"),
        Figure("intake", "p99 ack, SQLite, 1 worker(s)", None, "", "< 250 ms", False,
               "uvicorn exited"),
    ]  # fmt: skip


def test_widget_needs_the_target_rate_and_no_errors_to_meet() -> None:
    data = {
        "assets": {"stamp-loader.js": {"bytes": 9000, "gzip9": 3072}},
        "targets": {"loader_kb_gz": 10.0, "p99_ms": 50.0, "rate": 300.0},
        "cases": [
            {"database": "postgresql", "rate": 300.0, "sent_rate": 299.0, "p99_ms": 41.5,
             "errors": {}, "error": None},
            {"database": "sqlite", "rate": 300.0, "sent_rate": 300.0, "p99_ms": 12.0,
             "errors": {"timeout": 3}, "error": None},
        ],
    }  # fmt: skip

    figures = bench_all.widget_figures(data)

    assert [(f.name, f.value, f.met, f.note) for f in figures] == [
        ("loader, gzip -9", 3.0, True, ""),
        ("JSON p99 at 300/s, PostgreSQL", 41.5, True, ""),
        ("JSON p99 at 300/s, SQLite", 12.0, False, "timeout: 3"),
    ]


def test_klaviyo_and_winback_take_their_targets_from_their_modules() -> None:
    klaviyo = {"members": 100_000, "requests": 45, "sync_seconds": 38.0,
               "profiles_correct": 100_000, "backlog_after": 0}  # fmt: skip
    winback = {"customers": 1_000_000, "fit_s": 2.0, "score_s": 1.5, "peak_mb": 420.0}

    figures = bench_all.klaviyo_figures(klaviyo) + bench_all.winback_figures(winback)

    assert [(f.benchmark, f.value, f.target, f.met) for f in figures] == [
        ("klaviyo", 0.00045, "<= 0.001", True),
        ("klaviyo", 38.0, "< 60 s", True),
        ("klaviyo", 100_000.0, "= 100,000", True),
        ("winback", 3.5, "< 3 s", False),
        ("winback", 420.0, "< 500 MB", True),
    ]


def test_a_benchmark_without_json_is_a_failed_row(tmp_path: Path) -> None:
    run = Run("lighthouse", ["python"], 2, 1.0, str(tmp_path / "lighthouse.log"), None)

    (figure,) = bench_all.figures_of(run)

    assert (figure.value, figure.met) == (None, False)
    assert figure.note == f"exit 2, no JSON; see {tmp_path / 'lighthouse.log'}"


def test_the_table_shows_verdicts_and_the_previous_run(tmp_path: Path) -> None:
    earlier = tmp_path / "20260101T000000Z.json"
    earlier.write_text(json.dumps({"figures": [
        {"benchmark": "winback", "name": "fit + score", "value": 4.0},
    ]}))  # fmt: skip
    figures = [
        Figure("winback", "fit + score", 2.5, "s", "< 3 s", True),
        Figure("intake", "orders/s", None, "", ">= 1,000", False, "timed out"),
    ]

    previous = bench_all.previous_values(tmp_path, tmp_path / "20260102T000000Z.json")
    lines = bench_all.table(figures, previous).splitlines()

    assert lines[0].split() == [
        "benchmark",
        "figure",
        "value",
        "target",
        "verdict",
        "previous",
        "note",
    ]
    assert lines[2].split() == ["winback", "fit", "+", "score", "2.5", "s", "<", "3", "s",
                                "met", "4", "s"]  # fmt: skip
    assert lines[3].split() == ["intake", "orders/s", "-", ">=", "1,000", "FAILED", "-",
                                "timed", "out"]  # fmt: skip


def test_admin_home_figures_carry_their_three_targets() -> None:
    data = {"members": 100_000, "entries": 1_000_000, "days": 30, "p50_ms": 110.5,
            "p99_ms": 301.0, "lcp_ms": 288.0, "cls": 0.0, "other_cores": 0.3}  # fmt: skip

    figures = bench_all.admin_figures(data)

    assert [(f.name, f.value, f.target, f.met) for f in figures] == [
        ("home p99 server time, 100,000 members, 1,000,000 entries", 301.0, "< 300 ms", False),
        ("home LCP (median of 5)", 288.0, "< 1500 ms", True),
        ("home CLS (worst of 5)", 0.0, "< 0.05", True),
    ]
